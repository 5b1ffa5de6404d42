#!/bin/sh
# Install the Debian packages redlockd needs, if missing. As root this runs
# apt-get; otherwise it prints the command to run.
#
# Usage: scripts/deps.sh [run|test|fuzz] [--list]
#   run   what building and running need (make, make run, make bench)
#   test  run + what the test suites need (make check, check-asan,
#         check-valgrind: the check framework, python3 and node for the client
#         tests with what installs and type-checks them as packages, promtool
#         for the metrics and alert-rule tests, valgrind, clang-format for
#         make format-check); the default
#   fuzz  run + the fuzzing compiler (make fuzz, make fuzz-smoke)
#   deb   run + what `make deb` needs (dpkg-buildpackage, debhelper, lintian)
#   --list  print the package list instead of installing (.ci/run reads it)
RUN_PKGS="build-essential pkg-config libhiredis-dev libevent-dev libinih-dev redis-server"
TEST_PKGS="check python3 python3-venv python3-setuptools python3-wheel python3-mypy nodejs node-typescript prometheus valgrind clang-format"
# The client tests pack and install the Node client with npm: Debian's nodejs
# does not bring it (other builds of nodejs do).
command -v npm >/dev/null 2>&1 || TEST_PKGS="$TEST_PKGS npm"
FUZZ_PKGS="clang libclang-rt-14-dev"
DEB_PKGS="debhelper dpkg-dev fakeroot lintian"

group=test
list=no
for arg in "$@"; do
    case $arg in
    run|test|fuzz|deb) group=$arg ;;
    --list) list=yes ;;
    *) echo "deps: unknown argument '$arg' (want run, test, fuzz or deb, and --list)" >&2; exit 64 ;;
    esac
done
case $group in
run) PKGS=$RUN_PKGS ;;
test) PKGS="$RUN_PKGS $TEST_PKGS" ;;
fuzz) PKGS="$RUN_PKGS $FUZZ_PKGS" ;;
deb) PKGS="$RUN_PKGS $DEB_PKGS" ;;
esac
if [ "$list" = yes ]; then
    echo "$PKGS"
    exit 0
fi

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
else
    echo "deps: missing packages:$missing"
    echo "deps: run: sudo apt-get update && sudo apt-get install -y$missing"
    exit 1
fi
