#!/bin/sh
# `make run`: three local Redis masters (no persistence, files in RUN_DIR) and
# redlockd in the foreground with CONF. Ctrl-C stops all of them, by pid.
#
# Ports: the masters listen on 127.0.0.1:RUN_PORT_BASE, +1 and +2 (default
# 7001-7003) and redlockd on 127.0.0.1:RUN_DAEMON_PORT (default 7379) and the
# Unix socket RUN_DIR/redlockd.sock. When any of them is taken by another
# program, run.sh refuses before starting anything, naming the port and the
# variable that picks another: it never talks to, stops or reuses a process
# it did not start.
#
# Environment: BUILD (default build: where redlockd is), CONF (default
# conf/dev.ini; its listen, unix_socket and masters are rewritten to the ports
# above into RUN_DIR/redlockd.ini), RUN_DIR (default build/run),
# REDIS_SERVER_BIN (default redis-server).
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
CONF=${CONF:-conf/dev.ini}
REDIS=${REDIS_SERVER_BIN:-redis-server}
RUN=${RUN_DIR:-build/run}
BASE=${RUN_PORT_BASE:-7001}
DPORT=${RUN_DAEMON_PORT:-7379}

case "$BASE$DPORT" in *[!0-9]*) echo "run: RUN_PORT_BASE and RUN_DAEMON_PORT are port numbers" >&2; exit 64 ;; esac
if [ "$BASE" -lt 1 ] || [ "$BASE" -gt 65533 ] || [ "$DPORT" -lt 1 ] || [ "$DPORT" -gt 65535 ]; then
    echo "run: RUN_PORT_BASE must be 1..65533 and RUN_DAEMON_PORT 1..65535" >&2
    exit 64
fi
PORTS="$BASE $((BASE + 1)) $((BASE + 2))"
SOCK=$RUN/redlockd.sock

[ -x "$BUILD/redlockd" ] || { echo "run: $BUILD/redlockd is missing: run make first" >&2; exit 1; }
[ -f "$CONF" ] || { echo "run: $CONF is missing" >&2; exit 1; }
command -v "$REDIS" >/dev/null || { echo "run: $REDIS not found (apt-get install redis-server)" >&2; exit 1; }

# Can we listen on 127.0.0.1:$1? perl (perl-base is always there on Debian)
# binds it for a moment; without perl, assume yes: the start below still
# notices a master that could not listen.
port_free() {
    command -v perl >/dev/null || return 0
    perl -MIO::Socket::INET -e 'IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0],
        Proto => "tcp", Listen => 1, ReuseAddr => 1) or exit 1' "$1"
}
# Does something accept connections on the Unix socket $1?
socket_live() {
    [ -S "$1" ] && command -v perl >/dev/null &&
        perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1' "$1"
}

refuse() {
    echo "run: refusing to start: $1" >&2
    echo "run: nothing was started, and the program using it was left alone" >&2
    echo "run: $2" >&2
    exit 1
}

busy=""
for port in $PORTS; do port_free "$port" || busy="$busy $port"; done
if [ -n "$busy" ]; then
    refuse "127.0.0.1 port(s)$busy, wanted for the Redis masters, are in use by another program" \
        "pick other ports: make run RUN_PORT_BASE=$((BASE + 100)) (masters on $((BASE + 100))-$((BASE + 102)))"
fi
port_free "$DPORT" ||
    refuse "127.0.0.1 port $DPORT, wanted for redlockd, is in use by another program" \
        "pick another: make run RUN_DAEMON_PORT=$((DPORT + 100))"
if socket_live "$SOCK"; then
    refuse "$SOCK answers: another make run from this checkout is running" \
        "stop it first, or use another directory: RUN_DIR=build/run2 sh scripts/run.sh"
fi

mkdir -p "$RUN"
case $RUN in /*) run_abs=$RUN ;; *) run_abs=$PWD/$RUN ;; esac
ini=$RUN/redlockd.ini
masters=""
for port in $PORTS; do masters="${masters:+$masters, }127.0.0.1:$port"; done
sed -e "s|^listen *=.*|listen = 127.0.0.1:$DPORT|" -e "s|^unix_socket *=.*|unix_socket = $SOCK|" \
    -e "s|^masters *=.*|masters = $masters|" "$CONF" >"$ini"

pids=""
stop_all() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    [ -z "$pids" ] || echo "run: stopped redlockd and the Redis masters"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for port in $PORTS; do
    mkdir -p "$RUN/redis-$port"
    : >"$RUN/redis-$port.log"
    "$REDIS" --save '' --appendonly no --port "$port" --bind 127.0.0.1 --daemonize no \
        --dir "$RUN/redis-$port" --logfile "$run_abs/redis-$port.log" &
    eval "pid_$port=$!"
    pids="$pids $!"
done

# Our own server is up when its own log says so: asking the port could get
# an answer from somebody else's Redis.
for port in $PORTS; do
    eval "pid=\$pid_$port"
    tries=0
    until grep -q "Ready to accept connections" "$RUN/redis-$port.log" 2>/dev/null; do
        tries=$((tries + 1))
        if ! kill -0 "$pid" 2>/dev/null || [ "$tries" -gt 100 ]; then
            if grep -q "Address already in use" "$RUN/redis-$port.log" 2>/dev/null; then
                echo "run: 127.0.0.1 port $port was taken by another program meanwhile" >&2
                echo "run: pick other ports: make run RUN_PORT_BASE=$((BASE + 100))" >&2
            else
                echo "run: redis-server on port $port did not start; see $RUN/redis-$port.log:" >&2
                tail -n 5 "$RUN/redis-$port.log" >&2
            fi
            exit 1
        fi
        sleep 0.1
    done
done
echo "run: Redis masters on 127.0.0.1:$BASE, :$((BASE + 1)), :$((BASE + 2)) (logs in $RUN/)"
echo "run: starting $BUILD/redlockd -c $ini (TCP 127.0.0.1:$DPORT, Unix socket $SOCK; Ctrl-C stops everything)"

"$BUILD/redlockd" -c "$ini" &
daemon=$!
pids="$daemon $pids"
set +e
wait "$daemon"
status=$?
set -e
echo "run: redlockd exited with status $status"
exit "$status"
