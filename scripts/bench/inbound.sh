#!/usr/bin/env bash
# Inbound throughput: smtp-source sends BENCH_N messages (BENCH_SIZE bytes,
# BENCH_C sessions, no AUTH) to a route address of postald --role all whose
# HTTP endpoint is scripts/bench/hookrecv (200 to every POST). Prints the
# acceptance rate (until smtp-source finished) and the end-to-end rate (until
# the receiver had every message), then, in the same run, the same load as
# outgoing mail relayed into smtp-sink, and the ratio of the two end-to-end
# rates. No Postfix pair: Postfix has no HTTP endpoints to compare with.
# BENCH_SCANNERS=1 adds, in the same run, the inbound load with rspamd and
# ClamAV inspecting every message (BENCH_RSPAMD, default 127.0.0.1:11334;
# BENCH_CLAMD, default 127.0.0.1:3310: scripts/ci-services.sh starts both)
# and the ratio of its end-to-end rate to the uninspected one;
# BENCH_SCANNERS=each runs rspamd alone, ClamAV alone, then both.
# Usage: sudo scripts/bench/inbound.sh
BENCH_INBOUND=1
BENCH_SCANNERS=${BENCH_SCANNERS:-0}
BENCH_RSPAMD=${BENCH_RSPAMD:-127.0.0.1:11334}
BENCH_CLAMD=${BENCH_CLAMD:-127.0.0.1:3310}
source "$(dirname "$0")/lib.sh"

# inbound_run LABEL: one inbound load; prints its rates, sets IN_E2E.
inbound_run() {
  local start accepted done_at c limit=600
  start_postald all
  start=$(now)
  smtp-source -s "$BENCH_C" -l "$BENCH_SIZE" -m "$BENCH_N" -f sender@far.test -t in@example.com "127.0.0.1:$PD_SMTP"
  accepted=$(now)
  while c=$(curl -sf "http://127.0.0.1:$HOOK_PORT/count"); [ "${c:-0}" -lt "$BENCH_N" ]; do
    if [ "$(echo "$(now) - $start > $limit" | bc)" = 1 ]; then echo "bench: receiver has ${c:-0} of $BENCH_N after ${limit}s" >&2; exit 1; fi
    sleep 0.05
  done
  done_at=$(now)
  stop_postald
  kill "$HOOK_PID" 2>/dev/null; wait "$HOOK_PID" 2>/dev/null || true; HOOK_PID=
  IN_E2E=$(rate "$start" "$done_at")
  printf '%-13s postald accept %6s msg/s   to HTTP endpoint %6s msg/s   (%s msgs, %s B, %s sessions; CPU %s s)\n' \
    "$1" "$(rate "$start" "$accepted")" "$IN_E2E" "$BENCH_N" "$BENCH_SIZE" "$BENCH_C" "$PD_CPU"
}

sink=$(mktemp -d /dev/shm/postal-bench-sink.XXXXXX); chmod 755 "$sink"
start_sink "$sink/postald"
inbound_run inbound
plain=$IN_E2E
case "$BENCH_SCANNERS" in
  0) sets=() ;;
  1) sets=("rspamd+clamav") ;;
  each) sets=(rspamd clamav "rspamd+clamav") ;;
  *) echo "bench: BENCH_SCANNERS=$BENCH_SCANNERS: want 0, 1 or each" >&2; exit 1 ;;
esac
for set in "${sets[@]}"; do
  for a in "$BENCH_RSPAMD" "$BENCH_CLAMD"; do
    wait_port "${a##*:}" || { echo "bench: no scanner at $a (run scripts/ci-services.sh)" >&2; exit 1; }
  done
  [[ $set == *rspamd* ]] && export RSPAMD_ENABLED=true RSPAMD_HOST=${BENCH_RSPAMD%:*} RSPAMD_PORT=${BENCH_RSPAMD##*:}
  [[ $set == *clamav* ]] && export CLAMAV_ENABLED=true CLAMAV_HOST=${BENCH_CLAMD%:*} CLAMAV_PORT=${BENCH_CLAMD##*:}
  inbound_run "$set"
  unset RSPAMD_ENABLED RSPAMD_HOST RSPAMD_PORT CLAMAV_ENABLED CLAMAV_HOST CLAMAV_PORT
  printf 'inspected (%s)/uninspected end-to-end ratio %sx\n' "$set" "$(ratio "$IN_E2E" "$plain")"
done
stop_sink
postald_half "$sink" all
printf 'outgoing postald accept %6s msg/s   to smtp-sink        %6s msg/s   (CPU %s s)\n' "$PD_ACCEPT" "$PD_E2E" "$PD_CPU"
printf 'inbound/outgoing end-to-end ratio %sx\n' "$(ratio "$plain" "$PD_E2E")"
rm -rf "$sink"
