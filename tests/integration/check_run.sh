#!/bin/sh
# check_run.sh - `make run` (scripts/run.sh) refuses ports taken by other
# programs and touches nothing it did not start: with a master port held by a
# plain listening socket, with redlockd's port held, and with a master port
# served by somebody else's redis-server (which keeps its data and keeps
# running), run.sh must exit non-zero at once, name the busy port and the
# make variable that picks others, and start no process.
#
# Usage: [BUILD=build] sh tests/integration/check_run.sh
# Prints check's summary line and "N passed, F failed"; exits 0 or 1.

set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
REDIS=${REDIS_SERVER_BIN:-redis-server}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_run.XXXXXX") || exit 1
holder=""
redis_pid=""
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

checks=0
failures=0
fail() {
    echo "check_run: FAIL: $*"
    failures=$((failures + 1))
}
finish() {
    passed=$((checks - failures))
    pct=100
    [ "$checks" -gt 0 ] && pct=$((passed * 100 / checks))
    echo "$pct%: Checks: $checks, Failures: $failures, Errors: 0"
    echo "$passed passed, $failures failed"
    [ "$failures" -eq 0 ] && exit 0
    exit 1
}

[ -x "$BUILD/redlockd" ] || { echo "check_run: $BUILD/redlockd is missing"; checks=1; fail "no daemon"; finish; }

# Two listening sockets of our own on free loopback ports; their numbers go
# to $tmp/ports. The holder lives until we kill it.
perl -MIO::Socket::INET -e '
    my @s = map { IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp",
                                         Listen => 5) or die "listen: $!" } 1 .. 2;
    open(my $f, ">", $ARGV[0]) or die; print $f join(" ", map { $_->sockport } @s), "\n"; close $f;
    sleep 600;' "$tmp/ports.tmp" &
holder=$!
i=0
until [ -s "$tmp/ports.tmp" ]; do
    i=$((i + 1)); [ $i -gt 100 ] && { checks=1; fail "the port holder did not start"; finish; }
    sleep 0.05
done
read -r P1 P2 <"$tmp/ports.tmp"

# Does our holder still accept connections on port $1?
holder_ok() {
    kill -0 "$holder" 2>/dev/null &&
        perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or exit 1' "$1"
}

# run_case NAME: run.sh with the environment given before it; output in $tmp/NAME.out.
run_case() {
    name=$1
    shift
    start=$(date +%s)
    env "$@" BUILD="$BUILD" RUN_DIR="$tmp/run-$name" timeout -k 5 30 sh scripts/run.sh \
        >"$tmp/$name.out" 2>&1 </dev/null
    rc=$?
    took=$(($(date +%s) - start))
}

# expect_refusal NAME PORT VARIABLE: run.sh refused at once, naming PORT and VARIABLE,
# and started nothing (no Redis log, no config in its RUN_DIR).
expect_refusal() {
    checks=$((checks + 1))
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
        fail "$1: run.sh exited $rc instead of refusing: $(cat "$tmp/$1.out")"
    elif ! grep -q "port.* $2\b" "$tmp/$1.out" || ! grep -q "$3=" "$tmp/$1.out"; then
        fail "$1: the refusal does not name port $2 and $3: $(cat "$tmp/$1.out")"
    elif [ "$took" -gt 5 ]; then
        fail "$1: took $took s to refuse"
    elif [ -n "$(ls "$tmp/run-$1" 2>/dev/null)" ]; then
        fail "$1: run.sh started something: $(ls "$tmp/run-$1")"
    fi
}

# 1. A master port held by a listening socket that is not Redis.
run_case master RUN_PORT_BASE="$P1" RUN_DAEMON_PORT="$P2"
expect_refusal master "$P1" RUN_PORT_BASE
checks=$((checks + 1))
holder_ok "$P1" && holder_ok "$P2" || fail "master: the program holding the ports was disturbed"

# 2. redlockd's port held; the masters' three ports were free a moment ago.
BASE=$(perl -MIO::Socket::INET -e '
    sub free { IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $_[0], Proto => "tcp",
                                     Listen => 1, ReuseAddr => 1) }
    for (1 .. 50) {
        my $b = 20000 + int(rand(40000));
        if (free($b) && free($b + 1) && free($b + 2)) { print "$b\n"; exit 0 }
    }
    exit 1')
if [ -n "$BASE" ]; then
    run_case daemon RUN_PORT_BASE="$BASE" RUN_DAEMON_PORT="$P2"
    expect_refusal daemon "$P2" RUN_DAEMON_PORT
else
    checks=$((checks + 1))
    fail "daemon: found no three free consecutive ports"
fi

# 3. Somebody else's Redis on the first master port: never attached to, never stopped.
if command -v "$REDIS" >/dev/null && command -v redis-cli >/dev/null; then
    RP=$(perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
        LocalPort => 0, Proto => "tcp", Listen => 1) or exit 1; print $s->sockport, "\n"')
    mkdir -p "$tmp/foreign"
    "$REDIS" --save '' --appendonly no --port "$RP" --bind 127.0.0.1 --daemonize no \
        --dir "$tmp/foreign" >"$tmp/foreign.log" 2>&1 &
    redis_pid=$!
    i=0
    until [ "$(redis-cli -p "$RP" ping 2>/dev/null)" = PONG ]; do
        i=$((i + 1)); [ $i -gt 200 ] && break
        sleep 0.05
    done
    redis-cli -p "$RP" set mine untouched >/dev/null
    run_case foreign RUN_PORT_BASE="$RP" RUN_DAEMON_PORT="$P2"
    expect_refusal foreign "$RP" RUN_PORT_BASE
    checks=$((checks + 1))
    if ! kill -0 "$redis_pid" 2>/dev/null || [ "$(redis-cli -p "$RP" get mine 2>/dev/null)" != untouched ]; then
        fail "foreign: the other program's Redis was stopped or changed"
    fi
fi

finish
