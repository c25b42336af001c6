/* llama_names.c: the one table of llama-family tensor names, GGUF and Hugging
 * Face layouts side by side, and the binder both loaders use to point a
 * model's layers at them (llama_load.c: GGUF, llama_hf.c: safetensors).
 * Layer: engine/model (pure C11; mh/quant.h for conversion to f32). LoRA
 * adapters and the trainer name projections through mh_proj_name too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/quant.h"
#include "model_internal.h"

static const char *const proj_names[MH_PROJ_COUNT][2] = {
    { "attn_q", "self_attn.q_proj" },      { "attn_k", "self_attn.k_proj" },
    { "attn_v", "self_attn.v_proj" },      { "attn_output", "self_attn.o_proj" },
    { "ffn_gate", "mlp.gate_proj" },       { "ffn_up", "mlp.up_proj" },
    { "ffn_down", "mlp.down_proj" },
};
static const char *const norm_names[2][2] = {   /* before attention, before the FFN */
    { "attn_norm", "input_layernorm" }, { "ffn_norm", "post_attention_layernorm" },
};
static const char *const global_names[MH_G_COUNT][2] = {
    { "token_embd.weight", "model.embed_tokens.weight" },
    { "output_norm.weight", "model.norm.weight" },
    { "output.weight", "lm_head.weight" },
    { "rope_freqs.weight", NULL },          /* HF derives them from rope_scaling */
    { "rope_factors_long.weight", NULL },   /* phi3 longrope (HF: rope_scaling lists) */
    { "rope_factors_short.weight", NULL },
};
static const char *const layer_prefix[2] = { "blk.%lld.%s.%s", "model.layers.%lld.%s.%s" };

const char *mh_proj_name(mh_proj k, mh_layout layout)
{
    return k >= 0 && k < MH_PROJ_COUNT ? proj_names[k][layout == MH_LAYOUT_HF] : NULL;
}

const char *mh_global_name(int which, mh_layout layout)
{
    return which >= 0 && which < MH_G_COUNT ? global_names[which][layout == MH_LAYOUT_HF] : NULL;
}

static mh_weight *proj_slot(mh_layer *L, mh_proj k)
{
    mh_weight *w[MH_PROJ_COUNT] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    return w[k];
}

const mh_weight *mh_layer_proj(const mh_layer *L, mh_proj k)
{
    return proj_slot((mh_layer *)L, k);
}

const float *mh_layer_bias(const mh_layer *L, mh_proj k)
{
    return k == MH_PROJ_Q ? L->bq : k == MH_PROJ_K ? L->bk : k == MH_PROJ_V ? L->bv : NULL;
}

int mh_model_own(mh_model *m, void *p, mh_err *err)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 16;
        void **v = realloc(m->owned, sizeof *v * (size_t)cap);
        if (!v) {
            free(p);
            return mh_err_set(err, MH_ENOMEM, "model: out of memory");
        }
        m->owned = v;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return MH_OK;
}

int mh_model_get_weight(mh_model *m, mh_tensor_getter get, const char *name, int64_t rows,
                        int64_t cols, bool required, mh_weight *w, mh_err *err)
{
    int st = get(m, name, rows == 1 && cols > 0 ? 1 : 2, rows, cols, required, w, err);
    if (st || !w->data || (uintptr_t)w->data % sizeof(float) == 0) return st;
    /* GGUF allows general.alignment = 1: f32/f16 values and the fp16 fields
     * of quantized blocks would be read through misaligned pointers */
    size_t n = mh_dtype_row_size(w->dtype, cols) * (size_t)rows;
    void *copy = malloc(n);
    if (!copy) return mh_err_set(err, MH_ENOMEM, "model: out of memory copying '%s'", name);
    memcpy(copy, w->data, n);
    if ((st = mh_model_own(m, copy, err))) return st;
    w->data = copy;
    return MH_OK;
}

