#!/usr/bin/env bash
# The gateway's gRPC door under an agency's load: GetMember through the gateway's gRPC port,
# BENCH_CLIENTS concurrent clients (default 8), ROUNDS rounds of SECONDS each; after every round
# the gateway must still be serving, and every call must have been answered OK.
# usage: tools/bench/gateway_grpc_soak.sh BUILD_DIR [ROUNDS] [SECONDS] [MEMBERS]
#   (defaults 5 rounds of 10 s, 20000 members; needs root for tools/mariadb, python3)
# Exit status 1 when the gateway died or any call failed. Before the fix in grpc_proxy.cc (a
# caller's half-close racing the backend's answer), 2 runs of 5 killed the gateway.
set -euo pipefail
BUILD=$(cd "$1" && pwd); ROUNDS=${2:-5}; SECS=${3:-10}; N=${4:-20000}
CLIENTS=${BENCH_CLIENTS:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=$(mktemp -d /tmp/gateway_soak.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$ROOT/tools/mariadb" stop "$DIR/db" >/dev/null 2>&1 || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORT=$("$ROOT/tools/mariadb" start "$DIR/db" 0)
export GRASSROOTS_DB_HOST=127.0.0.1 GRASSROOTS_DB_PORT=$PORT GRASSROOTS_DB_USER=grassroots \
       GRASSROOTS_DB_PASSWORD=grassroots GRASSROOTS_LOG_LEVEL=warning \
       GRASSROOTS_PII_KEY=$(printf '5a%.0s' $(seq 32))
MP=$(free_port); GP=$(free_port); HP=$(free_port)
"$BUILD/bin/membership" migrate >/dev/null 2>&1
"$BUILD/bin/membership" serve --listen_host=127.0.0.1 --grpc_port="$MP" --metrics_port=0 2>"$DIR/membership.log" &
PIDS+=($!)
"$BUILD/bin/gateway" --listen_host=127.0.0.1 --grpc_port="$GP" --http_port="$HP" --metrics_port=0 \
  --membership_addr="127.0.0.1:$MP" 2>"$DIR/gateway.log" &
GW=$!
PIDS+=($GW)
for _ in $(seq 50); do "$BUILD/bin/grassroots" health "127.0.0.1:$GP" >/dev/null 2>&1 && break; sleep 0.2; done
python3 "$HERE/gen_members.py" "$DIR/data" "$N" $(( N / 200 > 20 ? N / 200 : 20 )) >/dev/null
CLI=("$BUILD/bin/grassroots" --gateway "127.0.0.1:$GP")
"${CLI[@]}" import organisations "$DIR/data/organisations.csv" >/dev/null
"${CLI[@]}" import members "$DIR/data/members.csv" >/dev/null
mariadb -h127.0.0.1 -P"$PORT" -ugrassroots -pgrassroots -N -e "SELECT member_id FROM grassroots_membership.members" >"$DIR/ids"
echo "members: $(wc -l <"$DIR/ids"); gateway gRPC 127.0.0.1:$GP; $CLIENTS clients, $ROUNDS rounds of $SECS s"
failed=0
for r in $(seq "$ROUNDS"); do
  set +e
  "$BUILD/bin/get_member_load" --target="127.0.0.1:$GP" --ids="$DIR/ids" --clients="$CLIENTS" \
    --seconds="$SECS" --warmup_seconds=0 >"$DIR/load.txt" 2>&1
  rc=$?
  set -e
  echo "round $r: $(grep '^RESULT ' "$DIR/load.txt" || echo "no result (exit $rc)")"
  if ! kill -0 "$GW" 2>/dev/null; then
    echo "round $r: the gateway died: $(tail -3 "$DIR/gateway.log")"
    exit 1
  fi
  [ "$rc" = 0 ] || failed=1
done
[ "$failed" = 0 ] && echo "the gateway survived; every call answered" || { echo "some calls failed"; exit 1; }
