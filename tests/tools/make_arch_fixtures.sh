#!/bin/sh
# make_arch_fixtures.sh: regenerates tests/fixtures/arch/*.json, the float64
# reference logits test_arch checks the engine against. Layer: tests/tools
# (developer tool, not run by CI; needs Debian's python3-torch). Run from the
# repository root after `make`: it writes the tiny random-weight models with
# `moonhub create` into a temp dir (never committed) and runs ref_torch.py.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=tests/fixtures/arch
mkdir -p "$out"
gen() {   # preset type n_ctx suffix
    p=$1 t=$2 n=$3 sfx=$4
    ./moonhub run tests/tools/preset_json.lua "$p" > "$tmp/$p.json"
    ./build/moonhub create --preset "$p" --type "$t" --seed 1 -q --out "$tmp/$p-$t.gguf" > /dev/null
    cmd="moonhub create --preset $p --type $t --seed 1; tests/tools/ref_torch.py MODEL CONFIG OUT --n-ctx $n"
    /usr/bin/python3 tests/tools/ref_torch.py "$tmp/$p-$t.gguf" "$tmp/$p.json" \
        "$out/$p-$t$sfx.json" --n-ctx "$n" --command "$cmd"
    echo "wrote $out/$p-$t$sfx.json"
}
for p in tiny-qwen3 tiny-gemma2 tiny-gemma3 tiny-phi3 tiny-llama3 tiny-llama-linear tiny-mistral-swa; do
    for t in F32 F16 Q8_0; do gen "$p" "$t" 512 ""; done
done
gen tiny-phi3 F32 128 -short   # cache within the trained context: the short factors
