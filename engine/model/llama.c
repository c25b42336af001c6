/* llama.c: the forward pass of llama-family decoders and their KV cache.
 * Layer: engine/model. Reads top to bottom like llama2.c's run.c: cache,
 * small kernels (rmsnorm, rope, attention), then forward(). Activations
 * are f32 in the model's RunState (allocated once, grown to the largest
 * batch seen); the cache holds f32, f16 or q8_0 rows (n_layer, n_ctx, kv_dim). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "mh/kernels.h"
#include "mh/quant.h"
#include "mh/threadpool.h"
#include "attn.h"
#include "rope.h"
#include "model_internal.h"

/* ===== KV cache ===== */

mh_kv_cache *mh_kv_cache_new_type(const mh_model *m, int64_t n_ctx, mh_dtype type, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    if (n_ctx <= 0) {
        mh_err_set(err, MH_EINVAL, "kv cache: n_ctx must be positive, got %lld", (long long)n_ctx);
        return NULL;
    }
    if (type != MH_DTYPE_F32 && type != MH_DTYPE_F16 && type != MH_DTYPE_Q8_0) {
        mh_err_set(err, MH_ETYPE, "kv cache: type %s not supported (f32, f16, q8_0)",
                   mh_dtype_info(type)->name);
        return NULL;
    }
    if (hp->head_dim % mh_dtype_info(type)->block_size) {
        mh_err_set(err, MH_ETYPE, "kv cache: %s needs head_dim a multiple of %d, got %lld",
                   mh_dtype_info(type)->name, mh_dtype_info(type)->block_size, (long long)hp->head_dim);
        return NULL;
    }
    mh_kv_cache *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->type = type;
    c->kv_dim = hp->n_head_kv * hp->head_dim;
    c->row_bytes = mh_dtype_row_size(type, c->kv_dim);
    size_t per = c->row_bytes * (size_t)hp->n_layer * (size_t)n_ctx;
    c->k = malloc(per);
    c->v = malloc(per);
    if (!c->k || !c->v) goto oom;
    c->n_ctx = n_ctx;
    c->n_layer = hp->n_layer;
    return c;
oom:
    mh_kv_cache_free(c);
    mh_err_set(err, MH_ENOMEM, "kv cache: out of memory for %lld positions (%.1f MiB)",
               (long long)n_ctx, (double)mh_model_kv_bytes_type(m, n_ctx, type) / (1 << 20));
    return NULL;
}

mh_kv_cache *mh_kv_cache_new(const mh_model *m, int64_t n_ctx, mh_err *err)
{
    return mh_kv_cache_new_type(m, n_ctx, MH_DTYPE_F16, err);
}

void mh_kv_cache_free(mh_kv_cache *c)
{
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c);
}

int64_t mh_kv_cache_n_past(const mh_kv_cache *c) { return c->n_past; }
int64_t mh_kv_cache_n_ctx(const mh_kv_cache *c) { return c->n_ctx; }
mh_dtype mh_kv_cache_type(const mh_kv_cache *c) { return c->type; }

void mh_kv_cache_truncate(mh_kv_cache *c, int64_t n)
{
    if (n >= 0 && n < c->n_past) c->n_past = n;
}

/* ===== RunState =====
 * llama2.c's RunState: every buffer a forward pass needs, kept with the
 * model and grown to the largest batch seen, so a decode step allocates
 * nothing and an attention task never calls malloc (whose failure it could
 * not report). One forward at a time holds the model's; a forward that
 * finds it taken (another thread on the same model) uses a private one. */

typedef struct mh_runstate {
    pthread_mutex_t mu;      /* held by the forward using it */
    float *act;              /* the activation rows (see scratch_bind) */
    size_t act_cap;
    float *attn;             /* attn_gemm: widened K/V, scores, rounded q */
    size_t attn_cap;
    float *logits;           /* rows gathered from several sequences */
    size_t logits_cap;
    float *slots;            /* (n_slots, slot_len): one per concurrent attention task */
    size_t slot_len;
    atomic_int *slot_busy;   /* (n_slots) */
    int n_slots;
    float *lora;             /* x Aᵀ rows of the LoRA updates (lora.c) */
    size_t lora_cap;
    float *moe;              /* expert routing and rows (moe.c) */
    size_t moe_cap;
    float *rope;             /* (T, n_rot / 2, 2) cos/sin of the last table made (rope.h) */
    size_t rope_cap;
    mh_rope_params rope_rp;  /* ... for these params, positions rope_pos0.. and rope_T rows */
    int64_t rope_pos0, rope_T;   /* rope_T 0: no table */
} mh_runstate;

static pthread_mutex_t rs_new_mu = PTHREAD_MUTEX_INITIALIZER;

