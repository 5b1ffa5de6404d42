#!/bin/sh
# check_install.sh - `make install` into a temporary DESTDIR with PREFIX=/usr,
# then build a small C program against the installed header and redlock.pc
# (found through PKG_CONFIG_LIBDIR/PKG_CONFIG_SYSROOT_DIR inside DESTDIR),
# link it with the shared and with the static library, and run both. Also
# checks the installed layout, the soname, the path substitution in the
# systemd units, that an edited config survives a re-install and an
# uninstall, that the man pages format without warnings and redlockd.ini(5)
# documents every key of the example config, and that
# `make uninstall` removes every file it installed.
#
# Usage: [BUILD=build] [MAKE=make] [CC=cc] sh tests/integration/check_install.sh
# Needs the build done (make BUILD=... all). Prints check's summary line and
# "1 passed, 0 failed" (or "0 passed, 1 failed") and exits 0 (or 1).

set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
CC=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
dest=$tmp/root

pass() {
    echo "100%: Checks: 1, Failures: 0, Errors: 0"
    echo "1 passed, 0 failed"
    exit 0
}
fail() {
    echo "check_install: FAIL: $*"
    echo "0%: Checks: 1, Failures: 1, Errors: 0"
    echo "0 passed, 1 failed"
    exit 1
}
run_make() { # target, log file
    $MAKE --no-print-directory -s BUILD="$BUILD" PREFIX=/usr DESTDIR="$dest" "$1" >"$2" 2>&1 ||
        { cat "$2"; fail "make $1 (PREFIX=/usr DESTDIR=$dest)"; }
}

# ---- Install ---------------------------------------------------------------
run_make install "$tmp/install.log"
for f in usr/bin/redlock usr/sbin/redlockd usr/lib/libredlock.a usr/lib/libredlock.so.1 \
         usr/include/redlock.h usr/lib/pkgconfig/redlock.pc usr/share/man/man1/redlock.1 \
         usr/share/man/man5/redlockd.ini.5 usr/share/man/man8/redlockd.8 \
         etc/redlockd/redlockd.ini usr/lib/systemd/system/redlockd.service \
         usr/lib/systemd/system/redlockd.socket usr/lib/sysusers.d/redlockd.conf; do
    [ -f "$dest/$f" ] || fail "not installed: $f"
done
[ -x "$dest/usr/bin/redlock" ] && [ -x "$dest/usr/sbin/redlockd" ] || fail "binaries not executable"
[ "$(readlink "$dest/usr/lib/libredlock.so")" = libredlock.so.1 ] ||
    fail "libredlock.so is not a symlink to libredlock.so.1"
if command -v readelf >/dev/null 2>&1; then
    readelf -d "$dest/usr/lib/libredlock.so.1" | grep -q 'SONAME.*\[libredlock\.so\.1\]' ||
        fail "libredlock.so.1 has no soname libredlock.so.1"
fi
"$dest/usr/sbin/redlockd" -V | grep -q '^redlockd [0-9]' || fail "installed redlockd -V"

unit=$dest/usr/lib/systemd/system/redlockd.service
grep -qx 'ExecStart=/usr/sbin/redlockd -c /etc/redlockd/redlockd.ini' "$unit" ||
    fail "ExecStart not rewritten for PREFIX=/usr: $(grep '^ExecStart=' "$unit")"
! cat "$unit" "$dest/usr/lib/systemd/system/redlockd.socket" | grep -v '^#' | grep -q /usr/local ||
    fail "a unit still names /usr/local"
grep -qx 'prefix=/usr' "$dest/usr/lib/pkgconfig/redlock.pc" || fail "redlock.pc prefix"

# ---- Man pages format cleanly ----------------------------------------------
if command -v groff >/dev/null 2>&1; then
    for m in "$dest"/usr/share/man/man*/*; do
        w=$(LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$m" 2>&1) || fail "groff failed on $m"
        [ -z "$w" ] || fail "groff warnings on $m: $w"
    done
fi

# ---- redlockd.ini(5) documents every key of the example config -------------
# "section.key" for every key of the example, and for every key in the man page
# (a ".BR key " = "" line under a '.SH "[section] SECTION"' heading).
ini_keys=$(awk '/^\[[a-z_]+\]/ { sec = substr($0, 2, index($0, "]") - 2) }
    /^[a-z_]+ *=/ { k = $0; sub(/ *=.*/, "", k); print sec "." k }' "$dest/etc/redlockd/redlockd.ini")
