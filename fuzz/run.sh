#!/bin/sh
# run.sh BUILD SECONDS [TARGET...]: runs each libFuzzer target in BUILD/fuzz
# for SECONDS with its seed corpus (fuzz/corpus/<target> plus seeds made from
# the shared models and vectors by fuzz/seeds.lua), then prints inputs/s and
# executions per target. Exits non-zero on any report (crash, sanitizer,
# leak, timeout, out-of-memory, harness finding); the input that triggered
# it is kept under BUILD/fuzz/artifacts/. Layer: fuzz (make fuzz, .ci/run).
set -u
build=$1; secs=$2; shift 2
root=$(pwd)
export MOONHUB_LUA_ROOT="$root"
export MOONHUB_TEST_DATA="${MOONHUB_TEST_DATA:-$(cd .. && pwd)/shared}"
export MOONHUB_HOME="${MOONHUB_HOME:-$(mktemp -d)}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
targets=${*:-$(cd "$build/fuzz" && ls fuzz_* | grep -v '\.' )}
work=$(mktemp -d /tmp/mh-fuzz-run.XXXXXX)
arts="$build/fuzz/artifacts"
mkdir -p "$arts"
if ! ./moonhub run fuzz/seeds.lua "$work/seeds"; then
    echo "fuzz: cannot make the seed corpora (is ./moonhub built and ../shared there?)"; exit 2
fi
summary="$build/fuzz/summary.txt"
printf '%-22s %10s %12s %s\n' target "inputs/s" executions result > "$summary"
fail=0
for t in $targets; do
    name=${t#fuzz_}
    corpus="$work/corpus-$name"
    mkdir -p "$corpus"
    [ -d "fuzz/corpus/$name" ] && cp fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
    [ -d "$work/seeds/$name" ] && cp "$work/seeds/$name"/* "$corpus"/ 2>/dev/null
    log="$build/fuzz/$t.log"
    echo "fuzz: $t for ${secs}s"
    "$build/fuzz/$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -max_len=1400000 \
        -print_final_stats=1 -artifact_prefix="$arts/$t-" "$corpus" > "$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    result=ok
    if [ $rc -ne 0 ]; then
        result="FAILED (rc $rc, see $log)"; fail=1
        grep -m 30 -E 'ERROR|SUMMARY|runtime error|finding|Test unit written' "$log"
    fi
    printf '%-22s %10s %12s %s\n' "$t" "${rate:-?}" "${execs:-?}" "$result" >> "$summary"
done
rm -rf "$work"
cat "$summary"
exit $fail
