#!/usr/bin/env node
// Offline validation of every Kubernetes manifest under k8s/ (no cluster, no network).
//
//   node tests/k8s/validate.js [K8S_DIR]      (default: <repo>/k8s)
//
// 1. Every YAML document of every resource file is built with the kubernetes-models class of its
//    apiVersion/kind and validated against the Kubernetes OpenAPI schema.
// 2. Every kustomization.yaml is checked for shape: known fields only, every listed resource and
//    patch exists. It is then rendered here (resources, namespace, patches as strategic merge or
//    JSON 6902, replicas, images): every patch, replica count and image override must hit a
//    resource, and every rendered object is validated again.
// 3. Rendered overlays (deployable units) are checked for consistency: referenced ConfigMaps and
//    Secrets exist, Service selectors select a workload, target ports, probe ports and
//    Prometheus ports are declared container ports, every process is told the peers it calls
//    (GRASSROOTS_*_ADDR) and each names a Service port of the render, and the Secret keys read
//    through secretKeyRef exist (the PII key as 64 hex characters).
// 4. What a province relies on, in every render (the base and each overlay):
//    - the bulk loaders (membership and cadrepay serving) have a writable volume where their
//      named pipes go ($TMPDIR, else /tmp: common/src/load_pipe.cc);
//    - every image has a tag (or digest), none is :latest, and all containers of a render run
//      the same one: the release's, set only in a kustomization's images (resource files name
//      the image without a tag);
//    - every domain service and migrate container reads GRASSROOTS_PII_KEY from a secretKeyRef
//      (not optional, not a literal, not from a ConfigMap) and none asks for the development key;
//    - membership's and cadrepay's memory requests hold their measured peaks, with room above in
//      the limits (overlays sized for a laptop, kSmallOverlays, are exempt).
// Prints one line per file/object (OK or the error path); exits 1 on any failure.
'use strict';

const fs = require('fs');
const path = require('path');
const yaml = require('js-yaml');

const repoRoot = path.resolve(__dirname, '..', '..');
const k8sDir = path.resolve(process.argv[2] || path.join(repoRoot, 'k8s'));
const rel = (p) => path.relative(repoRoot, p) || '.';

let failures = 0;
let checked = 0;
function ok(where, what) {
  checked++;
  console.log(`OK    ${where}  ${what}`);
}
function fail(where, what, why) {
  checked++;
  failures++;
  console.log(`FAIL  ${where}  ${what}\n      ${String(why).split('\n').join('\n      ')}`);
}

// ---------------------------------------------------------------------------------------------
// Files

function walk(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (/\.ya?ml$/.test(entry.name)) out.push(p);
  }
  return out;
}

function loadDocs(file) {
  const text = fs.readFileSync(file, 'utf8');
  return yaml.loadAll(text, null, { filename: rel(file) }).filter((d) => d !== null && d !== undefined);
}

const isKustomization = (file) => /^kustomization\.ya?ml$/.test(path.basename(file));
const clone = (o) => JSON.parse(JSON.stringify(o));
const id = (o) => `${o.kind}/${(o.metadata && o.metadata.name) || '?'}`;

// ---------------------------------------------------------------------------------------------
// kubernetes-models

function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' || !/^[A-Za-z0-9]+$/.test(kind)) {
    throw new Error('document has no usable apiVersion/kind');
  }
  const modulePath = `kubernetes-models/${apiVersion}/${kind}`;
  let mod;
  try {
    mod = require(modulePath);
  } catch (e) {
    throw new Error(`no kubernetes-models class for apiVersion ${apiVersion}, kind ${kind}`);
  }
  if (typeof mod[kind] !== 'function') throw new Error(`kubernetes-models has no class ${kind} in ${modulePath}`);
  return mod[kind];
}

function validateObject(obj) {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('document is not a mapping');
  if (!obj.metadata || typeof obj.metadata.name !== 'string' || obj.metadata.name === '') {
    throw new Error('metadata.name is missing');
  }
  const Cls = modelClass(obj.apiVersion, obj.kind);
  new Cls(clone(obj)).validate();
}

// ---------------------------------------------------------------------------------------------
// Strategic merge (the subset the manifests use): maps merge, null deletes, lists of objects
// with a `name` merge by name, every other list is replaced.

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function mergeList(target, patch) {
  const byName = patch.every((e) => isPlainObject(e) && typeof e.name === 'string') &&
    target.every((e) => isPlainObject(e) && typeof e.name === 'string');
  if (!byName) return clone(patch);
  const out = clone(target);
  for (const p of patch) {
    const i = out.findIndex((e) => e.name === p.name);
    if (i >= 0) out[i] = strategicMerge(out[i], p);
    else out.push(clone(p));
  }
  return out;
}

