#!/usr/bin/python3
"""gen_train_reference.py: writes tests/fixtures/train_reference.bin (the
safetensors format; .bin because .gitignore drops *.safetensors): the PyTorch
(float64 autograd) loss and gradients of one training step of a tiny llama,
which tests/c/test_train_ref.c compares against moonhub's trainer.
Layer: maintainer tool (Debian python3-torch); tests never run it.

Usage: /usr/bin/python3 tests/tools/gen_train_reference.py [OUT]

The model follows moonhub's llama semantics on GGUF tensors as stored:
weights W (out, in) used as x @ W.T, interleaved RoPE on pairs (2i, 2i+1) of
each head (GGUF's q/k row order), GQA head h -> kv head h // (H / Hkv),
RMSNorm x / sqrt(mean(x^2) + eps) * w, SwiGLU FFN, tied output (the
embedding), position i predicts token i+1 where mask[b, i+1] != 0, loss = mean
cross-entropy. Two cases: full training (gradient of every tensor) and LoRA
(rank 4, alpha 8, all seven projections, no dropout) on top of the same base.
Weights are drawn from a seeded torch.Generator and rounded to float32 (the
values stored and given to moonhub); the math then runs in float64.
"""
import json
import struct
import sys

import torch

SEED = 20240601
CFG = dict(n_layer=2, n_embd=32, n_head=4, n_head_kv=2, n_ff=64, n_vocab=259,
           batch=2, seq=16, rope_base=10000.0, rms_eps=1e-5, lora_rank=4, lora_alpha=8.0)
TARGETS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def shapes(c):
    """(name, shape) of every tensor in moonhub's trainer order: GGUF names, (rows, cols)."""
    E, F, V = c["n_embd"], c["n_ff"], c["n_vocab"]
    kv = E // c["n_head"] * c["n_head_kv"]
    out = [("token_embd.weight", (V, E)), ("output_norm.weight", (E,))]
    for l in range(c["n_layer"]):
        p = "blk.%d." % l
        out += [(p + "attn_norm.weight", (E,)), (p + "attn_q.weight", (E, E)),
                (p + "attn_k.weight", (kv, E)), (p + "attn_v.weight", (kv, E)),
                (p + "attn_output.weight", (E, E)), (p + "ffn_norm.weight", (E,)),
                (p + "ffn_gate.weight", (F, E)), (p + "ffn_up.weight", (F, E)),
                (p + "ffn_down.weight", (E, F))]
    return out


def draw(gen, shape, name):
    """float32-rounded values, returned as float64: norms ~ 1 + 0.2 N, embedding
    0.3 N, matrices 0.2 N (big enough for peaked, position-dependent attention)."""
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    if name.endswith("norm.weight"):
        x = 1.0 + 0.2 * x
    else:
        x = x * (0.3 if name == "token_embd.weight" else 0.2)
    return x.float().double()


def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, n_heads, base):
    """Interleaved RoPE: x (B, T, n_heads*hd); pairs (2i, 2i+1) turn by t * base^(-2i/hd)."""
    B, T, _ = x.shape
    hd = x.shape[-1] // n_heads
    x = x.view(B, T, n_heads, hd // 2, 2)
    inv = base ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]     # (T, hd/2)
    c, s = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    x0, x1 = x[..., 0], x[..., 1]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), -1).view(B, T, n_heads * hd)


def attention(q, k, v, H, Hkv):
    B, T, _ = q.shape
    hd = q.shape[-1] // H
    q = q.view(B, T, H, hd).transpose(1, 2)                  # (B, H, T, hd)
    k = k.view(B, T, Hkv, hd).transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
    v = v.view(B, T, Hkv, hd).transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
    s = q @ k.transpose(-1, -2) / hd ** 0.5
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    p = torch.softmax(s.masked_fill(~causal, float("-inf")), -1)
    return (p @ v).transpose(1, 2).reshape(B, T, H * hd)


