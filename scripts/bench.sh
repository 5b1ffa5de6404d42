#!/bin/sh
# scripts/bench.sh - redlockd's benchmark (`make bench`; `make bench-smoke` runs it with
# BENCH_QUICK=1).
#
# Starts three throw-away redis-server masters (no persistence) and a redlockd on free
# loopback ports, runs a fixed lockbench matrix against the daemon, runs a direct Redlock
# client (lockbench -m direct) against the same masters, measures the raw ceiling of those
# masters with redis-benchmark, and prints one table. Everything it starts is killed by pid
# on exit; everything it writes lives in one temp dir that is removed afterwards.
#
# The "fleet" row (issue 14) starts a second redlockd on the same masters for the row and
# runs lockbench -m fleet through both: 2 daemons x 12 clients, all ACQUIRE one hot
# resource (ttl 5000, WAIT 60000), hold 1 ms, RELEASE. It reports acquisitions per daemon
# (max/min), the wait p50/p99/max over all clients (waits still open at the end count with
# their length so far), the median hand-over between daemons (from the previous holder's
# RELEASE being sent to the next grant's reply, both seen by the one lockbench process),
# and overlaps (a grant while another client still held): a row with an overlap fails.
# The "fleet permits 2" row is the same with ACQUIRE ... PERMITS 2 (an overlap: a third
# valid holder), held to the same targets.
#
# Targets are checked at the end and printed as "ok" or "MISSED"; a missed target does
# not change the exit status (BENCH_QUICK checks none).
#
# Environment:
#   BUILD=dir          where redlockd and lockbench are (default build)
#   BENCH_QUICK=1      smoke run: 1 s rows, three daemon rows, a short fleet row (2 daemons
#                      x 4 clients) and the direct client, a small raw ceiling run
#   The exit status is non-zero when anything failed: a row with no ops or with errors
#   (memory rows excepted), an overlap in the fleet row, redlockd dying, a master or
#   redis-benchmark not working.
#   BENCH_BASELINE=dir another build's directory (e.g. a worktree of an older commit built
#                      with `make BUILD=/tmp/old all`): its redlockd runs the daemon rows
#                      too, in the same run against the same masters, interleaved row by
#                      row (baseline, then current; the masters are flushed before each),
#                      driven by this build's lockbench; a second table prints the two side
#                      by side with the ratio current/baseline (ops/s: above 1 is faster;
#                      latencies: below 1 is faster). Memory rows run on the current build
#                      only. Rows take about twice as long.
#   BENCH_SECONDS=n    measured seconds per row (default 5; quick: 1)
#   BENCH_MEMORY=0     skip the memory rows (10k idle connections, 100k held locks)
#   BENCH_PERF=1       record `perf record -g` of redlockd during the 64-client pairs row
#                      and print the top of `perf report` (needs perf)
#   BENCH_KEEP=1       keep the temp dir (logs, JSON lines) and print where it is
#   REDIS_SERVER, REDIS_CLI, REDIS_BENCHMARK   override the Redis binaries
set -u

BUILD=${BUILD:-build}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then SECS=${BENCH_SECONDS:-1}; else SECS=${BENCH_SECONDS:-5}; fi
MEMORY=${BENCH_MEMORY:-1}
[ "$QUICK" = 1 ] && MEMORY=0
PERF=${BENCH_PERF:-0}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
LB=$BUILD/lockbench
RLD=$BUILD/redlockd
RELEASE_LUA="if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end"

