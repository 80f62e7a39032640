#!/usr/bin/env bash
# The project's test command (README "Tests"): vet, formatting, then every
# test with the race detector against real Redis and PostgreSQL.
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 reachable as
# user postgres (POSTAL_TEST_REDIS_URL / POSTAL_TEST_POSTGRES_URL override);
# scripts/ci-services.sh starts them on a fresh Debian/Ubuntu machine.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 25m "$@" ./...
