#!/bin/sh
# check_deb.sh - the Debian packages as a user gets them: lintian finds no
# error or warning, they install with apt on this machine, the static user and
# group redlockd exist, the installed daemon runs as that user and serves a
# member of the group on its Unix socket, the installed CLI locks through it,
# a C program builds against libredlock-dev (pkg-config) and runs, and the
# shared library exports only redlock_* symbols. Removes the packages at the
# end. Needs root (apt-get install, runuser); CI runs it through
# `make check-deb`.
#
# Usage: sh tests/integration/check_deb.sh DEB_DIR
# Prints check's summary line and "N passed, M failed".

set -u
cd "$(dirname "$0")/../.." || exit 1
debdir=${1:?usage: check_deb.sh DEB_DIR}
case $debdir in /*) ;; *) debdir=$(pwd)/$debdir ;; esac

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "check_deb: ok: $*"; }
bad() { failed=$((failed + 1)); echo "check_deb: FAIL: $*"; }
finish() {
    total=$((passed + failed))
    echo "$(( total ? 100 * passed / total : 0 ))%: Checks: $total, Failures: $failed, Errors: 0"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

[ "$(id -u)" = 0 ] || { bad "must run as root (installs packages)"; finish; }

tmp=$(mktemp -d /tmp/check_deb.XXXXXX) || exit 1
chmod 0755 "$tmp"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null
    done
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq redlockd libredlock1 libredlock-dev \
        >/dev/null 2>&1
    userdel deb-client >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for SECONDS CMD...: run CMD until it succeeds or the deadline passes.
wait_for() {
    limit=$(( $1 * 10 )); shift
    i=0
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -ge "$limit" ] && return 1
        sleep 0.1
    done
}

# ---- lintian -----------------------------------------------------------------
set -- "$debdir"/redlockd_*.deb "$debdir"/libredlock1_*.deb "$debdir"/libredlock-dev_*.deb
for f in "$@"; do [ -f "$f" ] || { bad "no package $f (run make deb)"; finish; }; done
if command -v lintian >/dev/null; then
    lintian --allow-root --fail-on error,warning "$debdir"/*.changes >"$tmp/lintian" 2>&1 &&
        ok "lintian: no errors or warnings" || { cat "$tmp/lintian"; bad "lintian"; }
else
    bad "lintian is not installed"
fi

# ---- install -------------------------------------------------------------------
if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$tmp/apt" 2>&1; then
    ok "packages install"
else
    cat "$tmp/apt"; bad "apt-get install"; finish
fi
getent passwd redlockd >/dev/null && getent group redlockd >/dev/null &&
    ok "static user and group redlockd exist" || bad "no user or group redlockd"
[ -f /etc/redlockd/redlockd.ini ] && dpkg-query -W -f='${Conffiles}' redlockd |
    grep -q /etc/redlockd/redlockd.ini && ok "redlockd.ini is a conffile" || bad "conffile"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/redlockd.socket /lib/systemd/system/redlockd.service \
        >"$tmp/verify" 2>&1 && ok "units verify" || { cat "$tmp/verify"; bad "systemd-analyze verify"; }
fi
exported=$(nm -D --defined-only /usr/lib/*/libredlock.so.1 | awk '{print $3}' | grep -v '^REDLOCK_1' |
    grep -cv '^redlock_')
[ "$exported" = 0 ] && ok "libredlock.so.1 exports only redlock_*" ||
    bad "libredlock.so.1 exports $exported symbols besides redlock_*"

# ---- a C program against libredlock-dev --------------------------------------------
cat >"$tmp/prog.c" <<'EOF'
#include <redlock.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    char err[256];
    struct redlock_client *c = redlock_connect(argc > 1 ? argv[1] : NULL, err, sizeof err);
    if (c == NULL) { fprintf(stderr, "connect: %s\n", err); return 1; }
    int rc = redlock_ping(c);
    redlock_close(c);
    return rc == 0 ? 0 : 2;
}
EOF
cc -o "$tmp/prog" "$tmp/prog.c" $(pkg-config --cflags --libs redlock) 2>"$tmp/cc" &&
    ok "a program builds with pkg-config redlock" || { cat "$tmp/cc"; bad "build against libredlock-dev"; }

# ---- the installed daemon, as user redlockd, on three masters --------------------------
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
masters=""
for i in 1 2 3; do
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp" --logfile "$tmp/redis$i.log" --daemonize no &
    pids="$pids $!"
    wait_for 10 redis-cli -p "$port" ping || bad "redis-server on $port did not start"
    masters="${masters:+$masters, }127.0.0.1:$port"
done
mkdir -p "$tmp/run" && chown redlockd:redlockd "$tmp/run" && chmod 0755 "$tmp/run"
cat >"$tmp/redlockd.ini" <<EOF
[server]
listen =
unix_socket = $tmp/run/redlockd.sock
unix_socket_mode = 0660
[redis]
masters = $masters
EOF
chmod 0644 "$tmp/redlockd.ini"
runuser -u redlockd -- /usr/sbin/redlockd -c "$tmp/redlockd.ini" 2>"$tmp/redlockd.log" &
pids="$pids $!"
sock=$tmp/run/redlockd.sock
if wait_for 15 redlock -a "$sock" ping; then
    ok "installed redlockd answers as user redlockd"
else
    cat "$tmp/redlockd.log"; bad "installed redlockd did not answer"; finish
fi
[ "$(stat -c %U:%G:%a "$sock")" = redlockd:redlockd:660 ] && ok "socket is redlockd:redlockd 0660" ||
    bad "socket is $(stat -c %U:%G:%a "$sock")"

# A member of the group may lock; anyone else may not.
useradd -M -N -s /usr/sbin/nologin deb-client 2>/dev/null
runuser -u deb-client -- redlock -a "$sock" ping >/dev/null 2>&1 &&
    bad "a user outside the group reached the socket" || ok "a user outside the group is refused"
usermod -aG redlockd deb-client
out=$(runuser -u deb-client -- redlock -a "$sock" acquire deb:smoke -t 5000 --detach 2>&1)
id=${out%% *}
if [ -n "$id" ] && runuser -u deb-client -- redlock -a "$sock" release "$id" >/dev/null 2>&1; then
    ok "a member of group redlockd acquires and releases"
else
    echo "$out"; bad "acquire/release as a group member"
fi
runuser -u deb-client -- "$tmp/prog" "$sock" && ok "the C program pings the installed daemon" ||
    bad "the C program against the installed daemon"
finish
