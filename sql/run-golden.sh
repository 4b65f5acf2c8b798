#!/usr/bin/env bash
# Golden tests: runs each sql/golden/*.sql through the system sqlite3 shell with the
# extension loaded, and compares stdout+stderr with sql/golden/*.expected.
# Set UPDATE=1 to rewrite the expected files after checking a change by eye.
set -uo pipefail
cd "$(dirname "$0")/.."
ext="$PWD/target/release/libforyou"
passed=0; failed=0
for script in sql/golden/*.sql; do
  expected="${script%.sql}.expected"
  actual=$(cd "$(dirname "$script")" && sqlite3 -batch -cmd ".load $ext" :memory: < "$(basename "$script")" 2>&1)
  if [ "${UPDATE:-0}" = 1 ]; then
    printf '%s\n' "$actual" > "$expected"
  fi
  if diff -u "$expected" <(printf '%s\n' "$actual") > /tmp/golden.diff; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAILED: $script"; cat /tmp/golden.diff
  fi
done
echo "golden: $passed passed, $failed failed"
[ "$failed" = 0 ]
