#!/usr/bin/env bash
# HTTP API throughput: scripts/bench/apiload sends BENCH_N send/message
# requests (one recipient, BENCH_SIZE-byte body) from BENCH_C concurrent
# clients to a private postald (web-server and smtp-server roles, no worker:
# this measures acceptance, which is durable in SQL before the answer), then
# the same message BENCH_N times over SMTP with the same concurrency, and
# prints requests/s, p50/p99 latency of each and their ratio.
# BENCH_DB=sqlite (default) or postgres (a fresh database on
# $POSTAL_TEST_POSTGRES_URL's server, dropped afterwards). BENCH_RUNS=N
# repeats the pair, taking turns at going first.
# BENCH_CPUPROFILE=FILE writes a pprof CPU profile of postald.
# Needs Redis on 127.0.0.1:6379 and Go; no root.
# Usage: scripts/bench/api.sh
set -euo pipefail
BENCH_N=${BENCH_N:-10000}
BENCH_C=${BENCH_C:-50}
BENCH_SIZE=${BENCH_SIZE:-2048}
BENCH_DB=${BENCH_DB:-sqlite}
BENCH_RUNS=${BENCH_RUNS:-1}
PG_ADMIN=${POSTAL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/postal-api-bench.XXXXXX)
PD_PID= PG_DB=
[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"

cleanup() {
  [ -n "$PD_PID" ] && kill "$PD_PID" 2>/dev/null && wait "$PD_PID" 2>/dev/null || true
  [ -n "${REDIS_KEY_PREFIX:-}" ] && redis-cli --scan --pattern "{$REDIS_KEY_PREFIX}:*" | xargs -r redis-cli del >/dev/null || true
  [ -n "$PG_DB" ] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "bench: nothing listens on $1" >&2; return 1; }

(cd "$ROOT" && go build -o "$WORK/bin/" ./cmd/postald ./cmd/postalctl ./scripts/bench/apiload)

for run in $(seq "$BENCH_RUNS"); do
  d="$WORK/run$run"; mkdir -p "$d"
  SMTP=$(free_port); WEB=$(free_port); HEALTH=$(free_port)
  "$WORK/bin/postalctl" init --dir "$d" --smtp-port "$SMTP" --web-port "$WEB" >/dev/null
  export POSTAL_CONFIG_FILE_PATH="$d/postal.yml"
  export REDIS_KEY_PREFIX="apibench-$(basename "$WORK")-$run"
  export WORKER_DEFAULT_HEALTH_SERVER_PORT=$HEALTH WORKER_DEFAULT_HEALTH_SERVER_BIND_ADDRESS=127.0.0.1
  export SMTP_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1 WEB_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1
  export LOGGING_LEVEL=warn POSTAL_SMTP_HOSTNAME=bench.local SMTP_SERVER_MAX_CONNECTIONS_PER_IP=1000
  if [ "$BENCH_DB" = postgres ]; then
    PG_DB="postal_apibench_$(date +%s)_$run"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null
    export DATABASE_DRIVER=postgres DATABASE_URL="${PG_ADMIN%%/postgres\?*}/$PG_DB?sslmode=disable"
  fi
  ctl="$WORK/bin/postalctl"
  $ctl upgrade >/dev/null
  $ctl org create acme >/dev/null
  $ctl server create acme/mail >/dev/null
  $ctl domain add acme/mail example.com --verified >/dev/null
  $ctl credential create acme/mail --type smtp-ip local --key 127.0.0.1/32 >/dev/null
  KEY=$($ctl --json credential create acme/mail --type api app | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  "$WORK/bin/postald" --role web-server,smtp-server ${BENCH_CPUPROFILE:+--cpuprofile "$BENCH_CPUPROFILE"} 2>"$d/postald.log" &
  PD_PID=$!
  wait_port "$WEB"; wait_port "$SMTP"
  first=api; [ $((run % 2)) -eq 0 ] && first=smtp
  echo "run $run ($BENCH_DB, $first first; the machine may be shared: compare the ratio)"
  "$WORK/bin/apiload" -url "http://127.0.0.1:$WEB" -key "$KEY" -smtp "127.0.0.1:$SMTP" \
    -n "$BENCH_N" -c "$BENCH_C" -size "$BENCH_SIZE" -first "$first" -pid "$PD_PID" || { tail -20 "$d/postald.log" >&2; exit 1; }
  kill "$PD_PID"; wait "$PD_PID" 2>/dev/null || true; PD_PID=
  redis-cli --scan --pattern "{$REDIS_KEY_PREFIX}:*" | xargs -r redis-cli del >/dev/null
  if [ -n "$PG_DB" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null; PG_DB=; fi
  unset DATABASE_DRIVER DATABASE_URL
done
