#!/bin/sh
# End-to-end tests with the official OpenAI and Anthropic Node SDKs: npm ci
# (pinned by package-lock.json), start `./moonhub serve` on a free port, run
# the *.test.mjs suites one after the other (outputs compared across requests
# stay free of batching effects) with node's test runner, stop the server.
# Usage: sh tests/e2e/run.sh (from anywhere). Prints "N passed, N failed"
# last, like tests/run.sh. node and npm are dependencies (deps/debian.txt,
# installed by make test). Without them or the model it prints
# "0 passed, 0 failed, 1 skipped" and exits 0, or fails under
# MOONHUB_REQUIRE_TEST_DATA=1, where every need must be met.
cd "$(dirname "$0")/../.." || exit 1
e2e=tests/e2e
data=${MOONHUB_TEST_DATA:-../shared}
model=$data/models/mh-smol-llama-17m-Q8_0.gguf
key=e2e-test-key

fail() { echo "e2e: $1"; echo "0 passed, 1 failed"; exit 1; }
need() {   # the shell form of the skip helper: skip, or fail when required
    [ "${MOONHUB_REQUIRE_TEST_DATA:-}" = 1 ] && fail "required: $1"
    echo "e2e: skipped: $1"; echo "0 passed, 0 failed, 1 skipped"; exit 0
}

command -v node >/dev/null 2>&1 || need "node is not installed (sh deps/install.sh)"
command -v npm >/dev/null 2>&1 || need "npm is not installed (sh deps/install.sh)"
[ -f "$model" ] || need "test data not found: $model (set MOONHUB_TEST_DATA)"
[ -x ./moonhub ] || fail "./moonhub is not built (run make)"

# npm ci only when node_modules is missing or older than the lock file
if [ ! -f $e2e/node_modules/.package-lock.json ] || [ $e2e/package-lock.json -nt $e2e/node_modules/.package-lock.json ]; then
    # its output only when it fails
    npmlog=$(mktemp)
    (cd $e2e && npm ci --no-audit --no-fund --loglevel=error) >"$npmlog" 2>&1 ||
        { cat "$npmlog"; rm -f "$npmlog"; fail "npm ci failed"; }
    rm -f "$npmlog"
fi

tmp=$(mktemp -d)
pid=""
pid2=""
stop_server() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$1" 2>/dev/null
}
cleanup() {
    stop_server "$pid"
    stop_server "$pid2"
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# wait_ready OUTFILE PID -> the server's base URL on stdout (up to 60 s for
# its "ready at" line), empty when it did not start
wait_ready() {
    b=""
    i=0
    while [ -z "$b" ] && [ $i -lt 600 ]; do
        kill -0 "$2" 2>/dev/null || break
        b=$(sed -n 's/^moonhub serve: .* ready at \(http:[^ ]*\) .*/\1/p' "$1")
        [ -n "$b" ] || sleep 0.1
        i=$((i + 1))
    done
    echo "$b"
}

# The files exist before the server starts: the background job opens its
# redirections itself, so the polling sed below could otherwise run first.
: >"$tmp/out"; : >"$tmp/err"
MOONHUB_HOME=$tmp ./moonhub serve --model "$model" --port 0 --parallel 2 --ctx 1024 --threads 1 \
    --api-key $key >"$tmp/out" 2>"$tmp/err" &
pid=$!
base=$(wait_ready "$tmp/out" $pid)
[ -n "$base" ] || { cat "$tmp/err"; fail "moonhub serve did not start"; }

# encoder embeddings (bert, issue 19) through the SDK: a tiny bert file
# moonhub create writes, on a second server of its own
mkdir -p "$tmp/bert"
./moonhub create --preset tiny-bert --type Q8_0 --seed 1 -q --out "$tmp/bert/tiny-bert.gguf" >/dev/null 2>&1 ||
    fail "moonhub create --preset tiny-bert failed"
: >"$tmp/out2"; : >"$tmp/err2"
MOONHUB_HOME=$tmp/bert ./moonhub serve --model "$tmp/bert/tiny-bert.gguf" --port 0 --threads 1 \
    --api-key $key >"$tmp/out2" 2>"$tmp/err2" &
pid2=$!
bert_base=$(wait_ready "$tmp/out2" $pid2)
[ -n "$bert_base" ] || { cat "$tmp/err2"; fail "moonhub serve (tiny-bert) did not start"; }

MOONHUB_BASE_URL=$base MOONHUB_BERT_URL=$bert_base MOONHUB_API_KEY=$key node --test --test-concurrency=1 \
    --test-reporter=tap $e2e/openai.test.mjs $e2e/responses.test.mjs $e2e/messages.test.mjs \
    $e2e/batch.test.mjs $e2e/embed.test.mjs >"$tmp/tap" 2>&1
rc=$?
cat "$tmp/tap"
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tmp/tap" | tail -n 1)
failn=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tmp/tap" | tail -n 1)
pass=${pass:-0}; failn=${failn:-0}
[ $rc -eq 0 ] || [ "$failn" -gt 0 ] || failn=1       # node failed without a summary
echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
