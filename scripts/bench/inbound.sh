#!/usr/bin/env bash
# Inbound throughput: smtp-source sends BENCH_N messages (BENCH_SIZE bytes,
# BENCH_C sessions, no AUTH) to a route address of postald --role all whose
# HTTP endpoint is scripts/bench/hookrecv (200 to every POST). Prints the
# acceptance rate (until smtp-source finished) and the end-to-end rate (until
# the receiver had every message), then, in the same run, the same load as
# outgoing mail relayed into smtp-sink, and the ratio of the two end-to-end
# rates. No Postfix pair: Postfix has no HTTP endpoints to compare with.
# Usage: sudo scripts/bench/inbound.sh
BENCH_INBOUND=1
source "$(dirname "$0")/lib.sh"
sink=$(mktemp -d /dev/shm/postal-bench-sink.XXXXXX); chmod 755 "$sink"
start_sink "$sink/postald"
start_postald all
start=$(now)
smtp-source -s "$BENCH_C" -l "$BENCH_SIZE" -m "$BENCH_N" -f sender@far.test -t in@example.com "127.0.0.1:$PD_SMTP"
accepted=$(now)
limit=600
while c=$(curl -sf "http://127.0.0.1:$HOOK_PORT/count"); [ "${c:-0}" -lt "$BENCH_N" ]; do
  if [ "$(echo "$(now) - $start > $limit" | bc)" = 1 ]; then echo "bench: receiver has ${c:-0} of $BENCH_N after ${limit}s" >&2; exit 1; fi
  sleep 0.05
done
done_at=$(now)
stop_postald
kill "$HOOK_PID" 2>/dev/null; wait "$HOOK_PID" 2>/dev/null || true; HOOK_PID=
stop_sink
in_e2e=$(rate "$start" "$done_at")
printf 'inbound  postald accept %6s msg/s   to HTTP endpoint %6s msg/s   (%s msgs, %s B, %s sessions; CPU %s s)\n' \
  "$(rate "$start" "$accepted")" "$in_e2e" "$BENCH_N" "$BENCH_SIZE" "$BENCH_C" "$PD_CPU"
postald_half "$sink" all
printf 'outgoing postald accept %6s msg/s   to smtp-sink        %6s msg/s   (CPU %s s)\n' "$PD_ACCEPT" "$PD_E2E" "$PD_CPU"
printf 'inbound/outgoing end-to-end ratio %sx\n' "$(ratio "$in_e2e" "$PD_E2E")"
rm -rf "$sink"