int mh_model_get_vec(mh_model *m, mh_tensor_getter get, const char *name, int64_t n,
                     bool required, const float **out, mh_err *err)
{
    mh_weight w;
    *out = NULL;
    int st = mh_model_get_weight(m, get, name, 1, n, required, &w, err);
    if (st || !w.data) return st;
    if (w.dtype == MH_DTYPE_F32) { *out = w.data; return MH_OK; }
    float *buf = malloc(sizeof(float) * (size_t)n);
    if (!buf) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    if (mh_dequantize_row(w.dtype, w.data, buf, n)) {
        free(buf);
        return mh_err_set(err, MH_EFORMAT, "model: cannot convert '%s' to f32", name);
    }
    if ((st = mh_model_own(m, buf, err))) return st;
    *out = buf;
    return MH_OK;
}

/* (rows, cols) of projection k. */
static void proj_shape(const mh_hparams *hp, mh_proj k, int64_t *rows, int64_t *cols)
{
    int64_t E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    const int64_t shape[MH_PROJ_COUNT][2] = {
        { qd, E }, { kvd, E }, { kvd, E }, { E, qd }, { hp->n_ff, E }, { hp->n_ff, E }, { E, hp->n_ff },
    };
    *rows = shape[k][0];
    *cols = shape[k][1];
}

/* Row slice [r0, r0 + rows) of w: a view into the same bytes, or an owned
 * copy where the slice would start at an address floats cannot be read from. */
static int slice_rows(mh_model *m, const mh_weight *w, int64_t r0, int64_t rows, mh_weight *out,
                      mh_err *err)
{
    size_t rb = mh_dtype_row_size(w->dtype, w->cols);
    *out = *w;
    out->rows = rows;
    out->data = (const uint8_t *)w->data + (size_t)r0 * rb;
    if ((uintptr_t)out->data % sizeof(float) == 0) return MH_OK;
    void *copy = malloc(rb * (size_t)rows);
    if (!copy) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    memcpy(copy, out->data, rb * (size_t)rows);
    out->data = copy;
    return mh_model_own(m, copy, err);
}

int mh_model_slice_rows(mh_model *m, const mh_weight *w, int64_t r0, int64_t rows, mh_weight *out,
                        mh_err *err)
{
    return slice_rows(m, w, r0, rows, out, err);
}

/* phi3 fuses q|k|v into attn_qkv and gate|up into ffn_up (2 n_ff rows, the
 * gate first: llama.cpp's swiglu split and HF's chunk(2) agree). Both are
 * split into the usual projections, so the forward and LoRA see no change.
 * GGUF layout only (HF phi3 folders are not read). */
static int bind_fused(mh_model *m, mh_layout lay, mh_tensor_getter get, int64_t l, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    mh_layer *L = &m->layers[l];
    int64_t E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    char n[160];
    mh_weight w;
    int st;
    if (lay != MH_LAYOUT_GGUF || hp->arch != MH_ARCH_PHI3) return MH_OK;
    snprintf(n, sizeof n, layer_prefix[0], (long long)l, "attn_qkv", "weight");
    if ((st = mh_model_get_weight(m, get, n, qd + 2 * kvd, E, true, &w, err)) ||
        (st = slice_rows(m, &w, 0, qd, &L->wq, err)) ||
        (st = slice_rows(m, &w, qd, kvd, &L->wk, err)) ||
        (st = slice_rows(m, &w, qd + kvd, kvd, &L->wv, err)))
        return st;
    snprintf(n, sizeof n, layer_prefix[0], (long long)l, "ffn_up", "weight");
    if ((st = mh_model_get_weight(m, get, n, 2 * hp->n_ff, E, true, &w, err)) ||
        (st = slice_rows(m, &w, 0, hp->n_ff, &L->w_gate, err)) ||
        (st = slice_rows(m, &w, hp->n_ff, hp->n_ff, &L->w_up, err)))
        return st;
    return MH_OK;
}

