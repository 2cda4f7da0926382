#!/usr/bin/env bash
# Get-member benchmark: GetMember by id over gRPC (8 concurrent clients, one call in flight each)
# against `sysbench oltp_point_select --threads=8` on the same throwaway MariaDB, in the same run.
# usage: tools/bench/get_member_bench.sh BUILD_DIR [MEMBERS] [SECONDS]
#   (defaults 100000 members, 20 s each; needs root for tools/mariadb, sysbench, python3)
# Prints both rates, the ratio grpc_qps/sysbench_qps and the gRPC p99 (target: ratio >= 0.5,
# p99 < 5 ms), and the CPU seconds each process used during the gRPC run. Exit status 1 when
# any gRPC call failed (any status other than OK is an error).
# Environment: BENCH_CLIENTS (8), BENCH_WARMUP_SECONDS (10: calls before the measured window; at
# about 35,000 calls/s they touch 97 % of 100,000 ids, so the member cache is measured warm, as
# sysbench measures the buffer pool it has just filled), BENCH_PII=1 (clear ID numbers: the service decrypts each),
# BENCH_LOG_LEVEL (the service's --log_level, default info as deployed), BENCH_KEEP=1 (keep the
# temporary directory).
set -euo pipefail
BUILD=$(cd "$1" && pwd); N=${2:-100000}; SECS=${3:-20}
CLIENTS=${BENCH_CLIENTS:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=$(mktemp -d /tmp/get_member_bench.XXXXXX)
SVC=""
cleanup() {
  [ -n "$SVC" ] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null || true
  "$ROOT/tools/mariadb" stop "$DIR/db" >/dev/null 2>&1 || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

PORT=$("$ROOT/tools/mariadb" start "$DIR/db" 0)
SQL=(mariadb -h127.0.0.1 -P"$PORT" -ugrassroots -pgrassroots)
echo "MariaDB on 127.0.0.1:$PORT ($DIR/db); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# CPU seconds (user + system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
DBPID=$(cat "$DIR/db/mariadbd.pid")

# --- the members, imported the way the province sends them -------------------------------------
python3 "$HERE/gen_members.py" "$DIR/data" "$N" $(( N / 200 > 20 ? N / 200 : 20 )) >/dev/null
GP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GRASSROOTS_DB_PORT=$PORT GRASSROOTS_DB_USER=grassroots GRASSROOTS_DB_PASSWORD=grassroots \
       GRASSROOTS_LOG_LEVEL=${BENCH_LOG_LEVEL:-info} GRASSROOTS_PII_KEY=$(printf '5a%.0s' $(seq 32))
"$BUILD/bin/membership" migrate
"$BUILD/bin/membership" serve --listen_host=127.0.0.1 --grpc_port="$GP" --metrics_port=0 2>"$DIR/service.log" &
SVC=$!
for _ in $(seq 50); do "$BUILD/bin/grassroots" health "127.0.0.1:$GP" >/dev/null 2>&1 && break; sleep 0.2; done
CLI=("$BUILD/bin/grassroots" --gateway "127.0.0.1:$GP")
"${CLI[@]}" import organisations "$DIR/data/organisations.csv" >/dev/null
"${CLI[@]}" import members "$DIR/data/members.csv" >/dev/null
"${SQL[@]}" -N -e "SELECT member_id FROM grassroots_membership.members" >"$DIR/ids"
echo "members: $(wc -l <"$DIR/ids") imported through the service"

# --- the database's own point-select rate, over TCP like the service's ------------------------
"${SQL[@]}" -e "CREATE DATABASE sbtest"
SB=(/usr/bin/sysbench oltp_point_select --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PORT"
    --mysql-user=grassroots --mysql-password=grassroots --mysql-db=sbtest --tables=1 --table-size="$N")
"${SB[@]}" prepare >/dev/null
"${SB[@]}" --threads=8 --time=3 run >/dev/null  # warm-up, like the gRPC run's
"${SB[@]}" --threads=8 --time="$SECS" --percentile=99 run >"$DIR/sysbench.txt"
"${SB[@]}" cleanup >/dev/null
SB_QPS=$(sed -n 's/.*queries: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' "$DIR/sysbench.txt")
SB_P99=$(awk '/99th percentile:/ { print $3 }' "$DIR/sysbench.txt")
echo "sysbench oltp_point_select --threads=8: ${SB_QPS} qps, p99 ${SB_P99} ms"

# --- GetMember over gRPC ------------------------------------------------------------------------
PII=()
[ "${BENCH_PII:-0}" = 1 ] && PII=(--pii)
s0=$(cpu "$SVC"); d0=$(cpu "$DBPID")
set +e
"$BUILD/bin/get_member_load" --target="127.0.0.1:$GP" --ids="$DIR/ids" --clients="$CLIENTS" \
  --seconds="$SECS" --warmup_seconds="${BENCH_WARMUP_SECONDS:-10}" "${PII[@]}" >"$DIR/load.txt"
LOAD_RC=$?
set -e
s1=$(cpu "$SVC"); d1=$(cpu "$DBPID")
cat "$DIR/load.txt"
RESULT=$(grep '^RESULT ' "$DIR/load.txt" || true)
[ -n "$RESULT" ] || { echo "get_member_load produced no result (exit $LOAD_RC)"; exit 1; }
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$RESULT"; }
QPS=$(val qps); P99=$(val p99_ms); ERRORS=$(val errors)
echo "GetMember over gRPC, $CLIENTS clients: ${QPS} qps, p50 $(val p50_ms) ms, p99 ${P99} ms, errors ${ERRORS}"
echo "CPU seconds during the gRPC run (${SECS}s + ${BENCH_WARMUP_SECONDS:-10}s warm-up): service $(echo "$s1 - $s0" | bc)," \
     "mariadbd $(echo "$d1 - $d0" | bc), load client $(val client_cpu_s) (measured window only)"
MP=$(sed -n 's/.*"msg":"serving".*"metrics_port":\([0-9]*\).*/\1/p' "$DIR/service.log" | head -1)
if [ -n "$MP" ]; then
  echo "member cache after the run: $(curl -s "127.0.0.1:$MP/metrics" | grep '^grassroots_membership_member_cache' | tr '\n' ' ')"
fi
RATIO=$(echo "scale=3; $QPS / $SB_QPS" | bc)
echo "ratio grpc_qps/sysbench_qps = ${RATIO} (target >= 0.5); grpc p99 = ${P99} ms (target < 5)"
grep -q '"level":"error"' "$DIR/service.log" && { echo "service logged errors:"; grep '"level":"error"' "$DIR/service.log" | head -5; }
if [ "$ERRORS" != 0 ] || [ "$LOAD_RC" != 0 ]; then
  echo "FAILED: $ERRORS calls failed"
  exit 1
fi
