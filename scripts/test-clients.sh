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
# it; REDIS_SERVER_BIN (default redis-server); PYTHON (default Debian's
# /usr/bin/python3: its venv, setuptools and mypy); NODE (default node);
# CLIENT_TEST_TIMEOUT (default 600 s per suite).
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

BUILD=${BUILD:-build}
REDLOCKD_BIN=${REDLOCKD_BIN:-$BUILD/redlockd}
case $REDLOCKD_BIN in /*) ;; */*) REDLOCKD_BIN=$ROOT/$REDLOCKD_BIN ;; esac
# The suites run in temp dirs: a relative REDIS_SERVER_BIN is from here.
case ${REDIS_SERVER_BIN:-} in /* | "") ;; */*) REDIS_SERVER_BIN=$ROOT/$REDIS_SERVER_BIN ;; esac
[ -n "${REDIS_SERVER_BIN:-}" ] && export REDIS_SERVER_BIN
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
fi
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

# install_python_package DIR: make a venv DIR/venv (with the system's
# packages, for setuptools: no network), build a wheel of client-lib/python as
# the README says (from a copy, so the tree gets no build/ or egg-info) and
# pip-install it there, as a user would.
install_python_package() {
    "$PYTHON" -m venv --system-site-packages "$1/venv" || {
        echo "test-clients: no venv (Debian: apt-get install python3-venv python3-setuptools)"
        return 1
    }
    mkdir "$1/src" "$1/dist" && cp -RL "$ROOT/client-lib/python/." "$1/src/" &&
        rm -rf "$1/src/build" "$1/src"/*.egg-info &&
        "$1/venv/bin/pip" wheel --quiet --no-build-isolation --no-index --no-deps \
            -w "$1/dist" "$1/src" &&
        "$1/venv/bin/pip" install --quiet --no-index --no-deps "$1"/dist/redlockd_client-*.whl &&
        (cd "$1" && venv/bin/python -c 'import redlock_client as r, os, sys
sys.exit(not os.path.isfile(os.path.join(os.path.dirname(r.__file__), "py.typed")))')
}

# check_python_types DIR: mypy --strict (Debian's python3-mypy) accepts a
# typed program against the installed package (its py.typed and hints) and
# rejects a wrong one; and the package's source passes mypy --strict.
check_python_types() {
    if ! "$PYTHON" -m mypy --version >/dev/null 2>&1; then
        echo "test-clients: mypy not found (Debian: apt-get install python3-mypy)"
        failed=$((failed + 1)); bad="$bad python-types"; return
    fi
    mypyflags="--strict --python-version 3.9 --cache-dir $1/mypy-cache"
    mkdir "$1/types"
    cp "$ROOT/client-lib/python/types_test.py" "$1/types/ok.py"
    printf '%s\n' "from redlock_client import Client" \
        "def f(c: Client) -> str:" "    return c.acquire('r').validity_ms" >"$1/types/bad.py"
    # shellcheck disable=SC2086 # one word per flag
    if (cd "$1/types" && "$PYTHON" -m mypy $mypyflags --python-executable "$1/venv/bin/python" ok.py) &&
        ! (cd "$1/types" && "$PYTHON" -m mypy $mypyflags --python-executable "$1/venv/bin/python" \
            bad.py >"$1/types/bad.out" 2>&1) &&
        grep -q 'Incompatible return value type (got "int", expected "str")' "$1/types/bad.out"; then
        echo "test-clients: ok: the installed package's type hints type-check (and catch a wrong type)"
        passed=$((passed + 1))
    else
        echo "test-clients: FAIL: the installed package's type hints"
        failed=$((failed + 1)); bad="$bad python-types"
    fi
    # shellcheck disable=SC2086 # one word per flag
    if (cd "$ROOT/client-lib/python" && "$PYTHON" -m mypy $mypyflags redlock_client); then
        echo "test-clients: ok: the package's source passes mypy --strict"
        passed=$((passed + 1))
    else
        echo "test-clients: FAIL: mypy --strict on client-lib/python/redlock_client"
        failed=$((failed + 1)); bad="$bad python-types"
    fi
}

for suite in $suites; do
    case $suite in
    python)
        if ! command -v "$PYTHON" >/dev/null 2>&1; then
            echo "test-clients: $PYTHON not found (Debian: apt-get install python3)"
            failed=$((failed + 1)); bad="$bad python"; continue
        fi
        # The suite runs against the package as pip installs it (a wheel,
        # installed offline into a venv: it has no dependencies), from a temp
        # dir where the source is not on sys.path; the test checks that.
        pydir=$(mktemp -d) || exit 1
        if ! install_python_package "$pydir" >"$out" 2>&1; then
            cat "$out"
            echo "test-clients: the Python package did not build and install"
            failed=$((failed + 1)); bad="$bad python-package"; rm -rf "$pydir"; continue
        fi
        passed=$((passed + 1))
        echo "test-clients: python package installed in $pydir/venv"
        check_python_types "$pydir"
        mkdir "$pydir/run" && cp client-lib/python/test_redlock_client.py "$pydir/run/"
        # unittest ends with "Ran N tests" and "OK [(skipped=S)]" or
        # "FAILED (failures=F, errors=E, skipped=S)".
        # shellcheck disable=SC2016 # $0, $1 are expanded by the inner sh
        run python env REDLOCK_CLIENT_INSTALLED=1 sh -c 'cd "$1" && exec "$0" -m unittest -v test_redlock_client' \
            "$pydir/venv/bin/python" "$pydir/run"
        rm -rf "$pydir"
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
