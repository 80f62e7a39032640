#!/usr/bin/env bash
# End-to-end relay rate: BENCH_N messages in over SMTP, out to smtp-sink,
# measured until the sink holds them all; postald signs every message with
# DKIM (2048-bit RSA; BENCH_DKIM_BITS=1024 for Postal's key size). The same load goes through a private Postfix relay in
# the same run. Prints both rates and their ratio; BENCH_RUNS=N repeats the
# pair and ends with the median ratio; BENCH_WEBHOOK=1 gives postald's server an
# all-events webhook to a local receiver (one MessageSent per message) and
# reports when the last arrived (webhooks yield to mail under load, so they
# may finish after the mail: the lag is printed) and what was left of them
# afterwards. The cpu line is the CPU time of postald, of the private Postfix
# and, on PostgreSQL, of the database's backends for the run (smtp-source,
# smtp-sink and the receiver not counted); the machine line is the CPU time of
# everything on the machine per message in each half, until the last message
# (and, with BENCH_WEBHOOK=1, the last webhook) arrived.
# BENCH_DB=postgres runs postald on a fresh PostgreSQL database (see lib.sh).
# Usage: sudo scripts/bench/relay.sh
source "$(dirname "$0")/lib.sh"
ratios=()
for i in $(seq "$BENCH_RUNS"); do
  run_pair all "$(pair_order "$i")"
  r=$(ratio "$PD_E2E" "$PF_E2E"); ratios+=("$r")
  printf 'relay   postald(%s) %6s msg/s   postfix %6s msg/s   ratio %sx   (end to end, postald signs with %s-bit DKIM)\n' \
    "$BENCH_DB" "$PD_E2E" "$PF_E2E" "$r" "$BENCH_DKIM_BITS"
  printf 'accept  postald %6s msg/s   postfix %6s msg/s   ratio %sx\n' \
    "$PD_ACCEPT" "$PF_ACCEPT" "$(ratio "$PD_ACCEPT" "$PF_ACCEPT")"
  [ "$BENCH_WEBHOOK" = 1 ] && printf 'webhook postald %6s MessageSent/s received (end to end), the last %ss after the last message; left afterwards: %s; receiver CPU %s s\n' "$PD_HOOKS" "$HOOK_LAG" "$HOOK_LEFT" "$HOOK_CPU"
  cpu=$(printf 'cpu     postald %s s for %s messages (%s ms/msg)   postfix %s s (%s ms/msg)' "$PD_CPU" "$BENCH_N" \
    "$(echo "scale=3; $PD_CPU * 1000 / $BENCH_N" | bc 2>/dev/null || echo -)" "$PF_CPU" "$(echo "scale=3; $PF_CPU * 1000 / $BENCH_N" | bc 2>/dev/null || echo -)")
  [ "$PG_CPU" = - ] || cpu+=$(printf '; PostgreSQL backends %s s (%s ms/msg)' "$PG_CPU" "$(echo "scale=3; $PG_CPU * 1000 / $BENCH_N" | bc)")
  echo "$cpu"
  printf 'machine postald half %s ms CPU/msg   postfix half %s ms CPU/msg (all processes: source, sink, receiver, database included)\n' "$PD_MACHINE" "$PF_MACHINE"
done
summary relay "${ratios[@]}"
