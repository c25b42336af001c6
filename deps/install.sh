#!/bin/sh
# Installs the Debian packages in deps/debian.txt that dpkg says are missing.
# Idempotent: with everything present it installs nothing and needs no root.
set -eu
list="$(dirname "$0")/debian.txt"
# Names that installed packages provide count as present too (NodeSource's
# nodejs provides npm, and conflicts with Debian's).
provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
    sed -n 's/^ii *|//p' | tr ',' '\n' | sed 's/(.*//; s/ //g' | grep . || true)
missing=""
for p in $(grep -v '^#' "$list" | tr -s ' \t' '\n' | grep .); do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"ok installed"*) continue ;; esac
    printf '%s\n' "$provided" | grep -qx "$p" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# apt's own output only when it fails (V=1: always)
tmplog=$(mktemp); trap 'rm -f "$tmplog"' EXIT
log=$tmplog
if [ "${V:-0}" = 1 ]; then log=/dev/stdout; fi
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
    [ "$log" = /dev/stdout ] || cat "$log"
    echo "deps: apt-get failed for$missing"
    exit 1
fi
echo "deps: installed$missing"
