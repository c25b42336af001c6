/* convert.c: Hugging Face folder -> GGUF (llama.cpp convert_hf_to_gguf.py's
 * job for the decoders this engine runs, dense and mixture-of-experts). Hyperparameters come from
 * hf_config.c (the folder loader's reading), names from its GGUF<->HF map,
 * tensor types from quantize.c's rules, so `convert --type Q8_0` writes the
 * bytes `quantize` would write from the F32 conversion.
 * Layer: engine/model (pure C11). Streams tensors in row chunks. */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mh/convert.h"
#include "mh/gguf_write.h"
#include "mh/quant.h"
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "hf_config.h"

#define CHUNK_ELEMS (1 << 22)   /* f32 values per conversion step (16 MiB) */

enum { XF_NONE, XF_PERMUTE, XF_PLUS_ONE };

typedef struct ctensor {
    char name[64];              /* GGUF */
    int64_t rows, cols;         /* rows 0: a vector of cols */
    int src;                    /* safetensors index, or -1 for gen */
    const float *gen;           /* (cols) values from config.json (rope factors) */
    int xform;
    int64_t heads;              /* XF_PERMUTE: heads in the rows */
    mh_dtype type;              /* written as */
    int64_t n_exp;              /* > 0: n_exp stacked experts of (rows, cols), sources xs[xs0..] */
    int xs0;
} ctensor;

typedef struct conv {
    const char *dir;
    mh_hf_config cfg;
    mh_safetensors *st;
    ctensor *t;
    int n, cap;
    bool *used;                 /* (tensor count of st) consumed by the plan */
    int *xs, n_xs;              /* safetensors indices of stacked experts, in order */
    float *f32;
    uint8_t *qbuf;
} conv;

/* ===== metadata ===== */

static int kv_u32(mh_gguf_writer *w, const char *arch, const char *k, int64_t v, mh_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return mh_gguf_writer_set_int(w, key, MH_GGUF_UINT32, v, err);
}

static int kv_f32(mh_gguf_writer *w, const char *arch, const char *k, double v, mh_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return mh_gguf_writer_set_float(w, key, MH_GGUF_FLOAT32, v, err);
}

static int kv_str(mh_gguf_writer *w, const char *arch, const char *k, const char *v, mh_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return mh_gguf_writer_set_str(w, key, v, strlen(v), err);
}

/* What one class adds after the common keys (per llama.cpp's converter). */
static int arch_keys(const mh_hf_config *c, mh_gguf_writer *w, mh_err *err)
{
    const mh_hparams *hp = &c->hp;
    const char *a = hp->arch_name;
    int rc = MH_OK;
    if (hp->arch == MH_ARCH_LLAMA) rc = kv_u32(w, a, "vocab_size", hp->n_vocab, err);
    if (!rc && (hp->arch == MH_ARCH_LLAMA || hp->arch == MH_ARCH_PHI3))
        rc = kv_u32(w, a, "rope.dimension_count", hp->n_rot, err);
    if (!rc && (!strcmp(c->rope_type, "linear") || !strcmp(c->rope_type, "yarn"))) {
        rc = kv_str(w, a, "rope.scaling.type", c->rope_type, err);
        if (!rc) rc = kv_f32(w, a, "rope.scaling.factor", c->rope_factor, err);
        if (!rc && !strcmp(c->rope_type, "yarn"))
            rc = kv_u32(w, a, "rope.scaling.original_context_length", c->rope_orig_ctx, err);
    }
    if (!rc && hp->arch == MH_ARCH_PHI3) {
        int64_t orig = c->rope_orig_ctx ? c->rope_orig_ctx : hp->n_ctx_train;
        rc = kv_u32(w, a, "rope.scaling.original_context_length", orig, err);
        if (!rc && c->rope_long) rc = kv_f32(w, a, "rope.scaling.attn_factor", hp->rope_attn_factor, err);
    }
    if (!rc && hp->attn_softcap > 0) rc = kv_f32(w, a, "attn_logit_softcapping", hp->attn_softcap, err);
    if (!rc && hp->final_softcap > 0) rc = kv_f32(w, a, "final_logit_softcapping", hp->final_softcap, err);
    /* Phi-3 writes 0 for "none" (llama.cpp tells Phi-4 apart by it) */
    if (!rc && (hp->n_swa > 0 || hp->arch == MH_ARCH_PHI3))
        rc = kv_u32(w, a, "attention.sliding_window", hp->n_swa, err);
    if (!rc && hp->arch == MH_ARCH_GEMMA3) rc = kv_f32(w, a, "rope.freq_base_swa", hp->rope_base_swa, err);
    return rc;
}

