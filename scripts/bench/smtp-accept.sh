#!/usr/bin/env bash
# Acceptance rate: smtp-source sends BENCH_N messages (BENCH_SIZE bytes, BENCH_C
# sessions) to postald and, in the same run, to a private Postfix relaying into
# smtp-sink. Prints both rates and their ratio. postald runs its smtp-server
# role (BENCH_ROLES to change: "all" adds delivery on the same cores); every
# accepted message is durable in SQL (synchronous=FULL) before its 250.
# BENCH_RUNS=N repeats the pair and ends with the median ratio.
# BENCH_DB=postgres runs postald on a fresh PostgreSQL database (see lib.sh).
# Usage: sudo scripts/bench/smtp-accept.sh
source "$(dirname "$0")/lib.sh"
ratios=()
for i in $(seq "$BENCH_RUNS"); do
  run_pair "${BENCH_ROLES:-smtp-server}" "$(pair_order "$i")"
  r=$(ratio "$PD_ACCEPT" "$PF_ACCEPT"); ratios+=("$r")
  printf 'accept  postald(%s, %s) %6s msg/s   postfix %6s msg/s   ratio %sx   (%s msgs, %s B, %s sessions)\n' \
    "${BENCH_ROLES:-smtp-server}" "$BENCH_DB" "$PD_ACCEPT" "$PF_ACCEPT" "$r" "$BENCH_N" "$BENCH_SIZE" "$BENCH_C"
  if [ "$PG_CPU" = - ]; then printf 'cpu     postald %s s for %s messages\n' "$PD_CPU" "$BENCH_N"
  else printf 'cpu     postald %s s, PostgreSQL backends %s s for %s messages\n' "$PD_CPU" "$PG_CPU" "$BENCH_N"; fi
done
summary accept "${ratios[@]}"