say() { printf '%s\n' "bench: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

for bin in "$LB" "$RLD"; do
    [ -x "$bin" ] || fail "$bin is not built (make BUILD=$BUILD all)"
done
BASE=${BENCH_BASELINE:-}
BRLD=""
if [ -n "$BASE" ]; then
    BRLD=$BASE/redlockd
    [ -x "$BRLD" ] || fail "BENCH_BASELINE: $BRLD is not built (make BUILD=$BASE all in that tree)"
fi
for bin in "$REDIS_SERVER" "$REDIS_CLI" "$REDIS_BENCHMARK"; do
    command -v "$bin" >/dev/null 2>&1 || fail "$bin not found (sh scripts/deps.sh)"
done
TIMEOUT=""
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout"
# Run a command with an upper bound on its run time (when coreutils timeout exists).
bounded() { secs=$1; shift; if [ -n "$TIMEOUT" ]; then timeout -k 5 "$secs" "$@"; else "$@"; fi; }

# Lots of connections in the memory rows: use the hard fd limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d "${TMPDIR:-/tmp}/redlockd-bench.XXXXXX") || fail "mktemp"
PIDS=""
DPID=""
BPID=""   # the baseline's redlockd (BENCH_BASELINE)
PID2=""   # a second redlockd, during the fleet row
PERF_PID=""
CHILD=""  # the lockbench / redis-benchmark running now
cleanup() {
    for p in $CHILD $PERF_PID $PID2 $DPID $BPID $PIDS; do kill "$p" 2>/dev/null; done
    for p in $CHILD $PERF_PID $PID2 $DPID $BPID $PIDS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Wait (polling, with a deadline in tenths of seconds) until "$@" succeeds.
wait_for() {
    tenths=$1; shift
    i=0
    while [ $i -lt "$tenths" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# ---- Three Redis masters on free ports ----------------------------------------------
PORTS=""
for n in 1 2 3; do
    started=0
    for attempt in 1 2 3 4 5; do
        port=$("$LB" --free-port) || fail "no free port"
        "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$TMP" --logfile "$TMP/redis-$port.log" --daemonize no >/dev/null 2>&1 &
        rpid=$!
        if wait_for 50 "$REDIS_CLI" -h 127.0.0.1 -p "$port" ping; then
            PIDS="$PIDS $rpid"
            PORTS="$PORTS $port"
            started=1
            break
        fi
        kill "$rpid" 2>/dev/null
        wait "$rpid" 2>/dev/null
    done
    [ $started = 1 ] || fail "redis-server would not start (see $TMP)"
done
MASTERS=""
for p in $PORTS; do MASTERS="${MASTERS:+$MASTERS,}127.0.0.1:$p"; done
say "masters $MASTERS"

# ---- redlockd -------------------------------------------------------------------------
SOCK=$TMP/redlockd.sock
INI=$TMP/redlockd.ini
# ini_out FILE PORT SOCK SERVER-EXTRA LOG-EXTRA
ini_out() {
    {
        printf '[server]\nlisten = 127.0.0.1:%s\nunix_socket = %s\n%s' "$2" "$3" "$4"
        printf '[redis]\nmasters = %s\n' "$(echo "$MASTERS" | sed 's/,/, /g')"
        [ -n "$5" ] && printf '[log]\n%s' "$5"
    } >"$1"
}
# make_ini BIN FILE PORT SOCK [memory]: a config for redlockd BIN on the masters. Optional
# settings are kept only when BIN accepts them (redlockd -t), so the script works with
# whatever keys the daemon (or a baseline's) has; "memory" adds the memory rows' limits.
make_ini() {
    mi_bin=$1 mi_file=$2 mi_port=$3 mi_sock=$4
    mi_server="" mi_log=""
    ini_out "$mi_file" "$mi_port" "$mi_sock" "" ""
    "$mi_bin" -t -c "$mi_file" >"$TMP/check.out" 2>&1 || { cat "$TMP/check.out" >&2; fail "$mi_bin -t rejects the generated ini"; }
    for key in level log_level; do
        mi_log="$key = warn
"
        ini_out "$mi_file" "$mi_port" "$mi_sock" "" "$mi_log"
        "$mi_bin" -t -c "$mi_file" >/dev/null 2>&1 && break
        mi_log=""
    done
    [ "${5:-}" = memory ] && for kv in "max_clients = 20000" "max_locks_per_client = 100000" "max_waiters = 100000"; do
        mi_old=$mi_server
        mi_server="$mi_server$kv
"
        ini_out "$mi_file" "$mi_port" "$mi_sock" "$mi_server" "$mi_log"
        "$mi_bin" -t -c "$mi_file" >/dev/null 2>&1 || mi_server=$mi_old
    done
    ini_out "$mi_file" "$mi_port" "$mi_sock" "$mi_server" "$mi_log"
}
# start_rld VAR BIN INI SOCK LOG: start redlockd BIN (its pid in $VAR at once, for the
# cleanup) and wait until it answers PING on SOCK.
start_rld() {
    "$2" -c "$3" >>"$5" 2>&1 &
    eval "$1=\$!"
    wait_for 100 "$LB" -a "$4" --ping 200 || { tail -20 "$5" >&2; fail "redlockd ($2) did not answer PING"; }
}
# stop_rld PID: SIGTERM, and wait (10 s at most) until it exited.
stop_rld() {
    kill "$1" 2>/dev/null
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$1" 2>/dev/null && fail "redlockd (pid $1) did not exit on SIGTERM within 10 s"
    wait "$1" 2>/dev/null
}
DPORT=$("$LB" --free-port) || fail "no free port"
if [ "$MEMORY" = 1 ]; then make_ini "$RLD" "$INI" "$DPORT" "$SOCK" memory; else make_ini "$RLD" "$INI" "$DPORT" "$SOCK"; fi
# The fleet row's second daemon: the same masters, its own addresses.
SOCK2=$TMP/redlockd2.sock
INI2=$TMP/redlockd2.ini
make_ini "$RLD" "$INI2" "$("$LB" --free-port)" "$SOCK2"
start_daemon() {
    start_rld DPID "$RLD" "$INI" "$SOCK" "$TMP/redlockd.log"
    say "redlockd pid $DPID on 127.0.0.1:$DPORT and $SOCK"
}
# A fresh daemon for each memory row, so one row's heap does not count in the next.
restart_daemon() {
    stop_rld "$DPID"
    DPID=""
    start_daemon
}
start_daemon
if [ -n "$BASE" ]; then
    BSOCK=$TMP/base.sock
    BSOCK2=$TMP/base2.sock
    BPORT=$("$LB" --free-port) || fail "no free port"
    make_ini "$BRLD" "$TMP/base.ini" "$BPORT" "$BSOCK"
    make_ini "$BRLD" "$TMP/base2.ini" "$("$LB" --free-port)" "$BSOCK2"
    start_rld BPID "$BRLD" "$TMP/base.ini" "$BSOCK" "$TMP/base.log"
    say "baseline redlockd ($BRLD) pid $BPID on 127.0.0.1:$BPORT and $BSOCK"
fi

HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# wait_quiet PID...: wait (at most 10 s each) until each redlockd uses no more than one
# clock tick per 0.2 s, so a row does not pay for the previous one's backlog.
wait_quiet() {
    for wq in "$@"; do
        i=0
        t0=$(cpu_ticks "$wq") || continue
        while [ $i -lt 50 ]; do
            sleep 0.2
            t1=$(cpu_ticks "$wq") || break
            [ $((t1 - t0)) -le 1 ] && break
            t0=$t1
            i=$((i + 1))
        done
        [ $i -ge 50 ] && say "redlockd (pid $wq) still busy after 10 s"
    done
}
# json FILE KEY: a number from lockbench's JSON line
json() { sed -n 's/.*"'"$2"'":\([^,}]*\).*/\1/p' "$1" | head -1; }
flush_masters() {
    for p in $PORTS; do
        "$REDIS_CLI" -h 127.0.0.1 -p "$p" FLUSHALL >/dev/null || fail "FLUSHALL on $p"
    done
}

ROWS=$TMP/rows        # label|clients|json|cpu_ticks|hwm_kb|rss_before_kb|kind
BROWS=$TMP/base-rows  # the same for the baseline's rows
: >"$ROWS"
: >"$BROWS"
ROWFAIL=0
ROWN=0
ROWFILE=$ROWS  # where run_row writes: $ROWS or $BROWS
RPIDS=""       # the redlockd pids a row runs against (the first one is the main one)

# run_row KIND LABEL CLIENTS LOCKBENCH-ARGS...  (KIND: daemon, direct, memory)
run_row() {
    kind=$1 label=$2 clients=$3
    shift 3
    n=$ROWN
    ROWN=$((ROWN + 1))
    out=$TMP/row$n.json
    who="redlockd"
    [ "$ROWFILE" = "$BROWS" ] && who="baseline redlockd"
    main=${RPIDS%% *}
    for p in $RPIDS; do kill -0 "$p" 2>/dev/null || fail "$who (pid $p) died before row '$label'"; done
    # shellcheck disable=SC2086 # pid lists, split on purpose
    wait_quiet $RPIDS
    c0=0
    for p in $RPIDS; do
        echo 5 >"/proc/$p/clear_refs" 2>/dev/null # reset VmHWM so the peak is this row's
        c0=$((c0 + $(cpu_ticks "$p")))
    done
    rss0=$(status_kb "$main" VmRSS)
    if [ "$PERF" = 1 ] && [ "$label" = "pairs unix" ] && [ "$clients" = 64 ] && [ "$ROWFILE" = "$ROWS" ]; then
        # stops by itself (a background job ignores SIGINT in a non-interactive shell)
        perf record -g -o "$TMP/perf.data" -p "$main" -- sleep "$SECS" >"$TMP/perf.log" 2>&1 &
        PERF_PID=$!
    fi
    # In the background, so that a signal's trap runs at once instead of after the row.
    bounded $((SECS * 3 + 60)) "$LB" --json --label "$label" -p "bench:$n:" "$@" >"$out" 2>"$TMP/row$n.err" &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=""
    if [ -n "$PERF_PID" ]; then
        wait "$PERF_PID" 2>/dev/null
        PERF_PID=""
    fi
    c1=0 hwm=0
    for p in $RPIDS; do
        c1=$((c1 + $(cpu_ticks "$p" 2>/dev/null || echo 0)))
        h=$(status_kb "$p" VmHWM 2>/dev/null)
        [ "${h:-0}" -gt "$hwm" ] && hwm=$h
    done
    [ "$c1" -lt "$c0" ] && c1=$c0
    for p in $RPIDS; do
        kill -0 "$p" 2>/dev/null || { cat "$TMP/row$n.err" >&2; tail -20 "$TMP"/*.log >&2; fail "$who (pid $p) died during row '$label'"; }
    done
    if [ $rc != 0 ] || [ ! -s "$out" ]; then
        say "row '$label' failed (lockbench exit $rc):"
        cat "$TMP/row$n.err" >&2
        ROWFAIL=1
        echo '{"ops_per_s":0,"errors_total":-1}' >"$out"
    elif [ "$(json "$out" errors_total)" != 0 ]; then
        say "row '$label': errors $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' "$out")"
        [ "$kind" != memory ] && ROWFAIL=1 # memory rows only measure RSS
    fi
    ov=$(json "$out" overlaps)
    if [ -n "$ov" ] && [ "$ov" != 0 ]; then
        say "row '$label' ($who): $ov OVERLAPS, two clients held the lock at once:"
        grep OVERLAP "$TMP/row$n.err" | head -5 >&2
        ROWFAIL=1
    fi
    echo "$label|$clients|$out|$((c1 - c0))|${hwm:-0}|${rss0:-0}|$kind" >>"$ROWFILE"
    lbl=$label
    [ "$ROWFILE" = "$BROWS" ] && lbl="$label (baseline)"
    say "$(printf '%-33s c=%-5s %10s ops/s' "$lbl" "$clients" "$(json "$out" ops_per_s)")"
}

# cur_row KIND LABEL CLIENTS LOCKBENCH-ARGS...: a row against this build's redlockd only.
cur_row() {
    RPIDS=$DPID ROWFILE=$ROWS
    run_row "$@"
}

# daemon_row LABEL CLIENTS LOCKBENCH-ARGS...: a row against redlockd; with BENCH_BASELINE
# first against the baseline's, then against this build's, the masters flushed before
# each. In the arguments @SOCK@ and @TCP@ stand for the daemon's Unix socket and TCP
# address, @SOCK2@ for the Unix socket of a second daemon of the same build on the same
# masters, started for the row and stopped after it.
daemon_row() {
    [ -n "$BASE" ] && on_target base "$@"
    on_target cur "$@"
}
on_target() {
    if [ "$1" = base ]; then
        t_sock=$BSOCK t_tcp=127.0.0.1:$BPORT t_sock2=$BSOCK2 t_bin=$BRLD t_ini2=$TMP/base2.ini
        RPIDS=$BPID ROWFILE=$BROWS
    else
        t_sock=$SOCK t_tcp=127.0.0.1:$DPORT t_sock2=$SOCK2 t_bin=$RLD t_ini2=$INI2
        RPIDS=$DPID ROWFILE=$ROWS
    fi
    t_name=$1
    shift
    t_label=$1 t_clients=$2
    shift 2
    t_two=0
    t_argc=$#
    k=0
    while [ $k -lt "$t_argc" ]; do
        a=$1
        shift
        case $a in
        @SOCK@) a=$t_sock ;;
        @TCP@) a=$t_tcp ;;
        @SOCK2@) a=$t_sock2 t_two=1 ;;
        esac
        set -- "$@" "$a"
        k=$((k + 1))
    done
    if [ -n "$BASE" ]; then
        # shellcheck disable=SC2086 # pid lists, split on purpose
        wait_quiet $RPIDS
        flush_masters
    fi
    if [ $t_two = 1 ]; then
        rm -f "$t_sock2"
        start_rld PID2 "$t_bin" "$t_ini2" "$t_sock2" "$TMP/redlockd2-$t_name.log"
        RPIDS="$RPIDS $PID2"
    fi
    run_row daemon "$t_label" "$t_clients" "$@"
    if [ $t_two = 1 ]; then
        stop_rld "$PID2"
        PID2=""
    fi
}

T="-t $SECS"
# fleet_row CLIENTS DRAIN-MS: 2 daemons x CLIENTS/2 on one hot key, WAIT long, hold 1 ms.
# Waits still open at the end are cut off after DRAIN-MS (they are not errors).
fleet_row() {
    daemon_row "fleet unix" "$1" -m fleet -a @SOCK@ -a @SOCK2@ -c "$1" -T 5000 -W 60000 -H 1 --drain "$2" $T
}
fleet_permits_row() {
    daemon_row "fleet permits 2" "$1" -m fleet --permits 2 -a @SOCK@ -a @SOCK2@ -c "$1" -T 5000 -W 60000 -H 1 \
        --drain "$2" $T
}
if [ "$QUICK" = 1 ]; then
    daemon_row "pairs unix" 1 -a @SOCK@ -m pairs -c 1 $T
    daemon_row "ping unix" 1 -a @SOCK@ -m ping -c 1 $T
    daemon_row "hot unix" 16 -a @SOCK@ -m hot -c 16 $T
    fleet_row 8 300
    cur_row direct "direct" 1 -m direct -M "$MASTERS" -c 1 $T
else
    for c in 1 16 64 256; do
        daemon_row "pairs unix" $c -a @SOCK@ -m pairs -c $c $T
    done
    daemon_row "ping unix" 1 -a @SOCK@ -m ping -c 1 $T
    daemon_row "pairs tcp" 1 -a @TCP@ -m pairs -c 1 $T
    daemon_row "pairs tcp" 64 -a @TCP@ -m pairs -c 64 $T
    daemon_row "pairs unix -d16" 64 -a @SOCK@ -m pairs -c 64 -d 16 $T
    for c in 16 64; do
        daemon_row "hot unix" $c -a @SOCK@ -m hot -c $c -W 10000 $T
    done
    fleet_row 24 1000
    fleet_permits_row 24 1000
    cur_row direct "direct" 1 -m direct -M "$MASTERS" -c 1 $T
    cur_row direct "direct" 64 -m direct -M "$MASTERS" -c 64 $T
    if [ "$MEMORY" = 1 ]; then
        nofile=$(ulimit -n)
        if [ "$nofile" != unlimited ] && [ "$nofile" -lt 10100 ]; then
            say "skipping the 10k idle connections row: ulimit -n is $nofile"
        else
            restart_daemon
            cur_row memory "idle conns" 10000 -a "$SOCK" -m idle -c 10000 -t 2
        fi
        restart_daemon
        cur_row memory "held locks" 100000 -a "$SOCK" -m hold -c 100 -d 1000 -H 5000 -T 60000 -t 6 -w 0 -r 3000
    fi
fi

# ---- Raw ceiling: the same masters, pipelined, all three at once -----------------------
if [ "$QUICK" = 1 ]; then RAW_N=50000; else RAW_N=${BENCH_RAW_N:-1000000}; fi
TOKEN=0123456789abcdef0123456789abcdef
SHA=""
for p in $PORTS; do
    SHA=$("$REDIS_CLI" -h 127.0.0.1 -p "$p" SCRIPT LOAD "$RELEASE_LUA") || fail "SCRIPT LOAD on $p"
done
# raw NAME ARGS...: run redis-benchmark on every master concurrently; prints the summed rps.
raw() {
    name=$1; shift
    bpids=""
    for p in $PORTS; do
        bounded 120 "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$p" -c 50 -P 16 -n "$RAW_N" -r 100000 --csv \
            "$@" >"$TMP/raw-$name-$p.csv" 2>&1 &
        bpids="$bpids $!"
    done
    CHILD=$bpids
    for b in $bpids; do wait "$b"; done
    CHILD=""
    total=0
    for p in $PORTS; do
        rps=$(sed -n '2s/^"[^"]*","\([0-9.]*\)".*/\1/p' "$TMP/raw-$name-$p.csv")
        [ -n "$rps" ] || { cat "$TMP/raw-$name-$p.csv" >&2; fail "redis-benchmark $name on $p"; }
        total=$(awk -v a="$total" -v b="$rps" 'BEGIN {printf "%.0f", a + b}')
    done
    echo "$total"
}
# shellcheck disable=SC2086 # pid lists, split on purpose
wait_quiet $DPID $BPID
say "raw ceiling: redis-benchmark -P 16 -c 50 -n $RAW_N on each master at once"
RAW_SET=$(raw set SET "bench:raw:__rand_int__" "$TOKEN" NX PX 30000) || exit 1
RAW_DEL=$(raw evalsha EVALSHA "$SHA" 1 "bench:raw:__rand_int__" "$TOKEN") || exit 1
NM=$(echo $PORTS | wc -w)
# One lock = SET NX PX + EVALSHA on every master, so per master a lock costs 1/S + 1/E
# seconds of its capacity; with the masters' measured rates summed (S = sum SET/s,
# E = sum EVALSHA/s, shared equally by NM masters) the ceiling is 1 / (NM/S + NM/E) locks/s.
CEIL=$(awk -v s="$RAW_SET" -v e="$RAW_DEL" -v n="$NM" 'BEGIN {printf "%.0f", 1 / (n / s + n / e)}')
kill -0 "$DPID" 2>/dev/null || fail "redlockd died"

# ---- The table -------------------------------------------------------------------------
echo
echo "redlockd benchmark: $(nproc 2>/dev/null || echo '?') cpus, $NM local masters, ${SECS}s per row, redis $("$REDIS_SERVER" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
echo "raw ceiling (redis-benchmark -P 16, all masters at once): SET NX PX $RAW_SET/s, EVALSHA compare-and-delete $RAW_DEL/s (sums over the masters)"
echo "  -> lock ceiling = 1 / ($NM/SET + $NM/EVALSHA) = $CEIL acquire+release/s (each lock needs both commands on every master)"
echo
awk -F'|' -v ceil="$CEIL" -v hz="$HZ" '
function num(file, key,    line, re, v) {
    line = ""; while ((getline l < file) > 0) line = line l; close(file)
    re = "\"" key "\":[^,}]*"
    if (!match(line, re)) return ""
    v = substr(line, RSTART, RLENGTH); sub(/^[^:]*:/, "", v); return v
}
function fleet_notes(f,    r, h) {
    r = num(f, "daemon_ratio"); r = (r == "null") ? "one got none" : "x" r
    h = (num(f, "handover_n") > 0) ? sprintf("hand-over to the other daemon p50 %.2f ms (n %s)", num(f, "handover_p50_us") / 1000,
        num(f, "handover_n")) : "no hand-over to the other daemon"
    return sprintf("%s daemons, acq per daemon min %s max %s (%s); wait p50 %.2f p99 %.2f max %.0f ms%s; " \
        "%s, same daemon p50 %.2f ms; longest run on one daemon %s; overlaps %s",
        num(f, "daemons"), num(f, "daemon_acq_min"), num(f, "daemon_acq_max"), r,
        num(f, "acq_p50_us") / 1000, num(f, "acq_p99_us") / 1000, num(f, "acq_max_us") / 1000,
        num(f, "open_waits") > 0 ? sprintf(" (%s still waiting at the end)", num(f, "open_waits")) : "",
        h, num(f, "local_handover_p50_us") / 1000, num(f, "streak_max"), num(f, "overlaps"))
}
BEGIN {
    printf "%-20s %7s %10s %8s %8s %8s %7s %9s %8s %7s  %s\n", "row", "clients", "ops/s", "p50 ms", "p99 ms", "p99.9ms",
        "%ceil", "cpu us/op", "rss MB", "errors", "notes"
}
{
    f = $3; ops = num(f, "ops_per_s"); tot = num(f, "ops_total")
    cpu = ($7 == "direct" || tot == 0) ? "-" : sprintf("%.1f", $4 / hz * 1e6 / tot)
    rss = ($7 == "direct") ? "-" : sprintf("%.1f", $5 / 1024)
    pc = ($7 == "daemon" && ceil > 0 && $1 !~ /^ping/) ? sprintf("%.1f%%", 100 * ops / ceil) : "-"
    notes = ""
    if ($1 ~ /^hot/) notes = sprintf("wait p50 %.2f p99 %.2f ms; per-client acq min %s max %s (x%s)",
        num(f, "acq_p50_us") / 1000, num(f, "acq_p99_us") / 1000, num(f, "fair_min"), num(f, "fair_max"), num(f, "fair_ratio"))
    if ($1 ~ /^fleet/) notes = fleet_notes(f)
    if ($7 == "memory") {
        notes = sprintf("fresh daemon, rss %.1f MB before the row", $6 / 1024)
        if ($1 ~ /idle/) notes = notes sprintf("; %s connections answered PING (p50 %.1f ms)", num(f, "ops_total"), num(f, "p50_us") / 1000)
        if ($1 ~ /held/) notes = notes sprintf("; at most %s locks held at once, %s taken", num(f, "held_max"), num(f, "acq_total"))
        printf "%-20s %7s %10s %8s %8s %8s %7s %9s %8s %7s  %s\n", $1, $2, "-", "-", "-", "-", "-", cpu, rss, num(f, "errors_total"), notes
        next
    }
    printf "%-20s %7s %10.0f %8.3f %8.3f %8.3f %7s %9s %8s %7s  %s\n", $1, $2, ops, num(f, "p50_us") / 1000,
        num(f, "p99_us") / 1000, num(f, "p999_us") / 1000, pc, cpu, rss, num(f, "errors_total"), notes
}' "$ROWS"

# ---- Targets (issues 4, 14) ----------------------------------------------------------------
row_json() { awk -F'|' -v l="$1" -v c="$2" '$1 == l && $2 == c {print $3}' "$ROWS" | head -1; }
row_field() { awk -F'|' -v l="$1" -v c="$2" -v i="$3" '$1 == l && $2 == c {print $i}' "$ROWS" | head -1; }
echo
echo "percentages are ops/s over the lock ceiling above; cpu us/op = redlockd utime+stime over the row / ops in the row (incl. warm-up); rss = VmHWM of redlockd during the row"
check() { # check NAME VALUE OP LIMIT UNIT
    if [ -z "$2" ]; then printf '  %-46s %s\n' "$1" "not measured"; return; fi
    ok=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN {
        if (v !~ /^[0-9.]+$/) { print "MISSED"; exit }
        print (op == ">=" ? v + 0 >= l + 0 : v + 0 <= l + 0) ? "ok" : "MISSED" }')
    printf '  %-46s %12s %s %s %s  %s\n' "$1" "$2" "$3" "$4" "$5" "$ok"
}
echo "targets:"
f=$(row_json "pairs unix" 64); [ -n "$f" ] && check "pairs, 64 clients" "$(json "$f" ops_per_s)" ">=" 50000 "ops/s"
f=$(row_json "pairs unix" 1); d=$(row_json direct 1)
if [ -n "$f" ] && [ -n "$d" ]; then
    r=$(awk -v a="$(json "$f" p50_us)" -v b="$(json "$d" p50_us)" 'BEGIN {if (b > 0) printf "%.2f", a / b}')
    echo "  1 client median: redlockd $(json "$f" p50_us) us vs direct client $(json "$d" p50_us) us"
    check "1 client median / direct client median" "$r" "<=" 1.5 "x"
    # The hop alone: an acquire+release is two round trips to the daemon, each at
    # least one PING's worth, on top of what the masters take.
    p=$(row_json "ping unix" 1)
    [ -n "$p" ] && awk -v d="$(json "$d" p50_us)" -v p="$(json "$p" p50_us)" 'BEGIN {
        if (d > 0) printf "  the hop alone: a PING round trip (no Redis) takes %s us; direct + 2 PINGs = x%.2f of direct\n", p, (d + 2 * p) / d }'
fi
f=$(row_json "hot unix" 64)
if [ -n "$f" ]; then
    check "hot key, 64 clients: acquisitions" "$(json "$f" ops_per_s)" ">=" 5000 "/s"
    check "hot key, 64 clients: wait p99" "$(awk -v v="$(json "$f" acq_p99_us)" 'BEGIN {printf "%.2f", v / 1000}')" "<=" 25 "ms"
    check "hot key, 64 clients: max/min acquisitions" "$(json "$f" fair_ratio)" "<=" 2 "x"
fi
# issue 14: 2 daemons x 12 clients on one hot key (exclusive, then a semaphore of 2)
for row in "fleet unix:fleet" "fleet permits 2:fleet PERMITS 2"; do
    f=$(row_json "${row%%:*}" 24) n=${row#*:}
    [ -n "$f" ] && [ "$QUICK" != 1 ] || continue
    check "$n: acquisitions, daemon max/min" "$(json "$f" daemon_ratio)" "<=" 1.5 "x"
    check "$n: wait p99" "$(awk -v v="$(json "$f" acq_p99_us)" 'BEGIN {printf "%.2f", v / 1000}')" "<=" 150 "ms"
    check "$n: wait max" "$(awk -v v="$(json "$f" acq_max_us)" 'BEGIN {printf "%.2f", v / 1000}')" "<=" 1000 "ms"
    check "$n: median hand-over between daemons" "$(awk -v v="$(json "$f" handover_p50_us)" -v n="$(json "$f" handover_n)" 'BEGIN {if (n > 0) printf "%.2f", v / 1000; else print "none"}')" "<=" 5 "ms"
done
m=$(row_field "idle conns" 10000 5); [ -n "$m" ] && check "10,000 idle connections: peak RSS" "$(awk -v v="$m" 'BEGIN {printf "%.1f", v / 1024}')" "<=" 30 "MB"
m=$(row_field "held locks" 100000 5); [ -n "$m" ] && check "$(json "$(row_json "held locks" 100000)" held_max) held locks: peak RSS" "$(awk -v v="$m" 'BEGIN {printf "%.1f", v / 1024}')" "<=" 64 "MB"
echo "redlockd cpu over all rows: $(awk -F'|' -v hz="$HZ" '{t += $4} END {printf "%.2f", t / hz}' "$ROWS") s"

# ---- Side by side with the baseline (BENCH_BASELINE) ------------------------------------
if [ -n "$BASE" ] && [ -s "$BROWS" ]; then
    brev=$(git -C "$BASE" log -1 --format='%h %cd' --date=short 2>/dev/null || true)
    crev=$(git log -1 --format='%h %cd' --date=short 2>/dev/null || true)
    echo
    echo "side by side: baseline $BRLD${brev:+ (commit $brev)} vs current $RLD${crev:+ (commit $crev)};"
    echo "same masters, same lockbench, rows interleaved (baseline first), masters flushed before each row;"
    echo "x = current / baseline: above 1 is more ops/s, below 1 is lower latency / less cpu"
    awk -F'|' -v hz="$HZ" -v rows="$ROWS" '
function num(file, key,    line, l, re, v) {
    line = ""; while ((getline l < file) > 0) line = line l; close(file)
    re = "\"" key "\":[^,}]*"
    if (!match(line, re)) return ""
    v = substr(line, RSTART, RLENGTH); sub(/^[^:]*:/, "", v); return v
}
function ratio(c, b) { return (b + 0 > 0 && c != "") ? sprintf("x%.2f", c / b) : "-" }
function per_daemon(f,    r) {
    r = num(f, "daemon_ratio")
    return sprintf("%s/%s (%s)", num(f, "daemon_acq_min"), num(f, "daemon_acq_max"), r == "null" ? "one got none" : "x" r)
}
function handover(f) { return num(f, "handover_n") > 0 ? sprintf("%.2f ms", num(f, "handover_p50_us") / 1000) : "none" }
function cpu(ticks, file,    tot) { tot = num(file, "ops_total"); return tot > 0 ? ticks / hz * 1e6 / tot : "" }
BEGIN {
    while ((getline l < rows) > 0) { split(l, a, "|"); cur[a[1] "|" a[2]] = a[3]; curt[a[1] "|" a[2]] = a[4] }
    printf "%-20s %7s %10s %10s %6s %8s %8s %6s %8s %8s %6s %7s %7s %6s  %s\n", "row", "clients",
        "base ops/s", "cur ops/s", "x", "base p50", "cur p50", "x", "base p99", "cur p99", "x", "base cpu", "cur cpu", "x", "notes (base -> cur)"
}
{
    k = $1 "|" $2; b = $3; c = cur[k]
    if (c == "") next
    bo = num(b, "ops_per_s"); co = num(c, "ops_per_s")
    b5 = num(b, "p50_us") / 1000; c5 = num(c, "p50_us") / 1000
    b9 = num(b, "p99_us") / 1000; c9 = num(c, "p99_us") / 1000
    bc = cpu($4, b); cc = cpu(curt[k], c)
    notes = ""
    if ($1 ~ /^hot/)
        notes = sprintf("wait p99 %.2f -> %.2f ms; per-client max/min x%s -> x%s", num(b, "acq_p99_us") / 1000,
            num(c, "acq_p99_us") / 1000, num(b, "fair_ratio"), num(c, "fair_ratio"))
    if ($1 ~ /^fleet/)
        notes = sprintf("acq per daemon %s -> %s; wait p99 %.1f -> %.1f ms, max %.0f -> %.0f ms; hand-over between daemons p50 %s -> %s; overlaps %s, %s",
            per_daemon(b), per_daemon(c), num(b, "acq_p99_us") / 1000, num(c, "acq_p99_us") / 1000,
            num(b, "acq_max_us") / 1000, num(c, "acq_max_us") / 1000, handover(b), handover(c),
            num(b, "overlaps"), num(c, "overlaps"))
    printf "%-20s %7s %10.0f %10.0f %6s %8.3f %8.3f %6s %8.3f %8.3f %6s %7s %7s %6s  %s\n", $1, $2, bo, co, ratio(co, bo),
        b5, c5, ratio(c5, b5), b9, c9, ratio(c9, b9), bc == "" ? "-" : sprintf("%.1f", bc), cc == "" ? "-" : sprintf("%.1f", cc),
        (bc == "" || cc == "") ? "-" : ratio(cc, bc), notes
}' "$BROWS"
    echo "cpu = redlockd us per op (both daemons in the fleet row); baseline redlockd cpu over its rows: $(awk -F'|' -v hz="$HZ" '{t += $4} END {printf "%.2f", t / hz}' "$BROWS") s"
fi

if [ -s "$TMP/perf.data" ]; then
    echo
    echo "perf report (redlockd during 'pairs unix' 64 clients):"
    perf report -i "$TMP/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
    perf report -i "$TMP/perf.data" --stdio --no-children -g none --percent-limit 0.7 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -40
fi
if [ -s "$TMP/redlockd.log" ]; then
    echo
    echo "redlockd log (warnings, last 10 lines):"
    tail -10 "$TMP/redlockd.log"
fi

[ "$ROWFAIL" = 0 ] || fail "a row failed"
exit 0
