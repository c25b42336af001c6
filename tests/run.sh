#!/bin/sh
# Runs the C unit tests (each prints "N passed, N failed" last), the busted
# specs (inside the moonhub host), tests/e2e and tests/browser, one line per suite with its
# counts, then one combined line "N passed, N failed, N skipped" (a skip is a
# need that was not met; under MOONHUB_REQUIRE_TEST_DATA=1 an unmet need is a
# failure instead). A failing suite's full output is printed; V=1 prints all.
# Usage: tests/run.sh BUILD_DIR [c|lua|pg]   (default: all, then pg and tests/e2e). Exit 1 on any failure.
build=${1:-build}
which=${2:-all}
verbose=${V:-0}
passed=0; failed=0; skipped=0; bad=""
out=$(mktemp); trap 'rm -f "$out"' EXIT
sp=0; sf=0; sk=0    # the counts of the last suite (or program) read by count

count() {  # add "N passed, N failed[, N skipped]" from the last matching line of $out
    sp=0; sf=0; sk=0
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    if [ -z "$line" ]; then sf=1; failed=$((failed + 1)); bad="$bad $1(no-summary)"; return 1; fi
    sp=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    sf=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    sk=$(echo "$line" | sed -n -E 's/^.* failed, ([0-9]+) skipped.*/\1/p'); sk=${sk:-0}
    passed=$((passed + sp)); failed=$((failed + sf)); skipped=$((skipped + sk))
    [ "$sf" -eq 0 ] || { bad="$bad $1"; return 1; }
}

# run NAME CMD...: run one suite into $out; on failure (or V=1) print its output.
# Returns 0 when it passed.
run() {
    name=$1; shift
    [ "$verbose" = 1 ] && echo "== $name"
    "$@" >"$out" 2>&1; rc=$?
    ok=0
    count "$name" || ok=1
    if [ $rc -ne 0 ] && [ $ok -eq 0 ]; then
        failed=$((failed + 1)); bad="$bad $name(rc=$rc)"; sf=$((sf + 1)); ok=1
    fi
    if [ "$verbose" = 1 ] || [ $ok -ne 0 ]; then
        [ "$verbose" = 1 ] || echo "== $name failed; its output:"
        cat "$out"
    fi
    return $ok
}

say() {  # one suite's line: NAME: N passed, N failed, N skipped [extra]
    printf '%-7s %s passed, %s failed, %s skipped%s\n' "$1:" "$2" "$3" "$4" "${5:-}"
}

if [ "$which" = all ] || [ "$which" = c ]; then
    n=0; cp=0; cf=0; ck=0
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        n=$((n + 1))
        run "$(basename "$t")" "$t"
        cp=$((cp + sp)); cf=$((cf + sf)); ck=$((ck + sk))
    done
    say c "$cp" "$cf" "$ck" " ($n programs)"
fi

if [ "$which" = all ] || [ "$which" = lua ]; then
    # shellcheck disable=SC2086  # BUSTED_ARGS is a word list on purpose
    run busted ./moonhub run tests/run_busted.lua -o tests/summary_handler.lua ${BUSTED_ARGS:-} tests/spec
    say busted "$sp" "$sf" "$sk"
fi

# The same specs again on PostgreSQL: tests/helpers/pg.lua starts a throwaway
# server (initdb/pg_ctl in a temp folder) and gives every temp home a schema.
PG_SPECS="tests/spec/registry_spec.lua tests/spec/registry tests/spec/data/data_spec.lua
    tests/spec/data/cli_spec.lua tests/spec/data/routes_spec.lua tests/spec/jobs tests/spec/history
    tests/spec/db/pg_spec.lua tests/spec/db/postgres_spec.lua"
if [ "$which" = all ] || [ "$which" = pg ]; then
    # shellcheck disable=SC2086  # PG_SPECS is a word list on purpose
    run pg ./moonhub run tests/helpers/pg.lua $PG_SPECS
    why=$(sed -n 's/^pg: skipped: /: /p' "$out" | head -n 1)
    say pg "$sp" "$sf" "$sk" "$why"
fi

if [ "$which" = all ]; then    # OpenAI Node SDK end to end (node/npm come from deps/debian.txt)
    run e2e sh tests/e2e/run.sh
    why=$(sed -n 's/^e2e: skipped: /: /p' "$out" | head -n 1)
    say e2e "$sp" "$sf" "$sk" "$why"
    run e2e-ollama sh tests/e2e/ollama.sh     # Ollama's API through the ollama npm client
    why=$(sed -n 's/^e2e-ollama: skipped: /: /p' "$out" | head -n 1)
    say ollama "$sp" "$sf" "$sk" "$why"
    run browser sh tests/browser/run.sh       # the web UI in Debian's chromium (playwright-core)
    why=$(sed -n 's/^browser: skipped: /: /p' "$out" | head -n 1)
    say browser "$sp" "$sf" "$sk" "$why"
fi

[ -z "$bad" ] || echo "failing:$bad"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
