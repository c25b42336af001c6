#!/usr/bin/python3
# ref_torch.py: float64 PyTorch reference forward passes of the decoder
# architectures moonhub runs (llama + llama3/linear rope scaling, mistral
# sliding window, qwen3, gemma2, gemma3 text, phi3 longrope), written from
# the published model definitions, not from moonhub's C code.
# Layer: tests/tools (a developer tool; CI never runs it: its output, the
# JSON fixtures under tests/fixtures/arch/, is committed). Needs Debian's
# python3-torch (1.13) and numpy; run it with /usr/bin/python3.
#
# Usage: ref_torch.py MODEL.gguf CONFIG.json OUT.json [--n-ctx N] [--command TEXT]
#   CONFIG.json: the `moonhub create` preset the file was made from (the
#   hyperparameters, as a Hugging Face config would give them); the GGUF
#   supplies only the weights (F32, F16, BF16 or Q8_0, dequantized exactly).
#
# Where each formula comes from (transformers' modeling files, v4.50-era,
# and the model cards / papers they implement):
#  - RMSNorm x / sqrt(mean(x^2) + eps) * w: LlamaRMSNorm (Zhang & Sennrich
#    2019). Gemma's norm is x * (1 + w) (Gemma2RMSNorm); llama.cpp's converter
#    stores 1 + w in GGUF (convert_hf_to_gguf.py, Gemma2Model.modify_tensors),
#    so the stored weight is used as a plain multiplier here.
#  - Rotary embeddings: inv_freq_i = base^(-2i/d) (Su et al. 2021, RoFormer).
#    Llama GGUF files keep Meta's interleaved pairs (2i, 2i+1) (the converter
#    permutes q/k rows: LlamaModel.permute), so apply_rotary_emb of Meta's
#    llama/model.py is used; every other architecture uses HF's rotate_half
#    on pairs (i, i + d/2).
#  - llama3 scaling: _compute_llama3_parameters (modeling_rope_utils.py):
#    wavelengths above orig/low_freq_factor divided by factor, below
#    orig/high_freq_factor kept, smooth interpolation between.
#  - linear scaling: _compute_linear_scaling / LlamaLinearScalingRotaryEmbedding
#    (positions divided by the factor).
#  - yarn: _compute_yarn_parameters (Peng et al. 2023, "YaRN"): beta_fast 32,
#    beta_slow 1, correction range floored/ceiled, inv_freq mixed from
#    interpolated and extrapolated by a linear ramp, cos/sin times
#    0.1 ln(factor) + 1.
#  - longrope (phi3): _compute_longrope_parameters: inv_freq / ext_factors,
#    long factors when the sequence (here: the cache, as llama.cpp decides)
#    exceeds original_max_position_embeddings; cos and sin times
#    sqrt(1 + ln(max_pos / orig) / ln(orig)).
#  - Attention: softmax(q k^T * scale + mask) v, GQA by repeat_kv; scale
#    1/sqrt(head_dim) (gemma: query_pre_attn_scalar^-0.5 = head_dim^-0.5 for
#    the 2b/9b/1b shapes). Sliding window: position k is hidden from query q
#    when q - k >= window (Gemma2/Mistral sliding masks). Gemma2 soft cap:
#    tanh(s / cap) * cap on the scaled scores and on the final logits.
#  - Qwen3 / Gemma3: q_norm and k_norm are RMSNorms over head_dim applied to
#    each head before rope (Qwen3Attention, Gemma3Attention).
#  - Gemma2/3 layer: x += post_attention_layernorm(attn(input_layernorm(x)));
#    x += post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)));
#    embeddings times sqrt(hidden_size); MLP gelu_pytorch_tanh(gate) * up.
#    Gemma2 slides on even layers; Gemma3 on layers with (l + 1) % 6 != 0,
#    whose rope uses rope_local_base_freq and no scaling.
#  - Phi3: qkv_proj rows are q | k | v; gate_up_proj rows are gate | up
#    (Phi3MLP: chunk(2)); silu(gate) * up.
import json
import math
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

# ===== GGUF (v2/v3) reader: metadata skipped, tensors dequantized =====

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}


def _read_value(f, t):
    if t in _SCALAR:
        fmt = _SCALAR[t]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if t == 8:
        n = struct.unpack("<Q", f.read(8))[0]
        return f.read(n).decode("utf-8", "replace")
    if t == 9:
        et, n = struct.unpack("<IQ", f.read(12))
        return [_read_value(f, et) for _ in range(n)]
    raise ValueError("gguf: unknown value type %d" % t)


