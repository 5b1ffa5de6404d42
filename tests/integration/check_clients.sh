#!/bin/sh
# The Python and Node clients' own test suites (scripts/test-clients.sh), run
# against a real redlockd, reported as one check-style line for run-tests.sh.
BUILD=${BUILD:-build}
out=$(mktemp) || exit 1
BUILD="$BUILD" sh scripts/test-clients.sh python node >"$out" 2>&1
rc=$?
cat "$out"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
rm -f "$out"
passed=${summary%% passed*}
failed=${summary#*passed, }
failed=${failed%% failed*}
[ -n "$summary" ] || { passed=0; failed=1; }
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
total=$((passed + failed))
echo "clients: ${total} checks"
echo "$(( total ? 100 * passed / total : 0 ))%: Checks: $total, Failures: $failed, Errors: 0"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
