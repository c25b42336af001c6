#!/bin/sh
# The web UI's browser tests: npm ci (playwright-core, pinned by
# package-lock.json; no browser download: Debian's chromium runs headless),
# then every tests/browser/*.test.mjs under node's test runner, one file at a
# time (each starts its own server and browser through lib.mjs). Prints
# "N passed, N failed, N skipped" last, like tests/run.sh. Without node, npm
# or chromium it skips, or fails under MOONHUB_REQUIRE_TEST_DATA=1.
# Usage: sh tests/browser/run.sh [FILE.test.mjs...] (from anywhere).
cd "$(dirname "$0")/../.." || exit 1
dir=tests/browser

fail() { echo "browser: $1"; echo "0 passed, 1 failed"; exit 1; }
need() {
    [ "${MOONHUB_REQUIRE_TEST_DATA:-}" = 1 ] && fail "required: $1"
    echo "browser: skipped: $1"; echo "0 passed, 0 failed, 1 skipped"; exit 0
}

command -v node >/dev/null 2>&1 || need "node is not installed (sh deps/install.sh)"
command -v npm >/dev/null 2>&1 || need "npm is not installed (sh deps/install.sh)"
[ -x "${MOONHUB_CHROMIUM:-/usr/bin/chromium}" ] || need "chromium is not installed (sh deps/install.sh)"
[ -x ./moonhub ] || fail "./moonhub is not built (run make)"

# npm ci only when node_modules is missing or older than the lock file;
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing anyway
if [ ! -f $dir/node_modules/.package-lock.json ] || [ $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]; then
    npmlog=$(mktemp)
    (cd $dir && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >"$npmlog" 2>&1 ||
        { cat "$npmlog"; rm -f "$npmlog"; fail "npm ci failed"; }
    rm -f "$npmlog"
fi

if [ $# -gt 0 ]; then files="$*"; else files=$(ls $dir/*.test.mjs 2>/dev/null); fi
[ -n "$files" ] || fail "no test files in $dir"
tap=$(mktemp); trap 'rm -f "$tap"' EXIT
# shellcheck disable=SC2086  # a word list of files
node --test --test-concurrency=1 --test-reporter=tap $files >"$tap" 2>&1
rc=$?
cat "$tap"
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
failn=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
skip=$(sed -n 's/^# skipped \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
pass=${pass:-0}; failn=${failn:-0}; skip=${skip:-0}
[ $rc -eq 0 ] || [ "$failn" -gt 0 ] || failn=1       # node failed without a summary
echo "$pass passed, $failn failed, $skip skipped"
[ "$failn" -eq 0 ]