def read_gguf(path):
    with open(path, "rb") as f:
        magic, version, n_t, n_kv = struct.unpack("<4sIQQ", f.read(24))
        assert magic == b"GGUF" and version in (2, 3), "not a GGUF v2/v3 file"
        kv = {}
        for _ in range(n_kv):
            key = _read_value(f, 8)
            kv[key] = _read_value(f, struct.unpack("<I", f.read(4))[0])
        infos = []
        for _ in range(n_t):
            name = _read_value(f, 8)
            nd = struct.unpack("<I", f.read(4))[0]
            ne = struct.unpack("<%dQ" % nd, f.read(8 * nd))
            typ, off = struct.unpack("<IQ", f.read(12))
            infos.append((name, ne, typ, off))
        align = kv.get("general.alignment", 32)
        base = (f.tell() + align - 1) // align * align
        tensors = {}
        for name, ne, typ, off in infos:
            n = int(np.prod(ne))
            f.seek(base + off)
            tensors[name] = torch.from_numpy(_dequant(f, typ, n)).reshape(tuple(reversed(ne)))
    return kv, tensors


def _dequant(f, typ, n):
    if typ == 0:
        return np.frombuffer(f.read(4 * n), "<f4").astype(np.float64)
    if typ == 1:
        return np.frombuffer(f.read(2 * n), "<f2").astype(np.float64)
    if typ == 30:   # bf16: the high half of an f32
        u = np.frombuffer(f.read(2 * n), "<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    if typ == 8:    # q8_0: blocks of (f16 scale, 32 x int8)
        raw = np.frombuffer(f.read(34 * (n // 32)), np.uint8).reshape(-1, 34)
        d = raw[:, :2].copy().view("<f2").astype(np.float64)
        q = raw[:, 2:].copy().view(np.int8).astype(np.float64)
        return (q * d).reshape(-1)
    raise ValueError("gguf: tensor type %d not handled by this reference" % typ)


# ===== the model =====

def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def inv_freq(cfg, d, base, layer_scaled, W, n_ctx):
    """inv_freq (d/2,) and the cos/sin factor for one layer."""
    f = 1.0 / base ** (torch.arange(0, d, 2) / d)
    mscale = 1.0
    if not layer_scaled:
        return f, mscale
    if cfg.get("rope_factor", 0) > 0:            # llama3
        fac, lo, hi, orig = (cfg["rope_factor"], cfg.get("rope_low_freq", 1),
                             cfg.get("rope_high_freq", 4), cfg.get("rope_orig_ctx", 8192))
        wl = 2 * math.pi / f
        g = torch.where(wl > orig / lo, f / fac, f)
        smooth = (orig / wl - lo) / (hi - lo)
        sm = (1 - smooth) * g / fac + smooth * g
        medium = ~(wl < orig / hi) & ~(wl > orig / lo)
        f = torch.where(medium, sm, g)
    if cfg.get("rope_scale_linear", 0) > 0:
        f = f / cfg["rope_scale_linear"]
    if cfg.get("rope_scale_yarn", 0) > 0:         # _compute_yarn_parameters
        fac, orig = cfg["rope_scale_yarn"], cfg["rope_orig_ctx"]

        def corr_dim(rot):
            return d * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))
        lo, hi = max(math.floor(corr_dim(32)), 0), min(math.ceil(corr_dim(1)), d - 1)
        ramp = ((torch.arange(d // 2) - lo) / ((hi - lo) if hi != lo else 0.001)).clamp(0, 1)
        extrap = 1 - ramp
        f = (f / fac) * (1 - extrap) + f * extrap
        mscale = 0.1 * math.log(fac) + 1.0
    if cfg.get("longrope"):
        orig = cfg["rope_orig_ctx"]
        ext = W["rope_factors_long.weight"] if n_ctx > orig else W["rope_factors_short.weight"]
        f = f / ext
        s = cfg["n_ctx"] / orig
        mscale = 1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(orig))
    return f, mscale


def apply_rope(x, f, mscale, interleaved):
    """x: (T, heads, d); positions 0..T-1."""
    T, _, d = x.shape
    ang = torch.arange(T)[:, None] * f[None, :]          # (T, d/2)
    cos, sin = (torch.cos(ang) * mscale)[:, None, :], (torch.sin(ang) * mscale)[:, None, :]
    if interleaved:                                      # Meta: complex pairs (2i, 2i+1)
        a, b = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out
    a, b = x[..., : d // 2], x[..., d // 2:]             # HF rotate_half
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


def forward(cfg, W, ids, n_ctx):
    arch = cfg["arch"]
    E, H, Hkv = cfg["n_embd"], cfg["n_head"], cfg.get("n_head_kv", cfg["n_head"])
    hd = cfg.get("head_dim") or E // H
    eps = cfg["rms_eps"]
    gemma = arch in ("gemma2", "gemma3")
    T = len(ids)
    x = W["token_embd.weight"][ids]
    if gemma:
        x = x * math.sqrt(E)
    for l in range(cfg["n_layer"]):
        p = "blk.%d." % l
        if arch == "gemma2":
            sliding = l % 2 == 0
        elif arch == "gemma3":
            sliding = (l + 1) % 6 != 0
        else:
            sliding = True
        window = cfg.get("n_swa", 0) if sliding else 0
        h = rmsnorm(x, W[p + "attn_norm.weight"], eps)
        if arch == "phi3":
            qkv = h @ W[p + "attn_qkv.weight"].T
            q, k, v = qkv.split([H * hd, Hkv * hd, Hkv * hd], -1)
        else:
            q, k, v = (h @ W[p + n].T for n in ("attn_q.weight", "attn_k.weight", "attn_v.weight"))
            if p + "attn_q.bias" in W:
                q, k, v = q + W[p + "attn_q.bias"], k + W[p + "attn_k.bias"], v + W[p + "attn_v.bias"]
        q, k, v = q.reshape(T, H, hd), k.reshape(T, Hkv, hd), v.reshape(T, Hkv, hd)
        if arch in ("qwen3", "gemma3"):
            q = rmsnorm(q, W[p + "attn_q_norm.weight"], eps)
            k = rmsnorm(k, W[p + "attn_k_norm.weight"], eps)
        local = arch == "gemma3" and sliding
        base = cfg.get("rope_base_swa", 10000) if local else cfg["rope_base"]
        f, ms = inv_freq(cfg, hd, base, not local, W, n_ctx)
        q = apply_rope(q, f, ms, arch == "llama")
        k = apply_rope(k, f, ms, arch == "llama")
        rep = H // Hkv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd)
        if cfg.get("attn_softcap", 0) > 0:
            c = cfg["attn_softcap"]
            s = torch.tanh(s / c) * c
        qi, ki = torch.arange(T)[:, None], torch.arange(T)[None, :]
        hidden = ki > qi
        if window > 0:
            hidden = hidden | (qi - ki >= window)
        s = s.masked_fill(hidden[None], float("-inf"))
        a = torch.einsum("hqk,khd->qhd", torch.softmax(s, -1), v).reshape(T, H * hd)
        o = a @ W[p + "attn_output.weight"].T
        if gemma:
            o = rmsnorm(o, W[p + "post_attention_norm.weight"], eps)
        x = x + o
        h = rmsnorm(x, W[p + "ffn_norm.weight"], eps)
        if arch == "phi3":
            gate, up = (h @ W[p + "ffn_up.weight"].T).chunk(2, -1)
        else:
            gate, up = h @ W[p + "ffn_gate.weight"].T, h @ W[p + "ffn_up.weight"].T
        act = torch.nn.functional.gelu(gate, approximate="tanh") if gemma else torch.nn.functional.silu(gate)
        o = (act * up) @ W[p + "ffn_down.weight"].T
        if gemma:
            o = rmsnorm(o, W[p + "post_ffw_norm.weight"], eps)
        x = x + o
    x = rmsnorm(x, W["output_norm.weight"], eps)
    out = W.get("output.weight", W["token_embd.weight"])
    logits = x @ out.T
    if cfg.get("final_softcap", 0) > 0:
        c = cfg["final_softcap"]
        logits = torch.tanh(logits / c) * c
    return logits


def top(row, k=20):
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
    return [[i, float("%.6g" % row[i])] for i in order]


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__ or "usage: ref_torch.py MODEL.gguf CONFIG.json OUT.json [--n-ctx N] [--command TEXT]")
    model, cfg_path, out = argv[1:4]
    n_ctx, command = 512, ""
    rest = argv[4:]
    while rest:
        if rest[0] == "--n-ctx":
            n_ctx, rest = int(rest[1]), rest[2:]
        elif rest[0] == "--command":
            command, rest = rest[1], rest[2:]
        else:
            sys.exit("ref_torch.py: unknown option " + rest[0])
    with open(cfg_path) as fh:
        cfg = json.load(fh)
    _, W = read_gguf(model)
    # ids of "The quick brown fox jumps" in the built-in byte vocabulary (byte + 3), BOS first
    ids = [1] + [b + 3 for b in b"The quick brown fox jumps"]
    logits = forward(cfg, W, ids, n_ctx)
    greedy, margins, seq = [], [], list(ids)
    last = logits[-1]
    for _ in range(16):
        srt = torch.sort(last, descending=True)
        margins.append(float("%.6g" % (srt.values[0] - srt.values[1]).item()))
        nxt = int(torch.argmax(last))
        greedy.append(nxt)
        seq.append(nxt)
        last = forward(cfg, W, seq, n_ctx)[-1]
    res = {
        "magic": "moonhub-arch-ref", "version": 1,
        "model": model.rsplit("/", 1)[-1], "config": cfg, "n_ctx": n_ctx,
        "reference": "tests/tools/ref_torch.py, float64, torch " + torch.__version__,
        "command": command,
        "tokens": ids,
        "top20_per_position": [top(r.tolist()) for r in logits],
        "last_logits": [float("%.6g" % v) for v in logits[-1].tolist()],
        "greedy": {"ids": greedy, "top1_top2_margins": margins},
    }
    with open(out, "w") as fh:
        json.dump(res, fh, separators=(",", ":"))
        fh.write("\n")


if __name__ == "__main__":
    main(sys.argv)
