/* train_model.c: builds a trainer over a loaded model: the parameter list
 * (f32 masters for full training, LoRA A/B pairs otherwise), the views the
 * graph reads, and the accessors. Layer: engine/train. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/quant.h"
#include "train_internal.h"

void mh_train_config_init(mh_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->method = MH_TRAIN_LORA;
    c->lora_rank = 8;
    c->lora_alpha = 16;
    c->lora_targets = MH_LORA_Q | MH_LORA_K | MH_LORA_V | MH_LORA_O;
    c->lr = 2e-4f;
    c->weight_decay = 0.01f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->adam_eps = 1e-8f;
    c->decay = MH_DECAY_CONSTANT;
    c->grad_clip = 1.0f;
    c->accumulate = 1;
    c->seed = 1;
}

static int check_config(const mh_train_config *c, mh_err *err)
{
    if (c->method != MH_TRAIN_LORA && c->method != MH_TRAIN_FULL)
        return mh_err_set(err, MH_EINVAL, "method must be lora or full");
    if (c->method == MH_TRAIN_LORA) {
        if (c->lora_rank < 1) return mh_err_set(err, MH_EINVAL, "lora.rank must be >= 1, got %d", c->lora_rank);
        if (!(c->lora_dropout >= 0 && c->lora_dropout < 1))
            return mh_err_set(err, MH_EINVAL, "lora.dropout must be in [0, 1), got %g", (double)c->lora_dropout);
        if (!(c->lora_targets & 127) || (c->lora_targets & ~127u))
            return mh_err_set(err, MH_EINVAL, "lora.targets must name q, k, v, o, gate, up or down");
    }
    if (!(c->lr >= 0) || !(c->min_lr >= 0)) return mh_err_set(err, MH_EINVAL, "lr and min_lr must be >= 0");
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return mh_err_set(err, MH_EINVAL, "betas must be in [0, 1)");
    if (!(c->adam_eps > 0)) return mh_err_set(err, MH_EINVAL, "eps must be > 0");
    if (!(c->weight_decay >= 0)) return mh_err_set(err, MH_EINVAL, "weight_decay must be >= 0");
    if (c->accumulate < 1) return mh_err_set(err, MH_EINVAL, "accumulate must be >= 1, got %d", c->accumulate);
    if (c->warmup < 0) return mh_err_set(err, MH_EINVAL, "schedule.warmup must be >= 0");
    if (c->decay != MH_DECAY_CONSTANT && c->total_steps <= c->warmup)
        return mh_err_set(err, MH_EINVAL, "schedule.total (%lld) must exceed warmup (%lld) for a decay",
                          (long long)c->total_steps, (long long)c->warmup);
    return MH_OK;
}

/* ===== parameters ===== */

static mh_train_param *add_param(mh_trainer *t, const char *name, int64_t rows, int64_t cols, bool decay)
{
    mh_train_param *p = &t->params[t->n_params];
    size_t n = (size_t)(rows * cols);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->rows = rows;
    p->cols = cols;
    p->decay = decay;
    p->data = calloc(4 * n, sizeof(float));    /* data, grad, m, v in one block */
    if (!p->data) return NULL;
    p->grad = p->data + n;
    p->m = p->grad + n;
    p->v = p->m + n;
    t->n_params++;
    return p;
}

/* A trainable f32 copy of a weight of any dtype. */
static mh_train_param *copy_weight(mh_trainer *t, const char *name, const mh_weight *w)
{
    mh_train_param *p = add_param(t, name, w->rows, w->cols, true);
    size_t row = mh_dtype_row_size(w->dtype, w->cols);
    for (int64_t r = 0; p && r < w->rows; r++)
        if (mh_dequantize_row(w->dtype, (const uint8_t *)w->data + r * row, p->data + r * w->cols, w->cols))
            return NULL;
    return p;
}

