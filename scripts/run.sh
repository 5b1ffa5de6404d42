#!/bin/sh
# `make run`: three local Redis masters on 127.0.0.1:7001..7003 (no
# persistence, files in build/run/) and redlockd in the foreground with
# conf/dev.ini (TCP 127.0.0.1:7379, Unix socket build/run/redlockd.sock).
# Ctrl-C stops all of them, by pid.
#
# Environment: BUILD (default build: where redlockd is), CONF (default
# conf/dev.ini), REDIS_SERVER_BIN (default redis-server).
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
CONF=${CONF:-conf/dev.ini}
REDIS=${REDIS_SERVER_BIN:-redis-server}
RUN=build/run # conf/dev.ini puts the socket here
PORTS="7001 7002 7003"

[ -x "$BUILD/redlockd" ] || { echo "run: $BUILD/redlockd is missing: run make first" >&2; exit 1; }
[ -f "$CONF" ] || { echo "run: $CONF is missing" >&2; exit 1; }
command -v "$REDIS" >/dev/null || { echo "run: $REDIS not found (apt-get install redis-server)" >&2; exit 1; }
mkdir -p "$RUN"

pids=""
stop_all() {
    trap - INT TERM EXIT
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    echo "run: stopped redlockd and the Redis masters"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Is the Redis on port $1 up? redis-cli (from redis-tools, which redis-server
# depends on) when present, else its "ready" log line.
redis_up() {
    if command -v redis-cli >/dev/null; then
        [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
    else
        grep -q "Ready to accept connections" "$RUN/redis-$1.log" 2>/dev/null
    fi
}

for port in $PORTS; do
    mkdir -p "$RUN/redis-$port"
    : >"$RUN/redis-$port.log"
    "$REDIS" --save '' --appendonly no --port "$port" --bind 127.0.0.1 --daemonize no \
        --dir "$RUN/redis-$port" --logfile "$PWD/$RUN/redis-$port.log" &
    pids="$pids $!"
done

for port in $PORTS; do
    tries=0
    until redis_up "$port"; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ]; then
            echo "run: redis-server on port $port did not start; see $RUN/redis-$port.log:" >&2
            tail -n 5 "$RUN/redis-$port.log" >&2
            exit 1
        fi
        sleep 0.1
    done
done
echo "run: Redis masters on 127.0.0.1:7001, :7002, :7003 (logs in $RUN/)"
echo "run: starting $BUILD/redlockd -c $CONF (Ctrl-C stops everything)"

"$BUILD/redlockd" -c "$CONF" &
daemon=$!
pids="$daemon $pids"
set +e
wait "$daemon"
status=$?
set -e
echo "run: redlockd exited with status $status"
exit "$status"