static mh_runstate *runstate_new(void)
{
    mh_runstate *rs = calloc(1, sizeof *rs);
    if (rs) pthread_mutex_init(&rs->mu, NULL);
    return rs;
}

void mh_runstate_free(mh_runstate *rs)
{
    if (!rs) return;
    free(rs->act);
    free(rs->attn);
    free(rs->logits);
    free(rs->slots);
    free(rs->slot_busy);
    free(rs->lora);
    free(rs->moe);
    free(rs->rope);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
}

/* The model's RunState, locked (*shared), or a private one for this call. */
static mh_runstate *runstate_acquire(mh_model *m, bool *shared, mh_err *err)
{
    pthread_mutex_lock(&rs_new_mu);
    if (!m->rs) m->rs = runstate_new();
    mh_runstate *rs = m->rs;
    pthread_mutex_unlock(&rs_new_mu);
    *shared = rs && pthread_mutex_trylock(&rs->mu) == 0;
    if (*shared) return rs;
    if (!(rs = runstate_new())) mh_err_set(err, MH_ENOMEM, "forward: out of memory");
    return rs;
}

static void runstate_release(mh_runstate *rs, bool shared)
{
    if (shared) pthread_mutex_unlock(&rs->mu);
    else mh_runstate_free(rs);
}

/* Makes *p hold at least n floats (contents not kept). */
static int grow(float **p, size_t *cap, size_t n, const char *what, mh_err *err)
{
    if (n <= *cap) return MH_OK;
    float *q = malloc(sizeof(float) * n);
    if (!q) return mh_err_set(err, MH_ENOMEM, "forward: out of memory for %s (%.1f MiB)", what,
                              (double)n * sizeof(float) / (1 << 20));
    free(*p);
    *p = q;
    *cap = n;
    return MH_OK;
}

/* One scratch slot of len floats per task the pool can run at once. */
static int grow_slots(mh_runstate *rs, size_t len, mh_err *err)
{
    int n = mh_threads_get() + 1;
    if (len <= rs->slot_len && n <= rs->n_slots) return MH_OK;
    len = len > rs->slot_len ? len : rs->slot_len;
    float *s = malloc(sizeof(float) * len * (size_t)n);
    atomic_int *b = calloc((size_t)n, sizeof *b);
    if (!s || !b) {
        free(s);
        free(b);
        return mh_err_set(err, MH_ENOMEM, "forward: out of memory for attention scratch");
    }
    free(rs->slots);
    free(rs->slot_busy);
    rs->slots = s;
    rs->slot_busy = b;
    rs->slot_len = len;
    rs->n_slots = n;
    return MH_OK;
}

/* A free slot for one attention task; there are more slots than tasks run
 * at once, so the scan finds one on its first pass. */
static float *slot_take(mh_runstate *rs, int *idx)
{
    for (;;)
        for (int i = 0; i < rs->n_slots; i++)
            if (!atomic_exchange(&rs->slot_busy[i], 1)) {
                *idx = i;
                return rs->slots + (size_t)i * rs->slot_len;
            }
}

static void slot_give(mh_runstate *rs, int idx) { atomic_store(&rs->slot_busy[idx], 0); }

float *mh_runstate_slot_take(mh_runstate *rs, int *idx) { return slot_take(rs, idx); }
void mh_runstate_slot_give(mh_runstate *rs, int idx) { slot_give(rs, idx); }

/* ===== small kernels ===== */

/* y = x / rms(x) * w, row by row: x, y (T, n) */
static void rmsnorm(float *y, const float *x, const float *w, int64_t T, int64_t n, float eps)
{
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * n;
        float *yr = y + t * n;
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)(xr[i] * xr[i]);   /* float squares, as ggml */
        float s = 1.0f / sqrtf((float)(ss / (double)n) + eps);
        for (int64_t i = 0; i < n; i++) yr[i] = xr[i] * s * w[i];
    }
}

/* Causal attention of f32 and q8_0 caches (f16: attn_llama_items) for work
 * items (t, h) in [i0, i1): scores through the cache type's vec_dot (q converted once to its vec_dot_type), values
 * dequantized a head slice at a time and accumulated in f32. */
