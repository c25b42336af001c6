#!/bin/sh
# lint_sizes.sh: no source file over 800 lines (engine/, lua/, recipes/,
# fuzz/, tests/c) and no C function over 80 lines, signature to closing
# brace (STYLE.md "Files and names"; issue 12's acceptance).
# Layer: tools (POSIX sh + awk; run by `make lint`). Usage: tools/lint_sizes.sh [ROOT]
root=${1:-.}
cd "$root" || exit 2

MAX_FILE=800
MAX_FUNC=80

# C functions that were over MAX_FUNC lines at 29fb5ee, when the rule became
# a check, as "FILE FUNCTION" lines. None were. The list may only shrink: a
# waiver that no longer matches a long function fails, so a split function
# cannot grow back unseen.
waivers='
'

status=0
# shellcheck disable=SC2046
long=$(find engine lua recipes fuzz tests/c -type f \( -name '*.c' -o -name '*.h' -o -name '*.lua' \) 2>/dev/null \
       | sort | xargs -r wc -l | awk -v max="$MAX_FILE" '$2 != "total" && $1 > max { print $2 " has " $1 " lines" }')
if [ -n "$long" ]; then
    echo "$long" | sed "s/^/lint: /; s/\$/ (at most $MAX_FILE: split it)/"
    status=1
fi

files=$(find engine fuzz tests/c -type f -name '*.[ch]' 2>/dev/null | sort)
[ -n "$files" ] || exit $status
# shellcheck disable=SC2086
awk -v max="$MAX_FUNC" -v waivers="$waivers" '
BEGIN {
    n = split(waivers, L, "\n")
    for (i = 1; i <= n; i++) if (split(L[i], w, " ") == 2) waived[w[1] " " w[2]] = 1
    bad = 0
}
# A C function is a "{" at file scope after a declaration ending in ")":
# comments, strings and preprocessor lines are blanked first, so braces in
# them do not count. Its length runs from the first line of the declaration
# to the "}" that closes it.
FNR == 1 { depth = 0; sig = ""; sigline = 0; incom = 0; fstart = 0; inpp = 0 }
{
    s = $0; code = ""
    while (s != "") {
        if (incom) {
            k = index(s, "*/")
            if (!k) { s = ""; break }
            s = substr(s, k + 2); incom = 0; continue
        }
        if (!match(s, /\/\*|\/\/|"|\047/)) { code = code s; break }
        code = code substr(s, 1, RSTART - 1)
        tok = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
        if (tok == "/*") { incom = 1; code = code " " }
        else if (tok == "//") s = ""
        else {                                   # a literal: skip to its closing quote
            while (s != "") {
                c = substr(s, 1, 1)
                if (c == "\\") { s = substr(s, 3); continue }
                s = substr(s, 2)
                if (c == tok) break
            }
            code = code "x"
        }
    }
    if (inpp || code ~ /^[ \t]*#/) { inpp = ($0 ~ /\\$/); next }
    # a macro call at file scope ends without ";": a new line at column 0
    # after a complete ")" starts a new declaration
    if (depth == 0 && code ~ /^[A-Za-z_]/) { t = sig; sub(/[ \t]+$/, "", t); if (t ~ /\)$/) { sig = ""; sigline = 0 } }
    n = length(code)
    for (i = 1; i <= n; i++) {
        c = substr(code, i, 1)
        if (c == "{") {
            if (depth == 0) start_body()
            depth++
        } else if (c == "}") {
            if (--depth == 0) {
                if (fstart) check(FNR - fstart + 1)
                fstart = 0; sig = ""; sigline = 0
            }
        } else if (depth == 0) {
            if (c == ";") { sig = ""; sigline = 0; continue }
            if (sig == "" && c !~ /[ \t]/) sigline = FNR
            if (sigline) sig = sig c
        }
    }
    if (depth == 0 && sigline) sig = sig " "
}
# the name: the identifier before the last parenthesised group (the
# parameters); KNAME(add)(...) gives the macro name
function start_body(   t, j, p, ch, head) {
    fstart = 0
    t = sig; sub(/[ \t]+$/, "", t)
    if (t !~ /\)$/ || t ~ /=/) return
    p = 0
    for (j = length(t); j > 0; j--) {
        ch = substr(t, j, 1)
        if (ch == ")") p++
        else if (ch == "(" && --p == 0) break
    }
    head = substr(t, 1, j - 1); sub(/[ \t]+$/, "", head)
    if (head ~ /\)$/) { sub(/\([^()]*\)$/, "", head); sub(/[ \t]+$/, "", head) }
    if (match(head, /[A-Za-z_][A-Za-z0-9_]*$/)) { fname = substr(head, RSTART); fstart = sigline }
}
function check(len,   key) {
    if (len <= max) return
    key = FILENAME " " fname
    if (key in waived) { used[key] = 1; return }
    printf "lint: %s:%d: %s() has %d lines (at most %d: split it)\n", FILENAME, fstart, fname, len, max
    bad = 1
}
END {
    for (k in waived) if (!(k in used)) {
        printf "lint: tools/lint_sizes.sh: waiver \"%s\" no longer matches a function over %d lines: delete it\n", k, max
        bad = 1
    }
    exit bad
}' $files || status=1
exit $status
