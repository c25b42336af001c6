#!/bin/sh
# tools/mutate.sh: `make mutate`. Plants each mutation of tools/mutations.txt
# one at a time in a scratch copy of this tree (under /tmp; the tree itself
# is never touched), rebuilds incrementally, runs that mutation's tests and
# prints KILLED or SURVIVED. Not part of make test or CI: a habit, run after
# writing tests (docs/testing.md). Exit 1 when any mutation survived or did
# not apply. Usage: sh tools/mutate.sh [NAME_SUBSTRING]   (from the repo root)
set -u
cd "$(dirname "$0")/.." || exit 1
list=tools/mutations.txt
only=${1:-}
root=$(pwd)
data=${MOONHUB_TEST_DATA:-$root/../shared}
case "$data" in /*) ;; *) data=$root/$data ;; esac
scratch=$(mktemp -d /tmp/mh-mutate.XXXXXX)
trap 'rm -rf "$scratch"' EXIT INT TERM

echo "mutate: copying the tree and its build to $scratch"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -a -t "$scratch" 2>/dev/null
[ -d build ] && cp -a build "$scratch/"
[ -d tests/e2e/node_modules ] && cp -a tests/e2e/node_modules "$scratch/tests/e2e/"
cd "$scratch" || exit 1
ln -sf build/moonhub moonhub
echo "mutate: baseline build (make all: moonhub and the C tests)"
nice -n 10 make -s -j2 all >/dev/null 2>"$scratch/.build.err" || { cat "$scratch/.build.err"; echo "mutate: the unmutated tree does not build"; exit 1; }

killed=0; survived=0; broken=0; names_s=""; names_b=""
while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    name=$(printf '%s' "$line" | awk -F' \\|\\|\\| ' '{print $1}')
    [ -n "$only" ] && case "$name" in *"$only"*) ;; *) continue ;; esac
    file=$(printf '%s' "$line" | awk -F' \\|\\|\\| ' '{print $2}')
    old=$(printf '%s' "$line" | awk -F' \\|\\|\\| ' '{print $3}')
    new=$(printf '%s' "$line" | awk -F' \\|\\|\\| ' '{print $4}')
    cmd=$(printf '%s' "$line" | awk -F' \\|\\|\\| ' '{print $5}')
    cp -p "$file" "$scratch/.orig"
    n=$(OLD="$old" perl -0ne '$n = () = /\Q$ENV{OLD}\E/g; print $n' "$file")
    if [ "$n" != 1 ]; then
        echo "NOT APPLIED  $name: the text occurs $n times in $file (update tools/mutations.txt)"
        broken=$((broken + 1)); names_b="$names_b $name"; continue
    fi
    OLD="$old" NEW="$new" perl -0pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$file"
    if ! nice -n 10 make -s -j2 all >"$scratch/.log" 2>&1; then
        verdict=KILLED; why="(does not build)"
    elif MOONHUB_TEST_DATA=$data timeout 900 sh -c "$cmd" >"$scratch/.log" 2>&1; then
        verdict=SURVIVED; why=""
    else
        verdict=KILLED; why=""
    fi
    cp "$scratch/.orig" "$file"; touch "$file"     # newer than its object: rebuilt next time
    if [ $verdict = KILLED ]; then killed=$((killed + 1))
    else survived=$((survived + 1)); names_s="$names_s $name"; fi
    printf '%-9s %-28s %s %s\n' "$verdict" "$name" "$file" "$why"
done <"$list"

echo "mutate: $killed killed, $survived survived, $broken not applied"
[ -z "$names_s" ] || echo "survived:$names_s"
[ -z "$names_b" ] || echo "not applied:$names_b"
[ $survived -eq 0 ] && [ $broken -eq 0 ]