static void attn_items(void *ctx, int64_t i0, int64_t i1)
{
    const attn_job *j = ctx;
    const mh_hparams *hp = j->hp;
    int64_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const mh_quant_traits *tr = mh_quant_traits_get(j->c->type);
    mh_dtype qt = tr->vec_dot_type;
    size_t head_off = mh_dtype_row_size(j->c->type, hd);
    float scale = j->scale;
    int64_t n_max = j->pos0 + (i1 - 1) / hp->n_head + 1;
    int slot;
    float *att = slot_take(j->rs, &slot);
    float *vrow = att + n_max;
    uint8_t *qq = (uint8_t *)(vrow + hd);   /* hd values in vec_dot_type: at most qbytes */
    for (int64_t it = i0; it < i1; it++) {
        int64_t t = it / hp->n_head, h = it % hp->n_head, kvh = h / group;
        int64_t n = j->pos0 + t + 1, lo = win_lo(j->win, n - 1);
        const float *q = j->q + t * hp->n_head * hd + h * hd;
        const void *qx = q;
        if (qt != MH_DTYPE_F32) {
            mh_quant_traits_get(qt)->from_float(q, qq, hd);
            qx = qq;
        }
        float mx = -INFINITY;
        for (int64_t p = lo; p < n; p++) {
            tr->vec_dot(hd, j->k + (size_t)p * j->c->row_bytes + (size_t)kvh * head_off, qx, &att[p]);
            att[p] = softcap(att[p] * scale, j->cap);
            if (att[p] > mx) mx = att[p];
        }
        double sum = 0;                      /* as ggml: double sum, one scale */
        for (int64_t p = lo; p < n; p++) sum += (att[p] = expf(att[p] - mx));
        float inv = (float)(1.0 / sum);
        for (int64_t p = lo; p < n; p++) att[p] *= inv;
        if (j->c->type != MH_DTYPE_F32) mh_round_to(MH_DTYPE_F16, att + lo, n - lo);
        float *o = j->out + t * hp->n_head * hd + h * hd;
        memset(o, 0, sizeof(float) * (size_t)hd);
        for (int64_t p = lo; p < n; p++) {
            const uint8_t *vp = j->v + (size_t)p * j->c->row_bytes + (size_t)kvh * head_off;
            const float *vf = (const float *)vp;
            if (j->c->type != MH_DTYPE_F32) { tr->to_float(vp, vrow, hd); vf = vrow; }
            float a = att[p];
            for (int64_t d = 0; d < hd; d++) o[d] += a * vf[d];
        }
    }
    slot_give(j->rs, slot);
}

/* f16 cache: attention in llama.cpp's arithmetic (mh/kernels.h "_llama"),
 * for one token or a batch alike: q on the f16 grid; scores summed as its
 * f16 matmul sums them (16 lanes in a batch, vec_dot in a one-token step,
 * whose split point follows its cache padding to 32 cells); its softmax
 * and exp; probabilities rounded to f16; the mix summed like the scores. */
static void attn_llama_items(void *ctx, int64_t i0, int64_t i1)
{
    const attn_job *j = ctx;
    const mh_hparams *hp = j->hp;
    const mh_kernels *kn = mh_kernels_get();
    const int64_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, ld = j->c->kv_dim;
    const bool step = j->T == 1, lanes = !step && hd % 16 == 0;
    const float scale = j->scale;
    const int64_t n_max = j->pos0 + j->T;
    int64_t n_kv = (n_max + 31) / 32 * 32;
    if (n_kv > j->c->n_ctx) n_kv = j->c->n_ctx;
    int slot;
    float *att = slot_take(j->rs, &slot);
    float *qf = att + n_max, *acc = qf + hd;   /* hd, then 64 hd lanes */
    for (int64_t it = i0; it < i1; it++) {
        const int64_t t = it / hp->n_head, h = it % hp->n_head, kvh = h / group;
        const int64_t lo = win_lo(j->win, j->pos0 + t), n = j->pos0 + t + 1 - lo;   /* visible */
        memcpy(qf, j->q + t * hp->n_head * hd + h * hd, sizeof(float) * (size_t)hd);
        mh_round_to(MH_DTYPE_F16, qf, hd);
        /* a sliding window starts the rows at lo: att[p] is position lo + p */
        const uint16_t *k = (const uint16_t *)j->k + kvh * hd + lo * ld;
        const uint16_t *v = (const uint16_t *)j->v + kvh * hd + lo * ld;
        float mx = -INFINITY;
        if (!lanes) kn->attn_scores_step_llama(n, hd, k, ld, qf, att);   /* every position in one call */
        for (int64_t p = 0; p < n; p++) {
            att[p] = (lanes ? kn->attn_score_llama(hd, k + p * ld, qf) : att[p]) * scale;
            att[p] = softcap(att[p], j->cap);
            mx = att[p] > mx ? att[p] : mx;
        }
        const float inv = (float)(1.0 / kn->softmax_exp_llama(n, att, mx, att));
        for (int64_t p = 0; p < n; p++) att[p] *= inv;
        mh_round_to(MH_DTYPE_F16, att, n);
        float *o = j->out + t * hp->n_head * hd + h * hd;
        const int64_t split = n_kv - n_kv % 64 - lo;
        if (step) kn->attn_mix_step_llama(n, split > 0 ? split : 0, hd, att, v, ld, acc, o);
        else kn->attn_mix_llama(n, hd, att, v, ld, acc, o);
    }
    slot_give(j->rs, slot);
}

