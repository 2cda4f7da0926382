#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests under k8s/ (a ctest entry; exit 0 = pass).
# Installs the pinned npm packages (package-lock.json) first if tools/install-deps has not.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
command -v node >/dev/null 2>&1 || { echo "tests/k8s: node not found (run tools/install-deps)" >&2; exit 1; }
if [ ! -d node_modules/kubernetes-models ] || [ ! -d node_modules/js-yaml ]; then
  echo "tests/k8s: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --silent >/dev/null
fi
exec node validate.js "$@"
