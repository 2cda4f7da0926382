#!/usr/bin/env bash
# Acceptance check of the local run (formats.md, "the operator command line and the local run"):
# deploy/local/up --detach brings everything up and writes endpoints.env once all answer health,
# a second up says it is already up, the demo import is idempotent, down stops exactly what up
# started, a second up reuses the data, and up in the foreground stops everything on Ctrl-C. Uses
# the binaries in GRASSROOTS_BIN_DIR (default build/bin; nothing is built), its own state directory
# and a free block of ports, so a developer's own local run is left alone. Exit 0 = pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export GRASSROOTS_BIN_DIR="${GRASSROOTS_BIN_DIR:-$ROOT/build/bin}"
GRASSROOTS_STATE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/grassroots-local-test.XXXXXX")"
export GRASSROOTS_STATE_DIR

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  base=$(( 15000 + (RANDOM % 170) * 100 ))  # below the ephemeral port range
  free=1
  for ((p = base; p < base + 30; p++)); do
    if port_in_use "$p"; then free=0; break; fi
  done
  [ "$free" -eq 0 ] || break
done
export GRASSROOTS_PORT_BASE="$base"

passed=0 failed=0
check() {
  local what="$1"
  shift
  if "$@"; then
    passed=$((passed + 1)); echo "ok    $what"
  else
    failed=$((failed + 1)); echo "FAIL  $what"
  fi
}

cleanup() {
  local rc=$?
  deploy/local/down >/dev/null 2>&1 || true
  if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for f in "$GRASSROOTS_STATE_DIR"/logs/*.log; do
      [ -f "$f" ] || continue
      echo "--- $(basename "$f") (last lines)"
      tail -n 15 "$f"
    done
  fi
  rm -rf "$GRASSROOTS_STATE_DIR"
  exit "$rc"
}
trap cleanup EXIT

env_file="$GRASSROOTS_STATE_DIR/endpoints.env"
value() { sed -n "s/^$1=//p" "$env_file"; }

echo "state $GRASSROOTS_STATE_DIR, ports from $base"
check "up --detach starts the suite with the demo data" deploy/local/up --detach --no-build
check "endpoints.env written" test -f "$env_file"
for key in GATEWAY_HTTP GATEWAY_GRPC GATEWAY_METRICS MEMBERSHIP_GRPC MEMBERSHIP_METRICS CADREPAY_GRPC \
    CADREPAY_METRICS ASSETS_GRPC ASSETS_METRICS MOBILITY_GRPC MOBILITY_METRICS; do
  check "endpoints.env has $key=127.0.0.1:PORT" grep -Eq "^$key=127\.0\.0\.1:[0-9]+$" "$env_file"
done
for svc in GATEWAY MEMBERSHIP CADREPAY ASSETS MOBILITY; do
  check "$svc answers gRPC health" tools/grpc-health "$(value "${svc}_GRPC")"
  check "$svc serves /metrics" curl -sf -o /dev/null --max-time 5 "http://$(value "${svc}_METRICS")/metrics"
done

# cadrepay asks membership for cadres' recorded kin (CADRE_KIN): its command line names membership.
started_with() { tr '\0' '\n' <"/proc/$(cat "$GRASSROOTS_STATE_DIR/pids/$1.pid")/cmdline" | grep -qxF -- "$2"; }
check "cadrepay is pointed at membership (--membership_addr)" \
  started_with cadrepay "--membership_addr=$(value MEMBERSHIP_GRPC)"

out="$(deploy/local/up --no-build 2>&1)" || true
check "a second up says it is already up" grep -q "already up" <<<"$out"

check "importing the demo again is accepted whole (idempotent)" \
  "$GRASSROOTS_BIN_DIR/grassroots" --gateway="$(value GATEWAY_GRPC)" import organisations \
  deploy/local/demo/organisations.csv

pids=()
for f in "$GRASSROOTS_STATE_DIR"/pids/*.pid "$GRASSROOTS_STATE_DIR"/mariadb/mariadbd.pid; do
  pids+=("$(cat "$f")")
done
check "down stops the suite" deploy/local/down
check "down removes endpoints.env" test ! -e "$env_file"
gone() { local p; for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then return 1; fi; done; }
check "no process that up started is left" gone
check "down again is harmless" deploy/local/down

check "up again (no demo) reuses the data" deploy/local/up --detach --no-build --no-demo
check "the membership schema is still there" \
  bash -c "tools/mariadb sql '$GRASSROOTS_STATE_DIR/mariadb' -N -e \"SHOW DATABASES LIKE 'grassroots_membership'\" | grep -q grassroots_membership"
check "down once more" deploy/local/down

# Without --detach, up stays in the foreground until Ctrl-C: SIGINT to its process group, as a
# terminal sends it. Job control gives the background up a group of its own and leaves SIGINT
# to it (a plain & would start it with SIGINT ignored).
set -m
deploy/local/up --no-build --no-demo >"$GRASSROOTS_STATE_DIR/foreground.log" 2>&1 &
fg_pid=$!
set +m
for _ in $(seq 1 240); do
  if [ -f "$env_file" ] || ! kill -0 "$fg_pid" 2>/dev/null; then break; fi
  sleep 0.5
done
check "up in the foreground writes endpoints.env" test -f "$env_file"
check "up in the foreground stays" kill -0 "$fg_pid"
pids=()
for f in "$GRASSROOTS_STATE_DIR"/pids/*.pid "$GRASSROOTS_STATE_DIR"/mariadb/mariadbd.pid; do
  pids+=("$(cat "$f")")
done
kill -INT -- "-$fg_pid" 2>/dev/null || true
for _ in $(seq 1 240); do
  kill -0 "$fg_pid" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "$fg_pid" 2>/dev/null; then
  check "Ctrl-C ends up in the foreground within 120 s" false
  kill -TERM "$fg_pid" 2>/dev/null || true
fi
fg_rc=0
wait "$fg_pid" || fg_rc=$?
check "Ctrl-C ends up in the foreground (exit 0)" test "$fg_rc" -eq 0
check "Ctrl-C stops every process up started" gone
check "Ctrl-C removes endpoints.env" test ! -e "$env_file"

echo "local-run: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
