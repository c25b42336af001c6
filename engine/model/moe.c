/* moe.c: mixture-of-experts feed-forward layers (Mixtral: llama with
 * experts; qwen2moe, with its sigmoid-gated shared expert): the router, the
 * top-k choice, each chosen expert's SwiGLU and the weighted sum, in the
 * order llama.cpp c392e5094 computes them (llm_build_moe_ffn, build_qwen2moe).
 * Layer: engine/model (pure C11; linear.c runs every matrix, mh/kernels.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/kernels.h"
#include "mh/threadpool.h"
#include "model_internal.h"

/* ===== binding ===== */

/* One stacked expert tensor (n_expert * rows, cols) cut into its experts. */
static int bind_stack(mh_model *m, mh_tensor_getter get, int64_t l, const char *what, int64_t rows,
                      int64_t cols, mh_weight *views, mh_err *err)
{
    const int64_t X = m->hp.n_expert;
    char n[160];
    mh_weight w;
    int st = MH_OK;
    if (m->hf) {   /* a Hugging Face folder: a tensor per expert (hf_config.h names them) */
        for (int64_t e = 0; e < X && !st; e++) {
            snprintf(n, sizeof n, "blk.%lld.%s.%lld.weight", (long long)l, what, (long long)e);
            st = mh_model_get_weight(m, get, n, rows, cols, true, &views[e], err);
        }
        return st;
    }
    snprintf(n, sizeof n, "blk.%lld.%s.weight", (long long)l, what);
    st = get(m, n, 3, X * rows, cols, true, &w, err);
    for (int64_t e = 0; e < X && !st; e++) st = mh_model_slice_rows(m, &w, e * rows, rows, &views[e], err);
    return st;
}

static int bind_shared(mh_model *m, mh_tensor_getter get, int64_t l, mh_moe_layer *M, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, S = hp->n_ff_shexp;
    char n[160];
    int st;
    snprintf(n, sizeof n, "blk.%lld.ffn_gate_inp_shexp.weight", (long long)l);
    if ((st = mh_model_get_vec(m, get, n, E, true, &M->shexp_gate, err))) return st;
    snprintf(n, sizeof n, "blk.%lld.ffn_gate_shexp.weight", (long long)l);
    if ((st = mh_model_get_weight(m, get, n, S, E, true, &M->sh_gate, err))) return st;
    snprintf(n, sizeof n, "blk.%lld.ffn_up_shexp.weight", (long long)l);
    if ((st = mh_model_get_weight(m, get, n, S, E, true, &M->sh_up, err))) return st;
    snprintf(n, sizeof n, "blk.%lld.ffn_down_shexp.weight", (long long)l);
    return mh_model_get_weight(m, get, n, E, S, true, &M->sh_down, err);
}

int mh_moe_bind_layer(mh_model *m, mh_layout layout, mh_tensor_getter get, int64_t l, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const int64_t X = hp->n_expert, E = hp->n_embd, F = hp->n_ff_exp;
    if (layout != MH_LAYOUT_GGUF)
        return mh_err_set(err, MH_EFORMAT, "model: mixture-of-experts checkpoints load from GGUF only");
    if (!m->moe) {
        m->moe = calloc((size_t)hp->n_layer, sizeof *m->moe);
        int st = m->moe ? mh_model_own(m, m->moe, err) : mh_err_set(err, MH_ENOMEM, "model: out of memory");
        if (st) return st;
    }
    mh_moe_layer *M = &m->moe[l];
    mh_weight *v = calloc((size_t)(3 * X), sizeof *v);
    int st = v ? mh_model_own(m, v, err) : mh_err_set(err, MH_ENOMEM, "model: out of memory");
    if (st) return st;
    M->gate = v;
    M->up = v + X;
    M->down = v + 2 * X;
    char n[160];
    snprintf(n, sizeof n, "blk.%lld.ffn_gate_inp.weight", (long long)l);
    if ((st = mh_model_get_weight(m, get, n, X, E, true, &M->router, err)) ||
        (st = bind_stack(m, get, l, "ffn_gate_exps", F, E, M->gate, err)) ||
        (st = bind_stack(m, get, l, "ffn_up_exps", F, E, M->up, err)) ||
        (st = bind_stack(m, get, l, "ffn_down_exps", E, F, M->down, err)))
        return st;
    return hp->n_ff_shexp > 0 ? bind_shared(m, get, l, M, err) : MH_OK;
}