def forward(c, W, tokens, mask, lora=None):
    """Mean cross-entropy over counted predictions; lora: {name: (A, B)}, scale alpha/r."""
    scale = c["lora_alpha"] / c["lora_rank"]

    def lin(x, name):
        y = x @ W[name].T
        if lora and name in lora:
            a, b = lora[name]
            y = y + scale * (x @ a.T) @ b.T
        return y

    x = W["token_embd.weight"][tokens]                         # (B, T, E)
    for l in range(c["n_layer"]):
        p = "blk.%d." % l
        xn = rmsnorm(x, W[p + "attn_norm.weight"], c["rms_eps"])
        q = rope(lin(xn, p + "attn_q.weight"), c["n_head"], c["rope_base"])
        k = rope(lin(xn, p + "attn_k.weight"), c["n_head_kv"], c["rope_base"])
        v = lin(xn, p + "attn_v.weight")
        x = x + lin(attention(q, k, v, c["n_head"], c["n_head_kv"]), p + "attn_output.weight")
        xn = rmsnorm(x, W[p + "ffn_norm.weight"], c["rms_eps"])
        h = torch.nn.functional.silu(lin(xn, p + "ffn_gate.weight")) * lin(xn, p + "ffn_up.weight")
        x = x + lin(h, p + "ffn_down.weight")
    x = rmsnorm(x, W["output_norm.weight"], c["rms_eps"])
    logits = x @ W["token_embd.weight"].T                      # tied output
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                           tokens[:, 1:].reshape(-1), reduction="none")
    wt = mask[:, 1:].reshape(-1).double()
    return (ce * wt).sum() / wt.sum()


def save_safetensors(path, tensors, meta):
    """Minimal safetensors writer: F32 / I32 / U8 tensors, string metadata."""
    codes = {torch.float32: "F32", torch.int32: "I32", torch.uint8: "U8"}
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors:
        b = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/train_reference.bin"
    c = CFG
    gen = torch.Generator().manual_seed(SEED)
    W = {n: draw(gen, s, n).requires_grad_() for n, s in shapes(c)}
    B, T, V = c["batch"], c["seq"], c["n_vocab"]
    tokens = torch.randint(0, V, (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.uint8)
    mask[0, :4] = 0            # a prompt: positions 1..3 are not predicted
    mask[1, T - 3:] = 0        # a padded tail
    loss = forward(c, W, tokens, mask)
    loss.backward()

    lora, r = {}, c["lora_rank"]
    for l in range(c["n_layer"]):
        for t in TARGETS:
            name = "blk.%d.%s.weight" % (l, t)
            rows, cols = W[name].shape
            a = (torch.randn(r, cols, generator=gen, dtype=torch.float64) / cols ** 0.5).float().double()
            b = (0.1 * torch.randn(rows, r, generator=gen, dtype=torch.float64)).float().double()
            lora[name] = (a.requires_grad_(), b.requires_grad_())
    base = {n: w.detach() for n, w in W.items()}
    lora_loss = forward(c, base, tokens, mask, lora)
    lora_loss.backward()

    ts = [("tokens", tokens.int()), ("mask", mask)]
    for n, w in W.items():
        ts += [("full.w." + n, w.detach().float()), ("full.g." + n, w.grad.float())]
    for n, (a, b) in lora.items():
        for suffix, p in ((".lora_a", a), (".lora_b", b)):
            ts += [("lora.w." + n + suffix, p.detach().float()), ("lora.g." + n + suffix, p.grad.float())]
    meta = {k: repr(v) for k, v in c.items()}
    meta.update(full_loss=repr(loss.item()), lora_loss=repr(lora_loss.item()), seed=str(SEED),
                generator="tests/tools/gen_train_reference.py, torch " + torch.__version__ + ", float64")
    save_safetensors(out, ts, meta)
    print("wrote %s: full loss %.12f, lora loss %.12f, %d tensors" % (out, loss.item(), lora_loss.item(), len(ts)))


if __name__ == "__main__":
    main()
