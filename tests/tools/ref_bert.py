#!/usr/bin/env python3
# ref_bert.py: runs llama.cpp's llama-embedding on one encoder GGUF and
# writes the JSON fixture test_bert.c reads (tokens llama.cpp made of each
# text, its pooled L2-normalized embeddings of all texts in one batch, and
# the unpooled final states of the first text). Layer: tests/tools
# (developer tool, run by make_bert_fixtures.sh; not by CI).
import json, re, subprocess, sys

def run(exe, model, texts, extra):
    cmd = [exe, "-m", model, "-p", "\n".join(texts), "-t", "1", "-c", "64", "-b", "64", "-ub", "64",
           "--embd-output-format", "json", "--verbose-prompt", "--no-warmup"] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    # the counts and the token lines go to different streams: pair them up
    lines = p.stderr.splitlines() + p.stdout.splitlines()
    counts = [int(m.group(1)) for m in (re.search(r"number of tokens in prompt = (\d+)", l) for l in lines) if m]
    ids = [int(m.group(1)) for m in (re.match(r"^\s+(\d+) -> '", l) for l in lines) if m]
    assert sum(counts) == len(ids), (counts, len(ids))
    toks, k = [], 0
    for c in counts:
        toks.append(ids[k:k + c])
        k += c
    out = p.stdout[p.stdout.index("{"):]
    data = json.loads(out)["data"]
    return toks, [d["embedding"] for d in data]

def main():
    exe, model, preset_json, out, name, command = sys.argv[1:7]
    texts = [
        "Hello world, the quick brown fox jumps over the lazy dog.",
        "A cat sat on the mat",
        "Embedding search: query vs. document (river bank, money bank)!",
        "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u00fcn\u00efcode",
        "x",
    ]
    toks, pooled = run(exe, model, texts, [])
    _, states = run(exe, model, texts[:1], ["--pooling", "none", "--embd-normalize", "-1"])
    cfg = json.load(open(preset_json))
    fx = {
        "magic": "moonhub-bert-ref", "version": 1, "model": name, "config": cfg,
        "reference": "llama.cpp c392e5094 llama-embedding (CPU, 1 thread, -c/-b/-ub 64, "
                     "pooling and normalisation from the file; hidden: --pooling none "
                     "--embd-normalize -1)",
        "command": command, "texts": texts, "tokens": toks,
        "embeddings": [[round(v, 7) for v in e] for e in pooled],
        "hidden": [[round(v, 6) for v in e] for e in states],
    }
    assert len(toks) == len(texts) and len(pooled) == len(texts), (len(toks), len(pooled))
    assert len(states) == len(toks[0]), (len(states), [len(x) for x in toks])
    with open(out, "w") as f:
        json.dump(fx, f, separators=(",", ":"))
        f.write("\n")

main()
