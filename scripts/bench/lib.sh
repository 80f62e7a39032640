#!/usr/bin/env bash
# Shared harness for the Postfix comparisons: a private Postfix instance and a
# private postald install, both relaying into Postfix's smtp-sink, loaded by
# Postfix's smtp-source. Everything listens on 127.0.0.1 on free ports and is
# removed on exit. Needs root (Postfix), postfix, redis (127.0.0.1:6379).
set -euo pipefail

BENCH_N=${BENCH_N:-10000}          # messages per run
BENCH_C=${BENCH_C:-20}             # smtp-source sessions
BENCH_SIZE=${BENCH_SIZE:-2048}     # message size in bytes
BENCH_DKIM_BITS=${BENCH_DKIM_BITS:-2048}  # postald's DKIM key size (1024 is Postal's)
BENCH_RUNS=${BENCH_RUNS:-1}        # postald/Postfix pairs; more than one prints the median ratio
BENCH_WEBHOOK=${BENCH_WEBHOOK:-0}  # 1: postald's server has an all-events webhook to a local receiver
BENCH_SQL=${BENCH_SQL:-}           # SQL run on postald's database after the migrations (e.g. DROP INDEX ...)
BENCH_DB=${BENCH_DB:-sqlite}       # sqlite (a file in the run's folder) or postgres: a fresh database per
                                   # postald half on $POSTAL_TEST_POSTGRES_URL's server, dropped afterwards
PG_ADMIN=${POSTAL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
PG_DB=
BENCH_PGSTATS=${BENCH_PGSTATS:-0} # 1 (postgres): print the database's transactions and row writes per message
BENCH_PG_SETUP=${BENCH_PG_SETUP:-} # SQL run on the fresh database before postald starts (e.g. ALTER DATABASE ... SET)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d /tmp/postal-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  stop_postfix
  drop_pg_db
  [ -n "${PF_ALT_SAVED+x}" ] && postconf -e "alternate_config_directories = $PF_ALT_SAVED" || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench: $1 not found (apt-get install ${2:-$1})" >&2; exit 1; }; }
[ "$BENCH_DB" = sqlite ] || [ "$BENCH_DB" = postgres ] || { echo "bench: BENCH_DB is sqlite or postgres, not $BENCH_DB" >&2; exit 1; }
[ "$BENCH_DB" = sqlite ] || need psql postgresql-client
need smtp-source postfix; need smtp-sink postfix; need postfix; need redis-cli redis-tools
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (a private Postfix instance needs it)" >&2; exit 1; }
[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "bench: nothing listens on $1" >&2; return 1; }

# start_sink DIR: smtp-sink writing one file per message into DIR (tmpfs).
# -c keeps a running count in DIR.count, so waiting for the sink reads a few
# bytes instead of listing thousands of files every 50 ms (which would take
# CPU from the system under test); the files are counted once at the end.
start_sink() {
  local dir=$1
  mkdir -p "$dir"; chmod 777 "$dir"
  SINK_PORT=$(free_port)
  smtp-sink -c -u nobody -d "$dir/%M." "127.0.0.1:$SINK_PORT" 1024 >"$dir.count" &
  SINK_PID=$!
  PIDS+=($SINK_PID)
  wait_port "$SINK_PORT"
}
stop_sink() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }
count_sink() { find "$1" -type f | wc -l; }
# sink_counter DIR: messages the sink has finished (its -c counter).
sink_counter() { tail -c 100 "$1.count" 2>/dev/null | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
wait_sink() { # DIR N TIMEOUT_S -> prints the time all N arrived
  local dir=$1 n=$2 limit=${3:-600} start c; start=$(now)
  while c=$(sink_counter "$dir"); [ "${c:-0}" -lt "$n" ]; do
    if [ "$(echo "$(now) - $start > $limit" | bc)" = 1 ]; then echo "bench: sink has ${c:-0} of $n after ${limit}s" >&2; return 1; fi
    sleep 0.05
  done
  now
  c=$(count_sink "$dir")
  [ "$c" -ge "$n" ] || { echo "bench: sink counted $n but holds $c files" >&2; return 1; }
}

# start_postfix: a private instance relaying everything to the sink.
start_postfix() {
  local d
  d=$(mktemp -d "$WORK/pf.XXXXXX"); chmod 755 "$d"
  PF_DIR=$d
  mkdir -p "$d"
  PF_PORT=$(free_port)
  cat > "$d/main.cf" <<MAIN
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.local
mydestination =
local_recipient_maps =
relayhost = [127.0.0.1]:$SINK_PORT
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
alias_maps =
alias_database =
maillog_file = /dev/stdout
MAIN
  cat > "$d/master.cf" <<MASTER
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
MASTER
  mkdir -p "$d/queue" "$d/data"
  chown postfix "$d/data"
  # Postfix runs a private config directory only when the default main.cf
  # lists it; restored by cleanup.
  [ -n "${PF_ALT_SAVED+x}" ] || PF_ALT_SAVED=$(postconf -h alternate_config_directories)
  postconf -e "alternate_config_directories = ${PF_ALT_SAVED:+$PF_ALT_SAVED, }$d"
  postfix -c "$d" check 2>/dev/null || true
  # start-fg: the daemonising start needs a syslog this harness may not have.
  postfix -c "$d" start-fg >"$d/start.log" 2>&1 &
  PF_PID=$!
  PIDS+=($PF_PID)
  wait_port "$PF_PORT" || { cat "$d/start.log" "$d/maillog" >&2 2>/dev/null; return 1; }
}

# postfix_cpu: CPU seconds (user + system) the running private Postfix used:
# its processes work in its queue directory, and the master's children
# counters hold those that already exited.
postfix_cpu() {
  local t total=0 p
  t=$(getconf CLK_TCK)
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/cwd" 2>/dev/null)" = "$PF_DIR/queue" ] || continue
    total=$(awk -v a="$total" '{print a + $14 + $15 + $16 + $17}' "$p/stat" 2>/dev/null || echo "$total")
  done
  echo "scale=2; $total / $t" | bc
}