/* ===== batched attention: per head, S = Q K^T (sgemm), causal softmax,
 * O = P V (sgemm). For prompts on f32 and q8_0 caches; the cache rows are
 * first widened to f32. */

typedef struct softmax_job { float *S; int64_t n, pos0, win; float scale, cap; bool round_f16; } softmax_job;

static void causal_softmax_rows(void *ctx, int64_t r0, int64_t r1)
{
    const softmax_job *j = ctx;
    const mh_kernels *k = mh_kernels_get();
    for (int64_t t = r0; t < r1; t++) {
        float *row = j->S + t * j->n;
        int64_t live = j->pos0 + t + 1;         /* positions this token may see */
        int64_t lo = win_lo(j->win, live - 1);  /* ... from here on (sliding window) */
        float *vis = row + lo;
        k->scale(live - lo, vis, j->scale, vis);
        if (j->cap > 0)
            for (int64_t p = 0; p < live - lo; p++) vis[p] = softcap(vis[p], j->cap);
        k->softmax_row(live - lo, vis, vis, false);
        if (j->round_f16) mh_round_to(MH_DTYPE_F16, vis, live - lo);
        memset(row, 0, sizeof(float) * (size_t)lo);
        memset(row + live, 0, sizeof(float) * (size_t)(j->n - live));
    }
}

typedef struct widen_job { const mh_kv_cache *c; const uint8_t *k, *v; float *kf, *vf; } widen_job;

static void widen_rows(void *ctx, int64_t p0, int64_t p1)
{
    const widen_job *j = ctx;
    for (int64_t p = p0; p < p1; p++) {
        mh_dequantize_row(j->c->type, j->k + (size_t)p * j->c->row_bytes, j->kf + p * j->c->kv_dim, j->c->kv_dim);
        mh_dequantize_row(j->c->type, j->v + (size_t)p * j->c->row_bytes, j->vf + p * j->c->kv_dim, j->c->kv_dim);
    }
}

static int attn_gemm(mh_runstate *rs, const attn_job *aj, const float *q /* (T, n_head*hd) */,
                     float *out /* (T, n_head*hd) */, int64_t T, int64_t pos0, mh_err *err)
{
    const mh_hparams *hp = aj->hp;
    const mh_kv_cache *c = aj->c;
    const uint8_t *k = aj->k, *v = aj->v;
    int64_t hd = hp->head_dim, n = pos0 + T, kvd = c->kv_dim, qd = hp->n_head * hd;
    int64_t group = hp->n_head / hp->n_head_kv;
    bool wide = c->type != MH_DTYPE_F32;
    size_t need = (size_t)(T * n + T * qd) + (wide ? (size_t)(2 * n * kvd) : 0);
    int st = grow(&rs->attn, &rs->attn_cap, need, "attention", err);
    if (st) return st;
    float *S = rs->attn, *kf = (float *)k, *vf = (float *)v;   /* S: (T, n), then q (T, qd) */
    if (wide) {
        kf = S + T * n + T * qd;
        vf = kf + n * kvd;
        widen_job wj = { c, k, v, kf, vf };
        mh_parallel_for(n, 16, widen_rows, &wj);
        /* q and the probabilities on the cache's grid, as llama.cpp */
        float *qr = S + T * n;
        memcpy(qr, q, sizeof(float) * (size_t)(T * qd));
        mh_round_to(MH_DTYPE_F16, qr, T * qd);
        q = qr;
    }
    for (int64_t h = 0; h < hp->n_head; h++) {
        int64_t kvh = h / group;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)n, (int)hd, 1.0f,
                    q + h * hd, (int)qd, kf + kvh * hd, (int)kvd, 0.0f, S, (int)n);
        softmax_job sj = { S, n, pos0, aj->win, aj->scale, aj->cap, wide };
        mh_parallel_for(T, 8, causal_softmax_rows, &sj);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)n, 1.0f,
                    S, (int)n, vf + kvh * hd, (int)kvd, 0.0f, out + h * hd, (int)qd);
    }
    return MH_OK;
}

static void add_bias(float *x, const float *b, int64_t T, int64_t n)
{
    if (!b) return;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) x[t * n + i] += b[i];
}

/* ===== forward ===== */

