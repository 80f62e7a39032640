#!/usr/bin/env bash
# End-to-end relay rate: BENCH_N messages in over SMTP, out to smtp-sink,
# measured until the sink holds them all; postald signs every message with
# DKIM (2048-bit RSA). The same load goes through a private Postfix relay in
# the same run. Prints both rates and their ratio. Usage: sudo scripts/bench/relay.sh
source "$(dirname "$0")/lib.sh"
run_pair
printf 'relay   postald %6s msg/s   postfix %6s msg/s   ratio %sx   (end to end, DKIM on for postald)\n' \
  "$PD_E2E" "$PF_E2E" "$(ratio "$PD_E2E" "$PF_E2E")"
printf 'accept  postald %6s msg/s   postfix %6s msg/s   ratio %sx\n' \
  "$PD_ACCEPT" "$PF_ACCEPT" "$(ratio "$PD_ACCEPT" "$PF_ACCEPT")"
