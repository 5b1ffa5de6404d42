#!/bin/sh
# Run check test binaries one after another, show their output, and end with
# one line summing check's own counts: "T passed, F failed".
#
# Usage: scripts/run-tests.sh BIN...
# Exits non-zero if any binary failed, crashed, timed out or is missing.
#
# Environment: BUILD (default build) locates the daemon and the CLI for the
# integration tests (REDLOCKD_BIN, REDLOCK_BIN override them);
# CK_DEFAULT_TIMEOUT (default 60 s per test); TEST_BIN_TIMEOUT (default
# 1200 s per binary); REDLOCKD_WRAPPER (e.g. valgrind) also scales check's
# timeouts by CK_TIMEOUT_MULTIPLIER (default 4).

BUILD=${BUILD:-build}
REDLOCKD_BIN=${REDLOCKD_BIN:-$BUILD/redlockd}
REDLOCK_BIN=${REDLOCK_BIN:-$BUILD/redlock}
CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60}
export BUILD REDLOCKD_BIN REDLOCK_BIN CK_DEFAULT_TIMEOUT
if [ -n "${REDLOCKD_WRAPPER:-}" ]; then
    CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
    export CK_TIMEOUT_MULTIPLIER
fi
bin_timeout=${TEST_BIN_TIMEOUT:-1200}

if [ $# -eq 0 ]; then
    echo "run-tests: no test binaries given"
    echo "0 passed, 0 failed"
    exit 1
fi

out=$(mktemp) && rcfile=$(mktemp) || exit 1
trap 'rm -f "$out" "$rcfile"' EXIT

passed=0
failed=0
bad=""
for bin in "$@"; do
    echo "==> $bin"
    if [ ! -x "$bin" ]; then
        echo "run-tests: $bin: no such executable"
        failed=$((failed + 1))
        bad="$bad $bin"
        continue
    fi
    start=$(date +%s)
    # Show the output as it comes and keep it to read check's summary line.
    { timeout -k 10 "$bin_timeout" "$bin" 2>&1; echo $? >"$rcfile"; } | tee "$out"
    rc=$(cat "$rcfile")
    checks=0 fails=0
    # "100%: Checks: 12, Failures: 0, Errors: 0" (one per suite runner).
    summaries=$(sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$out")
    while read -r c f e; do
        [ -n "$c" ] || continue
        checks=$((checks + c))
        fails=$((fails + f + e))
    done <<EOF
$summaries
EOF
    if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then
        # Crashed, timed out (124/137) or failed outside any test: count it.
        echo "run-tests: $bin exited with status $rc outside any failing test"
        fails=1
    fi
    [ "$fails" -gt "$checks" ] && checks=$fails
    passed=$((passed + checks - fails))
    failed=$((failed + fails))
    [ "$rc" -ne 0 ] && bad="$bad $bin"
    echo "<== $bin: $((checks - fails)) passed, $fails failed, exit $rc, $(($(date +%s) - start)) s"
done

[ -n "$bad" ] && echo "run-tests: failing binaries:$bad"
echo "$passed passed, $failed failed"
[ -z "$bad" ] && [ "$failed" -eq 0 ]