typedef struct scratch {
    mh_runstate *rs;
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up;   /* (T, ...) rows */
    float *lora;                                         /* (T, max LoRA rank) */
    float *moe;                                          /* mh_moe_scratch_len floats */
    const mh_batch_seq *seqs;                            /* (n_seqs): their own adapters */
    int n_seqs;
} scratch;

/* y: (T, rows) = x: (T, cols) through projection k of layer l: the base
 * weight, the LoRA adapters on it (the model's, each sequence's own), then
 * its bias. */
static int proj(const mh_model *m, int64_t l, mh_proj k, const float *x, int64_t T, float *y, const scratch *s,
                mh_err *err)
{
    const mh_layer *L = &m->layers[l];
    const mh_weight *w = mh_layer_proj(L, k);
    int st = mh_linear(w, x, T, y, err);
    if (!st) st = mh_lora_apply(m, l, (int)k, x, T, y, s->lora, s->seqs, s->n_seqs, err);
    if (!st) add_bias(y, mh_layer_bias(L, k), T, w->rows);
    return st;
}

/* Projections k[0..n-1] of layer l from the same x (q, k, v; gate, up):
 * the base weights together (mh_linear_multi: one matvec job when
 * decoding), then each one's adapters and bias as proj does. */
static int proj_multi(const mh_model *m, int64_t l, const mh_proj *k, int n, const float *x, int64_t T,
                      float *const *y, const scratch *s, mh_err *err)
{
    const mh_layer *L = &m->layers[l];
    const mh_weight *w[MH_MATVEC_PARTS_MAX] = {0};
    for (int i = 0; i < n; i++) w[i] = mh_layer_proj(L, k[i]);
    int st = mh_linear_multi(w, n, x, T, y, err);
    for (int i = 0; i < n && !st; i++) {
        st = mh_lora_apply(m, l, (int)k[i], x, T, y[i], s->lora, s->seqs, s->n_seqs, err);
        if (!st) add_bias(y[i], mh_layer_bias(L, k[i]), T, w[i]->rows);
    }
    return st;
}

/* Points s at the RunState's activation rows for T tokens (growing them)
 * and its attention slots at a size for every cache in the batch. */
static int scratch_bind(scratch *s, mh_runstate *rs, const mh_model *m, const mh_batch_seq *seqs,
                        int n_seqs, int64_t T, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    size_t E = (size_t)hp->n_embd, qd = (size_t)(hp->n_head * hp->head_dim),
           kvd = (size_t)(hp->n_head_kv * hp->head_dim), F = (size_t)hp->n_ff, t = (size_t)T;
    int64_t n_ctx = 0;
    for (int i = 0; i < n_seqs; i++)
        n_ctx = seqs[i].cache->n_ctx > n_ctx ? seqs[i].cache->n_ctx : n_ctx;
    int st = grow(&rs->act, &rs->act_cap, t * (3 * E + 2 * qd + 2 * kvd + 2 * F), "activations", err);
    size_t slot = (size_t)(n_ctx + 66 * hp->head_dim), tiled = mh_attn_tiled_scratch(hp, n_ctx);
    if (!st) st = grow_slots(rs, slot > tiled ? slot : tiled, err);
    if (!st) st = grow(&rs->lora, &rs->lora_cap, (size_t)mh_lora_scratch_len(m, T, seqs, n_seqs),
                           "LoRA rows", err);
    if (!st && m->moe) st = grow(&rs->moe, &rs->moe_cap, mh_moe_scratch_len(m, T), "expert rows", err);
    size_t rope_len = t * (size_t)(hp->n_rot / 2) * 2;
    if (!st && rope_len > rs->rope_cap) {
        rs->rope_T = 0;   /* the table moves: none is kept */
        st = grow(&rs->rope, &rs->rope_cap, rope_len, "rope table", err);
    }
    if (st) return st;
    rs->rope_T = 0;       /* weights or caches may differ from the last forward's */
    s->moe = rs->moe;
    s->lora = rs->lora;
    s->seqs = seqs;
    s->n_seqs = n_seqs;
    s->rs = rs;
    s->x = rs->act;
    s->xn = s->x + t * E;
    s->tmp = s->xn + t * E;
    s->q = s->tmp + t * E;
    s->att = s->q + t * qd;
    s->k = s->att + t * qd;
    s->v = s->k + t * kvd;
    s->gate = s->v + t * kvd;
    s->up = s->gate + t * F;
    return MH_OK;
}

/* The cos/sin table of layer l's rope for T rows at pos0: the one the
 * last layer made when its rope and rows were the same (every layer of
 * most models, so one table a step), else made anew. scratch_bind sized it. */