size_t mh_model_moe_idle_bytes(const mh_model *m)
{
    const mh_hparams *hp = &m->hp;
    size_t all = 0;   /* every routed expert (a folder's may differ in type) */
    if (!m->moe || hp->n_expert <= 0) return 0;
    for (int64_t l = 0; l < hp->n_layer; l++)
        for (int64_t e = 0; e < hp->n_expert; e++) {
            const mh_weight *w[3] = { &m->moe[l].gate[e], &m->moe[l].up[e], &m->moe[l].down[e] };
            for (int k = 0; k < 3; k++) all += mh_dtype_row_size(w[k]->dtype, w[k]->cols) * (size_t)w[k]->rows;
        }
    return all / (size_t)hp->n_expert * (size_t)(hp->n_expert - hp->n_expert_used);
}

/* ===== forward ===== */

/* The scratch of one call, carved from the RunState's floats. */
typedef struct moe_buf {
    float *prob;        /* (T, n_expert) router probabilities */
    int32_t *ids;       /* (T, k) chosen experts, best first */
    float *w;           /* (T, k) their weights */
    int32_t *order;     /* (T * k) (token, slot) pairs t*k+i grouped by expert */
    int32_t *start;     /* (n_expert + 1) each expert's range in order */
    float *xg;          /* (T, n_embd) rows gathered for one expert */
    float *g, *u;       /* (T, max(n_ff_exp, n_ff_shexp)) */
    float *d;           /* (T, n_embd) an expert's output rows */
    float *slots;       /* (T, k, n_embd) weighted outputs, summed in slot order */
    float *sh;          /* (T, n_embd) the shared expert's output */
    float *eg;          /* one token: (k + 1, 2 max F) each expert's own gate/up rows */
} moe_buf;

size_t mh_moe_scratch_len(const mh_model *m, int64_t T)
{
    const mh_hparams *hp = &m->hp;
    size_t X = (size_t)hp->n_expert, k = (size_t)hp->n_expert_used, E = (size_t)hp->n_embd;
    size_t F = (size_t)(hp->n_ff_exp > hp->n_ff_shexp ? hp->n_ff_exp : hp->n_ff_shexp), t = (size_t)T;
    return t * (X + 3 * k + 4 * E + 2 * F + k * E) + X + 1 + 2 * (k + 1) * F;
}

static moe_buf carve(const mh_hparams *hp, int64_t T, float *s)
{
    size_t X = (size_t)hp->n_expert, k = (size_t)hp->n_expert_used, E = (size_t)hp->n_embd;
    size_t F = (size_t)(hp->n_ff_exp > hp->n_ff_shexp ? hp->n_ff_exp : hp->n_ff_shexp), t = (size_t)T;
    moe_buf b;
    b.prob = s;
    b.ids = (int32_t *)(b.prob + t * X);   /* int32 and float share a size */
    b.w = (float *)(b.ids + t * k);
    b.order = (int32_t *)(b.w + t * k);
    b.start = b.order + t * k;
    b.xg = (float *)(b.start + X + 1);
    b.g = b.xg + t * E;
    b.u = b.g + t * F;
    b.d = b.u + t * F;
    b.sh = b.d + t * E;
    b.slots = b.sh + t * E;
    b.eg = b.slots + t * k * E;
    return b;
}

/* Router of one token, as ggml: softmax over every expert's logit (ggml's
 * exp and lane sums, one 1/sum scale), the k largest probabilities best
 * first (ties: the lower id), then for Mixtral the k weights over their
 * sum (summed in double as ggml_sum_rows, divided in float). */
