#!/usr/bin/python3
"""bench_train_torch.py: the PyTorch CPU side of `moonhub bench train`: trains
a llama of the given shape (LoRA on q,k,v,o or full) for a few steps on random
tokens with AdamW and clipping, as moonhub's trainer does, and prints one JSON
line: tokens/s, seconds per step, peak RSS. Layer: maintainer tool (Debian
python3-torch), run by lua/moonhub/bench_train.lua; tests never run it.

Usage: /usr/bin/python3 tests/tools/bench_train_torch.py --case lora|full
       --layers N --embd E --ff F --heads H --kv-heads K --vocab V [--untied]
       [--seq 256] [--batch 4] [--steps 3] [--threads 2] [--rank 8]
"""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F


class Lin(torch.nn.Module):
    """y = x W^T (+ alpha/r * x A^T B^T when the layer has an adapter); W (out, in)."""

    def __init__(self, n_in, n_out, rank, train_base):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n_out, n_in) * 0.02, requires_grad=train_base)
        self.a = self.b = None
        if rank:
            self.a = torch.nn.Parameter(torch.empty(rank, n_in).uniform_(-n_in ** -0.5, n_in ** -0.5))
            self.b = torch.nn.Parameter(torch.zeros(n_out, rank))
            self.scale = 2.0      # alpha 16 / rank 8, moonhub's defaults

    def forward(self, x):
        y = x @ self.w.t()
        if self.a is not None:
            y = y + self.scale * ((x @ self.a.t()) @ self.b.t())
        return y


class RMSNorm(torch.nn.Module):
    def __init__(self, n, train):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(n), requires_grad=train)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.w


def rope(x, cos, sin):
    """HF's rotate_half RoPE. x (B, H, T, hd); cos, sin (T, hd)."""
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), -1)
    return x * cos + rot * sin


class Block(torch.nn.Module):
    def __init__(self, a, lora, full):
        super().__init__()
        E, kv = a.embd, a.embd // a.heads * a.kv_heads
        r = a.rank if lora else 0
        self.H, self.K, self.hd = a.heads, a.kv_heads, a.embd // a.heads
        self.n1, self.n2 = RMSNorm(E, full), RMSNorm(E, full)
        self.q, self.k = Lin(E, E, r, full), Lin(E, kv, r, full)
        self.v, self.o = Lin(E, kv, r, full), Lin(E, E, r, full)
        self.gate, self.up, self.down = Lin(E, a.ff, 0, full), Lin(E, a.ff, 0, full), Lin(a.ff, E, 0, full)

    def forward(self, x, cos, sin, causal):
        B, T, E = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.K, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.K, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(self.H // self.K, dim=1)
        v = v.repeat_interleave(self.H // self.K, dim=1)
        s = (q @ k.transpose(-1, -2)) * self.hd ** -0.5 + causal
        att = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, E)
        x = x + self.o(att)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, a, lora):
        super().__init__()
        full = not lora
        self.emb = torch.nn.Parameter(torch.randn(a.vocab, a.embd) * 0.02, requires_grad=full)
        self.blocks = torch.nn.ModuleList(Block(a, lora, full) for _ in range(a.layers))
        self.norm = RMSNorm(a.embd, full)
        self.out = None if not a.untied else torch.nn.Parameter(torch.randn(a.vocab, a.embd) * 0.02,
                                                                 requires_grad=full)
        hd = a.embd // a.heads
        inv = 10000.0 ** (-torch.arange(0, hd, 2).float() / hd)
        ang = torch.arange(a.seq).float()[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), -1)
        self.cos, self.sin = ang.cos(), ang.sin()
        self.causal = torch.full((a.seq, a.seq), float("-inf")).triu(1)

    def forward(self, tokens):
        x = self.emb[tokens]
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.causal)
        logits = self.norm(x) @ (self.emb if self.out is None else self.out).t()
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", choices=["lora", "full"], required=True)
    for k in ("layers", "embd", "ff", "heads", "kv-heads", "vocab"):
        p.add_argument("--" + k, type=int, required=True)
    p.add_argument("--untied", action="store_true")
    for k, v in (("seq", 256), ("batch", 4), ("steps", 3), ("threads", 2), ("rank", 8)):
        p.add_argument("--" + k, type=int, default=v)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = Model(a, a.case == "lora")
    params = [q for q in m.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(1)

    def step():
        tokens = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = m(tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    step()                                    # warm-up: allocations, moments
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "tokens_per_s": a.batch * a.seq * len(times) / sum(times), "step_s": times,
        "params": sum(q.numel() for q in m.parameters()), "trainable": sum(q.numel() for q in params),
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