static const float *rope_cached(mh_runstate *rs, const mh_model *m, int64_t l, int64_t n_ctx, int64_t T,
                                int64_t pos0)
{
    const mh_rope_params rp = mh_rope_for(m, l, n_ctx);
    if (rs->rope_T != T || rs->rope_pos0 != pos0 || !mh_rope_same(&rs->rope_rp, &rp)) {
        mh_rope_table(m, &rp, T, pos0, rs->rope);
        rs->rope_rp = rp;
        rs->rope_pos0 = pos0;
        rs->rope_T = T;
    }
    return rs->rope;
}

/* Attention of one sequence's rows [r0, r0+T) in layer l: stores its K/V
 * rows in its cache, then attends over everything the cache holds. */
static int seq_attention(const mh_model *m, const mh_batch_seq *q, int64_t l, scratch *s,
                         int64_t r0, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    mh_kv_cache *c = q->cache;
    int64_t T = q->n, kvd = c->kv_dim, qd = hp->n_head * hp->head_dim, pos0 = c->n_past;
    float *qr = s->q + r0 * qd, *kr = s->k + r0 * kvd, *vr = s->v + r0 * kvd, *out = s->att + r0 * qd;
    const float *cs = rope_cached(s->rs, m, l, c->n_ctx, T, pos0);
    mh_rope_apply(m, cs, qr, T, hp->n_head);
    mh_rope_apply(m, cs, kr, T, hp->n_head_kv);
    size_t layer_bytes = c->row_bytes * (size_t)c->n_ctx;
    uint8_t *kc = c->k + (size_t)l * layer_bytes, *vc = c->v + (size_t)l * layer_bytes;
    /* the cache type's activation quantizer, as ggml's copy into its cache */
    mh_from_float_fn store = mh_quant_traits_get(c->type)->from_float;
    for (int64_t t = 0; t < T; t++) {
        store(kr + t * kvd, kc + (size_t)(pos0 + t) * c->row_bytes, kvd);
        store(vr + t * kvd, vc + (size_t)(pos0 + t) * c->row_bytes, kvd);
    }
    attn_job aj = { s->rs, hp, c, qr, T, kc, vc, out, pos0,
                    mh_hparams_layer_swa(hp, l) ? hp->n_swa : 0,
                    hp->attn_scale > 0 ? hp->attn_scale : 1.0f / sqrtf((float)hp->head_dim),
                    hp->attn_softcap };
    if (mh_attn_tiled_ok(&aj)) mh_attn_tiled(&aj);
    else if (c->type == MH_DTYPE_F16) mh_parallel_for(T * hp->n_head, 1, attn_llama_items, &aj);
    else if (T >= 8) {   /* 256 query rows at a time: scores (256, n), never (T, n) */
        for (int64_t r = 0; r < T; r += 256) {
            int st = attn_gemm(s->rs, &aj, qr + r * qd, out + r * qd, T - r < 256 ? T - r : 256, pos0 + r, err);
            if (st) return st;
        }
    }
    else mh_parallel_for(T * hp->n_head, 1, attn_items, &aj);
    return MH_OK;
}

/* The dense FFN of layer l on the normed rows s->xn into s->tmp. */
static int ffn_dense(mh_model *m, int64_t l, scratch *s, int64_t T, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    int64_t F = hp->n_ff;
    int st;
    static const mh_proj gu[] = {MH_PROJ_GATE, MH_PROJ_UP};
    if ((st = proj_multi(m, l, gu, 2, s->xn, T, (float *const[]){s->gate, s->up}, s, err))) return st;
    const mh_kernels *kn = mh_kernels_get();
    if (hp->gelu_ffn) {   /* gemma: gelu (tanh form) of the gate times up */
        kn->gelu(T * F, s->gate, s->gate);
        for (int64_t i = 0; i < T * F; i++) s->gate[i] *= s->up[i];
    } else {
        for (int64_t t = 0; t < T; t++)   /* row by row: ggml's vector chunks restart per row */
            kn->swiglu_llama(F, s->gate + t * F, s->up + t * F, s->gate + t * F);
    }
    return proj(m, l, MH_PROJ_DOWN, s->gate, T, s->tmp, s, err);
}

/* One layer over all T rows of the batch: the matmuls see every sequence's
 * rows at once (weights read once); attention runs per sequence. */
