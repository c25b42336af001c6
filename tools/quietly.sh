#!/bin/sh
# Runs a command with its output held back: one line "LABEL: ok" when it
# succeeds, its full output when it fails (or always under V=1). Layer: build
# tooling (make test's build step); uses only POSIX sh.
# Usage: V=0|1 sh tools/quietly.sh LABEL COMMAND [ARGS...]
label=$1; shift
if [ "${V:-0}" = 1 ]; then exec "$@"; fi
log=$(mktemp); trap 'rm -f "$log"' EXIT
if "$@" >"$log" 2>&1; then
    n=$(grep -c '^  \(CC\|LINK\) ' "$log")
    w=$(grep -c 'warning:' "$log")
    msg="$label: ok"
    [ "$n" -eq 0 ] || msg="$msg ($n compiled)"
    [ "$w" -eq 0 ] || msg="$msg, $w warnings (V=1 shows them)"
    echo "$msg"
else
    rc=$?
    cat "$log"
    echo "$label: failed (exit $rc)"
    exit $rc
fi
