#!/bin/sh
# check_version.sh - the Makefile's VERSION is the one version of redlockd:
# the daemon is built with it (-DREDLOCKD_VERSION) and redlock.pc is written
# from it; every file that must spell it out by hand agrees with it: the man
# pages' .TH lines, debian/changelog's latest entry (its upstream part),
# client-lib/redlock.h (REDLOCK_LIB_VERSION, an installed header),
# the Python client's __version__ and the Node client's package.json.
# When $BUILD/redlockd and $BUILD/redlock exist, their --version too.
#
# Usage: [BUILD=build] [MAKE=make] sh tests/integration/check_version.sh
# Prints check's summary line and "1 passed, 0 failed" (or "0 passed, 1
# failed") and exits 0 (or 1), so that scripts/run-tests.sh counts it.

set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}

errors=0
bad() {
    echo "check_version: FAIL: $*"
    errors=$((errors + 1))
}

version=$($MAKE --no-print-directory -s print-version 2>/dev/null)
case $version in
'' | *[!0-9A-Za-z.~+-]*)
    echo "check_version: FAIL: cannot read VERSION from the Makefile (got '$version')"
    echo "0%: Checks: 1, Failures: 1, Errors: 0"
    echo "0 passed, 1 failed"
    exit 1
    ;;
esac

# expect FILE FOUND: FOUND is what FILE says the version is.
expect() {
    [ "$2" = "$version" ] || bad "$1 says version '$2', the Makefile's VERSION is '$version'"
}

for m in man/redlock.1 man/redlockd.8 man/redlockd.ini.5; do
    expect "$m (.TH)" "$(sed -n 's/^\.TH .*"redlockd \([^"]*\)".*/\1/p' "$m" | head -n 1)"
done
# "redlockd (0.1.0) unstable; ..." or "redlockd (0.1.0-2) ...": the upstream part.
expect debian/changelog "$(sed -n '1s/^redlockd (\([^)]*\)).*/\1/p' debian/changelog | sed 's/-[^-]*$//')"
expect client-lib/redlock.h "$(sed -n 's/^#define REDLOCK_LIB_VERSION "\([^"]*\)".*/\1/p' client-lib/redlock.h)"
expect client-lib/python/redlock_client/__init__.py \
    "$(sed -n 's/^__version__ = "\([^"]*\)".*/\1/p' client-lib/python/redlock_client/__init__.py)"
expect client-lib/python/pyproject.toml \
    "$(sed -n 's/^version = "\([^"]*\)".*/\1/p' client-lib/python/pyproject.toml | head -n 1)"
expect client-lib/node/package.json \
    "$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' client-lib/node/package.json | head -n 1)"

if [ -x "$BUILD/redlockd" ]; then
    expect "$BUILD/redlockd --version" "$("$BUILD/redlockd" --version | sed -n 's/^redlockd //p')"
fi
if [ -x "$BUILD/redlock" ]; then
    expect "$BUILD/redlock --version" "$("$BUILD/redlock" --version | sed -n 's/^redlock //p')"
fi

if [ "$errors" -gt 0 ]; then
    echo "0%: Checks: 1, Failures: 1, Errors: 0"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "check_version: every file says $version"
echo "100%: Checks: 1, Failures: 0, Errors: 0"
echo "1 passed, 0 failed"
exit 0
