#!/bin/sh
# Run the Python and Node client tests against a real redlockd and real
# redis-server (each suite starts its own, on free loopback ports), show their
# output, and end with one line summing both: "P passed, F failed".
#
# Usage: scripts/test-clients.sh [python] [node]      (default: both)
# Exits non-zero if a test failed, a suite crashed or timed out, or python3 /
# node (18 or later) is missing.
#
# Environment: BUILD (default build) locates redlockd; REDLOCKD_BIN overrides
# it; REDIS_SERVER_BIN (default redis-server); PYTHON (default python3); NODE
# (default node); CLIENT_TEST_TIMEOUT (default 600 s per suite).
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

BUILD=${BUILD:-build}
REDLOCKD_BIN=${REDLOCKD_BIN:-$BUILD/redlockd}
case $REDLOCKD_BIN in /*) ;; */*) REDLOCKD_BIN=$ROOT/$REDLOCKD_BIN ;; esac
PYTHON=${PYTHON:-python3}
NODE=${NODE:-node}
suite_timeout=${CLIENT_TEST_TIMEOUT:-600}
export REDLOCKD_BIN
export PYTHONDONTWRITEBYTECODE=1

suites=${*:-python node}
out=$(mktemp) && rcfile=$(mktemp) || exit 1
trap 'rm -f "$out" "$rcfile"' EXIT

passed=0
failed=0
bad=""

if [ ! -x "$REDLOCKD_BIN" ]; then
    echo "test-clients: $REDLOCKD_BIN is not executable (run make, or set REDLOCKD_BIN)"
    echo "0 passed, 1 failed"
    exit 1
fi

# run NAME CMD...: run a suite with a timeout, showing and keeping its output.
run() {
    name=$1
    shift
    echo "==> $name: $*"
    start=$(date +%s)
    { timeout -k 10 "$suite_timeout" "$@" 2>&1; echo $? >"$rcfile"; } | tee "$out"
    rc=$(cat "$rcfile")
}

# account NAME PASSED FAILED
account() {
    if [ "$rc" -ne 0 ] && [ "$3" -eq 0 ]; then
        echo "test-clients: $1 exited with status $rc outside any failing test"
        set -- "$1" "$2" 1
    fi
    passed=$((passed + $2))
    failed=$((failed + $3))
    [ "$rc" -ne 0 ] || [ "$3" -ne 0 ] && bad="$bad $1"
    echo "<== $1: $2 passed, $3 failed, exit $rc, $(($(date +%s) - start)) s"
}

# install_node_package DIR: npm pack client-lib/node and install the tarball
# into DIR/node_modules, as a user would.
install_node_package() {
    command -v npm >/dev/null 2>&1 || { echo "npm not found (Debian: apt-get install npm)"; return 1; }
    npm pack --silent --pack-destination "$1" "$ROOT/client-lib/node" &&
        (cd "$1" && npm install --silent --no-audit --no-fund --offline ./redlockd-client-*.tgz) &&
        [ -f "$1/node_modules/redlockd-client/redlock-client.d.ts" ]
}

# check_node_types DIR: tsc (Debian's node-typescript) accepts a typed
# program against the installed declarations and rejects a wrong one.
check_node_types() {
    if ! command -v tsc >/dev/null 2>&1; then
        echo "test-clients: tsc not found (Debian: apt-get install node-typescript)"
        failed=$((failed + 1)); bad="$bad node-types"; return
    fi
    tsflags="--strict --noEmit --target es2020 --moduleResolution node --esModuleInterop"
    cp "$ROOT/client-lib/node/types-test.ts" "$1/ok.ts"
    printf '%s\n' "import RedlockClient from 'redlockd-client';" \
        "async function f(c: RedlockClient) { const v: string = (await c.acquire('r')).validity; return v; }" \
        >"$1/bad.ts"
    # shellcheck disable=SC2086 # one word per flag
    if (cd "$1" && tsc $tsflags ok.ts) && ! (cd "$1" && tsc $tsflags bad.ts >/dev/null 2>&1); then
        echo "test-clients: ok: the TypeScript declarations type-check (and catch a wrong type)"
        passed=$((passed + 1))
    else
        echo "test-clients: FAIL: the TypeScript declarations"
        failed=$((failed + 1)); bad="$bad node-types"
    fi
}

for suite in $suites; do
    case $suite in
    python)
        if ! command -v "$PYTHON" >/dev/null 2>&1; then
            echo "test-clients: $PYTHON not found (Debian: apt-get install python3)"
            failed=$((failed + 1)); bad="$bad python"; continue
        fi
        # unittest ends with "Ran N tests" and "OK [(skipped=S)]" or
        # "FAILED (failures=F, errors=E, skipped=S)".
        # shellcheck disable=SC2016 # $0 is expanded by the inner sh
        run python sh -c 'cd client-lib/python && exec "$0" -m unittest -v test_redlock_client' "$PYTHON"
        ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$out" | tail -n 1)
        f=$(sed -n 's/.*failures=\([0-9]*\).*/\1/p' "$out" | tail -n 1)
        e=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$out" | tail -n 1)
        s=$(sed -n 's/.*skipped=\([0-9]*\).*/\1/p' "$out" | tail -n 1)
        ran=${ran:-0} f=${f:-0} e=${e:-0} s=${s:-0}
        p=$((ran - f - e - s))
        [ "$p" -lt 0 ] && p=0 # errors in setUpClass count without a test run
        account python "$p" $((f + e))
        ;;
    node)
        if ! command -v "$NODE" >/dev/null 2>&1; then
            echo "test-clients: $NODE not found (Debian: apt-get install nodejs)"
            failed=$((failed + 1)); bad="$bad node"; continue
        fi
        major=$("$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null)
        if [ "${major:-0}" -lt 18 ]; then
            echo "test-clients: node 18 or later is needed ($NODE is $("$NODE" --version 2>&1))"
            failed=$((failed + 1)); bad="$bad node"; continue
        fi
        # The suite runs against the package as npm installs it (npm pack,
        # then npm install of the tarball, offline: it has no dependencies).
        pkgdir=$(mktemp -d) || exit 1
        if ! install_node_package "$pkgdir" >"$out" 2>&1; then
            cat "$out"
            echo "test-clients: the Node package did not pack and install"
            failed=$((failed + 1)); bad="$bad node-package"; rm -rf "$pkgdir"; continue
        fi
        passed=$((passed + 1))
        echo "test-clients: node package installed in $pkgdir/node_modules/redlockd-client"
        check_node_types "$pkgdir"
        # The TAP reporter ends with "# pass N", "# fail F", "# cancelled C".
        REDLOCK_CLIENT_MODULE=$pkgdir/node_modules/redlockd-client
        export REDLOCK_CLIENT_MODULE
        run node "$NODE" --test --test-reporter=tap client-lib/node/test.js
        unset REDLOCK_CLIENT_MODULE
        rm -rf "$pkgdir"
        p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out" | tail -n 1)
        f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$out" | tail -n 1)
        c=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$out" | tail -n 1)
        p=${p:-0} f=${f:-0} c=${c:-0}
        account node "$p" $((f + c))
        ;;
    *)
        echo "test-clients: unknown suite $suite (want python or node)"
        failed=$((failed + 1)); bad="$bad $suite"
        ;;
    esac
done

[ -n "$bad" ] && echo "test-clients: failing suites:$bad"
echo "$passed passed, $failed failed"
[ -z "$bad" ] && [ "$failed" -eq 0 ]