/* Expert keys (llama.cpp: Model's and Qwen2MoeModel's set_gguf_parameters).
 * Qwen2-MoE's widths are written even where config.json relies on
 * transformers' defaults, which llama.cpp's loader does not share. */
static int moe_keys(const mh_hparams *hp, mh_gguf_writer *w, mh_err *err)
{
    const char *a = hp->arch_name;
    if (hp->n_expert <= 0) return MH_OK;
    int rc = kv_u32(w, a, "expert_count", hp->n_expert, err);
    if (!rc) rc = kv_u32(w, a, "expert_used_count", hp->n_expert_used, err);
    if (!rc && !strcmp(a, "qwen2moe")) {
        rc = kv_u32(w, a, "expert_feed_forward_length", hp->n_ff_exp, err);
        if (!rc) rc = kv_u32(w, a, "expert_shared_feed_forward_length", hp->n_ff_shexp, err);
    }
    return rc;
}

static int hparam_keys(const conv *cv, const mh_convert_opts *o, mh_gguf_writer *w, mh_err *err)
{
    const mh_hparams *hp = &cv->cfg.hp;
    const char *a = hp->arch_name;
    char base[4096], *name = (char *)o->name;
    if (!name) {
        snprintf(base, sizeof base, "%s", cv->dir);
        name = basename(base);
    }
    bool gemma = hp->arch == MH_ARCH_GEMMA2 || hp->arch == MH_ARCH_GEMMA3;
    int rc = mh_gguf_writer_set_str(w, "general.architecture", a, strlen(a), err);
    if (!rc) rc = mh_gguf_writer_set_str(w, "general.type", "model", 5, err);
    if (!rc) rc = mh_gguf_writer_set_str(w, "general.name", name, strlen(name), err);
    if (hp->encoder) return rc ? rc : mh_convert_bert_keys(&cv->cfg, o->ftype, w, err);
    if (!rc) rc = kv_u32(w, a, "block_count", hp->n_layer, err);
    if (!rc) rc = kv_u32(w, a, "context_length", hp->n_ctx_train, err);
    if (!rc) rc = kv_u32(w, a, "embedding_length", hp->n_embd, err);
    if (!rc) rc = kv_u32(w, a, "feed_forward_length", hp->n_ff, err);
    if (!rc) rc = kv_u32(w, a, "attention.head_count", hp->n_head, err);
    if (!rc) rc = kv_u32(w, a, "attention.head_count_kv", hp->n_head_kv, err);
    /* written even when config.json relies on HF's default: loaders'
     * defaults differ (Gemma 3's 1e6 against llama.cpp's 10000) */
    if (!rc) rc = kv_f32(w, a, "rope.freq_base", hp->rope_base, err);
    if (!rc) rc = kv_f32(w, a, "attention.layer_norm_rms_epsilon", hp->rms_eps, err);
    if (!rc && (cv->cfg.has_head_dim || gemma)) {
        rc = kv_u32(w, a, "attention.key_length", hp->head_dim, err);
        if (!rc) rc = kv_u32(w, a, "attention.value_length", hp->head_dim, err);
    }
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.file_type", MH_GGUF_UINT32, o->ftype, err);
    if (!rc) rc = arch_keys(&cv->cfg, w, err);
    if (!rc) rc = moe_keys(hp, w, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.quantization_version", MH_GGUF_UINT32, 2, err);
    return rc;
}

/* GGUF has no key for query_pre_attn_scalar: llama.cpp infers the scale
 * from the shape. A config it would misread is refused, not converted into
 * a model that computes something else. */
static int check_gemma_scale(const mh_hf_config *c, mh_err *err)
{
    const mh_hparams *hp = &c->hp;
    if (hp->arch != MH_ARCH_GEMMA2 && hp->arch != MH_ARCH_GEMMA3) return MH_OK;
    bool wide = (hp->arch == MH_ARCH_GEMMA2 && hp->n_layer == 46) ||
                (hp->arch == MH_ARCH_GEMMA3 && hp->n_layer == 62);
    double q = wide ? (double)(hp->n_embd / hp->n_head) : (double)hp->head_dim;
    double want = 1.0 / sqrt(q);
    if (fabs(hp->attn_scale - want) <= 1e-6 * want) return MH_OK;
    return mh_err_set(err, MH_EFORMAT, "config.json query_pre_attn_scalar %.6g cannot be written "
                      "to GGUF: llama.cpp (and this engine) use %.0f for a %lld-layer %s",
                      1.0 / ((double)hp->attn_scale * hp->attn_scale), q, (long long)hp->n_layer,
                      hp->arch_name);
}

/* ===== the tensor plan ===== */

static ctensor *plan_add(conv *cv, const char *name, int64_t rows, int64_t cols, mh_err *err)
{
    if (cv->n == cv->cap) {
        int cap = cv->cap ? 2 * cv->cap : 64;
        ctensor *t = realloc(cv->t, sizeof *t * (size_t)cap);
        if (!t) {
            mh_err_set(err, MH_ENOMEM, "out of memory");
            return NULL;
        }
        cv->t = t;
        cv->cap = cap;
    }
    ctensor *t = memset(&cv->t[cv->n++], 0, sizeof *cv->t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->src = -1;
    return t;
}

/* A tensor of the checkpoint under its HF name, checked against the shape
 * the config implies. */
static int plan_src(conv *cv, const char *gguf, int64_t rows, int64_t cols, bool required,
                    mh_err *err)
{
    char hf[192];
    if (!mh_hf_tensor_name(&cv->cfg, gguf, hf, sizeof hf))
        return mh_err_set(err, MH_EINVAL, "no Hugging Face name for '%s'", gguf);
    int idx = mh_safetensors_find(cv->st, hf);
    if (idx < 0) {
        if (!required) return MH_OK;
        return mh_err_set(err, MH_EFORMAT, "tensor '%s' is missing from %s (%s needs it)", hf,
                          cv->dir, cv->cfg.cls);
    }
    const mh_st_info *in = mh_safetensors_info(cv->st, idx);
    if (in->dtype != MH_DTYPE_F32 && in->dtype != MH_DTYPE_F16 && in->dtype != MH_DTYPE_BF16)
        return mh_err_set(err, MH_EFORMAT, "tensor '%s' has dtype %s (convert reads F32, F16 "
                          "and BF16)", hf, in->file_dtype);
    bool ok = rows ? in->ndim == 2 && in->shape[0] == rows && in->shape[1] == cols
                   : in->ndim == 1 && in->shape[0] == cols;
    if (!ok) {
        char got[96];
        mh_shape_str(in->ndim, in->shape, got, sizeof got);
        if (!rows) return mh_err_set(err, MH_EFORMAT, "tensor '%s' has shape %s, config.json "
                                     "implies (%lld)", hf, got, (long long)cols);
        return mh_err_set(err, MH_EFORMAT, "tensor '%s' has shape %s, config.json implies "
                          "(%lld,%lld)", hf, got, (long long)rows, (long long)cols);
    }
    ctensor *t = plan_add(cv, gguf, rows, cols, err);
    if (!t) return MH_ENOMEM;
    t->src = idx;
    cv->used[idx] = true;
    if (mh_hf_norm_plus_one(&cv->cfg, gguf)) t->xform = XF_PLUS_ONE;
    return MH_OK;
}

/* llama.cpp's llama rows pair (2i, 2i+1) within each head; HF's pair
 * (i, i + d/2). Marks blk.N.attn_q/attn_k for the row permutation. */
static void mark_permute(conv *cv, const char *part, int64_t heads)
{
    ctensor *t = &cv->t[cv->n - 1];
    size_t n = strlen(t->name), k = strlen(part);
    if (cv->cfg.hp.arch == MH_ARCH_LLAMA && n > k && !strcmp(t->name + n - k, part)) {
        t->xform = XF_PERMUTE;
        t->heads = heads;
    }
}

/* ===== mixture of experts: router, stacked experts, shared expert ===== */

/* The checkpoint tensor behind GGUF name gguf (the router, an expert's
 * slice "blk.N.ffn_up_exps.E.weight", the shared expert), checked to be
 * (rows, cols), or for a vector (rows 0) (cols) or HF's (1, cols). */
static int find_moe(conv *cv, const char *gguf, int64_t rows, int64_t cols, int *idx, mh_err *err)
{
    char hf[192];
    if (!mh_hf_tensor_name(&cv->cfg, gguf, hf, sizeof hf))
        return mh_err_set(err, MH_EINVAL, "no Hugging Face name for '%s'", gguf);
    int i = mh_safetensors_find(cv->st, hf);
    if (i < 0)
        return mh_err_set(err, MH_EFORMAT, "tensor '%s' is missing from %s (%s with %lld experts "
                          "needs it)", hf, cv->dir, cv->cfg.cls, (long long)cv->cfg.hp.n_expert);
    const mh_st_info *in = mh_safetensors_info(cv->st, i);
    if (in->dtype != MH_DTYPE_F32 && in->dtype != MH_DTYPE_F16 && in->dtype != MH_DTYPE_BF16)
        return mh_err_set(err, MH_EFORMAT, "tensor '%s' has dtype %s (convert reads F32, F16 "
                          "and BF16)", hf, in->file_dtype);
    bool mat = in->ndim == 2 && in->shape[1] == cols;
    bool ok = rows ? mat && in->shape[0] == rows
                   : (in->ndim == 1 && in->shape[0] == cols) || (mat && in->shape[0] == 1);
    if (!ok) {
        char got[96];
        mh_shape_str(in->ndim, in->shape, got, sizeof got);
        return mh_err_set(err, MH_EFORMAT, "tensor '%s' has shape %s, config.json implies "
                          "(%lld,%lld)", hf, got, (long long)(rows ? rows : 1), (long long)cols);
    }
    *idx = i;
    cv->used[i] = true;
    return MH_OK;
}

static int plan_one(conv *cv, const char *gguf, int64_t rows, int64_t cols, mh_err *err)
{
    int idx = -1;
    int rc = find_moe(cv, gguf, rows, cols, &idx, err);
    ctensor *t = rc ? NULL : plan_add(cv, gguf, rows, cols, err);
    if (!rc && !t) rc = MH_ENOMEM;
    if (t) t->src = idx;
    return rc;
}

/* GGUF's 3-D blk.l.<what>.weight from the n_expert checkpoint tensors of
 * (rows, cols) each; written expert by expert (write_experts). */
static int plan_stack(conv *cv, int64_t l, const char *what, int64_t rows, int64_t cols, mh_err *err)
{
    const int64_t X = cv->cfg.hp.n_expert;
    char n[96];
    int *xs = realloc(cv->xs, sizeof *xs * (size_t)(cv->n_xs + X));
    if (!xs) return mh_err_set(err, MH_ENOMEM, "out of memory");
    cv->xs = xs;
    int rc = MH_OK;
    for (int64_t e = 0; e < X && !rc; e++) {
        snprintf(n, sizeof n, "blk.%lld.%s.%lld.weight", (long long)l, what, (long long)e);
        rc = find_moe(cv, n, rows, cols, &xs[cv->n_xs + e], err);
    }
    snprintf(n, sizeof n, "blk.%lld.%s.weight", (long long)l, what);
    ctensor *t = rc ? NULL : plan_add(cv, n, rows, cols, err);
    if (!rc && !t) rc = MH_ENOMEM;
    if (rc) return rc;
    t->n_exp = X;
    t->xs0 = cv->n_xs;
    cv->n_xs += (int)X;
    return MH_OK;
}

/* Layer l's expert FFN in llama.cpp's names (Mixtral: router and experts;
 * Qwen2-MoE adds the shared expert and its gate, written as a vector). */
static int plan_moe(conv *cv, int64_t l, mh_err *err)
{
    const mh_hparams *hp = &cv->cfg.hp;
    const int64_t E = hp->n_embd, F = hp->n_ff_exp, S = hp->n_ff_shexp;
    char n[96];
#define ONE(part, rows, cols) \
    (snprintf(n, sizeof n, "blk.%lld.%s", (long long)l, part), plan_one(cv, n, rows, cols, err))
    int rc = ONE("ffn_gate_inp.weight", hp->n_expert, E);
    if (!rc) rc = plan_stack(cv, l, "ffn_gate_exps", F, E, err);
    if (!rc) rc = plan_stack(cv, l, "ffn_up_exps", F, E, err);
    if (!rc) rc = plan_stack(cv, l, "ffn_down_exps", E, F, err);
    if (!rc && S > 0) rc = ONE("ffn_gate_inp_shexp.weight", 0, E);
    if (!rc && S > 0) rc = ONE("ffn_gate_shexp.weight", S, E);
    if (!rc && S > 0) rc = ONE("ffn_up_shexp.weight", S, E);
    if (!rc && S > 0) rc = ONE("ffn_down_shexp.weight", E, S);
#undef ONE
    return rc;
}

static int plan_layer(conv *cv, int64_t l, mh_err *err)
{
    const mh_hparams *hp = &cv->cfg.hp;
    const int64_t E = hp->n_embd, hd = hp->head_dim, F = hp->n_ff;
    const int64_t qd = hp->n_head * hd, kv = hp->n_head_kv * hd;
    const bool fused = hp->arch == MH_ARCH_PHI3;
    char n[96];
    int rc = MH_OK;
#define SRC(part, rows, cols) \
    (snprintf(n, sizeof n, "blk.%lld.%s", (long long)l, part), plan_src(cv, n, rows, cols, true, err))
    rc = SRC("attn_norm.weight", 0, E);
    if (!rc && fused) rc = SRC("attn_qkv.weight", qd + 2 * kv, E);
    if (!rc && !fused && !(rc = SRC("attn_q.weight", qd, E))) mark_permute(cv, ".attn_q.weight", hp->n_head);
    if (!rc && !fused && !(rc = SRC("attn_k.weight", kv, E))) mark_permute(cv, ".attn_k.weight", hp->n_head_kv);
    if (!rc && !fused) rc = SRC("attn_v.weight", kv, E);
    if (!rc && cv->cfg.qkv_bias && !(rc = SRC("attn_q.bias", 0, qd)) && !(rc = SRC("attn_k.bias", 0, kv)))
        rc = SRC("attn_v.bias", 0, kv);
    if (!rc && hp->qk_norm && !(rc = SRC("attn_q_norm.weight", 0, hd))) rc = SRC("attn_k_norm.weight", 0, hd);
    if (!rc) rc = SRC("attn_output.weight", E, qd);
    if (!rc && hp->post_norms) rc = SRC("post_attention_norm.weight", 0, E);
    if (!rc) rc = SRC("ffn_norm.weight", 0, E);
    const bool moe = hp->n_expert > 0;
    if (!rc && moe) rc = plan_moe(cv, l, err);
    if (!rc && fused) rc = SRC("ffn_up.weight", 2 * F, E);
    if (!rc && !fused && !moe && !(rc = SRC("ffn_gate.weight", F, E))) rc = SRC("ffn_up.weight", F, E);
    if (!rc && !moe) rc = SRC("ffn_down.weight", E, F);
    if (!rc && hp->post_norms) rc = SRC("post_ffw_norm.weight", 0, E);
#undef SRC
    return rc;
}

static int plan_gen(conv *cv, const char *name, const float *v, mh_err *err)
{
    if (!v) return MH_OK;
    ctensor *t = plan_add(cv, name, 0, cv->cfg.hp.n_rot / 2, err);
    if (!t) return MH_ENOMEM;
    t->gen = v;
    return MH_OK;
}

/* Anything left in the checkpoint would be silently dropped: refused,
 * except what HF itself ignores (rotary caches, a tied lm_head). */
static int check_leftovers(conv *cv, bool tied, mh_err *err)
{
    for (int i = 0; i < mh_safetensors_count(cv->st); i++) {
        const char *nm = mh_safetensors_info(cv->st, i)->name;
        size_t k = strlen(nm);
        if (cv->used[i] || (k > 21 && !strcmp(nm + k - 21, ".rotary_emb.inv_freq")) ||
            (tied && !strcmp(nm, "lm_head.weight")) ||
            (cv->cfg.hp.encoder && mh_convert_bert_ignored(&cv->cfg, nm)))
            continue;
        return mh_err_set(err, MH_EFORMAT, "tensor '%s' in %s has no GGUF counterpart for %s "
                          "(an unsupported variant?)", nm, cv->dir, cv->cfg.cls);
    }
    return MH_OK;
}

static int plan_required(void *cv, const char *gguf, int64_t rows, int64_t cols, mh_err *err)
{
    return plan_src(cv, gguf, rows, cols, true, err);
}

static int plan(conv *cv, mh_err *err)
{
    const mh_hparams *hp = &cv->cfg.hp;
    const int64_t V = hp->n_vocab, E = hp->n_embd;
    bool tied = cv->cfg.tied || (!cv->cfg.tie_explicit && mh_safetensors_find(cv->st, "lm_head.weight") < 0);
    cv->used = calloc((size_t)mh_safetensors_count(cv->st) + 1, 1);
    if (!cv->used) return mh_err_set(err, MH_ENOMEM, "out of memory");
    if (hp->encoder) {              /* bert, nomic-bert: convert_bert.c */
        mh_hf_bert_resolve(&cv->cfg, cv->st);
        int rc = mh_convert_bert_plan(&cv->cfg, plan_required, cv, err);
        return rc ? rc : check_leftovers(cv, false, err);
    }
    int rc = plan_src(cv, "token_embd.weight", V, E, true, err);
    if (!rc) rc = plan_src(cv, "output_norm.weight", 0, E, true, err);
    if (!rc && !tied) rc = plan_src(cv, "output.weight", V, E, true, err);
    if (!rc) rc = plan_gen(cv, "rope_freqs.weight", cv->cfg.rope_freqs, err);
    if (!rc) rc = plan_gen(cv, "rope_factors_long.weight", cv->cfg.rope_long, err);
    if (!rc) rc = plan_gen(cv, "rope_factors_short.weight", cv->cfg.rope_short, err);
    for (int64_t l = 0; l < hp->n_layer && !rc; l++) rc = plan_layer(cv, l, err);
    if (!rc) rc = check_leftovers(cv, tied, err);
    return rc;
}

/* Each tensor's type under ftype, by quantize.c's rules, declared. */
static int declare(conv *cv, mh_ftype ftype, mh_gguf_writer *w, mh_convert_stats *st, mh_err *err)
{
    mh_quant_model_info mi = { 0 };
    for (int i = 0; i < cv->n; i++) {
        if (strstr(cv->t[i].name, "attn_v.weight") || strstr(cv->t[i].name, "attn_qkv.weight")) mi.n_layer++;
        if (!strcmp(cv->t[i].name, "output.weight")) mi.has_output = true;
    }
    for (int i = 0; i < cv->n; i++) {
        ctensor *t = &cv->t[i];
        int nd = t->n_exp ? 3 : t->rows ? 2 : 1;
        t->type = MH_DTYPE_F32;
        if (mh_quantize_wants(t->name, nd)) t->type = mh_quantize_pick_type(ftype, t->name, t->cols, &mi, NULL);
        int64_t ne[4] = { t->cols, t->rows ? t->rows : 1, t->n_exp ? t->n_exp : 1, 1 };
        int rc = mh_gguf_writer_add_tensor(w, t->name, nd, ne, t->type, err);
        if (rc) return rc;
        st->n_by_type[t->type]++;
    }
    st->n_tensors = cv->n;
    return MH_OK;
}

/* ===== tensor data ===== */

/* The checkpoint row holding output row r of t. */
static int64_t src_row(const ctensor *t, int64_t r)
{
    if (t->xform != XF_PERMUTE) return r;
    int64_t hd = t->rows / t->heads, h = r / hd, in = r % hd;
    return h * hd + (in % 2) * (hd / 2) + in / 2;
}

static int write_tensor(conv *cv, const ctensor *t, mh_gguf_writer *w, mh_err *err)
{
    const int64_t rows = t->rows ? t->rows : 1, cols = t->cols;
    int64_t chunk = CHUNK_ELEMS / cols > 0 ? CHUNK_ELEMS / cols : 1;
    if (chunk > rows) chunk = rows;
    mh_tensor *src = t->src >= 0 ? mh_safetensors_tensor(cv->st, t->src, err) : NULL;
    if (t->src >= 0 && !src) return err ? err->code : MH_EIO;
    const mh_st_info *in = t->src >= 0 ? mh_safetensors_info(cv->st, t->src) : NULL;
    size_t in_row = in ? mh_dtype_row_size((mh_dtype)in->dtype, cols) : 0;
    size_t out_row = mh_dtype_row_size(t->type, cols);
    float *f = realloc(cv->f32, sizeof(float) * (size_t)(chunk * cols));
    uint8_t *q = f ? realloc(cv->qbuf, out_row * (size_t)chunk) : NULL;
    if (f) cv->f32 = f;
    if (q) cv->qbuf = q;
    int rc = !f || !q ? mh_err_set(err, MH_ENOMEM, "out of memory converting '%s'", t->name) : MH_OK;
    const uint8_t *base = src ? mh_tensor_data(src) : NULL;
    for (int64_t r0 = 0; r0 < rows && !rc; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        for (int64_t r = 0; r < nr && !rc; r++) {
            float *dst = cv->f32 + r * cols;
            if (t->gen) memcpy(dst, t->gen, sizeof(float) * (size_t)cols);
            else rc = mh_dequantize_row((mh_dtype)in->dtype, base + (size_t)src_row(t, r0 + r) * in_row, dst, cols);
            for (int64_t k = 0; t->xform == XF_PLUS_ONE && k < cols; k++) dst[k] += 1.0f;
        }
        const void *out = cv->f32;
        if (!rc && t->type != MH_DTYPE_F32) {
            rc = mh_quantize_rows(t->type, cv->f32, cv->qbuf, nr, cols);
            out = cv->qbuf;
        }
        if (rc) rc = mh_err_set(err, rc, "tensor '%s': conversion to %s failed (%s)", t->name,
                                mh_dtype_info(t->type)->name, mh_status_name(rc));
        if (!rc) rc = mh_gguf_writer_write_data(w, out, (size_t)nr * out_row, err);
    }
    mh_tensor_release(src);
    return rc;
}

/* A stacked expert tensor: each expert's rows in turn, so only one
 * expert's chunk is in memory; row-wise quantization makes the bytes those
 * of the whole stack. */
static int write_experts(conv *cv, const ctensor *t, mh_gguf_writer *w, mh_err *err)
{
    ctensor one = *t;
    one.n_exp = 0;
    int rc = MH_OK;
    for (int64_t e = 0; e < t->n_exp && !rc; e++) {
        one.src = cv->xs[t->xs0 + e];
        rc = write_tensor(cv, &one, w, err);
    }
    return rc;
}

/* ===== entry ===== */

static int run(conv *cv, const char *out, const mh_convert_opts *o, mh_convert_stats *st, mh_err *err)
{
    mh_gguf_writer *w = mh_gguf_writer_new();
    int rc = w ? MH_OK : mh_err_set(err, MH_ENOMEM, "out of memory");
    if (!rc) rc = check_gemma_scale(&cv->cfg, err);
    if (!rc && !(cv->st = mh_safetensors_open(cv->dir, err))) rc = err ? err->code : MH_EIO;
    if (!rc) rc = plan(cv, err);
    if (!rc) rc = hparam_keys(cv, o, w, err);
    if (!rc) rc = mh_hf_write_vocab(cv->dir, &cv->cfg, w, err);
    if (!rc) rc = declare(cv, o->ftype, w, st, err);
    if (!rc) rc = mh_gguf_writer_begin(w, out, err);
    for (int i = 0; i < cv->n && !rc; i++) {
        rc = cv->t[i].n_exp ? write_experts(cv, &cv->t[i], w, err) : write_tensor(cv, &cv->t[i], w, err);
        if (!rc && o->progress) o->progress(o->progress_ud, (uint64_t)i + 1, (uint64_t)cv->n);
    }
    if (!rc) rc = mh_safetensors_check(cv->st, err);   /* a shard shrank under us */
    if (!rc) rc = mh_gguf_writer_finish(w, err);
    st->file_bytes = rc ? 0 : mh_gguf_writer_bytes(w);
    mh_gguf_writer_free(w);     /* removes the temporary file after a failure */
    return rc;
}

int mh_convert_hf(const char *dir, const char *out_path, const mh_convert_opts *opts,
                  mh_convert_stats *stats, mh_err *err)
{
    mh_convert_stats local;
    mh_convert_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (!dir || !out_path || !opts || !*mh_ftype_name(opts->ftype) || !strcmp(mh_ftype_name(opts->ftype), "?"))
        return mh_err_set(err, MH_EINVAL, "convert: needs a folder, an output path and a file type "
                          "(%s)", mh_ftype_names());
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    conv cv = { .dir = dir };
    int rc = mh_hf_config_read(dir, &cv.cfg, err);
    if (rc == MH_EIO)
        rc = mh_err_set(err, MH_EIO, "%s has no readable config.json (not a Hugging Face model "
                        "folder?)", dir);
    if (!rc) rc = run(&cv, out_path, opts, st, err);
    snprintf(st->arch, sizeof st->arch, "%s", cv.cfg.hp.arch_name);
    st->n_vocab = cv.cfg.hp.n_vocab;
    mh_safetensors_close(cv.st);
    mh_hf_config_free(&cv.cfg);
    free(cv.t);
    free(cv.used);
    free(cv.xs);
    free(cv.f32);
    free(cv.qbuf);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (rc && err && strncmp(err->msg, "convert: ", 9)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        mh_err_set(err, rc, "convert: %s", msg);
    }
    return rc;
}
