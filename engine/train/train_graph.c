/* train_graph.c: the training forward and backward of a llama-family model
 * over a batch of rows (B, T). Layer: engine/train. Saves per layer what
 * backward needs (docs/training.md); with cfg.checkpoint only each layer's
 * input is kept and its internals are recomputed during backward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mh/quant.h"
#include "train_internal.h"

typedef struct tr_ws {
    int64_t B, T, BT;
    float *xs;                /* (n_layer + 1, BT, E) residual stream at layer inputs */
    tr_acts *acts;            /* n_acts: one per layer, or one reused */
    int n_acts;
    float *xf, *rstdf;        /* final norm output (BT, E), (BT) */
    float *tmp;               /* (BT, E) */
    float *dx, *dxn, *dh, *dg, *du, *dq, *dk, *dv, *datt;    /* backward scratch */
    float *logits;            /* (chunk, V) */
    float *dxf;               /* (BT, E) */
    int32_t *targets;         /* (BT) */
    float *wt;                /* (BT) */
    int64_t chunk;
    void *mem;
} tr_ws;

/* ===== workspace: sizes tallied, then one allocation carved up ===== */

typedef struct carve { float **p[64]; int64_t n[64]; int k; } carve;

static void want(carve *c, float **p, int64_t n) { c->p[c->k] = p; c->n[c->k++] = n; }

static void *carve_all(carve *c)
{
    int64_t total = 0;
    for (int i = 0; i < c->k; i++) total += (c->n[i] + 15) & ~(int64_t)15;
    float *m = malloc(sizeof(float) * (size_t)(total > 0 ? total : 1)), *q = m;
    if (!m) return NULL;
    for (int i = 0; i < c->k; i++) { *c->p[i] = q; q += (c->n[i] + 15) & ~(int64_t)15; }
    return m;
}

static void ws_free(tr_ws *w)
{
    for (int i = 0; w->acts && i < w->n_acts; i++) free(w->acts[i].xn1);   /* each layer's block */
    free(w->acts);
    free(w->mem);
    free(w->targets);
}

static int acts_alloc(const mh_trainer *t, tr_acts *a, int64_t B, int64_t T)
{
    const mh_hparams *hp = t->hp;
    int64_t BT = B * T, E = hp->n_embd, F = hp->n_ff, qd = hp->n_head * hp->head_dim,
            kvd = hp->n_head_kv * hp->head_dim, r = t->cfg.method == MH_TRAIN_LORA ? t->cfg.lora_rank : 0;
    carve c = { .k = 0 };
    want(&c, &a->xn1, BT * E); want(&c, &a->rstd1, BT); want(&c, &a->q, BT * qd);
    want(&c, &a->k, BT * kvd); want(&c, &a->v, BT * kvd); want(&c, &a->att, BT * qd);
    want(&c, &a->lse, B * hp->n_head * T); want(&c, &a->x1, BT * E); want(&c, &a->rstd2, BT);
    want(&c, &a->xn2, BT * E); want(&c, &a->g, BT * F); want(&c, &a->u, BT * F); want(&c, &a->h, BT * F);
    for (int i = 0; i < MH_PROJ_COUNT; i++) want(&c, &a->lora_u[i], BT * r);
    return carve_all(&c) ? MH_OK : MH_ENOMEM;   /* xn1 is first: freeing it frees the block */
}

static int ws_alloc(const mh_trainer *t, tr_ws *w, int64_t B, int64_t T, bool backward, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    int64_t BT = B * T, E = hp->n_embd, F = hp->n_ff, qd = hp->n_head * hp->head_dim,
            kvd = hp->n_head_kv * hp->head_dim, V = hp->n_vocab;
    memset(w, 0, sizeof *w);
    w->B = B; w->T = T; w->BT = BT;
    w->chunk = ((int64_t)1 << 22) / V;     /* logits in slices of ~16 MiB */
    if (w->chunk < 1) w->chunk = 1;
    if (w->chunk > BT) w->chunk = BT;
    w->n_acts = backward && !t->cfg.checkpoint ? (int)hp->n_layer : 1;
    w->acts = calloc((size_t)w->n_acts, sizeof *w->acts);
    w->targets = malloc(sizeof(int32_t) * (size_t)BT);
    carve c = { .k = 0 };
    want(&c, &w->xs, (hp->n_layer + 1) * BT * E); want(&c, &w->xf, BT * E); want(&c, &w->rstdf, BT);
    want(&c, &w->tmp, BT * E); want(&c, &w->logits, w->chunk * V); want(&c, &w->wt, BT);
    if (backward) {
        want(&c, &w->dx, BT * E); want(&c, &w->dxn, BT * E); want(&c, &w->dh, BT * F);
        want(&c, &w->dg, BT * F); want(&c, &w->du, BT * F); want(&c, &w->dq, BT * qd);
        want(&c, &w->dk, BT * kvd); want(&c, &w->dv, BT * kvd); want(&c, &w->datt, BT * qd);
        want(&c, &w->dxf, BT * E);
    }
    if (w->acts && w->targets) w->mem = carve_all(&c);
    bool ok = w->acts && w->targets && w->mem;
    for (int i = 0; ok && i < w->n_acts; i++) ok = acts_alloc(t, &w->acts[i], B, T) == MH_OK;
    if (ok) return MH_OK;
    ws_free(w);
    return mh_err_set(err, MH_ENOMEM, "train: out of memory for activations of %lld x %lld tokens",
                      (long long)B, (long long)T);
}

