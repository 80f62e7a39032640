#!/usr/bin/env bash
# Runs every fuzz target in the repository, one after the other, each for the
# given duration (default 60s): scripts/fuzz.sh 60s. Targets are found by
# grepping *_test.go for "func FuzzXxx(f *testing.F)". Not part of CI's
# default run (scripts/test.sh runs each target's seed corpus only).
# New failing inputs land in the package's testdata/fuzz/<Target>/; commit
# them with the fix. Set FUZZ_MATCH to a regular expression to run only the
# targets whose package path or name matches it; FUZZ_MINIMIZE caps the time
# spent minimizing one input (default 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"

duration="${1:-60s}"
match="${FUZZ_MATCH:-.}"
failed=()
ran=0
while IFS=: read -r file target; do
  pkg="./$(dirname "$file")"
  if ! grep -Eq -- "$match" <<<"$pkg $target"; then
    continue
  fi
  ran=$((ran + 1))
  echo "== $pkg $target ($duration)"
  # -run matches nothing else; -fuzz must match exactly one target.
  # -fuzzminimizetime: go's default (60s) spends whole runs minimizing a
  # large new-coverage input (the nested DSN target does), and a run that
  # ends mid-minimization fails with "context deadline exceeded".
  if ! go test -run "^${target}\$" -fuzz "^${target}\$" -fuzztime "$duration" -fuzzminimizetime "${FUZZ_MINIMIZE:-10s}" "$pkg"; then
    failed+=("$pkg $target")
  fi
done < <(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
  sed -E 's#^\./##; s#:func (Fuzz[A-Za-z0-9_]*)\(.*#:\1#' | sort)

echo "== $ran fuzz targets run, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