/* Per-head q/k norms (qwen3, gemma3) and the gemma post-norms. */
static int bind_norms(mh_model *m, mh_layout lay, mh_tensor_getter get, int64_t l, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    mh_layer *L = &m->layers[l];
    const int hf = lay == MH_LAYOUT_HF;
    static const char *const names[4][2] = {
        { "attn_q_norm", "self_attn.q_norm" }, { "attn_k_norm", "self_attn.k_norm" },
        { "post_attention_norm", "post_attention_layernorm" },
        { "post_ffw_norm", "post_feedforward_layernorm" },
    };
    const float **slot[4] = { &L->q_norm, &L->k_norm, &L->attn_post_norm, &L->ffn_post_norm };
    char n[160];
    for (int i = 0; i < 4; i++) {
        bool want = i < 2 ? hp->qk_norm : hp->post_norms;
        if (!want) continue;
        snprintf(n, sizeof n, layer_prefix[hf], (long long)l, names[i][hf], "weight");
        int st = mh_model_get_vec(m, get, n, i < 2 ? hp->head_dim : hp->n_embd, true, slot[i], err);
        if (st) return st;
    }
    return MH_OK;
}

/* One layer, in the order the loaders always checked it: attention norm,
 * q k v o, the q/k/v biases (qwen2 only), FFN norm, gate up down. */
static int bind_layer(mh_model *m, mh_layout lay, mh_tensor_getter get, int64_t l, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    mh_layer *L = &m->layers[l];
    const int hf = lay == MH_LAYOUT_HF;
    const bool bias = hp->arch == MH_ARCH_QWEN2;
    const float **bslot[3] = { &L->bq, &L->bk, &L->bv };
    char n[160];
    int64_t rows, cols;
    int st;
    snprintf(n, sizeof n, layer_prefix[hf], (long long)l, norm_names[0][hf], "weight");
    if ((st = mh_model_get_vec(m, get, n, hp->n_embd, true, &L->attn_norm, err))) return st;
    if ((st = bind_fused(m, lay, get, l, err)) || (st = bind_norms(m, lay, get, l, err))) return st;
    for (int k = 0; k < MH_PROJ_COUNT; k++) {
        if (k == MH_PROJ_GATE) {
            for (int b = 0; b < 3; b++) {
                proj_shape(hp, (mh_proj)b, &rows, &cols);
                snprintf(n, sizeof n, layer_prefix[hf], (long long)l, proj_names[b][hf], "bias");
                if ((st = mh_model_get_vec(m, get, n, rows, bias, bslot[b], err))) return st;
            }
            snprintf(n, sizeof n, layer_prefix[hf], (long long)l, norm_names[1][hf], "weight");
            if ((st = mh_model_get_vec(m, get, n, hp->n_embd, true, &L->ffn_norm, err))) return st;
        }
        if (proj_slot(L, (mh_proj)k)->data) continue;     /* a slice of a fused tensor */
        if (k >= MH_PROJ_GATE && hp->n_expert > 0) break;  /* experts instead (moe.c) */
        proj_shape(hp, (mh_proj)k, &rows, &cols);
        snprintf(n, sizeof n, layer_prefix[hf], (long long)l, proj_names[k][hf], "weight");
        if ((st = mh_model_get_weight(m, get, n, rows, cols, true, proj_slot(L, (mh_proj)k), err)))
            return st;
    }
    return hp->n_expert > 0 ? mh_moe_bind_layer(m, lay, get, l, err) : MH_OK;
}

int mh_model_bind_layers(mh_model *m, mh_layout layout, mh_tensor_getter get, mh_err *err)
{
    int st = MH_OK;
    for (int64_t l = 0; l < m->hp.n_layer && !st; l++) st = bind_layer(m, layout, get, l, err);
    return st;
}

const mh_model_globals *mh_model_globals_get(const mh_model *m) { return &m->g; }
