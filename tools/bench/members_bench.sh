#!/usr/bin/env bash
# Member-registry benchmark: import rows/s against LOAD DATA LOCAL INFILE of the same file into a
# bare table, re-import (no-op) time, the database's own floor for the rows the import stores,
# export time, type-fit report time.
# usage: tools/bench/members_bench.sh BUILD_DIR DB_PORT [MEMBERS] [VILLAGES]
# (DB user grassroots/grassroots on 127.0.0.1, e.g. from `tools/mariadb start DIR 0`)
set -euo pipefail
BUILD=$(cd "$1" && pwd); PORT=$2; N=${3:-1000000}; VILLAGES=${4:-5000}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/members_bench.XXXXXX)
SQL=(mariadb -h127.0.0.1 -P"$PORT" -ugrassroots -pgrassroots --local-infile=1)
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

echo "generating $N members in $DIR"
python3 "$HERE/gen_members.py" "$DIR" "$N" "$VILLAGES"

"${SQL[@]}" -e "DROP DATABASE IF EXISTS bench_bare; CREATE DATABASE bench_bare;
  CREATE TABLE bench_bare.m (id_number VARCHAR(18), name VARCHAR(50), gender CHAR(1), ethnicity VARCHAR(32),
  birth_date DATE, education VARCHAR(24), occupation VARCHAR(100), phone VARCHAR(11), org_code VARCHAR(32),
  status VARCHAR(24), applied_on DATE, joined_on DATE, full_on DATE, monthly_income_fen BIGINT, is_mobile TINYINT)
  DEFAULT CHARSET=utf8mb4;"
t0=$(now)
"${SQL[@]}" bench_bare -e "LOAD DATA LOCAL INFILE '$DIR/members.csv' INTO TABLE m CHARACTER SET utf8mb4
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\r\n' IGNORE 1 LINES"
t1=$(now); load=$(secs "$t0" "$t1")
echo "LOAD DATA LOCAL INFILE: ${load}s ($(echo "$N / $load" | bc) rows/s)"
"${SQL[@]}" -e "DROP DATABASE bench_bare; DROP DATABASE IF EXISTS bench_membership"

GP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GRASSROOTS_DB_PORT=$PORT GRASSROOTS_DB_NAME=bench_membership GRASSROOTS_DB_USER=grassroots \
       GRASSROOTS_DB_PASSWORD=grassroots GRASSROOTS_LOG_LEVEL=${BENCH_LOG_LEVEL:-warning} \
       GRASSROOTS_PII_KEY=$(printf '5a%.0s' $(seq 32))
"$BUILD/bin/membership" migrate
"$BUILD/bin/membership" serve --listen_host=127.0.0.1 --grpc_port="$GP" --metrics_port=0 &
SVC=$!
trap 'kill $SVC 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do "$BUILD/bin/grassroots" health "127.0.0.1:$GP" >/dev/null 2>&1 && break; sleep 0.2; done
CLI=("$BUILD/bin/grassroots" --gateway "127.0.0.1:$GP")
"${CLI[@]}" import organisations "$DIR/organisations.csv"

