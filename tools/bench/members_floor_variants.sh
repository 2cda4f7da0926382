#!/usr/bin/env bash
# What the database alone spends on the member import's rows, table design by table design: the
# rows a members_bench.sh run stored (bench_membership, left in place by it) are dumped once and
# LOADed in the import's batches of 5,000 (two connections taking the batches in turn, as the
# import's two writers do) into copies of `members` that differ in their keys. Prints each
# variant's wall seconds and the server's CPU seconds. No service runs: this is the floor the
# import's ratio cannot beat (docs/member-registry.md, "Import performance").
# usage: tools/bench/members_floor_variants.sh DB_PORT [VARIANT...]
#   (after `tools/bench/members_bench.sh BUILD_DIR DB_PORT ...` on the same server; DB user
#    grassroots/grassroots on 127.0.0.1; the server's pid is read from its @@pid_file)
# Variants: current (as migrated), nonunique (id_hash a plain index), no_org (without
# (org_code, status)), no_hash (without id_hash), no_secondary (primary key only), pk_hash (clustered
# by id_hash, member_id unique), pk_org (clustered by (org_code, member_id)). Default: all.
# Environment: FLOOR_ONE=1 loads every batch on one connection; FLOOR_WITH_CREATED=1 adds the
# compact created events (member_created_events) to the loads.
set -euo pipefail
PORT=$1; shift
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(current nonunique no_org no_hash no_secondary pk_hash pk_org)
SQL=(mariadb -h127.0.0.1 -P"$PORT" -ugrassroots -pgrassroots --local-infile=1)
DUMP="FIELDS ESCAPED BY '\\\\' LINES TERMINATED BY '\\0'"
DIR=$(mktemp -d /tmp/members_floor.XXXXXX)
chmod 777 "$DIR"  # the server writes the dump
trap 'rm -rf "$DIR"; "${SQL[@]}" -e "DROP DATABASE IF EXISTS bench_floor" >/dev/null 2>&1 || true' EXIT

"${SQL[@]}" -e "SELECT * FROM bench_membership.members INTO OUTFILE '$DIR/members.tsv' $DUMP;
  SELECT * FROM bench_membership.member_created_events INTO OUTFILE '$DIR/created.tsv' $DUMP;"
split -t '\0' -l 5000 -d -a 4 "$DIR/members.tsv" "$DIR/members_part."
split -t '\0' -l 10 -d -a 4 "$DIR/created.tsv" "$DIR/created_part."
rm -f "$DIR/members.tsv" "$DIR/created.tsv"
ddl() { "${SQL[@]}" -N -e "SHOW CREATE TABLE bench_membership.$1" | cut -f2 | sed 's/\\n/\n/g'; }
MEMBERS=$(ddl members)
CREATED=$(ddl member_created_events)
# The variant's CREATE TABLE of members (from the migrated one).
variant() {
  case $1 in
    current) echo "$MEMBERS" ;;
    nonunique) echo "$MEMBERS" | sed 's/UNIQUE KEY `uk_members_id_hash`/KEY `uk_members_id_hash`/' ;;
    no_org) echo "$MEMBERS" | grep -v 'idx_members_org_status' | sed 's/(`id_hash`),$/(`id_hash`)/' ;;
    no_hash) echo "$MEMBERS" | grep -v 'uk_members_id_hash' ;;
    no_secondary) echo "$MEMBERS" | grep -v 'uk_members_id_hash\|idx_members_org_status' | sed 's/(`member_id`),$/(`member_id`)/' ;;
    pk_hash) echo "$MEMBERS" | sed -e 's/PRIMARY KEY (`member_id`),/PRIMARY KEY (`id_hash`), UNIQUE KEY `uk_member_id` (`member_id`),/' \
               -e '/UNIQUE KEY `uk_members_id_hash`/d' ;;
    pk_org) echo "$MEMBERS" | sed -e 's/PRIMARY KEY (`member_id`),/PRIMARY KEY (`org_code`,`member_id`), UNIQUE KEY `uk_member_id` (`member_id`),/' \
              -e '/idx_members_org_status/d' -e 's/UNIQUE KEY `uk_members_id_hash` (`id_hash`),/UNIQUE KEY `uk_members_id_hash` (`id_hash`)/' ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
DBPID=$(cat "$("${SQL[@]}" -N -e 'SELECT @@pid_file')")
cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
for v in "${VARIANTS[@]}"; do
  "${SQL[@]}" -e "DROP DATABASE IF EXISTS bench_floor; CREATE DATABASE bench_floor"
  printf '%s;\n%s;\n' "$(variant "$v")" "$CREATED" | "${SQL[@]}" bench_floor
  : > "$DIR/a.sql"; : > "$DIR/b.sql"; i=0
  parts=("$DIR"/members_part.*)
  [ "${FLOOR_WITH_CREATED:-0}" = 1 ] && parts+=("$DIR"/created_part.*)
  for f in "${parts[@]}"; do
    table=members; case $f in *created_part*) table=member_created_events ;; esac
    side=a; [ "${FLOOR_ONE:-0}" = 1 ] || [ $((i % 2)) = 0 ] || side=b
    echo "LOAD DATA LOCAL INFILE '$f' INTO TABLE $table CHARACTER SET binary $DUMP;" >> "$DIR/$side.sql"
    i=$((i + 1))
  done
  c0=$(cpu "$DBPID"); t0=$(date +%s.%N)
  "${SQL[@]}" bench_floor < "$DIR/a.sql" & A=$!
  "${SQL[@]}" bench_floor < "$DIR/b.sql"
  wait $A
  t1=$(date +%s.%N); c1=$(cpu "$DBPID")
  printf '%-13s floor %6.2f s, mariadbd %6.2f CPU-s\n' "$v" "$(echo "$t1 - $t0" | bc)" "$(echo "$c1 - $c0" | bc)"
done
