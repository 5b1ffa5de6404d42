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
# Environment:
#   BUILD=dir          where redlockd and lockbench are (default build)
#   BENCH_QUICK=1      smoke run: 1 s rows, two daemon rows plus the direct client, a small
#                      raw ceiling run (about 6 s in all)
#   The exit status is non-zero when anything failed: a row with no ops or with errors
#   (memory rows excepted), redlockd dying, a master or redis-benchmark not working.
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
PERF_PID=""
CHILD=""  # the lockbench / redis-benchmark running now
cleanup() {
    for p in $CHILD $PERF_PID $DPID $PIDS; do kill "$p" 2>/dev/null; done
    for p in $CHILD $PERF_PID $DPID $PIDS; do
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
# Optional settings are kept only when this redlockd accepts them (redlockd -t), so the
# script works with whatever keys the daemon has.
EXTRA_SERVER=""
EXTRA_LOG=""
write_ini() {
    {
        printf '[server]\nlisten = 127.0.0.1:%s\nunix_socket = %s\n%s' "$DPORT" "$SOCK" "$EXTRA_SERVER"
        printf '[redis]\nmasters = %s\n' "$(echo "$MASTERS" | sed 's/,/, /g')"
        [ -n "$EXTRA_LOG" ] && printf '[log]\n%s' "$EXTRA_LOG"
    } >"$INI"
}
try_server() {
    old=$EXTRA_SERVER
    EXTRA_SERVER="$EXTRA_SERVER$1
"
    write_ini
    "$RLD" -t -c "$INI" >/dev/null 2>&1 || EXTRA_SERVER=$old
}
DPORT=$("$LB" --free-port) || fail "no free port"
write_ini
"$RLD" -t -c "$INI" >"$TMP/check.out" 2>&1 || { cat "$TMP/check.out" >&2; fail "redlockd -t rejects the generated ini"; }
for key in level log_level; do
    EXTRA_LOG="$key = warn
"
    write_ini
    "$RLD" -t -c "$INI" >/dev/null 2>&1 && break
    EXTRA_LOG=""
done
[ "$MEMORY" = 1 ] && for kv in "max_clients = 20000" "max_locks_per_client = 100000" "max_waiters = 100000"; do
    try_server "$kv"
done
write_ini
start_daemon() {
    "$RLD" -c "$INI" >>"$TMP/redlockd.log" 2>&1 &
    DPID=$!
    wait_for 100 "$LB" -a "$SOCK" --ping 200 || { tail -20 "$TMP/redlockd.log" >&2; fail "redlockd did not answer PING"; }
    say "redlockd pid $DPID on 127.0.0.1:$DPORT and $SOCK"
}
# A fresh daemon for each memory row, so one row's heap does not count in the next.
restart_daemon() {
    kill "$DPID" 2>/dev/null
    i=0
    while kill -0 "$DPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$DPID" 2>/dev/null && fail "redlockd (pid $DPID) did not exit on SIGTERM within 10 s"
    wait "$DPID" 2>/dev/null
    DPID=""
    start_daemon
}
start_daemon

HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Wait (at most 10 s) until redlockd uses no more than one clock tick per 0.2 s, so a row
# does not pay for the previous one's backlog.
wait_quiet() {
    i=0
    t0=$(cpu_ticks "$DPID") || return 0
    while [ $i -lt 50 ]; do
        sleep 0.2
        t1=$(cpu_ticks "$DPID") || return 0
        [ $((t1 - t0)) -le 1 ] && return 0
        t0=$t1
        i=$((i + 1))
    done
    say "redlockd still busy after 10 s"
}
# json FILE KEY: a number from lockbench's JSON line
json() { sed -n 's/.*"'"$2"'":\([^,}]*\).*/\1/p' "$1" | head -1; }

ROWS=$TMP/rows        # label|clients|json|cpu_ticks|hwm_kb|rss_before_kb|kind
: >"$ROWS"
ROWFAIL=0

# run_row KIND LABEL CLIENTS LOCKBENCH-ARGS...  (KIND: daemon, direct, memory)
run_row() {
    kind=$1 label=$2 clients=$3
    shift 3
    n=$(wc -l <"$ROWS")
    out=$TMP/row$n.json
    kill -0 "$DPID" 2>/dev/null || fail "redlockd (pid $DPID) died before row '$label'"
    wait_quiet
    echo 5 >"/proc/$DPID/clear_refs" 2>/dev/null # reset VmHWM so the peak is this row's
    rss0=$(status_kb "$DPID" VmRSS)
    c0=$(cpu_ticks "$DPID")
    if [ "$PERF" = 1 ] && [ "$label" = "pairs unix" ] && [ "$clients" = 64 ]; then
        # stops by itself (a background job ignores SIGINT in a non-interactive shell)
        perf record -g -o "$TMP/perf.data" -p "$DPID" -- sleep "$SECS" >"$TMP/perf.log" 2>&1 &
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
    c1=$(cpu_ticks "$DPID" 2>/dev/null || echo "$c0")
    hwm=$(status_kb "$DPID" VmHWM 2>/dev/null)
    kill -0 "$DPID" 2>/dev/null || { cat "$TMP/row$n.err" >&2; tail -20 "$TMP/redlockd.log" >&2; fail "redlockd died during row '$label'"; }
    if [ $rc != 0 ] || [ ! -s "$out" ]; then
        say "row '$label' failed (lockbench exit $rc):"
        cat "$TMP/row$n.err" >&2
        ROWFAIL=1
        echo '{"ops_per_s":0,"errors_total":-1}' >"$out"
    elif [ "$(json "$out" errors_total)" != 0 ]; then
        say "row '$label': errors $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' "$out")"
        [ "$kind" != memory ] && ROWFAIL=1 # memory rows only measure RSS
    fi
    echo "$label|$clients|$out|$((c1 - c0))|${hwm:-0}|${rss0:-0}|$kind" >>"$ROWS"
    say "$(printf '%-22s c=%-5s %10s ops/s' "$label" "$clients" "$(json "$out" ops_per_s)")"
}

T="-t $SECS"
if [ "$QUICK" = 1 ]; then
    run_row daemon "pairs unix" 1 -a "$SOCK" -m pairs -c 1 $T
    run_row daemon "ping unix" 1 -a "$SOCK" -m ping -c 1 $T
    run_row daemon "hot unix" 16 -a "$SOCK" -m hot -c 16 $T
    run_row direct "direct" 1 -m direct -M "$MASTERS" -c 1 $T
else
    for c in 1 16 64 256; do
        run_row daemon "pairs unix" $c -a "$SOCK" -m pairs -c $c $T
    done
    run_row daemon "ping unix" 1 -a "$SOCK" -m ping -c 1 $T
    run_row daemon "pairs tcp" 1 -a "127.0.0.1:$DPORT" -m pairs -c 1 $T
    run_row daemon "pairs tcp" 64 -a "127.0.0.1:$DPORT" -m pairs -c 64 $T
    run_row daemon "pairs unix -d16" 64 -a "$SOCK" -m pairs -c 64 -d 16 $T
    for c in 16 64; do
        run_row daemon "hot unix" $c -a "$SOCK" -m hot -c $c -W 10000 $T
    done
    run_row direct "direct" 1 -m direct -M "$MASTERS" -c 1 $T
    run_row direct "direct" 64 -m direct -M "$MASTERS" -c 64 $T
    if [ "$MEMORY" = 1 ]; then
        nofile=$(ulimit -n)
        if [ "$nofile" != unlimited ] && [ "$nofile" -lt 10100 ]; then
            say "skipping the 10k idle connections row: ulimit -n is $nofile"
        else
            restart_daemon
            run_row memory "idle conns" 10000 -a "$SOCK" -m idle -c 10000 -t 2
        fi
        restart_daemon
        run_row memory "held locks" 100000 -a "$SOCK" -m hold -c 100 -d 1000 -H 5000 -T 60000 -t 6 -w 0 -r 3000
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
wait_quiet
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

# ---- Targets (issue 4) -------------------------------------------------------------------
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
m=$(row_field "idle conns" 10000 5); [ -n "$m" ] && check "10,000 idle connections: peak RSS" "$(awk -v v="$m" 'BEGIN {printf "%.1f", v / 1024}')" "<=" 30 "MB"
m=$(row_field "held locks" 100000 5); [ -n "$m" ] && check "$(json "$(row_json "held locks" 100000)" held_max) held locks: peak RSS" "$(awk -v v="$m" 'BEGIN {printf "%.1f", v / 1024}')" "<=" 64 "MB"
echo "redlockd cpu over all rows: $(awk -F'|' -v hz="$HZ" '{t += $4} END {printf "%.2f", t / hz}' "$ROWS") s"

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
