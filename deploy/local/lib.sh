# shellcheck shell=bash disable=SC2034
# Shared by deploy/local/up and deploy/local/down (sourced, not run).
#
# Port layout: one block from GRASSROOTS_PORT_BASE (default 8080):
#   base+0        gateway HTTP/JSON
#   base+10..14   gRPC:    gateway, membership, cadrepay, assets, mobility
#   base+20..24   metrics: gateway, membership, cadrepay, assets, mobility
#   base+29       MariaDB
# so by default 8080, 8090-8094, 8100-8104 and 8109, all on 127.0.0.1.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# GRASSROOTS_STATE_DIR moves the run's state (tests use it to stay clear of a developer's run);
# the CLI only looks in var/local, so pass it --gateway then.
STATE="${GRASSROOTS_STATE_DIR:-$ROOT/var/local}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
# How paths are shown: relative to the repository when inside it.
show() { local p="$1"; echo "${p#"$ROOT"/}"; }
LOGS="$STATE/logs"
PIDS="$STATE/pids"
DB_DIR="$STATE/mariadb"
ENDPOINTS="$STATE/endpoints.env"
BIN="${GRASSROOTS_BIN_DIR:-$ROOT/build/bin}"

SERVICES=(membership cadrepay assets mobility)
PROCESSES=(membership cadrepay assets mobility gateway)
LOOPBACK=127.0.0.1

PORT_BASE="${GRASSROOTS_PORT_BASE:-8080}"
if ! [[ "$PORT_BASE" =~ ^[0-9]+$ ]] || [ "$PORT_BASE" -lt 1024 ] || [ "$PORT_BASE" -gt 65500 ]; then
  echo "GRASSROOTS_PORT_BASE must be a number from 1024 to 65500 (got '$PORT_BASE')" >&2
  exit 2
fi

# port_of KIND PROCESS: KIND is grpc, metrics or http.
port_of() {
  local i
  case "$2" in
    gateway) i=0 ;; membership) i=1 ;; cadrepay) i=2 ;; assets) i=3 ;; mobility) i=4 ;;
    *) echo "unknown process $2" >&2; return 1 ;;
  esac
  case "$1" in
    http) echo $((PORT_BASE)) ;;
    grpc) echo $((PORT_BASE + 10 + i)) ;;
    metrics) echo $((PORT_BASE + 20 + i)) ;;
    *) echo "unknown port kind $1" >&2; return 1 ;;
  esac
}
DB_PORT=$((PORT_BASE + 29))

say() { echo "grassroots: $*" >&2; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/$LOOPBACK/$1") 2>/dev/null
}

# pid recorded for process $1 if that process still runs the expected binary; else nothing.
live_pid() {
  local name="$1" file="$PIDS/$1.pid" pid exe
  [ -s "$file" ] || return 0
  pid="$(tr -dc '0-9' <"$file")"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then return 0; fi
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  exe="${exe% (deleted)}"
  # A pid reused by an unrelated process must never be signalled.
  if [ "$(basename "$exe")" = "$name" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "/$name "; then
    printf '%s\n' "$pid"
  fi
}

# Stops process $1 (SIGTERM, graceful drain; SIGKILL after GRASSROOTS_STOP_TIMEOUT, default 30 s).
stop_process() {
  local name="$1" pid i timeout="${GRASSROOTS_STOP_TIMEOUT:-30}"
  pid="$(live_pid "$name")"
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not stop within ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$PIDS/$name.pid"
}

# Stops everything up started: the gateway first, then the services, then MariaDB.
stop_all() {
  local name
  rm -f "$ENDPOINTS"
  for name in gateway mobility assets cadrepay membership; do
    stop_process "$name"
  done
  if [ -f "$DB_DIR/mariadbd.pid" ]; then
    "$ROOT/tools/mariadb" stop "$DB_DIR" && say "stopped MariaDB"
  fi
}

# Names of the processes (and mariadb) of a previous up that still run.
running_parts() {
  local name out=()
  for name in "${PROCESSES[@]}"; do
    [ -z "$(live_pid "$name")" ] || out+=("$name")
  done
  if "$ROOT/tools/mariadb" status "$DB_DIR" >/dev/null 2>&1; then out+=(mariadb); fi
  echo "${out[*]:-}"
}
