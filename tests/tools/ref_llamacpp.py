#!/usr/bin/python3
# ref_llamacpp.py: turns llamacpp_ref's output (llama.cpp's logits for the
# fixture prompt and its greedy steps) into a test_arch fixture, the same JSON
# as ref_torch.py writes. Layer: tests/tools (developer tool; numpy only).
# Usage: ref_llamacpp.py LLAMACPP_REF MODEL.gguf CONFIG.json OUT.json N_CTX COMMIT COMMAND
import json
import subprocess
import sys

import numpy as np

# the prompt ref_torch.py uses: BOS, then "The quick brown fox jumps" as byte tokens
IDS = [1] + [b + 3 for b in b"The quick brown fox jumps"]
STEPS = 16


def top(row, k=20):
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
    return [[i, float("%.6g" % row[i])] for i in order]


def main(argv):
    exe, model, cfg_path, out, n_ctx, commit, command = argv[1:8]
    res = subprocess.run([exe, model, n_ctx, str(STEPS)] + [str(i) for i in IDS],
                         capture_output=True, text=True, check=True)
    pos, greedy, margins = [], [], []
    for line in res.stdout.splitlines():
        f = line.split()
        x = np.array([float(v) for v in f[2:]])
        if f[0] == "P":
            pos.append(x)
        elif f[0] == "G":
            s = np.sort(x)[::-1]
            greedy.append(int(f[1]))
            margins.append(float("%.6g" % (s[0] - s[1])))
    with open(cfg_path) as fh:
        cfg = json.load(fh)
    fx = {
        "magic": "moonhub-arch-ref", "version": 1,
        "model": model.rsplit("/", 1)[-1], "config": cfg, "n_ctx": int(n_ctx),
        "reference": "llama.cpp " + commit + " (CPU, GGML_NATIVE, 1 thread, F16 K/V, "
                     "n_ctx = n_batch = n_ubatch, no flash attention) via tests/tools/llamacpp_ref.c",
        "command": command,
        "tokens": IDS,
        "top20_per_position": [top(r.tolist()) for r in pos],
        "last_logits": [float("%.6g" % v) for v in pos[-1].tolist()],
        "greedy": {"ids": greedy, "top1_top2_margins": margins},
    }
    with open(out, "w") as fh:
        json.dump(fx, fh, separators=(",", ":"))
        fh.write("\n")


if __name__ == "__main__":
    main(sys.argv)
