#!/bin/sh
# End-to-end tests of the Ollama API with the official ollama npm client
# (ollama-js, pinned by tests/e2e/ollama/package-lock.json): npm ci when
# needed, a temporary registry holding the shared smol model, the fake Hub
# (tests/helpers/fake_hub.lua) for pulls, `./moonhub serve` on a free port
# with an API key, then ollama/ollama.test.mjs under node's test runner.
# Prints "N passed, N failed" last; skips (or fails under
# MOONHUB_REQUIRE_TEST_DATA=1) without node, npm or the model, as run.sh.
cd "$(dirname "$0")/../.." || exit 1
dir=tests/e2e/ollama
data=${MOONHUB_TEST_DATA:-../shared}
model=$data/models/mh-smol-llama-17m-Q8_0.gguf
pullable=$data/models/stories260K-Q8_0.gguf
key=e2e-ollama-key

fail() { echo "e2e-ollama: $1"; echo "0 passed, 1 failed"; exit 1; }
need() {
    [ "${MOONHUB_REQUIRE_TEST_DATA:-}" = 1 ] && fail "required: $1"
    echo "e2e-ollama: skipped: $1"; echo "0 passed, 0 failed, 1 skipped"; exit 0
}

command -v node >/dev/null 2>&1 || need "node is not installed (sh deps/install.sh)"
command -v npm >/dev/null 2>&1 || need "npm is not installed (sh deps/install.sh)"
[ -f "$model" ] || need "test data not found: $model (set MOONHUB_TEST_DATA)"
[ -f "$pullable" ] || need "test data not found: $pullable (set MOONHUB_TEST_DATA)"
[ -x ./moonhub ] || fail "./moonhub is not built (run make)"

# npm ci only when node_modules is missing or older than the lock file
if [ ! -f $dir/node_modules/.package-lock.json ] || [ $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]; then
    npmlog=$(mktemp)
    (cd $dir && npm ci --no-audit --no-fund --loglevel=error) >"$npmlog" 2>&1 ||
        { cat "$npmlog"; rm -f "$npmlog"; fail "npm ci failed"; }
    rm -f "$npmlog"
fi

tmp=$(mktemp -d)
pid=""; hubpid=""
stop() {   # TERM, up to 5 s, then KILL
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$1" 2>/dev/null
}
cleanup() { stop "$pid"; stop "$hubpid"; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

MOONHUB_HOME=$tmp ./moonhub import "$model" --name smol >"$tmp/import" 2>&1 || { cat "$tmp/import"; fail "import failed"; }

# the fake Hub: one GGUF repo to pull from
abs_pullable=$(cd "$(dirname "$pullable")" && pwd)/$(basename "$pullable")
cat >"$tmp/hub.json" <<JSON
{"repos": {"mh/stories-GGUF": {"files": {"stories260K-Q8_0.gguf": "$abs_pullable"}}},
 "log": "$tmp/hub-log.jsonl", "lifetime": 280}
JSON
: >"$tmp/hub.port"
./moonhub run tests/helpers/fake_hub.lua "$tmp/hub.json" >"$tmp/hub.port" 2>"$tmp/hub.err" &
hubpid=$!
hubport=""
i=0
while [ -z "$hubport" ] && [ $i -lt 600 ]; do
    hubport=$(sed -n '1s/^\([0-9][0-9]*\)$/\1/p' "$tmp/hub.port")
    [ -n "$hubport" ] || sleep 0.1
    i=$((i + 1))
done
[ -n "$hubport" ] || { cat "$tmp/hub.err"; fail "the fake hub did not start"; }

: >"$tmp/out"; : >"$tmp/err"
env -u HF_TOKEN -u HF_HOME MOONHUB_HOME="$tmp" MOONHUB_HF_ENDPOINT="http://127.0.0.1:$hubport" \
    HF_HUB_CACHE="$tmp/hf-cache" ./moonhub serve --port 0 --ctx 512 --threads 1 --api-key $key \
    >"$tmp/out" 2>"$tmp/err" &
pid=$!
base=""
i=0
while [ -z "$base" ] && [ $i -lt 600 ]; do        # up to 60 s for the "ready at" line
    kill -0 "$pid" 2>/dev/null || break
    base=$(sed -n 's/^moonhub serve: .*ready at \(http:[^ ]*\)\/v1 .*/\1/p' "$tmp/out")
    [ -n "$base" ] || sleep 0.1
    i=$((i + 1))
done
[ -n "$base" ] || { cat "$tmp/err"; fail "moonhub serve did not start"; }

MOONHUB_BASE_URL=$base MOONHUB_API_KEY=$key node --test --test-reporter=tap $dir/ollama.test.mjs >"$tmp/tap" 2>&1
rc=$?
cat "$tmp/tap"
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tmp/tap" | tail -n 1)
failn=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tmp/tap" | tail -n 1)
pass=${pass:-0}; failn=${failn:-0}
[ $rc -eq 0 ] || [ "$failn" -gt 0 ] || failn=1       # node failed without a summary
[ "$failn" -eq 0 ] || { echo "== server log"; tail -n 30 "$tmp/err"; }
echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