static mh_train_param *copy_vec(mh_trainer *t, const char *name, const float *v, int64_t n)
{
    mh_train_param *p = add_param(t, name, 1, n, false);
    if (p) memcpy(p->data, v, sizeof(float) * (size_t)n);
    return p;
}

/* uniform(-1/sqrt(in), 1/sqrt(in)) from a splitmix stream: PEFT's
 * kaiming-uniform(a = sqrt 5) bound for A; B starts at zero, so the
 * adapted model equals the base at step 0 */
static void lora_init(float *a, int64_t n, int64_t in, uint64_t seed, uint64_t stream)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + stream * 0xbf58476d1ce4e5b9ULL + 1;
    float bound = 1.0f / sqrtf((float)in);
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        a[i] = ((float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * bound;
    }
}

static int setup_lin(mh_trainer *t, int64_t l, int k, const mh_weight *w)
{
    tr_lin *L = &t->layers[l].lin[k];
    char name[64];
    L->base = w;
    L->in = w->cols;
    L->out = w->rows;
    L->id = (int)(l * MH_PROJ_COUNT + k);
    snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, mh_proj_name((mh_proj)k, MH_LAYOUT_GGUF));
    if (t->cfg.method == MH_TRAIN_FULL) return (L->w = copy_weight(t, name, w)) ? MH_OK : MH_ENOMEM;
    if (!(t->cfg.lora_targets & (1u << k))) return MH_OK;
    char an[96], bn[96];
    snprintf(an, sizeof an, "%s.lora_a", name);
    snprintf(bn, sizeof bn, "%s.lora_b", name);
    int64_t r = t->cfg.lora_rank;
    if (!(L->a = add_param(t, an, r, w->cols, true)) || !(L->b = add_param(t, bn, w->rows, r, true)))
        return MH_ENOMEM;
    lora_init(L->a->data, r * w->cols, w->cols, t->cfg.seed, (uint64_t)L->id);
    return MH_OK;
}

static int setup_layer(mh_trainer *t, int64_t l)
{
    const mh_layer *ml = mh_model_layer(t->m, l);
    const mh_hparams *hp = t->hp;
    tr_layer *L = &t->layers[l];
    char name[96];
    L->attn_norm = ml->attn_norm; L->ffn_norm = ml->ffn_norm;
    L->bq = ml->bq; L->bk = ml->bk; L->bv = ml->bv;
    if (t->cfg.method == MH_TRAIN_FULL) {
        int64_t qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
#define VEC(field, pfield, fmt, n) do { snprintf(name, sizeof name, fmt, (long long)l); \
        if (!(L->pfield = copy_vec(t, name, ml->field, n))) return MH_ENOMEM; \
        L->field = L->pfield->data; } while (0)
        VEC(attn_norm, attn_norm_p, "blk.%lld.attn_norm.weight", hp->n_embd);
        VEC(ffn_norm, ffn_norm_p, "blk.%lld.ffn_norm.weight", hp->n_embd);
        if (ml->bq) VEC(bq, bq_p, "blk.%lld.attn_q.bias", qd);
        if (ml->bk) VEC(bk, bk_p, "blk.%lld.attn_k.bias", kvd);
        if (ml->bv) VEC(bv, bv_p, "blk.%lld.attn_v.bias", kvd);
#undef VEC
    }
    for (int k = 0; k < MH_PROJ_COUNT; k++)
        if (setup_lin(t, l, k, mh_layer_proj(ml, (mh_proj)k))) return MH_ENOMEM;
    return MH_OK;
}

