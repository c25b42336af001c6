#!/bin/sh
# make_bert_fixtures.sh: regenerates tests/fixtures/bert/*.json, llama.cpp's
# embeddings of the tiny encoder presets that test_bert checks the engine
# against. Layer: tests/tools (developer tool, not run by CI). Run from the
# repository root after `make`, with LLAMA_EMBEDDING=path/to/llama-embedding
# (llama.cpp c392e5094 built with its tools). The models are written with
# `moonhub create` into a temp dir (never committed); test_bert rebuilds them
# from the recorded preset, byte for byte (same seed).
set -eu
: "${LLAMA_EMBEDDING:?set LLAMA_EMBEDDING to llama.cpp c392e5094's llama-embedding}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=tests/fixtures/bert
mkdir -p "$out"
for p in tiny-bert tiny-nomic-bert; do
    ./moonhub run tests/tools/preset_json.lua "$p" > "$tmp/$p.json"
    for t in F16 Q8_0; do
        ./build/moonhub create --preset "$p" --type "$t" --seed 1 -q --name moonhub-tiny \
            --out "$tmp/$p-$t.gguf" > /dev/null
        cmd="moonhub create --preset $p --type $t --seed 1 --name moonhub-tiny; llama-embedding -m MODEL -p TEXTS -t 1 -c 64 -b 64 -ub 64 --embd-output-format json --verbose-prompt (and --pooling none --embd-normalize -1 for hidden)"
        /usr/bin/python3 tests/tools/ref_bert.py "$LLAMA_EMBEDDING" "$tmp/$p-$t.gguf" "$tmp/$p.json" \
            "$out/$p-$t.json" "$p-$t.gguf" "$cmd"
        echo "wrote $out/$p-$t.json"
    done
done
