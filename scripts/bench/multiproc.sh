#!/usr/bin/env bash
# Several processes on PostgreSQL and Redis, as an operator who outgrew one
# process runs them: 2 smtp-servers, 3 workers and 2 cron+requeuer
# processes on one fresh PostgreSQL database and a private redis-server,
# relaying to a receiving server that records every message by Message-ID.
# It runs daemon's TestMultiProcessKillAnyOneLosesNothing with binaries
# built without the race detector, twice per round:
#   throughput  BENCH_N messages (20,000) from BENCH_C clients (20), no kills,
#               a receiver that answers at once; and Postfix relaying the
#               same number to smtp-sink in the same round (lib.sh), for the
#               ratio.
#   kills       BENCH_KILL_N messages (5,000), a receiver that takes
#               BENCH_DATA_DELAY_MS (100) to answer DATA, and kill -9 of one
#               smtp-server, one worker and the requeuer lease holder in
#               turn: lost messages, duplicates (those whose DATA was on the
#               wire at the worker kill, those a client sent twice because
#               the killed smtp-server never answered, and any other: must
#               be 0).
# BENCH_RUNS=N rounds (default 1). POSTALD_SRC=DIR builds postald from another
# checkout (before/after). Needs root (Postfix), Go, PostgreSQL at
# $POSTAL_TEST_POSTGRES_URL (a database per run, dropped afterwards) and
# redis-server. Usage: sudo scripts/bench/multiproc.sh
source "$(dirname "$0")/lib.sh"
BENCH_KILL_N=${BENCH_KILL_N:-5000}
export POSTAL_TEST_POSTGRES_URL=${POSTAL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
( cd "${POSTALD_SRC:-$ROOT}" && go build -o "$WORK/mpbin/" ./cmd/postald ./cmd/postalctl )
( cd "$ROOT" && go test -c -o "$WORK/daemon.test" ./daemon )
multiproc() { # N CLIENTS DELAY_MS KILL -> the RESULT line's fields
  local out
  out=$(cd "$ROOT/daemon" && POSTAL_E2E_BINDIR="$WORK/mpbin" POSTAL_E2E_MULTIPROC_N=$1 POSTAL_E2E_MULTIPROC_CLIENTS=$2 \
    POSTAL_E2E_MULTIPROC_DATA_DELAY_MS=$3 POSTAL_E2E_MULTIPROC_KILL=$4 \
    "$WORK/daemon.test" -test.run '^TestMultiProcessKillAnyOneLosesNothing$' -test.count=1 -test.v -test.timeout 60m 2>&1) \
    || echo "$out" | grep -v 'stderr (tail)' | grep -E 'multiproc_e2e_test|FAIL' | cut -c1-400 >&2
  # A failed assertion (POSTALD_SRC without the sent-journal) still reports.
  echo "$out" | sed -n 's/.*RESULT //p' | tail -1 | grep . || { echo "bench: no result" >&2; return 1; }
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ratios=()
for i in $(seq "$BENCH_RUNS"); do
  sink=$(mktemp -d /dev/shm/postal-bench-sink.XXXXXX); chmod 755 "$sink"
  if [ "$(pair_order "$i")" = postfix ]; then postfix_half "$sink"; fi
  res=$(multiproc "$BENCH_N" "$BENCH_C" 0 0)
  if [ "$(pair_order "$i")" = postald ]; then postfix_half "$sink"; fi
  rm -rf "$sink"
  pd=$(field "$res" rate); r=$(ratio "$pd" "$PF_E2E"); ratios+=("$r")
  printf 'multiproc  7 processes on PostgreSQL %6s msg/s   postfix %6s msg/s   ratio %sx   (%s messages end to end, no kills)\n' \
    "$pd" "$PF_E2E" "$r" "$BENCH_N"
  res=$(multiproc "$BENCH_KILL_N" "$BENCH_C" "${BENCH_DATA_DELAY_MS:-100}" 1)
  printf 'kill -9    %s messages, %s msg/s with the takeover: lost %s; duplicates: %s on the wire at the worker kill (%s sessions inside DATA), %s from client retries, %s other; %s recorded Sent from the sent-journal\n' \
    "$BENCH_KILL_N" "$(field "$res" rate)" "$(field "$res" lost)" "$(( $(field "$res" dup_worker) - $(field "$res" dup_not_on_wire) ))" \
    "$(field "$res" in_data_at_kill)" "$(field "$res" dup_client)" "$(field "$res" dup_not_on_wire)" "$(field "$res" from_journal)"
done
summary multiproc "${ratios[@]}"
