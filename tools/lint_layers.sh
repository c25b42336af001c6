#!/bin/sh
# lint_layers.sh: checks the #include lines of engine/ against the layer map
# (DESIGN.md section 1): no lua.h below engine/bind and engine/host, and no
# engine area including a header of an area above or beside it.
# Layer: tools (POSIX sh + awk; run by `make lint`). Usage: tools/lint_layers.sh [ROOT]
root=${1:-.}
cd "$root" || exit 2

# Which area each public header (engine/include/mh/NAME.h) belongs to. A new
# header must be added here: the check fails on a header it cannot place.
headers='
base      err dtype cpu threadpool membw storage chan mapguard fs
kernels   kernels quant quant_repack float_gemm
net       loop http fetch work
core      tensor
formats   gguf gguf_write safetensors
tokenizer tokenizer
model     model quantize create convert kv_state
sample    sample grammar
sched     sched
train     train
'

# What each area may use: the areas below it. Arrows point down only, so an
# area never uses one beside it (sched and train; kernels and net). The
# formats (GGUF, safetensors) live in engine/model but sit below the
# tokenizer, which reads vocabularies from GGUF; create.c writes models
# with a tokenizer's vocabulary, so model sits above tokenizer.
uses='
base
kernels   base
net       base
core      base kernels
formats   base kernels core
tokenizer base kernels core formats
model     base kernels core formats tokenizer
sample    base kernels core formats tokenizer model
sched     base kernels core formats tokenizer model sample
train     base kernels core formats tokenizer model
'

# Known violations waiting on another change, as "FILE HEADER" lines; each
# must still occur (a stale line fails too, so the list only shrinks).
allowed='
'

# engine/ gets both checks; the C elsewhere (tests, benchmarks, fuzz
# targets) only the lua.h one
files=$(find engine tests bench fuzz -name '*.[ch]' 2>/dev/null | sort)
# shellcheck disable=SC2086
awk -v headers="$headers" -v uses="$uses" -v allowed="$allowed" '
BEGIN {
    n = split(headers, L, "\n")
    for (i = 1; i <= n; i++) { k = split(L[i], w, " "); for (j = 2; j <= k; j++) area_of["mh/" w[j] ".h"] = w[1] }
    n = split(uses, L, "\n")
    for (i = 1; i <= n; i++) { k = split(L[i], w, " "); if (k) { known[w[1]] = 1; for (j = 2; j <= k; j++) may[w[1], w[j]] = 1 } }
    n = split(allowed, L, "\n")
    for (i = 1; i <= n; i++) { k = split(L[i], w, " "); if (k == 2) { waiver[w[1], w[2]] = 1; waivers[w[1] " " w[2]] = 1 } }
    bad = 0
}
function fail(msg) { printf "lint: %s:%d: %s\n", FILENAME, FNR, msg; bad = 1 }
FNR == 1 {
    split(FILENAME, p, "/")
    top = p[2]                                   # engine/<top>/...
    outside = p[1] != "engine"
    if (outside) self = ""
    else if (top == "include") { self = area_of["mh/" p[4]]; if (self == "") { self = "?"; fail("header " p[4] " is in no area of tools/lint_layers.sh") } }
    else self = top
    glue = (top == "bind" || top == "host")     # above every engine area
    if (p[1] == "fuzz") glue = 1                 # fuzz targets embed a Lua state, as the host does
}
/^[ \t]*#[ \t]*include[ \t]*[<"]/ {
    line = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*/, "", line)
    q = substr(line, 1, 1)
    name = substr(line, 2)
    e = index(name, q == "<" ? ">" : "\"")
    if (e) name = substr(name, 1, e - 1)
    if (name ~ /^(lua|lauxlib|lualib|luaconf)\.h$/ || name ~ /\/(lua|lauxlib|lualib|luaconf)\.h$/) {
        if (!glue) fail("includes " name ": only engine/bind and engine/host may include Lua headers")
        next
    }
    if (glue || outside || q == "<") next
    if (name ~ /^mh\//) {
        to = area_of[name]
        if (to == "") { fail(name " is in no area of tools/lint_layers.sh (add it to the map)"); next }
        if (to == self || may[self, to]) next
        if (waiver[FILENAME, name]) { used[FILENAME " " name] = 1; next }
        fail(self " includes " name " (" to "): " (self in known ? self " may use only the areas below it:" listuses(self) : "unknown area"))
        next
    }
    if (name ~ /\//) fail("includes " name ": a private header of another area (use its mh/ header)")
}
function listuses(a,   b, s) { s = ""; for (b in known) if (may[a, b]) s = s " " b; return s }
END {
    for (wv in waivers) if (!(wv in used)) { printf "lint: tools/lint_layers.sh: waiver \"%s\" no longer matches: delete it\n", wv; bad = 1 }
    exit bad
}' $files