static int setup_ends(mh_trainer *t)
{
    const mh_model_globals *m = mh_model_globals_get(t->m);
    t->embd_w = m->tok_embd;
    t->out_w = m->output;
    t->out_norm = m->output_norm;
    if (t->cfg.method != MH_TRAIN_FULL) return MH_OK;
    if (!(t->embd_p = copy_weight(t, "token_embd.weight", &m->tok_embd))) return MH_ENOMEM;
    t->embd_p->decay = false;       /* as most recipes: no decay on embeddings */
    t->embd_w = (mh_weight){ MH_DTYPE_F32, t->embd_p->data, m->tok_embd.rows, m->tok_embd.cols, NULL };
    if (!(t->out_norm_p = copy_vec(t, "output_norm.weight", m->output_norm, t->hp->n_embd))) return MH_ENOMEM;
    t->out_norm = t->out_norm_p->data;
    if (t->hp->tied_embeddings) t->out_p = t->embd_p;
    else if (!(t->out_p = copy_weight(t, "output.weight", &m->output))) return MH_ENOMEM;
    t->out_w = (mh_weight){ MH_DTYPE_F32, t->out_p->data, t->out_p->rows, t->out_p->cols, NULL };
    return MH_OK;
}

mh_trainer *mh_trainer_new(mh_model *m, const mh_train_config *cfg, mh_err *err)
{
    if (!m || !cfg) { mh_err_set(err, MH_EINVAL, "trainer: no model or config"); return NULL; }
    if (check_config(cfg, err)) return NULL;
    const mh_hparams *hp = mh_model_hparams(m);
    if (hp->arch != MH_ARCH_LLAMA && hp->arch != MH_ARCH_QWEN2) {   /* the graph is llama's */
        mh_err_set(err, MH_EINVAL, "trainer: %s models cannot be trained yet (llama, mistral, qwen2)",
                   hp->arch_name);
        return NULL;
    }
    if (hp->n_expert > 0) {   /* the graph's FFN is dense */
        mh_err_set(err, MH_EINVAL, "trainer: mixture-of-experts models (%s) cannot be trained yet",
                   hp->arch_name);
        return NULL;
    }
    if (hp->n_swa > 0 || hp->rope_scaling == MH_ROPE_SCALING_LINEAR || hp->rope_scaling == MH_ROPE_SCALING_YARN) {
        mh_err_set(err, MH_EINVAL, "trainer: sliding-window attention and linear/yarn rope "
                   "scaling cannot be trained yet");
        return NULL;
    }
    mh_trainer *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->m = m;
    t->hp = hp;
    t->cfg = *cfg;
    t->lora_scale = cfg->method == MH_TRAIN_LORA ? cfg->lora_alpha / (float)cfg->lora_rank : 0;
    t->params = calloc((size_t)(8 + hp->n_layer * 2 * MH_PROJ_COUNT), sizeof *t->params);
    t->layers = calloc((size_t)hp->n_layer, sizeof *t->layers);
    if (!t->params || !t->layers || setup_ends(t)) goto oom;
    for (int64_t l = 0; l < hp->n_layer; l++)
        if (setup_layer(t, l)) goto oom;
    return t;
oom:
    mh_trainer_free(t);
    mh_err_set(err, MH_ENOMEM, "trainer: out of memory (or unreadable weight type) for %lld parameters",
               (long long)mh_model_n_params(m));
    return NULL;
}

void mh_trainer_free(mh_trainer *t)
{
    if (!t) return;
    for (int i = 0; t->params && i < t->n_params; i++) free(t->params[i].data);
    free(t->params);
    free(t->layers);
    free(t->rope_cs);
    free(t);
}

const mh_train_config *mh_trainer_config(const mh_trainer *t) { return &t->cfg; }
int mh_trainer_n_params(const mh_trainer *t) { return t->n_params; }
int64_t mh_trainer_steps(const mh_trainer *t) { return t->step; }

mh_train_param *mh_trainer_param(mh_trainer *t, int i)
{
    return i >= 0 && i < t->n_params ? &t->params[i] : NULL;
}

int64_t mh_trainer_n_trainable(const mh_trainer *t)
{
    int64_t n = 0;
    for (int i = 0; i < t->n_params; i++) n += t->params[i].rows * t->params[i].cols;
    return n;
}