static int layer_forward(mh_model *m, const mh_batch_seq *seqs, int n_seqs, int64_t l, scratch *s,
                         int64_t T, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const mh_layer *L = &m->layers[l];
    int64_t E = hp->n_embd;
    int st;
    rmsnorm(s->xn, s->x, L->attn_norm, T, E, hp->rms_eps);
    static const mh_proj qkv[] = {MH_PROJ_Q, MH_PROJ_K, MH_PROJ_V};
    if ((st = proj_multi(m, l, qkv, 3, s->xn, T, (float *const[]){s->q, s->k, s->v}, s, err))) return st;
    if (L->q_norm) {   /* qwen3/gemma3: each head's q and k normed before rope */
        rmsnorm(s->q, s->q, L->q_norm, T * hp->n_head, hp->head_dim, hp->rms_eps);
        rmsnorm(s->k, s->k, L->k_norm, T * hp->n_head_kv, hp->head_dim, hp->rms_eps);
    }
    for (int i = 0, r0 = 0; i < n_seqs; r0 += (int)seqs[i].n, i++)
        if ((st = seq_attention(m, &seqs[i], l, s, r0, err))) return st;
    if ((st = proj(m, l, MH_PROJ_O, s->att, T, s->tmp, s, err))) return st;
    if (L->attn_post_norm) rmsnorm(s->tmp, s->tmp, L->attn_post_norm, T, E, hp->rms_eps);
    for (int64_t i = 0; i < T * E; i++) s->x[i] += s->tmp[i];
    rmsnorm(s->xn, s->x, L->ffn_norm, T, E, hp->rms_eps);
    if (m->moe) st = mh_moe_ffn(m, l, s->xn, T, s->tmp, s->moe, err);   /* experts (moe.c) */
    else st = ffn_dense(m, l, s, T, err);
    if (st) return st;
    if (L->ffn_post_norm) rmsnorm(s->tmp, s->tmp, L->ffn_post_norm, T, E, hp->rms_eps);
    for (int64_t i = 0; i < T * E; i++) s->x[i] += s->tmp[i];
    return MH_OK;
}

static int check_batch(const mh_model *m, const mh_batch_seq *seqs, int n_seqs, int64_t *T, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    *T = 0;
    if (n_seqs <= 0) return mh_err_set(err, MH_EINVAL, "forward: no sequences");
    for (int i = 0; i < n_seqs; i++) {
        const mh_batch_seq *q = &seqs[i];
        if (q->n <= 0) return mh_err_set(err, MH_EINVAL, "forward: no tokens");
        if (q->cache->n_past + q->n > q->cache->n_ctx)
            return mh_err_set(err, MH_ERANGE, "forward: context full: %lld + %lld tokens exceed n_ctx %lld",
                              (long long)q->cache->n_past, (long long)q->n, (long long)q->cache->n_ctx);
        if (q->cache->n_layer != hp->n_layer || q->cache->kv_dim != hp->n_head_kv * hp->head_dim)
            return mh_err_set(err, MH_EINVAL, "forward: cache %d was made for another model", i);
        for (int j = 0; j < i; j++)
            if (seqs[j].cache == q->cache)
                return mh_err_set(err, MH_EINVAL, "forward: cache used twice in one batch");
        if (q->n_loras < 0 || q->n_loras > MH_MAX_SEQ_LORAS || (q->n_loras && !q->loras))
            return mh_err_set(err, MH_EINVAL, "forward: sequence %d has a bad adapter list", i);
        for (int64_t t = 0; t < q->n; t++)
            if (q->tokens[t] < 0 || q->tokens[t] >= hp->n_vocab)
                return mh_err_set(err, MH_EINVAL, "forward: token id %d outside the vocabulary (0..%lld)",
                                  q->tokens[t], (long long)hp->n_vocab - 1);
        *T += q->n;
    }
    return MH_OK;
}

/* The output norm and projection of the rows whose logits were asked for,
 * as one matmul; one sequence's logits are written in place. */
static int batch_logits(mh_model *m, mh_batch_seq *seqs, int n_seqs, scratch *s, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, n_out = 0;
    for (int i = 0, r = 0; i < n_seqs; r += (int)seqs[i].n, i++) {
        if (!seqs[i].logits) continue;
        int64_t first = seqs[i].all_logits ? 0 : seqs[i].n - 1;
        for (int64_t t = first; t < seqs[i].n; t++, n_out++)
            memcpy(s->tmp + n_out * E, s->x + (r + t) * E, sizeof(float) * (size_t)E);
    }
    if (!n_out) return MH_OK;
    float *out = n_seqs == 1 ? seqs[0].logits : NULL;
    mh_runstate *rs = s->rs;
    int st = out ? MH_OK : grow(&rs->logits, &rs->logits_cap, (size_t)n_out * (size_t)hp->n_vocab, "logits", err);
    if (st) return st;
    if (!out) out = rs->logits;
    rmsnorm(s->xn, s->tmp, m->g.output_norm, n_out, E, hp->rms_eps);
    if ((st = mh_linear(&m->g.output, s->xn, n_out, out, err))) return st;
    if (hp->final_softcap > 0)   /* gemma2: logits = cap * tanh(logits / cap) */
        for (int64_t i = 0; i < n_out * hp->n_vocab; i++) out[i] = softcap(out[i], hp->final_softcap);
    if (n_seqs == 1) return st;
    for (int i = 0, o = 0; i < n_seqs; i++) {
        if (!seqs[i].logits) continue;
        int64_t k = seqs[i].all_logits ? seqs[i].n : 1;
        memcpy(seqs[i].logits, out + (size_t)o * (size_t)hp->n_vocab, sizeof(float) * (size_t)(k * hp->n_vocab));
        o += (int)k;
    }
    return MH_OK;
}