/* ===== one layer ===== */

static void add_bias(float *x, const float *b, int64_t T, int64_t n)
{
    if (!b) return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) x[t * n + i] += b[i];
}

static void bias_grad(mh_train_param *p, const float *d, int64_t T, int64_t n)
{
    if (!p) return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) p->grad[i] += d[t * n + i];
}

static int layer_fwd(mh_trainer *t, tr_ws *w, int64_t l, tr_acts *a, int64_t key, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    const tr_layer *L = &t->layers[l];
    int64_t BT = w->BT, E = hp->n_embd, F = hp->n_ff, qd = hp->n_head * hp->head_dim,
            kvd = hp->n_head_kv * hp->head_dim;
    const float *x = w->xs + l * BT * E;
    float *xo = w->xs + (l + 1) * BT * E;
    int st;
    mh_tr_rmsnorm_fwd(a->xn1, a->rstd1, x, L->attn_norm, BT, E, hp->rms_eps);
    if ((st = mh_tr_lin_fwd(t, &L->lin[MH_PROJ_Q], a->xn1, BT, a->q, a->lora_u[MH_PROJ_Q], key, err)) ||
        (st = mh_tr_lin_fwd(t, &L->lin[MH_PROJ_K], a->xn1, BT, a->k, a->lora_u[MH_PROJ_K], key, err)) ||
        (st = mh_tr_lin_fwd(t, &L->lin[MH_PROJ_V], a->xn1, BT, a->v, a->lora_u[MH_PROJ_V], key, err)))
        return st;
    add_bias(a->q, L->bq, BT, qd);
    add_bias(a->k, L->bk, BT, kvd);
    add_bias(a->v, L->bv, BT, kvd);
    mh_tr_rope(a->q, t->rope_cs, w->B, w->T, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox, false);
    mh_tr_rope(a->k, t->rope_cs, w->B, w->T, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_neox, false);
    if (mh_tr_attn_fwd(a->att, a->lse, a->q, a->k, a->v, w->B, w->T, hp->n_head, hp->n_head_kv, hp->head_dim))
        return mh_err_set(err, MH_ENOMEM, "train: out of memory in attention");
    if ((st = mh_tr_lin_fwd(t, &L->lin[MH_PROJ_O], a->att, BT, w->tmp, a->lora_u[MH_PROJ_O], key, err))) return st;
    for (int64_t i = 0; i < BT * E; i++) a->x1[i] = x[i] + w->tmp[i];
    mh_tr_rmsnorm_fwd(a->xn2, a->rstd2, a->x1, L->ffn_norm, BT, E, hp->rms_eps);
    if ((st = mh_tr_lin_fwd(t, &L->lin[MH_PROJ_GATE], a->xn2, BT, a->g, a->lora_u[MH_PROJ_GATE], key, err)) ||
        (st = mh_tr_lin_fwd(t, &L->lin[MH_PROJ_UP], a->xn2, BT, a->u, a->lora_u[MH_PROJ_UP], key, err)))
        return st;
    mh_tr_swiglu_fwd(a->h, a->g, a->u, BT * F);
    if ((st = mh_tr_lin_fwd(t, &L->lin[MH_PROJ_DOWN], a->h, BT, w->tmp, a->lora_u[MH_PROJ_DOWN], key, err))) return st;
    for (int64_t i = 0; i < BT * E; i++) xo[i] = a->x1[i] + w->tmp[i];
    return MH_OK;
}

