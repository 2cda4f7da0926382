#!/usr/bin/env bash
# Disbursement benchmark: a generated province with anomalies of every rule planted at known
# places, ingested through the operator CLI into cadrepay, then one full check; reports each
# step's time and rate, the same-run time of LOAD DATA LOCAL INFILE of the same payments file
# into a bare table, the peak RSS of every process, and whether the findings are exactly the
# planted ones (every planted anomaly found, nothing else).
#
# usage: tools/bench/disbursement_bench.sh BUILD_DIR [RECIPIENTS] [PER_RULE]
#   RECIPIENTS  people in the province (default 200000; payments are about twice that).
#               The issue's figure: 5000000 (50 counties, 10,000,000 payments).
#   PER_RULE    instances of each planted anomaly (default 3)
# Environment:
#   BENCH_DIR         where the throwaway MariaDB and the files go (default: a new /tmp dir;
#                     5,000,000 recipients need about 8 GB there)
#   BENCH_REINGEST=1  also time a second ingest of payments.csv (must change nothing)
#   BENCH_KEEP=1      keep BENCH_DIR afterwards
#   BENCH_FILES=DIR   generate the files into DIR and keep them there; a later run with the same
#                     DIR (and the same RECIPIENTS and PER_RULE) reuses them
#   BENCH_PARALLEL=1  after the programmes and recipients, ingest the other four files at once (two
#                     agencies' deliveries arriving together: civil affairs' enrolments and events,
#                     the bank's batches and payments), each through its own CLI; one step in the table
#   GRASSROOTS_MARIADB_BUFFER_POOL / GRASSROOTS_MARIADB_EXTRA_ARGS are passed to tools/mariadb.
# Must run as root (tools/mariadb). Exit status 0 only when the findings match exactly.
set -euo pipefail
BUILD=$(cd "$1" && pwd); N=${2:-200000}; PER_RULE=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${BENCH_DIR:-$(mktemp -d /tmp/disbursement_bench.XXXXXX)}
mkdir -p "$DIR"
DATA="$DIR/files"; DB="$DIR/db"
SVC=""
cleanup() {
  if [ -n "$SVC" ]; then kill "$SVC" 2>/dev/null || true; wait "$SVC" 2>/dev/null || true; fi
  "$ROOT/tools/mariadb" stop "$DB" >/dev/null 2>&1 || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
secs() { echo "scale=2; ($2 - $1) / 1" | bc; }
rate() { if [ "$(echo "$2 > 0" | bc)" = 1 ]; then echo "$1 / $2" | bc; else echo "-"; fi; }
hwm_mb() { awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
lines() { echo $(($(wc -l < "$1") - 1)); }
# CPU seconds (user + system) a process has spent so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
ROWS=(); STEP=(); SECS=(); CLI_MB=(); SVC_HWM=(); SVC_CPU=(); DB_CPU=()
record() { STEP+=("$1"); ROWS+=("$2"); SECS+=("$3"); CLI_MB+=("${4:--}"); SVC_HWM+=("${5:--}"); SVC_CPU+=("${6:--}"); DB_CPU+=("${7:--}"); }

if [ -n "${BENCH_FILES:-}" ] && [ -f "$BENCH_FILES/expected_findings.csv" ]; then
  DATA=$BENCH_FILES
  echo "== reusing the files in $DATA (generated earlier for the same RECIPIENTS and PER_RULE)"
else
  [ -n "${BENCH_FILES:-}" ] && DATA=$BENCH_FILES
  echo "== generating $N recipients in $DATA"
  t0=$(now)
  python3 "$HERE/disbursement_gen.py" "$DATA" "$N" "$PER_RULE"
  echo "generated in $(secs "$t0" "$(now)")s; payments.csv $(du -h "$DATA/payments.csv" | cut -f1)"
fi

echo "== starting MariaDB"
PORT=$("$ROOT/tools/mariadb" start "$DB" 0)
DBPID=$(cat "$DB/mariadbd.pid")
SQL=(mariadb -h127.0.0.1 -P"$PORT" -ugrassroots -pgrassroots --local-infile=1)

echo "== LOAD DATA LOCAL INFILE of payments.csv into a bare table (primary key only)"
"${SQL[@]}" -e "DROP DATABASE IF EXISTS bench_bare; CREATE DATABASE bench_bare;
  CREATE TABLE bench_bare.p (payment_id VARCHAR(64) NOT NULL PRIMARY KEY, batch_id VARCHAR(64), program_code VARCHAR(32),
  period VARCHAR(7), id_number VARCHAR(18), account_no VARCHAR(24), amount_fen BIGINT, paid_at VARCHAR(40),
  reverses VARCHAR(64)) DEFAULT CHARSET=utf8mb4;"
PAYMENTS=$(lines "$DATA/payments.csv")
t0=$(now)
"${SQL[@]}" bench_bare -e "LOAD DATA LOCAL INFILE '$DATA/payments.csv' INTO TABLE p CHARACTER SET utf8mb4
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\n' IGNORE 1 LINES"
LOAD=$(secs "$t0" "$(now)")
record "LOAD DATA (bare table)" "$PAYMENTS" "$LOAD"
"${SQL[@]}" -e "DROP DATABASE bench_bare"

echo "== cadrepay"
GP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GRASSROOTS_DB_HOST=127.0.0.1 GRASSROOTS_DB_PORT=$PORT GRASSROOTS_DB_NAME=bench_cadrepay \
       GRASSROOTS_DB_USER=grassroots GRASSROOTS_DB_PASSWORD=grassroots GRASSROOTS_LOG_LEVEL=info \
       GRASSROOTS_PII_KEY=$(printf '5a%.0s' $(seq 32))
"${SQL[@]}" -e "DROP DATABASE IF EXISTS bench_cadrepay"
"$BUILD/bin/cadrepay" migrate >/dev/null
"$BUILD/bin/cadrepay" serve --listen_host=127.0.0.1 --grpc_port="$GP" --metrics_port=0 \
  --check_interval_seconds=0 >"$DIR/cadrepay.log" 2>&1 &
SVC=$!
for _ in $(seq 100); do "$BUILD/bin/grassroots" health "127.0.0.1:$GP" >/dev/null 2>&1 && break; sleep 0.2; done
CLI=("$BUILD/bin/grassroots" --gateway "127.0.0.1:$GP")
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f "%M" -o "$DIR/cli.rss")

FAILED=0
step() {  # step NAME ROWS CLI-ARGS...
  local name=$1 rows=$2; shift 2
  local t0 rc=0 mb="-" svc0 db0
  rm -f "$DIR/cli.rss"
  svc0=$(cpu_s "$SVC"); db0=$(cpu_s "$DBPID")
  t0=$(now)
  "${TIME[@]}" "${CLI[@]}" "$@" >"$DIR/out.txt" 2>&1 || rc=$?
  local s; s=$(secs "$t0" "$(now)")
  [ -f "$DIR/cli.rss" ] && mb=$(( $(tail -1 "$DIR/cli.rss") / 1024 ))
  sed 's/^/    /' "$DIR/out.txt" | tail -5
  if [ "$rc" != 0 ]; then echo "    exit status $rc"; FAILED=1; fi
  record "$name" "$rows" "$s" "$mb" "$(hwm_mb "$SVC")" \
    "$(echo "$(cpu_s "$SVC") - $svc0" | bc)" "$(echo "$(cpu_s "$DBPID") - $db0" | bc)"
}
# parallel_step NAME ROWS KIND...: ingests the files of KIND at once, each through its own CLI;
# one row in the table (the wall time until the last one ends, CPU of the whole step).
parallel_step() {
  local name=$1 rows=$2; shift 2
  local t0 svc0 db0 kind pids=() rc
  svc0=$(cpu_s "$SVC"); db0=$(cpu_s "$DBPID")
  t0=$(now)
  for kind in "$@"; do
    "${CLI[@]}" ingest "$kind" "$DATA/${kind//-/_}.csv" --errors "$DIR/$kind.errors" >"$DIR/out.$kind.txt" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    rc=0; wait "${pids[$i]}" || rc=$?
    kind=${*:$((i + 1)):1}
    echo "    $kind:"; sed 's/^/      /' "$DIR/out.$kind.txt" | tail -3
    if [ "$rc" != 0 ]; then echo "      exit status $rc"; FAILED=1; fi
  done
  record "$name" "$rows" "$(secs "$t0" "$(now)")" "-" "$(hwm_mb "$SVC")" \
    "$(echo "$(cpu_s "$SVC") - $svc0" | bc)" "$(echo "$(cpu_s "$DBPID") - $db0" | bc)"
}
TOTAL0=$(now)
SEQUENTIAL=(programmes recipients enrolments civil-events batches payments)
[ "${BENCH_PARALLEL:-0}" = 1 ] && SEQUENTIAL=(programmes recipients)
for kind in "${SEQUENTIAL[@]}"; do
  f="$DATA/${kind//-/_}.csv"
  echo "-- ingest $kind ($(lines "$f") rows)"
  step "ingest $kind" "$(lines "$f")" ingest "$kind" "$f" --errors "$DIR/$kind.errors"
done
if [ "${BENCH_PARALLEL:-0}" = 1 ]; then
  echo "-- ingest enrolments, civil-events, batches and payments at once"
  parallel_step "ingest the other four at once" \
    "$(( $(lines "$DATA/enrolments.csv") + $(lines "$DATA/civil_events.csv") + $(lines "$DATA/batches.csv") + PAYMENTS ))" \
    enrolments civil-events batches payments
fi
INGEST_END=$(now)
echo "-- check disbursements --as-of 2026-04-30"
step "check disbursements" "$PAYMENTS" check disbursements --as-of 2026-04-30
TOTAL=$(secs "$TOTAL0" "$(now)")
INGEST_ALL=$(secs "$TOTAL0" "$INGEST_END")
if [ "${BENCH_REINGEST:-0}" = 1 ]; then
  echo "-- ingest payments again (must change nothing)"
  step "re-ingest payments (no-op)" "$PAYMENTS" ingest payments "$DATA/payments.csv"
  grep -q "inserted 0, updated 0" "$DIR/out.txt" || { echo "    re-ingest changed something"; FAILED=1; }
fi
echo "-- findings export --unmasked"
step "findings export" "-" findings export --unmasked --out "$DIR/findings.csv"
SVC_MB=$(hwm_mb "$SVC")
DB_MB=$(hwm_mb "$(cat "$DB/mariadbd.pid")")

# Exactly the planted findings: compare (rule, program_code, period, id_number, payment_id).
tail -n +2 "$DATA/expected_findings.csv" | LC_ALL=C sort >"$DIR/expected.txt"
tail -n +2 "$DIR/findings.csv" | cut -d, -f1-5 | LC_ALL=C sort >"$DIR/found.txt"
MISSING=$(LC_ALL=C comm -23 "$DIR/expected.txt" "$DIR/found.txt" | wc -l)
EXTRA=$(LC_ALL=C comm -13 "$DIR/expected.txt" "$DIR/found.txt" | wc -l)

echo
echo "== disbursement benchmark: $N recipients, $PAYMENTS payment rows"
printf '%-30s %12s %10s %12s %10s %16s %13s %13s\n' step rows seconds rows/s "CLI MB" "cadrepay HWM MB" \
  "cadrepay CPU" "mariadbd CPU"
for i in "${!STEP[@]}"; do
  r=${ROWS[$i]}; [ "$r" = "-" ] && rr="-" || rr=$(rate "$r" "${SECS[$i]}")
  printf '%-30s %12s %10s %12s %10s %16s %13s %13s\n' "${STEP[$i]}" "$r" "${SECS[$i]}" "$rr" "${CLI_MB[$i]}" \
    "${SVC_HWM[$i]}" "${SVC_CPU[$i]}" "${DB_CPU[$i]}"
done
INGEST_PAY=""
for i in "${!STEP[@]}"; do [ "${STEP[$i]}" = "ingest payments" ] && INGEST_PAY=${SECS[$i]}; done
echo
echo "ingest (all six files) + full check: ${TOTAL}s (ingest ${INGEST_ALL}s)"
if [ -n "$INGEST_PAY" ]; then
  echo "payments ingest against LOAD DATA of the same file: $(echo "scale=2; $INGEST_PAY / $LOAD" | bc)x its time"
else
  echo "payments ingested beside the other files (BENCH_PARALLEL=1): no ratio of its own against LOAD DATA"
fi
echo "peak RSS: cadrepay ${SVC_MB} MB, mariadbd ${DB_MB} MB (CLI per step above; cadrepay's VmHWM after each step)"
echo "findings: $(wc -l <"$DIR/found.txt") found, $(wc -l <"$DIR/expected.txt") planted; missing $MISSING, unexpected $EXTRA"
# Where the check's time went (its log line: seconds of each part).
grep '"disbursement check finished"' "$DIR/cadrepay.log" | tail -1 | tr ',' '\n' | grep -E '_s"|"seconds"' | tr -d '"{}' \
  | sed 's/^/check part: /' || true
if [ "$MISSING" != 0 ] || [ "$EXTRA" != 0 ]; then
  echo "missing:"; LC_ALL=C comm -23 "$DIR/expected.txt" "$DIR/found.txt" | head -20
  echo "unexpected:"; LC_ALL=C comm -13 "$DIR/expected.txt" "$DIR/found.txt" | head -20
  FAILED=1
fi
[ "$FAILED" = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL"
exit "$FAILED"