int mh_model_forward_batch(mh_model *m, mh_batch_seq *seqs, int n_seqs, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    int64_t T, E = hp->n_embd;
    if (hp->encoder)                        /* bert.c: no cache, no logits */
        return mh_err_set(err, MH_EINVAL, "model: %s is an embedding model: use moonhub embed or "
                          "/v1/embeddings", hp->arch_name);
    int st = check_batch(m, seqs, n_seqs, &T, err);
    if (!st) st = mh_model_check(m, err);   /* a truncated file: fail before reading it */
    if (st) return st;
    bool shared;
    mh_runstate *rs = runstate_acquire(m, &shared, err);
    if (!rs) return MH_ENOMEM;
    scratch s = {0};
    st = scratch_bind(&s, rs, m, seqs, n_seqs, T, err);
    size_t erow = mh_dtype_row_size(m->g.tok_embd.dtype, E);
    for (int i = 0, r = 0; i < n_seqs && !st; i++)
        for (int64_t t = 0; t < seqs[i].n && !st; t++, r++)
            if ((st = mh_dequantize_row(m->g.tok_embd.dtype,
                                        (const uint8_t *)m->g.tok_embd.data + (size_t)seqs[i].tokens[t] * erow,
                                        s.x + r * E, E)))
                st = mh_err_set(err, st, "forward: cannot read the token embedding");
    if (!st && hp->embd_scale > 0 && hp->embd_scale != 1.0f)   /* gemma: times sqrt(n_embd) */
        for (int64_t i = 0; i < T * E; i++) s.x[i] *= hp->embd_scale;
    for (int64_t l = 0; l < hp->n_layer && !st; l++) st = layer_forward(m, seqs, n_seqs, l, &s, T, err);
    for (int i = 0, r = 0; i < n_seqs && !st; r += (int)seqs[i].n, i++)
        if (seqs[i].hidden)
            rmsnorm(seqs[i].hidden, s.x + (int64_t)r * E, m->g.output_norm, seqs[i].n, E, hp->rms_eps);
    if (!st) st = batch_logits(m, seqs, n_seqs, &s, err);
    if (!st) st = mh_model_check(m, err);   /* truncated while running: the zeros read are no answer */
    if (!st)
        for (int i = 0; i < n_seqs; i++) seqs[i].cache->n_past += seqs[i].n;
    runstate_release(rs, shared);
    return st;
}

int mh_model_forward(mh_model *m, mh_kv_cache *c, const int32_t *tokens, int64_t T,
                     float *logits, bool all_logits, mh_err *err)
{
    mh_batch_seq q = { c, tokens, T, logits, all_logits, NULL, NULL, 0 };
    return mh_model_forward_batch(m, &q, 1, err);
}

int mh_model_embed(mh_model *m, const int32_t *tokens, int64_t n, float *out, mh_err *err)
{
    int64_t E = m->hp.n_embd;
    if (m->hp.encoder) return mh_model_embed_batch(m, &tokens, &n, 1, out, err);   /* bert.c */
    if (n <= 0) return mh_err_set(err, MH_EINVAL, "embed: no tokens");
    mh_kv_cache *c = mh_kv_cache_new_type(m, n, MH_DTYPE_F32, err);
    float *h = malloc(sizeof(float) * (size_t)(n * E));
    int st = !c ? MH_ENOMEM : !h ? mh_err_set(err, MH_ENOMEM, "embed: out of memory") : MH_OK;
    if (!st) {
        mh_batch_seq q = { c, tokens, n, NULL, false, h, NULL, 0 };
        st = mh_model_forward_batch(m, &q, 1, err);
    }
    if (!st) {
        double norm = 0;
        for (int64_t i = 0; i < E; i++) {
            double sum = 0;
            for (int64_t t = 0; t < n; t++) sum += h[t * E + i];
            out[i] = (float)(sum / (double)n);
            norm += (double)out[i] * out[i];
        }
        float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
        for (int64_t i = 0; i < E; i++) out[i] *= inv;
    }
    free(h);
    mh_kv_cache_free(c);
    return st;
}