rss() { ps -o rss= -p "$SVC" | tr -d ' '; }
DBPID=$(cat "$("${SQL[@]}" -N -e 'SELECT @@pid_file')" 2>/dev/null || true)
cpu() { [ -n "$1" ] && awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" || echo 0; }
c_svc0=$(cpu $SVC); c_db0=$(cpu "$DBPID")
if [ -n "${BENCH_PERF:-}" ]; then
  perf record ${BENCH_PERF_SVC_ARGS:--g} -o "$BENCH_PERF.svc" -p $SVC 2>/dev/null & P1=$!
  perf record -g -o "$BENCH_PERF.db" -p "$DBPID" 2>/dev/null & P2=$!
  sleep 0.5
fi
t0=$(now); "${CLI[@]}" import members "$DIR/members.csv" --errors "$DIR/errors.csv" || true; t1=$(now)
if [ -n "${BENCH_PERF:-}" ]; then kill -INT $P1 $P2; wait $P1 $P2 || true; fi
echo "import CPU: service $(echo "$(cpu $SVC) - $c_svc0" | bc) s, mariadbd $(echo "$(cpu "$DBPID") - $c_db0" | bc) s"
imp=$(secs "$t0" "$t1")
echo "import members: ${imp}s ($(echo "$N / $imp" | bc) rows/s; $(echo "scale=2; $load / $imp" | bc) of LOAD DATA's rate); service RSS $(( $(rss) / 1024 )) MB"
t0=$(now); "${CLI[@]}" import members "$DIR/members.csv" || true; t1=$(now)
echo "re-import (no-op): $(secs "$t0" "$t1")s"

# The database's own floor for what the import stores: LOAD DATA of the import's own rows (as
# written) into copies of its tables (same indexes), in the import's batches of 5,000 rows (one
# statement each), on two connections that take the batches in turn, as the import's two writers
# do (members, then the events: member_events and the compact member_created_events). Parsing,
# validation, hashing, sealing and the service cost nothing here. Rows end in NUL (never in the
# data: the dump escapes it), so that a batch file holds whole rows.
DUMP="FIELDS ESCAPED BY '\\\\' LINES TERMINATED BY '\\0'"
"${SQL[@]}" -e "SELECT * FROM bench_membership.members INTO OUTFILE '$DIR/floor_members.tsv' $DUMP;
  SELECT * FROM bench_membership.member_events INTO OUTFILE '$DIR/floor_events.tsv' $DUMP;
  SELECT * FROM bench_membership.member_created_events INTO OUTFILE '$DIR/floor_created.tsv' $DUMP;
  DROP DATABASE IF EXISTS bench_floor; CREATE DATABASE bench_floor;
  CREATE TABLE bench_floor.members LIKE bench_membership.members;
  CREATE TABLE bench_floor.member_events LIKE bench_membership.member_events;
  CREATE TABLE bench_floor.member_created_events LIKE bench_membership.member_created_events;"
: > "$DIR/floor_a.sql"; : > "$DIR/floor_b.sql"
for t in members events created; do
  split -t '\0' -l "$( [ $t = created ] && echo 10 || echo 5000 )" -d -a 4 "$DIR/floor_$t.tsv" "$DIR/floor_${t}_part."
  table=$(case $t in members) echo members;; events) echo member_events;; created) echo member_created_events;; esac)
  i=0
  for f in "$DIR"/floor_${t}_part.*; do
    [ -e "$f" ] || continue
    echo "LOAD DATA LOCAL INFILE '$f' INTO TABLE $table CHARACTER SET binary $DUMP;" >> "$DIR/floor_$( [ $((i % 2)) = 0 ] && echo a || echo b ).sql"
    i=$((i + 1))
  done
done
t0=$(now)
"${SQL[@]}" bench_floor < "$DIR/floor_a.sql" &
FLOOR=$!
"${SQL[@]}" bench_floor < "$DIR/floor_b.sql"
wait $FLOOR
t1=$(now); floor=$(secs "$t0" "$t1")
stored=$("${SQL[@]}" -N -e "SELECT (SELECT COUNT(*) FROM bench_floor.members) = (SELECT COUNT(*) FROM bench_membership.members)
  AND (SELECT COUNT(*) FROM bench_floor.member_created_events) = (SELECT COUNT(*) FROM bench_membership.member_created_events)")
echo "database floor (the import's rows LOADed in its batches into copies of its tables, two connections): ${floor}s; import ratio ceiling $(echo "scale=2; $load / $floor" | bc)$( [ "$stored" = 1 ] || echo "; ROW COUNTS DIFFER: not a floor")"
"${SQL[@]}" -e "DROP DATABASE bench_floor"
rm -f "$DIR"/floor_*
t0=$(now); "${CLI[@]}" export members --org BENCH --out "$DIR/export.csv" --unmasked; t1=$(now)
echo "export members: $(secs "$t0" "$t1")s, $(wc -l < "$DIR/export.csv") lines"
for _ in 1 2 3; do
  t0=$(now); "${CLI[@]}" report type-fit --org BENCH --out "$DIR/typefit.csv"; t1=$(now)
  echo "type-fit report: $(secs "$t0" "$t1")s, $(($(wc -l < "$DIR/typefit.csv") - 1)) misfits"
done
echo "service peak RSS: $(grep VmHWM /proc/$SVC/status)"