function strategicMerge(target, patch) {
  if (!isPlainObject(target) || !isPlainObject(patch)) return clone(patch);
  const out = clone(target);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = strategicMerge(out[k], v);
    else if (Array.isArray(v) && Array.isArray(out[k])) out[k] = mergeList(out[k], v);
    else out[k] = clone(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON 6902

function pointerParts(p) {
  if (typeof p !== 'string' || !p.startsWith('/')) throw new Error(`bad JSON pointer '${p}'`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function applyJson6902(obj, ops) {
  const out = clone(obj);
  for (const op of ops) {
    if (!isPlainObject(op) || typeof op.op !== 'string') throw new Error('a JSON 6902 operation must be a mapping with op');
    const parts = pointerParts(op.path);
    const last = parts.pop();
    let parent = out;
    for (const part of parts) {
      const key = Array.isArray(parent) ? Number(part) : part;
      if (parent === null || typeof parent !== 'object' || !(key in parent)) {
        throw new Error(`${op.op} ${op.path}: ${part} does not exist`);
      }
      parent = parent[key];
    }
    if (parent === null || typeof parent !== 'object') throw new Error(`${op.op} ${op.path}: parent is not a container`);
    const exists = Array.isArray(parent) ? Number(last) < parent.length : last in parent;
    switch (op.op) {
      case 'add':
        if (Array.isArray(parent)) {
          if (last === '-') parent.push(clone(op.value));
          else parent.splice(Number(last), 0, clone(op.value));
        } else parent[last] = clone(op.value);
        break;
      case 'replace':
        if (!exists) throw new Error(`replace ${op.path}: nothing there to replace`);
        parent[Array.isArray(parent) ? Number(last) : last] = clone(op.value);
        break;
      case 'remove':
        if (!exists) throw new Error(`remove ${op.path}: nothing there to remove`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete parent[last];
        break;
      default:
        throw new Error(`JSON 6902 op '${op.op}' is not supported by this validator`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Kustomize (the subset the manifests use)

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'patches', 'replicas', 'images']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume',
  'StorageClass', 'CustomResourceDefinition', 'PriorityClass', 'IngressClass']);
const SCALABLE = new Set(['Deployment', 'StatefulSet', 'ReplicaSet', 'ReplicationController']);

function groupVersion(apiVersion) {
  const i = apiVersion.lastIndexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

function matchesTarget(obj, t) {
  const gv = groupVersion(obj.apiVersion);
  const exact = (pattern, value) => pattern === undefined || new RegExp(`^(?:${pattern})$`).test(value || '');
  if (t.group !== undefined && t.group !== gv.group) return false;
  if (t.version !== undefined && t.version !== gv.version) return false;
  if (!exact(t.kind, obj.kind) || !exact(t.name, obj.metadata.name)) return false;
  if (t.namespace !== undefined && t.namespace !== (obj.metadata.namespace || '')) return false;
  if (t.labelSelector !== undefined) {
    const labels = obj.metadata.labels || {};
    for (const term of String(t.labelSelector).split(',')) {
      const [k, v] = term.split('=');
      if (labels[k.trim()] !== (v === undefined ? labels[k.trim()] : v.trim())) return false;
      if (!(k.trim() in labels)) return false;
    }
  }
  return true;
}

function podSpecs(obj) {
  const s = obj.spec || {};
  if (obj.kind === 'Pod') return [s];
  if (obj.kind === 'CronJob') return [(((s.jobTemplate || {}).spec || {}).template || {}).spec || {}];
  if (s.template && s.template.spec) return [s.template.spec];
  return [];
}

function containersOf(obj) {
  return podSpecs(obj).flatMap((ps) => [...(ps.initContainers || []), ...(ps.containers || [])]);
}

const imageName = (image) => String(image).replace(/@.*$/, '').replace(/:[^:/]*$/, '');

// Renders the kustomization in `dir`; throws on any structural problem. `where` collects the
// files it used so they are not validated again as standalone resources.
function build(dir, seen, usedAsPatch, stack = []) {
  const kfile = ['kustomization.yaml', 'kustomization.yml'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  if (!kfile) throw new Error(`${rel(dir)} has no kustomization.yaml`);
  if (stack.includes(kfile)) throw new Error(`kustomization cycle through ${rel(kfile)}`);
  const docs = loadDocs(kfile);
  if (docs.length !== 1 || !isPlainObject(docs[0])) throw new Error(`${rel(kfile)}: must hold one mapping`);
  const k = docs[0];
  const where = rel(kfile);
  if (k.apiVersion !== undefined && k.apiVersion !== 'kustomize.config.k8s.io/v1beta1') {
    throw new Error(`${where}: apiVersion must be kustomize.config.k8s.io/v1beta1`);
  }
  if (k.kind !== undefined && k.kind !== 'Kustomization') throw new Error(`${where}: kind must be Kustomization`);
  for (const key of Object.keys(k)) {
    if (!KNOWN_FIELDS.has(key)) {
      throw new Error(`${where}: field '${key}' is not understood by tests/k8s/validate.js (extend it, or use one of ${[...KNOWN_FIELDS].join(', ')})`);
    }
  }
  for (const key of ['resources', 'patches', 'replicas', 'images']) {
    if (k[key] !== undefined && !Array.isArray(k[key])) throw new Error(`${where}: ${key} must be a list`);
  }

  // resources
  let objects = [];
  for (const r of k.resources || []) {
    if (typeof r !== 'string') throw new Error(`${where}: resources entries must be strings`);
    if (/^[a-z]+:\/\//.test(r)) throw new Error(`${where}: remote resource '${r}' cannot be checked offline`);
    const p = path.resolve(dir, r);
    if (!fs.existsSync(p)) throw new Error(`${where}: resource '${r}' does not exist`);
    if (fs.statSync(p).isDirectory()) {
      objects.push(...build(p, seen, usedAsPatch, [...stack, kfile]));
    } else {
      seen.add(p);
      objects.push(...loadDocs(p).map((o) => ({ ...clone(o), __file: rel(p) })));
    }
  }
  for (const o of objects) {
    if (!isPlainObject(o) || !o.kind || !o.metadata || !o.metadata.name) throw new Error(`${where}: a resource lacks kind or metadata.name`);
  }
  const ids = new Set();
  for (const o of objects) {
    const key = `${o.kind}/${o.metadata.namespace || ''}/${o.metadata.name}`;
    if (ids.has(key)) throw new Error(`${where}: ${id(o)} is defined twice`);
    ids.add(key);
  }

  // namespace
  if (k.namespace !== undefined) {
    if (typeof k.namespace !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(k.namespace)) {
      throw new Error(`${where}: namespace '${k.namespace}' is not a valid name`);
    }
    objects = objects.map((o) => {
      if (CLUSTER_SCOPED.has(o.kind)) return o;
      const c = clone(o);
      c.metadata.namespace = k.namespace;
      return c;
    });
  }

  // patches
  (k.patches || []).forEach((p, i) => {
    const label = `${where}: patches[${i}]`;
    if (!isPlainObject(p)) throw new Error(`${label} must be a mapping`);
    if ((p.path === undefined) === (p.patch === undefined)) throw new Error(`${label} needs exactly one of path or patch`);
    let body;
    if (p.path !== undefined) {
      const pf = path.resolve(dir, p.path);
      if (!fs.existsSync(pf)) throw new Error(`${label}: patch file '${p.path}' does not exist`);
      usedAsPatch.add(pf);
      const d = loadDocs(pf);
      if (d.length !== 1) throw new Error(`${label}: patch file '${p.path}' must hold one document`);
      body = d[0];
    } else {
      body = yaml.load(String(p.patch));
    }
    let target = p.target;
    if (target !== undefined && !isPlainObject(target)) throw new Error(`${label}: target must be a mapping`);
    if (target) {
      for (const key of Object.keys(target)) {
        if (!['group', 'version', 'kind', 'name', 'namespace', 'labelSelector'].includes(key)) {
          throw new Error(`${label}: target field '${key}' is not understood by this validator`);
        }
      }
    }
    const json6902 = Array.isArray(body);
    if (!json6902) {
      if (!isPlainObject(body) || !body.kind || !body.metadata || !body.metadata.name) {
        throw new Error(`${label}: a strategic merge patch needs kind and metadata.name`);
      }
      if (!target) target = { kind: body.kind, name: body.metadata.name };
      if (body.apiVersion && !target.group && !target.version) {
        const gv = groupVersion(body.apiVersion);
        target = { ...target, group: gv.group, version: gv.version };
      }
    } else if (!target) {
      throw new Error(`${label}: a JSON 6902 patch needs a target`);
    }
    let hits = 0;
    objects = objects.map((o) => {
      if (!matchesTarget(o, target)) return o;
      hits++;
      try {
        if (json6902) return applyJson6902(o, body);
        const smp = clone(body);
        delete smp.metadata.name; // with a target, the patch applies to each match
        delete smp.metadata.namespace;
        return strategicMerge(o, smp);
      } catch (e) {
        throw new Error(`${label} on ${id(o)}: ${e.message}`);
      }
    });
    if (hits === 0) throw new Error(`${label} targets no resource (${JSON.stringify(target)})`);
  });

  // replicas
  (k.replicas || []).forEach((r, i) => {
    if (!isPlainObject(r) || typeof r.name !== 'string' || !Number.isInteger(r.count) || r.count < 0) {
      throw new Error(`${where}: replicas[${i}] needs a name and a non-negative integer count`);
    }
    const hits = objects.filter((o) => SCALABLE.has(o.kind) && o.metadata.name === r.name);
    if (hits.length === 0) throw new Error(`${where}: replicas[${i}] names '${r.name}', which is no Deployment or StatefulSet`);
    for (const o of hits) o.spec.replicas = r.count;
  });

  // images
  (k.images || []).forEach((im, i) => {
    if (!isPlainObject(im) || typeof im.name !== 'string') throw new Error(`${where}: images[${i}] needs a name`);
    let hits = 0;
    for (const o of objects) {
      for (const c of containersOf(o)) {
        if (imageName(c.image) !== im.name) continue;
        hits++;
        const base = im.newName || im.name;
        if (im.digest) c.image = `${base}@${im.digest}`;
        else {
          const tag = im.newTag || (String(c.image).match(/:([^:/]+)$/) || [])[1];
          c.image = tag ? `${base}:${tag}` : base;
        }
      }
    }
    if (hits === 0) throw new Error(`${where}: images[${i}] ('${im.name}') matches no container image`);
  });

  return objects;
}

// ---------------------------------------------------------------------------------------------
// Consistency of a deployable render

// The peers each process must be told about (flag --x_addr, environment GRASSROOTS_X_ADDR):
// the gateway proxies to every domain service; cadrepay asks membership for cadres' recorded kin
// (CADRE_KIN).
const kRequiredPeers = {
  gateway: ['GRASSROOTS_MEMBERSHIP_ADDR', 'GRASSROOTS_CADREPAY_ADDR', 'GRASSROOTS_ASSETS_ADDR', 'GRASSROOTS_MOBILITY_ADDR'],
  cadrepay: ['GRASSROOTS_MEMBERSHIP_ADDR'],
};

// A container's literal environment: its envFrom ConfigMaps' data, then its own env values.
function envOf(c, find) {
  const env = {};
  for (const src of c.envFrom || []) {
    const cm = src.configMapRef && find('ConfigMap', src.configMapRef.name);
    if (cm) Object.assign(env, cm.data || {});
  }
  for (const e of c.env || []) {
    if (e.value !== undefined) env[e.name] = e.value;
  }
  return env;
}

function consistency(objects) {
  const problems = [];
  const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  // Every peer address (GRASSROOTS_*_ADDR, "service:port") names a Service of the render and one of its ports.
  for (const w of objects.filter((o) => o.kind === 'Deployment')) {
    for (const c of containersOf(w)) {
      const env = envOf(c, find);
      for (const need of kRequiredPeers[w.metadata.name] || []) {
        if (!env[need]) problems.push(`${id(w)}: container ${c.name} is not told ${need}`);
      }
      for (const [name, value] of Object.entries(env)) {
        if (!/^GRASSROOTS_[A-Z]+_ADDR$/.test(name)) continue;
        const m = String(value).match(/^([a-z0-9-]+)(\.[a-z0-9.-]+)?:(\d+)$/);
        const svc = m && find('Service', m[1]);
        if (!svc) {
          problems.push(`${id(w)}: ${name}=${value} names no Service of this render`);
        } else if (!((svc.spec || {}).ports || []).some((p) => p.port === Number(m[3]))) {
          problems.push(`${id(w)}: ${name}=${value}: Service ${m[1]} has no port ${m[3]}`);
        }
      }
    }
  }
  const workloads = objects.filter((o) => podSpecs(o).length > 0);
  for (const w of workloads) {
    const wid = id(w);
    if (w.spec && w.spec.selector && w.spec.selector.matchLabels) {
      const labels = (((w.spec.template || {}).metadata || {}).labels) || {};
      for (const [k, v] of Object.entries(w.spec.selector.matchLabels)) {
        if (labels[k] !== v) problems.push(`${wid}: selector ${k}=${v} does not match its pod template's labels`);
      }
    }
    const ports = containersOf(w).flatMap((c) => c.ports || []);
    const portNumbers = new Set(ports.map((p) => p.containerPort));
    for (const c of containersOf(w)) {
      for (const src of c.envFrom || []) {
        if (src.configMapRef && !src.configMapRef.optional && !find('ConfigMap', src.configMapRef.name)) {
          problems.push(`${wid}: container ${c.name} reads ConfigMap ${src.configMapRef.name}, which is not defined`);
        }
        if (src.secretRef && !src.secretRef.optional && !find('Secret', src.secretRef.name)) {
          problems.push(`${wid}: container ${c.name} reads Secret ${src.secretRef.name}, which is not defined`);
        }
      }
      for (const e of c.env || []) {
        const from = e.valueFrom || {};
        if (from.configMapKeyRef && !find('ConfigMap', from.configMapKeyRef.name)) problems.push(`${wid}: env ${e.name} reads a missing ConfigMap`);
        if (from.secretKeyRef) {
          const ref = from.secretKeyRef;
          const secret = find('Secret', ref.name);
          if (!secret) {
            if (!ref.optional) problems.push(`${wid} container ${c.name}: env ${e.name} reads Secret ${ref.name}, which is not defined`);
            continue;
          }
          const value = secretValue(secret, ref.key);
          if (value === undefined) {
            if (!ref.optional) problems.push(`${wid} container ${c.name}: env ${e.name} reads key ${ref.key} of Secret ${ref.name}, which it does not hold`);
          } else if (e.name === 'GRASSROOTS_PII_KEY' && !/^[0-9a-fA-F]{64}$/.test(value)) {
            problems.push(`${wid} container ${c.name}: GRASSROOTS_PII_KEY from Secret ${ref.name} is not 64 hex characters`);
          }
        }
      }
      for (const probeName of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const probe = c[probeName];
        if (!probe) continue;
        const port = (probe.grpc || probe.httpGet || probe.tcpSocket || {}).port;
        if (port === undefined) continue;
        const okPort = typeof port === 'number' ? portNumbers.has(port) : ports.some((p) => p.name === port);
        if (!okPort) problems.push(`${wid}: ${c.name}.${probeName} probes port ${port}, which no container declares`);
      }
    }
    const ann = (((w.spec.template || {}).metadata || {}).annotations) || {};
    if (ann['prometheus.io/scrape'] === 'true') {
      const p = Number(ann['prometheus.io/port']);
      if (!portNumbers.has(p)) problems.push(`${wid}: prometheus.io/port ${ann['prometheus.io/port']} is not a container port`);
    }
  }
  for (const s of objects.filter((o) => o.kind === 'Service')) {
    const spec = s.spec || {};
    if (spec.type === 'ExternalName') {
      if (!spec.externalName) problems.push(`${id(s)}: ExternalName without externalName`);
      continue;
    }
    const sel = spec.selector || {};
    const selected = workloads.filter((w) => {
      const labels = (((w.spec.template || {}).metadata || {}).labels) || {};
      return Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => labels[k] === v);
    });
    if (selected.length === 0) {
      problems.push(`${id(s)}: its selector selects no workload`);
      continue;
    }
    for (const p of spec.ports || []) {
      const tp = p.targetPort === undefined ? p.port : p.targetPort;
      for (const w of selected) {
        const ports = containersOf(w).flatMap((c) => c.ports || []);
        const hit = typeof tp === 'number' ? ports.some((cp) => cp.containerPort === tp) : ports.some((cp) => cp.name === tp);
        if (!hit) problems.push(`${id(s)}: port ${p.name || p.port} targets ${tp}, which ${id(w)} does not declare`);
      }
    }
  }
  return problems;
}

// A Secret's value for `key` (stringData as written, data base64-decoded); undefined if absent.
function secretValue(secret, key) {
  if (secret.stringData && Object.prototype.hasOwnProperty.call(secret.stringData, key)) return String(secret.stringData[key]);
  if (secret.data && Object.prototype.hasOwnProperty.call(secret.data, key)) {
    return Buffer.from(String(secret.data[key]), 'base64').toString('utf8');
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// What a province relies on (every render)

// The processes, by the binary a container runs (image grassroots/grassroots, /usr/local/bin/X).
const kDomainServices = new Set(['membership', 'cadrepay', 'assets', 'mobility']);
// Those whose serving process bulk-loads through a named pipe (LOAD DATA LOCAL INFILE): the
// member import, every cadrepay ingest. common/src/load_pipe.cc makes the pipe in a private
// directory under $TMPDIR, /tmp when it is unset or empty.
const kBulkLoaders = new Set(['membership', 'cadrepay']);
const kPipeDirDefault = '/tmp';
// Volume types a process can write to.
const kWritableVolumes = ['emptyDir', 'ephemeral', 'persistentVolumeClaim'];

// Measured peaks (RSS, bytes) the memory requests must hold; the limits must leave
// kLimitHeadroom above them.
//   cadrepay: 1,823 MB, the highest of the 5,000,000-recipient runs since session 5
//     (docs/disbursement-rules.md, "Figures": 1,746-1,823 MB; 1,770 MB on the final code),
//     ingests then a full check, the person number cache's 210 MB included.
//   membership: 271 MB, importing and exporting 1,000,000 members with the default member cache
//     (docs/member-registry.md, "Import performance", session 8).
const kMeasuredPeakBytes = { cadrepay: 1823e6, membership: 271e6 };
const kLimitHeadroom = 1.25;
// Overlays sized for a laptop's demo data, not a province: exempt from the memory floor only.
const kSmallOverlays = new Set(['overlays/local']);

// The binary a container runs and whether it serves (not `X migrate`).
function processOf(c) {
  const argv = [...(c.command || []), ...(c.args || [])].map(String);
  const binary = argv.length > 0 ? path.posix.basename(argv[0]) : '';
  return { binary, serving: !argv.slice(1).includes('migrate') };
}

// Kubernetes quantity -> number (bytes for memory); NaN when unreadable.
function quantity(q) {
  if (q === undefined || q === null) return NaN;
  const m = String(q).trim().match(/^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$/);
  if (!m) return NaN;
  const mult = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  return Number(m[1]) * (m[2] ? 10 ** Number(m[2]) : 1) * (m[3] ? mult[m[3]] : 1);
}

// The tag part of an image reference ('' when none; digest references give '@sha256:...').
function imageTag(image) {
  const s = String(image);
  const at = s.indexOf('@');
  if (at >= 0) return s.slice(at);
  const m = s.match(/:([^:/]+)$/);
  return m ? m[1] : '';
}

// The value a container sees for `name` when it is a literal (its env, else its envFrom
// ConfigMaps); { from } when it comes from elsewhere; undefined when unset.
function envValue(c, name, find) {
  const own = (c.env || []).filter((e) => e.name === name).pop();
  if (own) return own.value !== undefined ? own.value : { from: own.valueFrom };
  let value;
  for (const src of c.envFrom || []) {
    if (src.configMapRef) {
      const cm = find('ConfigMap', src.configMapRef.name);
      for (const [k, v] of Object.entries((cm && cm.data) || {})) if (`${src.prefix || ''}${k}` === name) value = v;
    } else if (src.secretRef) {
      // Only a Secret of the render can be looked into (the base leaves them to the overlays).
      const secret = find('Secret', src.secretRef.name);
      const prefix = src.prefix || '';
      const v = secret && name.startsWith(prefix) ? secretValue(secret, name.slice(prefix.length)) : undefined;
      if (v !== undefined) value = { from: { secretRef: src.secretRef.name } };
    }
  }
  return value;
}

function provinceChecks(objects, small) {
  const problems = [];
  const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const tags = new Map(); // tag -> containers using it
  for (const w of objects.filter((o) => podSpecs(o).length > 0)) {
    const wid = id(w);
    for (const ps of podSpecs(w)) {
      const volumes = new Map((ps.volumes || []).map((v) => [v.name, v]));
      for (const c of [...(ps.initContainers || []), ...(ps.containers || [])]) {
        const where = `${wid} container ${c.name}`;
        const { binary, serving } = processOf(c);

        // One release tag, never :latest, never missing.
        const tag = imageTag(c.image);
        if (tag === '') problems.push(`${where}: image ${c.image} has no tag (set the release's in kustomization.yaml, images)`);
        else if (tag === 'latest') problems.push(`${where}: image ${c.image} is :latest (a moving tag: the Job and the replicas may run different builds)`);
        if (tag !== '') tags.set(tag, [...(tags.get(tag) || []), where]);

        // The PII key, from a Secret, for every domain service and its migrations.
        if (kDomainServices.has(binary)) {
          const own = (c.env || []).filter((e) => e.name === 'GRASSROOTS_PII_KEY');
          const ref = own.length === 1 && own[0].valueFrom && own[0].valueFrom.secretKeyRef;
          if (own.length === 0) {
            problems.push(`${where}: GRASSROOTS_PII_KEY is not set from a secretKeyRef (env)`);
          } else if (own.length > 1) {
            problems.push(`${where}: GRASSROOTS_PII_KEY is set twice`);
          } else if (!ref || !ref.name || !ref.key) {
            problems.push(`${where}: GRASSROOTS_PII_KEY must come from valueFrom.secretKeyRef (name and key), not ${own[0].value !== undefined ? 'a literal value' : JSON.stringify(own[0].valueFrom)}`);
          } else if (ref.optional) {
            problems.push(`${where}: GRASSROOTS_PII_KEY's secretKeyRef is optional: a pod without the key must not start`);
          }
          for (const src of c.envFrom || []) {
            const cm = src.configMapRef && find('ConfigMap', src.configMapRef.name);
            if (cm && Object.keys(cm.data || {}).some((k) => `${src.prefix || ''}${k}` === 'GRASSROOTS_PII_KEY')) {
              problems.push(`${where}: ConfigMap ${src.configMapRef.name} carries GRASSROOTS_PII_KEY (a key belongs in a Secret)`);
            }
          }
          const dev = envValue(c, 'GRASSROOTS_DEVELOPMENT_PII_KEY', find);
          if (dev !== undefined) problems.push(`${where}: GRASSROOTS_DEVELOPMENT_PII_KEY is set (the public development key is for tests only)`);
          for (const a of [...(c.command || []), ...(c.args || [])].map(String)) {
            if (/^--?(development_pii_key|pii_key)(=|$)/.test(a)) problems.push(`${where}: ${a.replace(/=.*/, '=...')} on the command line (the key comes from the Secret)`);
          }
        }

        // The bulk loaders' pipe directory is writable.
        if (kBulkLoaders.has(binary) && serving) {
          const tmpdir = envValue(c, 'TMPDIR', find);
          if (tmpdir !== undefined && typeof tmpdir !== 'string') {
            problems.push(`${where}: TMPDIR does not come from a literal value or ConfigMap, so where the bulk load's pipe goes cannot be checked`);
          } else {
            const dir = path.posix.normalize(tmpdir ? tmpdir : kPipeDirDefault);
            const mounts = (c.volumeMounts || [])
              .filter((m) => dir === m.mountPath.replace(/\/+$/, '') || dir.startsWith(`${m.mountPath.replace(/\/+$/, '')}/`))
              .sort((a, b) => b.mountPath.length - a.mountPath.length);
            const m = mounts[0];
            const rootWritable = !(c.securityContext && c.securityContext.readOnlyRootFilesystem === true);
            if (!m) {
              if (!rootWritable) {
                problems.push(`${where}: the bulk load's pipe directory ${dir} (TMPDIR, else /tmp) is on the read-only root: mount a writable volume (emptyDir) there`);
              }
            } else {
              const v = volumes.get(m.name);
              if (!v) problems.push(`${where}: volumeMount ${m.name} at ${m.mountPath} names no volume of the pod`);
              else if (m.readOnly) problems.push(`${where}: ${m.mountPath} (the bulk load's pipe directory ${dir}) is mounted read-only`);
              else if (!kWritableVolumes.some((t) => v[t] !== undefined)) {
                problems.push(`${where}: ${m.mountPath} (the bulk load's pipe directory ${dir}) is a ${Object.keys(v).filter((k) => k !== 'name').join(', ')} volume, not a writable one (${kWritableVolumes.join(', ')})`);
              }
            }
          }
        }

        // Memory that holds the measured peaks.
        const peak = kMeasuredPeakBytes[binary];
        if (peak !== undefined && serving && !small) {
          const r = c.resources || {};
          const req = quantity((r.requests || {}).memory);
          const lim = quantity((r.limits || {}).memory);
          const mb = (b) => `${Math.round(b / 1e6)} MB`;
          if (!(req >= peak)) problems.push(`${where}: memory request ${(r.requests || {}).memory} is below ${binary}'s measured peak of ${mb(peak)}`);
          if (!(lim >= peak * kLimitHeadroom)) {
            problems.push(`${where}: memory limit ${(r.limits || {}).memory} leaves less than ${kLimitHeadroom}x ${binary}'s measured peak of ${mb(peak)} (${mb(peak * kLimitHeadroom)})`);
          }
        }
      }
    }
  }
  if (tags.size > 1) {
    problems.push(`the render runs ${tags.size} image tags, not one release's: ${[...tags.entries()].map(([t, w]) => `${t} (${w.length} containers, e.g. ${w[0]})`).join('; ')}`);
  }
  return problems;
}

// Resource files name the image without a tag: the release's is set in one place, a
// kustomization's images.
function untaggedInFile(doc) {
  const problems = [];
  if (!isPlainObject(doc)) return problems;
  for (const c of containersOf(doc)) {
    if (c && c.image !== undefined && imageTag(c.image) !== '') {
      problems.push(`container ${c.name}: image ${c.image} carries a tag; name it without one (the release's tag is set in kustomization.yaml, images)`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

function main() {
  if (!fs.existsSync(k8sDir)) {
    console.error(`validate.js: ${k8sDir} does not exist`);
    process.exit(2);
  }
  const files = walk(k8sDir);
  const kustomizations = files.filter(isKustomization);
  const seen = new Set();
  const usedAsPatch = new Set();
  const renders = [];

  // Which files each kustomization lists, even when its render fails below.
  for (const kf of kustomizations) {
    try {
      const k = loadDocs(kf)[0] || {};
      for (const r of Array.isArray(k.resources) ? k.resources : []) seen.add(path.resolve(path.dirname(kf), String(r)));
      for (const p of Array.isArray(k.patches) ? k.patches : []) {
        if (isPlainObject(p) && typeof p.path === 'string') usedAsPatch.add(path.resolve(path.dirname(kf), p.path));
      }
    } catch (e) {
      // reported by the render below
    }
  }

  for (const kf of kustomizations) {
    const dir = path.dirname(kf);
    try {
      const objects = build(dir, seen, usedAsPatch);
      ok(rel(kf), `Kustomization (${objects.length} objects)`);
      renders.push({ dir, objects });
    } catch (e) {
      fail(rel(kf), 'Kustomization', e.message);
    }
  }

  // Standalone resource files (patch files are partial objects, checked through their render).
  for (const f of files) {
    if (isKustomization(f) || usedAsPatch.has(f)) continue;
    let docs;
    try {
      docs = loadDocs(f);
    } catch (e) {
      fail(rel(f), 'YAML', e.message);
      continue;
    }
    if (docs.length === 0) fail(rel(f), '(empty)', 'no YAML document in file');
    if (!seen.has(f)) fail(rel(f), '(unused)', 'no kustomization.yaml lists this file');
    for (const doc of docs) {
      const what = isPlainObject(doc) ? id(doc) : '(document)';
      try {
        validateObject(doc);
        const tagged = untaggedInFile(doc);
        if (tagged.length > 0) throw new Error(tagged.join('\n'));
        ok(rel(f), what);
      } catch (e) {
        fail(rel(f), what, e.message);
      }
    }
  }

  // Rendered output of every kustomization.
  for (const { dir, objects } of renders) {
    const where = `${rel(dir)} (rendered)`;
    for (const o of objects) {
      const obj = clone(o);
      delete obj.__file;
      try {
        validateObject(obj);
        ok(where, `${id(o)}${o.metadata.namespace ? ` in ${o.metadata.namespace}` : ''}`);
      } catch (e) {
        fail(where, id(o), e.message);
      }
    }
    // Only overlays are complete, deployable units (the base leaves the Secrets to them).
    const relDir = path.relative(k8sDir, dir).split(path.sep).join('/');
    if (relDir.split('/')[0] === 'overlays') {
      const problems = consistency(objects);
      if (problems.length === 0) ok(where, 'references, selectors and ports consistent');
      else fail(where, 'consistency', problems.join('\n'));
    }
    const province = provinceChecks(objects, kSmallOverlays.has(relDir));
    if (province.length === 0) {
      ok(where, `pipe directories writable, one release tag, PII key from a Secret${kSmallOverlays.has(relDir) ? '' : ', memory for the measured peaks'}`);
    } else {
      fail(where, 'what a province relies on', province.join('\n'));
    }
  }

  console.log(`\nk8s-manifests: ${checked - failures} passed, ${failures} failed`);
  process.exit(failures === 0 ? 0 : 1);
}

main();