# stop_postfix: stops the running private Postfix instance, if any.
stop_postfix() {
  if [ -n "${PF_DIR:-}" ] && [ -f "$PF_DIR/main.cf" ]; then
    postfix -c "$PF_DIR" stop >/dev/null 2>&1 || true
    for _ in $(seq 100); do kill -0 "$PF_PID" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$PF_DIR/queue"
  fi
  PF_DIR=
}

# drop_pg_db: drops the run's PostgreSQL database, if any.
drop_pg_db() {
  [ -n "${PG_DB:-}" ] || return 0
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  PG_DB=
}
# pg_backend_cpu: CPU seconds (user + system) used so far by the PostgreSQL
# backends connected to the run's database ("-" without PostgreSQL). The
# server shares the cores, so its cost per message counts.
pg_backend_cpu() {
  [ -n "${PG_DB:-}" ] || { echo -; return; }
  local t; t=$(getconf CLK_TCK)
  psql "$PG_ADMIN" -Atc "select pid from pg_stat_activity where datname = '$PG_DB'" 2>/dev/null |
    while read -r p; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done |
    awk -v t="$t" '{s += $1} END {printf "%.2f", s / t}'
}

# pg_stats: per message of the run (BENCH_N), the database's commits and the
# row writes to the hot tables, with the share of updates that were HOT
# (no index entries written). Call it after postald has stopped: a busy
# backend reports its counters at most once a second and an idle one only
# after 10 s, so read while postald is connected they fall short (by about a
# fifth in a 3,000-message run); a backend reports what is left as it exits.
pg_stats() {
  for _ in $(seq 100); do
    [ "$(psql "$PG_ADMIN" -Atc "select count(*) from pg_stat_activity where datname = '$PG_DB'" 2>/dev/null)" = 0 ] && break
    sleep 0.1
  done
  psql "${PG_ADMIN%%/postgres\?*}/$PG_DB?sslmode=disable" -AtF ' ' -c "
    select 'pgstats commits/msg ' || round(xact_commit::numeric / $BENCH_N, 2) || ', rollbacks ' || xact_rollback
      from pg_stat_database where datname = current_database();
    select 'pgstats ' || relname || ': ins/msg ' || round(n_tup_ins::numeric / $BENCH_N, 2) || ', upd/msg ' ||
      round(n_tup_upd::numeric / $BENCH_N, 2) || ' (hot ' || n_tup_hot_upd || '), del/msg ' || round(n_tup_del::numeric / $BENCH_N, 2)
      from pg_stat_user_tables where relname in ('raw_messages', 'messages', 'queued_messages', 'deliveries', 'webhook_requests')
      order by relname;" 2>/dev/null || true
}

