#!/usr/bin/env bash
# A worker process killed with SIGKILL under load: BENCH_N messages (1,000)
# go through a private postald install (SQLite, its own Redis key prefix) to
# a receiver that takes BENCH_DATA_DELAY (1 s) to answer DATA, delivered by
# two worker processes; one of them is killed once BENCH_KILL_AFTER (200)
# messages arrived. Prints lost messages, duplicates and when the killed
# worker's work was redone. Needs Go and Redis; not root.
# Usage: scripts/bench/killworker.sh
set -euo pipefail
BENCH_N=${BENCH_N:-1000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/postal-killworker.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${REDIS_KEY_PREFIX:-}" ] && redis-cli --scan --pattern "{$REDIS_KEY_PREFIX}:*" | xargs -r redis-cli del >/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# POSTALD_SRC: build postald and postalctl from another checkout (before/after).
( cd "${POSTALD_SRC:-$ROOT}" && go build -o "$WORK/bin/" ./cmd/postald ./cmd/postalctl )
( cd "$ROOT" && go build -o "$WORK/bin/" ./scripts/bench/killworker )
SINK_PORT=$(free_port); PD_SMTP=$(free_port); PD_WEB=$(free_port)
"$WORK/bin/postalctl" init --dir "$WORK/postal" --smtp-port "$PD_SMTP" --web-port "$PD_WEB" >/dev/null
export POSTAL_CONFIG_FILE_PATH="$WORK/postal/postal.yml"
export REDIS_KEY_PREFIX="killworker-$(basename "$WORK")"
export POSTAL_SMTP_RELAYS="smtp://127.0.0.1:$SINK_PORT?ssl_mode=None"
export SMTP_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1 WEB_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1
export LOGGING_LEVEL=warn POSTAL_SMTP_HOSTNAME=bench.local SMTP_SERVER_MAX_CONNECTIONS_PER_IP=1000
ctl="$WORK/bin/postalctl"
$ctl upgrade >/dev/null
$ctl org create acme >/dev/null
$ctl server create acme/mail >/dev/null
$ctl domain add acme/mail example.com --verified >/dev/null
$ctl credential create acme/mail --type smtp-ip local --key 127.0.0.1/32 >/dev/null
start() { # ROLES HEALTH_PORT LOG
  WORKER_DEFAULT_HEALTH_SERVER_PORT=$2 WORKER_DEFAULT_HEALTH_SERVER_BIND_ADDRESS=127.0.0.1 \
    SMTP_SERVER_DEFAULT_HEALTH_SERVER_PORT=$2 SMTP_SERVER_DEFAULT_HEALTH_SERVER_BIND_ADDRESS=127.0.0.1 \
    "$WORK/bin/postald" --role "$1" 2>"$3" &
  PIDS+=($!)
}
start smtp-server,requeuer,cron "$(free_port)" "$WORK/front.log"
start worker "$(free_port)" "$WORK/worker1.log"; VICTIM=${PIDS[-1]}
start worker "$(free_port)" "$WORK/worker2.log"
"$WORK/bin/killworker" -sink "127.0.0.1:$SINK_PORT" -smtp "127.0.0.1:$PD_SMTP" -n "$BENCH_N" \
  -data-delay "${BENCH_DATA_DELAY:-1s}" -kill-pid "$VICTIM" -kill-after "${BENCH_KILL_AFTER:-200}" \
  || { tail -5 "$WORK"/*.log >&2; exit 1; }
