#!/usr/bin/env bash
# Golden tests: runs each sql/golden/*.sql through the system sqlite3 shell with the
# extension loaded, and compares stdout+stderr with sql/golden/*.expected; then checks
# that the README's Quick start shows what sql/demo.sql prints.
# FORYOU_EXT (a path without .so) chooses the extension; default ./target/release/libforyou.
# Set UPDATE=1 to rewrite the expected files after checking a change by eye.
set -uo pipefail
cd "$(dirname "$0")/.."
ext="${FORYOU_EXT:-$PWD/target/release/libforyou}"
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
# The README's Quick start: its output blocks, in order, are what sql/demo.sql prints
# (the refit report's wall time and thread count normalised).
normalise() { sed -E 's/"seconds":[0-9.]+/"seconds":S/; s/"threads":[0-9]+/"threads":T/'; }
readme_out=$(awk '/^## /{q=0} /^## Quick start/{q=1}
  q && /^```/ { if (inb) { inb=0; next } else { inb=1; lang=substr($0,4); next } }
  q && inb && lang=="" {print}' README.md | normalise)
demo_out=$(sqlite3 -batch -cmd ".load $ext" :memory: < sql/demo.sql 2>&1 | normalise)
if [ -n "$readme_out" ] && diff -u <(printf '%s\n' "$readme_out") <(printf '%s\n' "$demo_out") > /tmp/golden.diff; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAILED: README.md Quick start outputs vs sql/demo.sql"; cat /tmp/golden.diff
fi
echo "golden: $passed passed, $failed failed"
[ "$failed" = 0 ]