# start_postald ROLES: a private install (SQLite on disk, or a fresh
# PostgreSQL database with BENCH_DB=postgres; its own Redis key prefix)
# relaying to the sink; 127.0.0.1 may send as acme/mail (SMTP-IP).
start_postald() {
  local d
  d=$(mktemp -d "$WORK/postal.XXXXXX")
  PD_DIR=$d
  mkdir -p "$d"
  ( cd "$ROOT" && go build -o "$WORK/bin/" ./cmd/postald ./cmd/postalctl ./scripts/bench/hookrecv )
  PD_SMTP=$(free_port); PD_WEB=$(free_port); PD_HEALTH=$(free_port)
  "$WORK/bin/postalctl" init --dir "$d" --smtp-port "$PD_SMTP" --web-port "$PD_WEB" >/dev/null
  export POSTAL_CONFIG_FILE_PATH="$d/postal.yml"
  export REDIS_KEY_PREFIX="bench-$(basename "$WORK")-$(basename "$d")"
  export POSTAL_SMTP_RELAYS="smtp://127.0.0.1:$SINK_PORT?ssl_mode=None"
  export WORKER_DEFAULT_HEALTH_SERVER_PORT=$PD_HEALTH WORKER_DEFAULT_HEALTH_SERVER_BIND_ADDRESS=127.0.0.1
  export SMTP_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1 WEB_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1
  export LOGGING_LEVEL=warn POSTAL_SMTP_HOSTNAME=bench.local
  export SMTP_SERVER_MAX_CONNECTIONS_PER_IP=1000
  unset DATABASE_DRIVER DATABASE_URL
  if [ "$BENCH_DB" = postgres ]; then
    PG_DB="postal_bench_$(basename "$WORK" | tr -cd 'a-zA-Z0-9')_$(basename "$d" | tr -cd 'a-zA-Z0-9')"
    PG_DB=$(echo "$PG_DB" | tr 'A-Z' 'a-z')
    psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null
    export DATABASE_DRIVER=postgres DATABASE_URL="${PG_ADMIN%%/postgres\?*}/$PG_DB?sslmode=disable"
    [ -z "$BENCH_PG_SETUP" ] || psql "$PG_ADMIN" -qc "${BENCH_PG_SETUP//\$PG_DB/$PG_DB}" >/dev/null
  fi
  local ctl="$WORK/bin/postalctl"
  $ctl upgrade >/dev/null
  # BENCH_SQL: statements run on postald's database after the migrations
  # (to measure what an index costs, drop it here).
  if [ -n "${BENCH_SQL:-}" ]; then
    if [ "$BENCH_DB" = postgres ]; then psql "$DATABASE_URL" -qc "$BENCH_SQL" >/dev/null
    else sqlite3 "$d/postal.sqlite" "$BENCH_SQL"; fi
  fi
  $ctl org create acme >/dev/null
  $ctl server create acme/mail >/dev/null
  $ctl domain add acme/mail example.com --verified --dkim-bits "$BENCH_DKIM_BITS" >/dev/null
  $ctl credential create acme/mail --type smtp-ip local --key 127.0.0.1/32 >/dev/null
  if [ "$BENCH_WEBHOOK" = 1 ]; then
    HOOK_PORT=$(free_port)
    "$WORK/bin/hookrecv" "127.0.0.1:$HOOK_PORT" &
    HOOK_PID=$!
    PIDS+=($HOOK_PID)
    wait_port "$HOOK_PORT"
    $ctl webhook add acme/mail "http://127.0.0.1:$HOOK_PORT/" --all-events >/dev/null
  fi
  if [ "${BENCH_INBOUND:-0}" = 1 ]; then
    # A route whose HTTP endpoint is the counting receiver (scripts/bench/inbound.sh).
    HOOK_PORT=$(free_port)
    "$WORK/bin/hookrecv" "127.0.0.1:$HOOK_PORT" &
    HOOK_PID=$!
    PIDS+=($HOOK_PID)
    wait_port "$HOOK_PORT"
    $ctl route add acme/mail in@example.com --endpoint "http:http://127.0.0.1:$HOOK_PORT/" >/dev/null
  fi
  # BENCH_CPUPROFILE=FILE: pprof CPU profile of postald for the run.
  "$WORK/bin/postald" --role "$1" ${BENCH_CPUPROFILE:+--cpuprofile "$BENCH_CPUPROFILE"} 2>"$d/postald.log" &
  PD_PID=$!
  PIDS+=($PD_PID)
  wait_port "$PD_SMTP"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PD_HEALTH/ready" >/dev/null && break; sleep 0.1; done
}
# wait_hooks N TIMEOUT_S: waits until the receiver has N webhooks, then until
# postald has nothing left of them (webhooks stream, pending entries, inflight
# markers, webhook_requests rows). Sets HOOK_AT (when the last webhook
# arrived) and HOOK_LEFT (what postald still held of them).
wait_hooks() {
  local n=$1 limit=${2:-600} start c k; start=$(now)
  while c=$(curl -sf "http://127.0.0.1:$HOOK_PORT/count"); [ "${c:-0}" -lt "$n" ]; do
    if [ "$(echo "$(now) - $start > $limit" | bc)" = 1 ]; then echo "bench: receiver has ${c:-0} of $n webhooks after ${limit}s" >&2; return 1; fi
    sleep 0.05
  done
  HOOK_AT=$(now)
  k="{$REDIS_KEY_PREFIX}"
  for _ in $(seq 200); do
    HOOK_LEFT="stream $(redis-cli xlen "$k:stream:webhooks"), inflight $(redis-cli hlen "$k:inflight"), rows $(sql_count webhook_requests)"
    [ "$HOOK_LEFT" = "stream 0, inflight 0, rows 0" ] && break
    sleep 0.1
  done
}
# sql_count TABLE: rows in TABLE of the running install ("?" when unreadable).
sql_count() {
  if [ -n "${PG_DB:-}" ]; then
    psql "${PG_ADMIN%%/postgres\?*}/$PG_DB?sslmode=disable" -Atc "select count(*) from $1" 2>/dev/null || echo '?'
  else
    sqlite3 "$PD_DIR/postal.sqlite" "select count(*) from $1" 2>/dev/null || echo '?'
  fi
}
stop_postald() {
  # CPU seconds postald used (user + system), for the per-message cost, and
  # those of its PostgreSQL backends (PG_CPU, "-" on SQLite).
  PD_CPU=$(awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$PD_PID/stat" 2>/dev/null || echo -)
  PG_CPU=$(pg_backend_cpu)
  kill "$PD_PID" 2>/dev/null || true; wait "$PD_PID" 2>/dev/null || true
  [ "$BENCH_PGSTATS" = 1 ] && [ -n "${PG_DB:-}" ] && pg_stats
  drop_pg_db
  # Removing the install drops its dirty pages, so writeback of this run's
  # database does not run into the next measurement.
  [ -n "${PD_DIR:-}" ] && rm -rf "$PD_DIR"
  redis-cli --scan --pattern "{$REDIS_KEY_PREFIX}:*" | xargs -r redis-cli del >/dev/null
}

# load PORT: smtp-source, N messages of SIZE bytes over C sessions; prints seconds.
load() {
  local start end
  start=$(now)
  smtp-source -s "$BENCH_C" -l "$BENCH_SIZE" -m "$BENCH_N" -f alice@example.com -t bob@dest.test "127.0.0.1:$1"
  end=$(now)
  echo "$start $end"
}
rate() { echo "scale=0; $BENCH_N / ($2 - $1)" | bc; }
# busy_ms: CPU time the whole machine has spent busy (user, nice, system, irq,
# softirq, steal; all processes, all cores) since boot, in milliseconds.
busy_ms() { awk -v t="$(getconf CLK_TCK)" '/^cpu /{printf "%d", ($2 + $3 + $4 + $7 + $8 + $9) * 1000 / t}' /proc/stat; }
# per_msg MS_BEFORE MS_AFTER: milliseconds of machine CPU per message.
per_msg() { echo "scale=3; ($2 - $1) / $BENCH_N" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
# summary NAME RATIO...: the median of the runs' ratios (Postfix's own rate
# varies by a third between runs on a small machine; one pair says little).
summary() {
  local name=$1; shift
  [ "$#" -gt 1 ] || return 0
  printf '%s   median ratio %sx over %s runs (%s)\n' "$name" \
    "$(printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')" \
    "$#" "$(printf '%s ' "$@" | sed 's/ $//')"
}

# run_pair [ROLES [FIRST]]: the same load through postald (ROLES, default all;
# DKIM on) and through Postfix, one after the other (postald first unless
# FIRST is postfix), each into its own smtp-sink, stopped after its half.
# Sets PD_ACCEPT PF_ACCEPT (msg/s until smtp-source finished) and PD_E2E
# PF_E2E (msg/s until the sink had every message; PD_E2E is "-" when postald
# ran without a worker).
run_pair() {
  local roles=${1:-all} first=${2:-postald} sink
  sink=$(mktemp -d /dev/shm/postal-bench-sink.XXXXXX); chmod 755 "$sink"
  if [ "$first" = postfix ]; then
    postfix_half "$sink"; postald_half "$sink" "$roles"
  else
    postald_half "$sink" "$roles"; postfix_half "$sink"
  fi
  rm -rf "$sink"
}

postald_half() {
  local sink=$1 roles=$2 s e done_at
  start_sink "$sink/postald"
  start_postald "$roles"
  local m0; m0=$(busy_ms); PD_MACHINE=-
  read -r s e < <(load "$PD_SMTP")
  PD_ACCEPT=$(rate "$s" "$e"); PD_E2E=-
  if [[ ",$roles," == *",all,"* || ",$roles," == *",worker,"* ]]; then
    done_at=$(wait_sink "$sink/postald" "$BENCH_N" 600)
    PD_E2E=$(rate "$s" "$done_at")
    if [ "$BENCH_WEBHOOK" = 1 ]; then
      wait_hooks "$BENCH_N" 600
      PD_HOOKS=$(rate "$s" "$HOOK_AT")
      # Webhooks yield to mail under load: how long after the last message
      # reached the sink the last webhook reached the receiver.
      HOOK_LAG=$(echo "scale=2; ($HOOK_AT - $done_at) / 1" | bc)
    fi
    # Everything the machine did for the run (postald, smtp-source, smtp-sink,
    # the receiver, the database), per message: on a CPU-bound box the ratio
    # of the two halves' figures is the throughput ratio's ceiling.
    PD_MACHINE=$(per_msg "$m0" "$(busy_ms)")
  fi
  HOOK_CPU=-
  [ -n "${HOOK_PID:-}" ] && HOOK_CPU=$(awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$HOOK_PID/stat" 2>/dev/null || echo -)
  stop_postald
  [ -n "${HOOK_PID:-}" ] && { kill "$HOOK_PID" 2>/dev/null; wait "$HOOK_PID" 2>/dev/null || true; HOOK_PID=; }
  stop_sink
}

postfix_half() {
  local sink=$1 s e done_at
  start_sink "$sink/postfix"
  start_postfix
  local m0; m0=$(busy_ms)
  read -r s e < <(load "$PF_PORT")
  done_at=$(wait_sink "$sink/postfix" "$BENCH_N" 600)
  PF_MACHINE=$(per_msg "$m0" "$(busy_ms)")
  PF_ACCEPT=$(rate "$s" "$e"); PF_E2E=$(rate "$s" "$done_at")
  PF_CPU=$(postfix_cpu)
  stop_postfix
  stop_sink
}

# pair_order RUN: which system goes first in run RUN (1-based): they take
# turns, so neither always runs on the machine the other just left.
pair_order() { if [ $(($1 % 2)) -eq 1 ]; then echo postald; else echo postfix; fi; }
