#!/bin/sh
# A one-second lockbench run against real masters and redlockd (BENCH_QUICK=1), so
# the load generator and the benchmark script cannot rot. It asserts nothing about
# speed (timings are noise here, and the fleet row's targets are not checked in quick
# mode): only that every row ran without errors and the fleet row (two redlockd on the
# same masters) saw no two holders at once.
# Prints a check-style summary line for scripts/run-tests.sh.
BUILD=${BUILD:-build}
out=$(mktemp) || exit 1
if BUILD="$BUILD" BENCH_QUICK=1 BENCH_MEMORY=0 BENCH_BASELINE= sh scripts/bench.sh >"$out" 2>&1; then
    tail -n 15 "$out"
    rm -f "$out"
    echo "100%: Checks: 1, Failures: 0, Errors: 0"
    exit 0
fi
cat "$out"
rm -f "$out"
echo "0%: Checks: 1, Failures: 1, Errors: 0"
exit 1