/* w->dx: dL/d(layer output) in, dL/d(layer input) out */
static int layer_bwd(mh_trainer *t, tr_ws *w, int64_t l, const tr_acts *a, int64_t key, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    const tr_layer *L = &t->layers[l];
    int64_t BT = w->BT, E = hp->n_embd, F = hp->n_ff, qd = hp->n_head * hp->head_dim,
            kvd = hp->n_head_kv * hp->head_dim;
    const float *x = w->xs + l * BT * E;
    int st;
    if ((st = mh_tr_lin_bwd(t, &L->lin[MH_PROJ_DOWN], w->dx, a->h, a->lora_u[MH_PROJ_DOWN], BT, w->dh, false, key, err)))
        return st;
    mh_tr_swiglu_bwd(w->dg, w->du, w->dh, a->g, a->u, BT * F);
    if ((st = mh_tr_lin_bwd(t, &L->lin[MH_PROJ_GATE], w->dg, a->xn2, a->lora_u[MH_PROJ_GATE], BT, w->dxn, false, key, err)) ||
        (st = mh_tr_lin_bwd(t, &L->lin[MH_PROJ_UP], w->du, a->xn2, a->lora_u[MH_PROJ_UP], BT, w->dxn, true, key, err)))
        return st;
    mh_tr_rmsnorm_bwd(w->tmp, L->ffn_norm_p ? L->ffn_norm_p->grad : NULL, w->dxn, a->x1, a->rstd2,
                      L->ffn_norm, BT, E);
    for (int64_t i = 0; i < BT * E; i++) w->dx[i] += w->tmp[i];
    if ((st = mh_tr_lin_bwd(t, &L->lin[MH_PROJ_O], w->dx, a->att, a->lora_u[MH_PROJ_O], BT, w->datt, false, key, err)))
        return st;
    if (mh_tr_attn_bwd(w->dq, w->dk, w->dv, w->datt, a->att, a->lse, a->q, a->k, a->v, w->B, w->T,
                       hp->n_head, hp->n_head_kv, hp->head_dim))
        return mh_err_set(err, MH_ENOMEM, "train: out of memory in attention");
    mh_tr_rope(w->dq, t->rope_cs, w->B, w->T, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox, true);
    mh_tr_rope(w->dk, t->rope_cs, w->B, w->T, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_neox, true);
    bias_grad(L->bq_p, w->dq, BT, qd);
    bias_grad(L->bk_p, w->dk, BT, kvd);
    bias_grad(L->bv_p, w->dv, BT, kvd);
    if ((st = mh_tr_lin_bwd(t, &L->lin[MH_PROJ_Q], w->dq, a->xn1, a->lora_u[MH_PROJ_Q], BT, w->dxn, false, key, err)) ||
        (st = mh_tr_lin_bwd(t, &L->lin[MH_PROJ_K], w->dk, a->xn1, a->lora_u[MH_PROJ_K], BT, w->dxn, true, key, err)) ||
        (st = mh_tr_lin_bwd(t, &L->lin[MH_PROJ_V], w->dv, a->xn1, a->lora_u[MH_PROJ_V], BT, w->dxn, true, key, err)))
        return st;
    mh_tr_rmsnorm_bwd(w->tmp, L->attn_norm_p ? L->attn_norm_p->grad : NULL, w->dxn, x, a->rstd1,
                      L->attn_norm, BT, E);
    for (int64_t i = 0; i < BT * E; i++) w->dx[i] += w->tmp[i];
    return MH_OK;
}

/* ===== the head: final norm, output projection in row slices, loss ===== */

static int head(mh_trainer *t, tr_ws *w, bool backward, float gscale, double *loss, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    int64_t BT = w->BT, E = hp->n_embd, V = hp->n_vocab;
    tr_lin out = { .base = &t->out_w, .w = t->out_p, .in = E, .out = V, .id = -1 };
    const float *xL = w->xs + hp->n_layer * BT * E;
    int st;
    mh_tr_rmsnorm_fwd(w->xf, w->rstdf, xL, t->out_norm, BT, E, hp->rms_eps);
    *loss = 0;
    for (int64_t r0 = 0; r0 < BT; r0 += w->chunk) {
        int64_t n = BT - r0 < w->chunk ? BT - r0 : w->chunk;
        if ((st = mh_tr_lin_fwd(t, &out, w->xf + r0 * E, n, w->logits, NULL, -1, err))) return st;
        *loss += mh_tr_xent(backward ? w->logits : NULL, w->logits, w->targets + r0, w->wt + r0, n, V, gscale);
        if (backward &&
            (st = mh_tr_lin_bwd(t, &out, w->logits, w->xf + r0 * E, NULL, n, w->dxf + r0 * E, false, -1, err)))
            return st;
    }
    if (backward)
        mh_tr_rmsnorm_bwd(w->dx, t->out_norm_p ? t->out_norm_p->grad : NULL, w->dxf, xL, w->rstdf,
                          t->out_norm, BT, E);
    return MH_OK;
}

