#!/bin/sh
# make_arch_fixtures.sh: regenerates tests/fixtures/arch/*.json, the reference
# logits test_arch checks the engine against. Layer: tests/tools (developer
# tool, not run by CI). Run from the repository root after `make`: it writes
# the tiny random-weight models with `moonhub create` into a temp dir (never
# committed), then
#  - ref_torch.py (float64 PyTorch, Debian python3-torch) for every preset;
#  - with LLAMACPP_REF=path/to/llamacpp_ref (tests/tools/llamacpp_ref.c built
#    against llama.cpp c392e5094), llama.cpp's own logits for the
#    architectures that llama.cpp runs (*-llamacpp.json).
# ONLY="tiny-a tiny-b" limits it to those presets.
set -eu
want() { [ -z "${ONLY:-}" ] || case " $ONLY " in *" $1 "*) ;; *) return 1 ;; esac; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=tests/fixtures/arch
mkdir -p "$out"
model() {   # preset type -> $tmp/preset-type.gguf, $tmp/preset.json
    ./moonhub run tests/tools/preset_json.lua "$1" > "$tmp/$1.json"
    # a neutral general.name: llama.cpp's vocab loader looks up a phi-3
    # special token the built-in byte vocabulary lacks when the name says phi3
    ./build/moonhub create --preset "$1" --type "$2" --seed 1 -q --name moonhub-tiny \
        --out "$tmp/$1-$2.gguf" > /dev/null
}
torch() {   # preset type n_ctx suffix
    want "$1" || return 0
    model "$1" "$2"
    cmd="moonhub create --preset $1 --type $2 --seed 1 --name moonhub-tiny; tests/tools/ref_torch.py MODEL CONFIG OUT --n-ctx $3"
    /usr/bin/python3 tests/tools/ref_torch.py "$tmp/$1-$2.gguf" "$tmp/$1.json" \
        "$out/$1-$2$4.json" --n-ctx "$3" --command "$cmd"
    echo "wrote $out/$1-$2$4.json"
}
llamacpp() {   # preset type n_ctx suffix
    want "$1" || return 0
    model "$1" "$2"
    cmd="moonhub create --preset $1 --type $2 --seed 1 --name moonhub-tiny; llamacpp_ref MODEL $3 16 TOKENS"
    /usr/bin/python3 tests/tools/ref_llamacpp.py "$LLAMACPP_REF" "$tmp/$1-$2.gguf" "$tmp/$1.json" \
        "$out/$1-$2$4-llamacpp.json" "$3" c392e5094 "$cmd"
    echo "wrote $out/$1-$2$4-llamacpp.json"
}
for p in tiny-qwen3 tiny-gemma2 tiny-gemma3 tiny-phi3 tiny-llama3 tiny-llama-linear tiny-llama-yarn \
         tiny-mistral-swa; do
    for t in F32 F16 Q8_0; do torch "$p" "$t" 512 ""; done
done
torch tiny-phi3 F32 128 -short   # cache within the trained context: the short factors
if [ -n "${LLAMACPP_REF:-}" ]; then
    # llama.cpp c392e5094 runs gemma2, phi3 and llama rope scaling (llama3,
    # linear, yarn); it ignores
    # sliding_window for llama/mistral and predates qwen3 and gemma3
    for p in tiny-gemma2 tiny-phi3 tiny-llama3 tiny-llama-linear tiny-llama-yarn; do
        for t in F16 Q8_0; do llamacpp "$p" "$t" 512 ""; done
    done
    llamacpp tiny-phi3 F16 128 -short
    # one k-quant file (rows must be 256-multiples, so the wider tiny-phi3-k)
    llamacpp tiny-phi3-k Q4_K_M 512 ""
    # mixture of experts: Mixtral (llama with experts) and qwen2moe
    for p in tiny-mixtral tiny-qwen2moe; do
        for t in F16 Q8_0; do llamacpp "$p" "$t" 512 ""; done
    done
fi