static void route(const mh_hparams *hp, float *p /* (X) logits in, probabilities out */,
                  int32_t *ids, float *w)
{
    const mh_kernels *kn = mh_kernels_get();
    const int64_t X = hp->n_expert, k = hp->n_expert_used;
    float mx = -INFINITY;
    for (int64_t e = 0; e < X; e++) mx = p[e] > mx ? p[e] : mx;
    float inv = (float)(1.0 / kn->softmax_exp_llama(X, p, mx, p));
    for (int64_t e = 0; e < X; e++) p[e] *= inv;
    unsigned char taken[256] = { 0 };
    for (int64_t i = 0; i < k; i++) {
        int64_t best = -1;
        for (int64_t e = 0; e < X; e++)
            if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
        taken[best] = 1;
        ids[i] = (int32_t)best;
        w[i] = p[best];
    }
    if (!hp->expert_norm) return;
    double sum = 0;
    for (int64_t i = 0; i < k; i++) sum += w[i];
    for (int64_t i = 0; i < k; i++) w[i] /= (float)sum;
}

/* y (c, E) = down(silu(gate x) * up x) for rows x (c, E); g, u (c, F). */
static int swiglu_ffn(const mh_weight *gate, const mh_weight *up, const mh_weight *down, const float *x,
                      int64_t c, float *g, float *u, float *y, mh_err *err)
{
    const mh_kernels *kn = mh_kernels_get();
    const int64_t F = gate->rows;
    int st = mh_linear(gate, x, c, g, err);
    if (!st) st = mh_linear(up, x, c, u, err);
    if (st) return st;
    for (int64_t r = 0; r < c; r++)   /* row by row: ggml's vector chunks restart per row */
        kn->swiglu_llama(F, g + r * F, u + r * F, g + r * F);
    return mh_linear(down, g, c, y, err);
}

/* qwen2moe's shared expert's gate for row x: llama.cpp takes the sigmoid
 * as silu(z) / z (ggml has no sigmoid op there); z = 0 would give it NaN. */
static float shared_gate(const mh_moe_layer *M, const float *x, int64_t E)
{
    float z = 0;
    for (int64_t i = 0; i < E; i++) z += M->shexp_gate[i] * x[i];
    return z != 0 ? (z / (1.0f + expf(-z))) / z : 0.5f;
}

/* qwen2moe's shared expert on every row into b->sh, times its gate. */
static int shared_expert(const mh_moe_layer *M, const float *x, int64_t T, int64_t E, moe_buf *b,
                         mh_err *err)
{
    int st = swiglu_ffn(&M->sh_gate, &M->sh_up, &M->sh_down, x, T, b->g, b->u, b->sh, err);
    for (int64_t t = 0; t < T && !st; t++) {
        float s = shared_gate(M, x + t * E, E);
        for (int64_t i = 0; i < E; i++) b->sh[t * E + i] *= s;
    }
    return st;
}

/* One token's experts (items 0..k-1) and shared expert (item k) as one
 * parallel loop: a decode step then waits on the pool once per layer, not
 * once per matrix (the matvecs nested inside run inline, the same sums). */
typedef struct direct_job {
    const mh_moe_layer *M;
    const mh_hparams *hp;
    const float *x;
    moe_buf *b;
    int st[257];
} direct_job;

static void direct_items(void *ctx, int64_t i0, int64_t i1)
{
    direct_job *j = ctx;
    const int64_t E = j->hp->n_embd, k = j->hp->n_expert_used;
    const int64_t F = j->hp->n_ff_exp > j->hp->n_ff_shexp ? j->hp->n_ff_exp : j->hp->n_ff_shexp;
    for (int64_t i = i0; i < i1; i++) {
        float *g = j->b->eg + i * 2 * F, *u = g + F;
        if (i == k) {
            j->st[i] = swiglu_ffn(&j->M->sh_gate, &j->M->sh_up, &j->M->sh_down, j->x, 1, g, u, j->b->sh, NULL);
            continue;
        }
        int32_t e = j->b->ids[i];
        j->st[i] = swiglu_ffn(&j->M->gate[e], &j->M->up[e], &j->M->down[e], j->x, 1, g, u,
                              j->b->slots + i * E, NULL);
    }
}

/* One token: its k experts (and the shared one) straight from x, summed
 * into y in the top-k order. */
