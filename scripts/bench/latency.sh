#!/usr/bin/env bash
# Latency from postald's 250 to arrival at the receiving server, one message
# at a time (each sent after the previous one arrived): BENCH_N messages
# through a private postald install (SQLite on disk, its own Redis key
# prefix, every role in one process) relaying to an in-process sink.
# Prints p50/p90/p99/max. Needs Go and Redis (127.0.0.1:6379); not root.
# BENCH_DB=postgres uses PostgreSQL (127.0.0.1:5432, user postgres) instead.
# BENCH_OVERLAP=1 sends each message once the previous one got its 250
# (not waiting for its arrival). BENCH_SESSION_PER_MESSAGE=1 opens a new SMTP session per message.
# Usage: scripts/bench/latency.sh
set -euo pipefail
BENCH_N=${BENCH_N:-300}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/postal-latency.XXXXXX)
chmod 755 "$WORK"
PD_PID=
SINK_PID=
cleanup() {
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
  [ -n "$PD_PID" ] && kill "$PD_PID" 2>/dev/null && wait "$PD_PID" 2>/dev/null || true
  [ -n "${REDIS_KEY_PREFIX:-}" ] && redis-cli --scan --pattern "{$REDIS_KEY_PREFIX}:*" | xargs -r redis-cli del >/dev/null || true
  [ -n "${PG_DB:-}" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# POSTALD_SRC: build postald and postalctl from another checkout (before/after).
( cd "${POSTALD_SRC:-$ROOT}" && go build -o "$WORK/bin/" ./cmd/postald ./cmd/postalctl )
( cd "$ROOT" && go build -o "$WORK/bin/" ./scripts/bench/latency )
SINK_PORT=$(free_port); PD_SMTP=$(free_port); PD_WEB=$(free_port); PD_HEALTH=$(free_port)
"$WORK/bin/postalctl" init --dir "$WORK/postal" --smtp-port "$PD_SMTP" --web-port "$PD_WEB" >/dev/null
export POSTAL_CONFIG_FILE_PATH="$WORK/postal/postal.yml"
export REDIS_KEY_PREFIX="latency-$(basename "$WORK")"
export POSTAL_SMTP_RELAYS="smtp://127.0.0.1:$SINK_PORT?ssl_mode=None"
export WORKER_DEFAULT_HEALTH_SERVER_PORT=$PD_HEALTH WORKER_DEFAULT_HEALTH_SERVER_BIND_ADDRESS=127.0.0.1
export SMTP_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1 WEB_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1
export LOGGING_LEVEL=warn POSTAL_SMTP_HOSTNAME=bench.local
if [ "${BENCH_DB:-sqlite}" = postgres ]; then
  PG_DB="latency_$(basename "$WORK" | tr -c 'a-zA-Z0-9\n' _ | tr 'A-Z' 'a-z')"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $PG_DB" >/dev/null
  export DATABASE_DRIVER=postgres DATABASE_URL="postgres://postgres@127.0.0.1:5432/$PG_DB?sslmode=disable"
fi
ctl="$WORK/bin/postalctl"
$ctl upgrade >/dev/null
$ctl org create acme >/dev/null
$ctl server create acme/mail >/dev/null
$ctl domain add acme/mail example.com --verified >/dev/null
$ctl credential create acme/mail --type smtp-ip local --key 127.0.0.1/32 >/dev/null
# BENCH_SINK=smtp-sink: Postfix's smtp-sink receives (one file per message,
# watched by the tool) instead of the tool's own Go server.
SINK_ARGS=(-sink "127.0.0.1:$SINK_PORT")
if [ "${BENCH_SINK:-}" = smtp-sink ]; then
  mkdir -p "$WORK/sink"; chmod 777 "$WORK/sink"
  smtp-sink -u nobody -d "$WORK/sink/%M." "127.0.0.1:$SINK_PORT" 100 &
  SINK_PID=$!
  SINK_ARGS=(-sink-dir "$WORK/sink")
fi
"$WORK/bin/postald" --role all 2>"$WORK/postald.log" &
PD_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PD_HEALTH/ready" >/dev/null && break; sleep 0.1; done
"$WORK/bin/latency" "${SINK_ARGS[@]}" ${BENCH_SESSION_PER_MESSAGE:+-session-per-message} ${BENCH_OVERLAP:+-overlap} -smtp "127.0.0.1:$PD_SMTP" -n "$BENCH_N" \
  || { tail -20 "$WORK/postald.log" >&2; exit 1; }
