#!/bin/sh
# Install the Debian packages redlockd needs, if missing. As root this runs
# apt-get; otherwise it prints the command to run.
#
# Usage: scripts/deps.sh [run|test|fuzz] [--list]
#   run   what building and running need (make, make run, make bench)
#   test  run + what the test suites need (make check, check-asan,
#         check-valgrind: the check framework, python3 and node for the client
#         tests, valgrind); the default
#   fuzz  run + the fuzzing compiler (make fuzz, make fuzz-smoke)
#   --list  print the package list instead of installing (.ci/run reads it)
RUN_PKGS="build-essential pkg-config libhiredis-dev libevent-dev libinih-dev redis-server"
TEST_PKGS="check python3 nodejs valgrind"
FUZZ_PKGS="clang libclang-rt-14-dev"

group=test
list=no
for arg in "$@"; do
    case $arg in
    run|test|fuzz) group=$arg ;;
    --list) list=yes ;;
    *) echo "deps: unknown argument '$arg' (want run, test or fuzz, and --list)" >&2; exit 64 ;;
    esac
done
case $group in
run) PKGS=$RUN_PKGS ;;
test) PKGS="$RUN_PKGS $TEST_PKGS" ;;
fuzz) PKGS="$RUN_PKGS $FUZZ_PKGS" ;;
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