man_keys=$(awk '/^\.SH "\[[a-z_]+\] SECTION"/ { sec = $2; gsub(/[^a-z_]/, "", sec) }
    /^\.SH/ && !/SECTION"/ { sec = "" }
    sec != "" && /^\.BR [a-z_]+ " = "/ { print sec "." $2 }' "$dest/usr/share/man/man5/redlockd.ini.5")
[ -n "$ini_keys" ] || fail "no keys found in the installed redlockd.ini"
for k in $ini_keys; do
    echo "$man_keys" | grep -qx "$k" || fail "redlockd.ini(5) does not document the key $k"
done

# ---- A program built against the installed header and pkg-config file ------
cat >"$tmp/prog.c" <<'EOF'
#include <redlock.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    char err[256] = "";
    if (argc != 2) return 10;
    if (strcmp(redlock_status_name(REDLOCK_ERR_BUSY), "BUSY") != 0) return 11;
    /* Nobody listens there: the connect must fail gracefully, saying why. */
    struct redlock_client *c = redlock_connect(argv[1], err, sizeof err);
    if (c != NULL) {
        redlock_close(c);
        return 12;
    }
    if (err[0] == '\0') return 13;
    printf("libredlock %s: connect failed as expected: %s\n", REDLOCK_LIB_VERSION, err);
    return 0;
}
EOF

PKG_CONFIG_PATH=
PKG_CONFIG_LIBDIR=$dest/usr/lib/pkgconfig
PKG_CONFIG_SYSROOT_DIR=$dest
PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1
PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_ALLOW_SYSTEM_CFLAGS \
    PKG_CONFIG_ALLOW_SYSTEM_LIBS
pkg-config --exists redlock || fail "pkg-config does not find redlock.pc in DESTDIR"
[ "$(pkg-config --modversion redlock)" = "$(sed -n 's/^#define REDLOCK_LIB_VERSION "\(.*\)"/\1/p' client-lib/redlock.h)" ] ||
    fail "redlock.pc version differs from REDLOCK_LIB_VERSION"
cflags=$(pkg-config --cflags redlock) || fail "pkg-config --cflags"
libs=$(pkg-config --libs redlock) || fail "pkg-config --libs"
case "$cflags" in *"-I$dest/usr/include"*) ;; *) fail "cflags '$cflags' do not point into DESTDIR" ;; esac
case "$libs" in *"-L$dest/usr/lib"*"-lredlock"*) ;; *) fail "libs '$libs' do not point into DESTDIR" ;; esac

# A sanitizer build's library needs the sanitizer runtimes at link time.
san=
if nm "$BUILD/libredlock.a" 2>/dev/null | grep -q __asan_; then san="-fsanitize=address,undefined"; fi

# shellcheck disable=SC2086 # word splitting of the flags is intended
$CC -std=c11 -Wall -Wextra -Werror $san $cflags "$tmp/prog.c" -o "$tmp/prog_shared" $libs \
    >"$tmp/cc1.log" 2>&1 || { cat "$tmp/cc1.log"; fail "compiling against the shared library"; }
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror $san $cflags "$tmp/prog.c" -o "$tmp/prog_static" \
    $(pkg-config --libs-only-L redlock) -Wl,-Bstatic -lredlock -Wl,-Bdynamic \
    >"$tmp/cc2.log" 2>&1 || { cat "$tmp/cc2.log"; fail "linking statically"; }

nosock=$tmp/no-daemon-here.sock
LD_LIBRARY_PATH=$dest/usr/lib ldd "$tmp/prog_shared" | grep -q "libredlock.so.1 => $dest/usr/lib/" ||
    fail "prog_shared does not load the installed libredlock.so.1"
LD_LIBRARY_PATH=$dest/usr/lib "$tmp/prog_shared" "$nosock" || fail "prog_shared exited $?"
! ldd "$tmp/prog_static" | grep -q libredlock || fail "prog_static needs libredlock.so"
"$tmp/prog_static" "$nosock" || fail "prog_static exited $?"

# ---- An edited config survives re-install and uninstall --------------------
conf=$dest/etc/redlockd/redlockd.ini
echo "; edited by the administrator" >>"$conf"
run_make install "$tmp/install2.log"
tail -n 1 "$conf" | grep -q 'edited by the administrator' || fail "re-install overwrote an edited config"
[ -f "$conf.example" ] || fail "re-install did not put the new example next to the edited config"

# ---- Uninstall removes every installed file --------------------------------
run_make uninstall "$tmp/uninstall.log"
left=$(cd "$dest" && find . \( -type f -o -type l \) ! -path ./etc/redlockd/redlockd.ini | sort)
[ -z "$left" ] || fail "uninstall left: $left"
[ -f "$conf" ] || fail "uninstall removed an edited config"
rm -f "$conf"
run_make install "$tmp/install3.log"
run_make uninstall "$tmp/uninstall2.log"
[ ! -e "$conf" ] || fail "uninstall kept an unedited config"

pass
