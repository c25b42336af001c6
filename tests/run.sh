#!/bin/sh
# Runs the C unit tests (each prints "N passed, N failed" last) and the
# busted specs (inside the moonhub host), then prints one combined line
# "N passed, N failed, N skipped" (a skip is a need that was not met; under
# MOONHUB_REQUIRE_TEST_DATA=1 an unmet need is a failure instead).
# Usage: tests/run.sh BUILD_DIR [c|lua]   (default: both, then tests/e2e). Exit 1 on any failure.
build=${1:-build}
which=${2:-all}
passed=0; failed=0; skipped=0; bad=""
out=$(mktemp); trap 'rm -f "$out"' EXIT

count() {  # add "N passed, N failed[, N skipped]" from the last matching line of $out
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    if [ -z "$line" ]; then failed=$((failed + 1)); bad="$bad $1(no-summary)"; return; fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    k=$(echo "$line" | sed -n -E 's/^.* failed, ([0-9]+) skipped.*/\1/p')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${k:-0}))
    [ "$f" -eq 0 ] || bad="$bad $1"
}

if [ "$which" != lua ]; then
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        echo "== $t"
        "$t" >"$out" 2>&1; rc=$?
        cat "$out"
        count "$(basename "$t")"
        [ $rc -eq 0 ] || case "$bad" in *"$(basename "$t")"*) ;; *) failed=$((failed + 1)); bad="$bad $(basename "$t")(rc=$rc)";; esac
    done
fi

if [ "$which" != c ]; then
    echo "== busted tests/spec"
    ./moonhub run tests/run_busted.lua -o tests/summary_handler.lua ${BUSTED_ARGS:-} tests/spec >"$out" 2>&1; rc=$?
    cat "$out"
    count busted
    [ $rc -eq 0 ] || case "$bad" in *busted*) ;; *) failed=$((failed + 1)); bad="$bad busted(rc=$rc)";; esac
fi

if [ "$which" = all ]; then    # OpenAI Node SDK end to end (node/npm come from deps/debian.txt)
    echo "== e2e tests/e2e"
    sh tests/e2e/run.sh >"$out" 2>&1; rc=$?
    cat "$out"
    count e2e
    [ $rc -eq 0 ] || case "$bad" in *e2e*) ;; *) failed=$((failed + 1)); bad="$bad e2e(rc=$rc)";; esac
fi

[ -z "$bad" ] || echo "failing:$bad"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