/* ===== driver ===== */

int64_t mh_tr_count(const uint8_t *mask, int64_t B, int64_t T)
{
    if (!mask) return B * (T - 1);
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 1; i < T; i++) n += mask[b * T + i] != 0;
    return n;
}

static int embed(mh_trainer *t, tr_ws *w, const int32_t *tokens, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    int64_t E = hp->n_embd;
    size_t row = mh_dtype_row_size(t->embd_w.dtype, E);
    for (int64_t r = 0; r < w->BT; r++)
        if (mh_dequantize_row(t->embd_w.dtype, (const uint8_t *)t->embd_w.data + (size_t)tokens[r] * row,
                              w->xs + r * E, E))
            return mh_err_set(err, MH_ETYPE, "train: cannot read the token embedding (%s)",
                              mh_dtype_info(t->embd_w.dtype)->name);
    return MH_OK;
}

static int ensure_rope(mh_trainer *t, int64_t T, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    if (t->rope_T >= T) return MH_OK;
    float *cs = malloc(sizeof(float) * (size_t)(T * hp->n_rot));
    if (!cs) return mh_err_set(err, MH_ENOMEM, "train: out of memory for rope tables");
    mh_tr_rope_table(cs, T, hp->n_rot, hp->rope_base, mh_model_globals_get(t->m)->rope_freqs);
    free(t->rope_cs);
    t->rope_cs = cs;
    t->rope_T = T;
    return MH_OK;
}

static int run_layers(mh_trainer *t, tr_ws *w, bool backward, float gscale, int64_t key, double *loss,
                      mh_err *err)
{
    const mh_hparams *hp = t->hp;
    int st = MH_OK;
    for (int64_t l = 0; l < hp->n_layer && !st; l++)
        st = layer_fwd(t, w, l, &w->acts[w->n_acts > 1 ? l : 0], key, err);
    if (!st) st = head(t, w, backward, gscale, loss, err);
    for (int64_t l = hp->n_layer - 1; backward && l >= 0 && !st; l--) {
        tr_acts *a = &w->acts[w->n_acts > 1 ? l : 0];
        if (w->n_acts == 1 && l < hp->n_layer - 1) st = layer_fwd(t, w, l, a, key, err);   /* recompute */
        if (!st) st = layer_bwd(t, w, l, a, key, err);
    }
    return st;
}

int mh_tr_run(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
              bool backward, float gscale, int64_t key, double *loss, mh_err *err)
{
    const mh_hparams *hp = t->hp;
    int64_t E = hp->n_embd;
    if (B <= 0 || T < 2) return mh_err_set(err, MH_EINVAL, "train: need B >= 1 rows of T >= 2 tokens");
    for (int64_t i = 0; i < B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return mh_err_set(err, MH_EINVAL, "train: token id %d outside the vocabulary (0..%lld)",
                              tokens[i], (long long)hp->n_vocab - 1);
    int st = ensure_rope(t, T, err);
    if (st) return st;
    tr_ws w;
    if ((st = ws_alloc(t, &w, B, T, backward, err))) return st;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            int64_t r = b * T + i;
            bool last = i == T - 1;
            w.targets[r] = last ? 0 : tokens[r + 1];
            w.wt[r] = last ? 0.0f : !mask || mask[r + 1] ? 1.0f : 0.0f;
        }
    st = embed(t, &w, tokens, err);
    if (!st) st = run_layers(t, &w, backward, gscale, key, loss, err);
    if (!st && backward && t->embd_p)     /* scatter-add into the embedding rows */
        for (int64_t r = 0; r < B * T; r++) {
            float *g = t->embd_p->grad + (int64_t)tokens[r] * E;
            for (int64_t i = 0; i < E; i++) g[i] += w.dx[r * E + i];
        }
    ws_free(&w);
    return st;
}