static int direct(const mh_moe_layer *M, const mh_hparams *hp, const float *x, float *y, moe_buf *b,
                  mh_err *err)
{
    const int64_t E = hp->n_embd, k = hp->n_expert_used, n = k + (M->shexp_gate != NULL);
    direct_job j = { .M = M, .hp = hp, .x = x, .b = b };
    mh_parallel_for(n, 1, direct_items, &j);
    for (int64_t i = 0; i < n; i++)
        if (j.st[i]) return mh_err_set(err, j.st[i], "moe: expert FFN %d of this token failed (out of memory?)", (int)i);
    for (int64_t i = 0; i < k; i++) {
        const float *d = b->slots + i * E;
        for (int64_t c = 0; c < E; c++) y[c] = i ? y[c] + d[c] * b->w[i] : d[c] * b->w[i];
    }
    if (M->shexp_gate) {
        float s = shared_gate(M, x, E);
        for (int64_t c = 0; c < E; c++) b->sh[c] *= s;
    }
    return MH_OK;
}

/* T tokens: (token, slot) pairs grouped by expert; each expert's rows are
 * gathered, run as one multi-row linear per matrix, and their weighted
 * outputs scattered to their slots, which are then summed in slot order,
 * the order the one-token path adds them in. */
static int batched(const mh_moe_layer *M, const mh_hparams *hp, const float *x, int64_t T, float *y,
                   moe_buf *b, mh_err *err)
{
    const int64_t E = hp->n_embd, k = hp->n_expert_used, X = hp->n_expert;
    memset(b->start, 0, sizeof(int32_t) * (size_t)(X + 1));
    for (int64_t p = 0; p < T * k; p++) b->start[b->ids[p] + 1]++;
    for (int64_t e = 0; e < X; e++) b->start[e + 1] += b->start[e];
    for (int64_t p = 0; p < T * k; p++) {   /* counting sort, token order kept */
        int32_t e = b->ids[p], pos = b->start[e]++;
        b->order[pos] = (int32_t)p;
    }
    for (int64_t e = X; e > 0; e--) b->start[e] = b->start[e - 1];
    b->start[0] = 0;
    for (int64_t e = 0; e < X; e++) {
        int64_t r0 = b->start[e], c = b->start[e + 1] - r0;
        if (!c) continue;
        for (int64_t r = 0; r < c; r++)
            memcpy(b->xg + r * E, x + (b->order[r0 + r] / k) * E, sizeof(float) * (size_t)E);
        int st = swiglu_ffn(&M->gate[e], &M->up[e], &M->down[e], b->xg, c, b->g, b->u, b->d, err);
        if (st) return st;
        for (int64_t r = 0; r < c; r++) {
            int32_t p = b->order[r0 + r];
            float *dst = b->slots + (int64_t)p * E;
            for (int64_t j = 0; j < E; j++) dst[j] = b->d[r * E + j] * b->w[p];
        }
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < E; j++) {
            float acc = b->slots[(t * k) * E + j];
            for (int64_t i = 1; i < k; i++) acc += b->slots[(t * k + i) * E + j];
            y[t * E + j] = acc;
        }
    return MH_OK;
}

int mh_moe_ffn(const mh_model *m, int64_t l, const float *x, int64_t T, float *y, float *scratch,
               mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const mh_moe_layer *M = &m->moe[l];
    const int64_t E = hp->n_embd, X = hp->n_expert, k = hp->n_expert_used;
    moe_buf b = carve(hp, T, scratch);
    int st = MH_OK;
    /* the router a row at a time: an f32 sgemm's sums depend on the batch
     * size, and an ulp there can change a choice (or an int8 step) later */
    for (int64_t t = 0; t < T && !st; t++) st = mh_linear(&M->router, x + t * E, 1, b.prob + t * X, err);
    if (st) return st;
    for (int64_t t = 0; t < T; t++) route(hp, b.prob + t * X, b.ids + t * k, b.w + t * k);
    if (T > 1 && M->shexp_gate && (st = shared_expert(M, x, T, E, &b, err))) return st;
    st = T == 1 ? direct(M, hp, x, y, &b, err) : batched(M, hp, x, T, y, &b, err);
    if (!st && M->shexp_gate)
        for (int64_t i = 0; i < T * E; i++) y[i] += b.sh[i];
    return st;
}
