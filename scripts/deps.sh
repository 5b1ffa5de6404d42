#!/bin/sh
# Install the Debian packages redlockd needs to build and test, if missing.
# As root this runs apt-get; otherwise it prints the command to run.
PKGS="build-essential pkg-config libhiredis-dev libevent-dev libinih-dev check redis-server python3 python3-venv python3-setuptools python3-mypy nodejs node-typescript valgrind"
# The client tests pack and install the Node client with npm: Debian's nodejs
# does not bring it (other builds of nodejs do).
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
# `deps.sh deb`: what `make deb` needs on top (dpkg-buildpackage, lintian).
DEB_PKGS="debhelper dpkg-dev fakeroot lintian"
[ "${1:-}" = deb ] && PKGS="$PKGS $DEB_PKGS"
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
