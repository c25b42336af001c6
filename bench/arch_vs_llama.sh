#!/bin/sh
# arch_vs_llama.sh: pp512/tg128 of one ~60-110M-parameter Q8_0 file per
# architecture (bench/arch/*.json, `moonhub create --config`), moonhub bench
# and llama-bench interleaved (A B A B), load average before each run.
# Layer: bench (figures, never a test). Run from the repository root after make.
# Usage: bench/arch_vs_llama.sh LLAMA_BENCH [THREADS] (llama.cpp c392e5094)
set -eu
lb=$1
t=${2:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for a in gemma2 phi3 mixtral llama3 mistral-swa qwen3 gemma3; do
    # a neutral general.name: llama.cpp's vocab loader wants a phi-3 special
    # token the built-in byte vocabulary lacks when the name says phi3
    f=$tmp/$a-Q8_0.gguf
    ./build/moonhub create --config "bench/arch/$a.json" --type Q8_0 --seed 1 -q \
        --name moonhub-bench --out "$f" > /dev/null
    for round in 1 2; do
        echo "== $a round $round moonhub $(uptime)"
        ./build/moonhub bench "$f" -p 512 -n 128 -r 2 -t "$t" -q | grep -E 'pp512|tg128'
        case $a in qwen3|gemma3) continue ;; esac   # newer than llama.cpp c392e5094
        echo "== $a round $round llama-bench $(uptime)"
        "$lb" -m "$f" -p 512 -n 128 -r 2 -t "$t" | grep -E 'pp512|tg128'
    done
done
