/* llama.c: the forward pass of llama-family decoders and their KV cache.
 * Layer: engine/model. Reads top to bottom like llama2.c's run.c: cache,
 * small kernels (rmsnorm, rope, attention), then forward(). Activations
 * are f32; the cache is f32 (n_layer, n_ctx, kv_dim). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "mh/kernels.h"
#include "mh/quant.h"
#include "mh/threadpool.h"
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

/* Rotates each head of v: (T, n_heads * hd) in place at positions pos0..,
 * in llama.cpp's arithmetic: pair i's angle is pos * base^(-2/n_rot)
 * multiplied up one pair at a time in float, over its frequency factor,
 * and the rotation fused as ggml's build compiles it. */
static void rope(const mh_model *m, float *v, int64_t T, int64_t n_heads, int64_t pos0)
{
    const mh_hparams *hp = &m->hp;
    int64_t hd = hp->head_dim, half = hp->n_rot / 2;
    const float step = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    for (int64_t t = 0; t < T; t++) {
        float theta = (float)(pos0 + t);
        for (int64_t i = 0; i < half; i++, theta *= step) {
            const float th = m->rope_freqs ? theta / m->rope_freqs[i] : theta;
            const float c = cosf(th), s = sinf(th);
            const int64_t a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + half : 2 * i + 1;
            for (int64_t h = 0; h < n_heads; h++) {
                float *x = v + t * n_heads * hd + h * hd;
                const float x0 = x[a], x1 = x[b];
                x[a] = fmaf(x0, c, -(x1 * s));
                x[b] = fmaf(x0, s, x1 * c);
            }
        }
    }
}

typedef struct attn_job {
    const mh_hparams *hp;
    const mh_kv_cache *c;
    const float *q;          /* (T, n_head * hd) */
    int64_t T;
    const uint8_t *k, *v;    /* this layer's cache rows: (n_ctx, row_bytes) */
    float *out;              /* (T, n_head * hd) */
    int64_t pos0;
} attn_job;

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
    size_t head_off = mh_dtype_row_size(j->c->type, hd), qbytes = sizeof(float) * (size_t)hd;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t n_max = j->pos0 + (i1 - 1) / hp->n_head + 1;
    float *att = malloc(sizeof(float) * (size_t)(n_max + hd));
    uint8_t *qq = malloc(qbytes);
    if (!att || !qq) { free(att); free(qq); return; }   /* cannot happen for sane sizes */
    float *vrow = att + n_max;
    for (int64_t it = i0; it < i1; it++) {
        int64_t t = it / hp->n_head, h = it % hp->n_head, kvh = h / group;
        int64_t n = j->pos0 + t + 1;
        const float *q = j->q + t * hp->n_head * hd + h * hd;
        const void *qx = q;
        if (qt != MH_DTYPE_F32) {
            mh_quant_traits_get(qt)->from_float(q, qq, hd);
            qx = qq;
        }
        float mx = -INFINITY;
        for (int64_t p = 0; p < n; p++) {
            tr->vec_dot(hd, j->k + (size_t)p * j->c->row_bytes + (size_t)kvh * head_off, qx, &att[p]);
            att[p] *= scale;
            if (att[p] > mx) mx = att[p];
        }
        double sum = 0;                      /* as ggml: double sum, one scale */
        for (int64_t p = 0; p < n; p++) sum += (att[p] = expf(att[p] - mx));
        float inv = (float)(1.0 / sum);
        for (int64_t p = 0; p < n; p++) att[p] *= inv;
        if (j->c->type != MH_DTYPE_F32) mh_round_to(MH_DTYPE_F16, att, n);
        float *o = j->out + t * hp->n_head * hd + h * hd;
        memset(o, 0, sizeof(float) * (size_t)hd);
        for (int64_t p = 0; p < n; p++) {
            const uint8_t *vp = j->v + (size_t)p * j->c->row_bytes + (size_t)kvh * head_off;
            const float *vf = (const float *)vp;
            if (j->c->type != MH_DTYPE_F32) { tr->to_float(vp, vrow, hd); vf = vrow; }
            float a = att[p];
            for (int64_t d = 0; d < hd; d++) o[d] += a * vf[d];
        }
    }
    free(att);
    free(qq);
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
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t n_max = j->pos0 + j->T;
    int64_t n_kv = (n_max + 31) / 32 * 32;
    if (n_kv > j->c->n_ctx) n_kv = j->c->n_ctx;
    float *att = malloc(sizeof(float) * (size_t)(n_max + hd + 64 * hd));
    if (!att) return;   /* cannot happen for sane sizes */
    float *qf = att + n_max, *acc = qf + hd;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t t = it / hp->n_head, h = it % hp->n_head, kvh = h / group, n = j->pos0 + t + 1;
        memcpy(qf, j->q + t * hp->n_head * hd + h * hd, sizeof(float) * (size_t)hd);
        mh_round_to(MH_DTYPE_F16, qf, hd);
        const uint16_t *k = (const uint16_t *)j->k + kvh * hd, *v = (const uint16_t *)j->v + kvh * hd;
        float mx = -INFINITY;
        for (int64_t p = 0; p < n; p++) {
            const uint16_t *kr = k + p * ld;
            att[p] = (lanes ? kn->attn_score_llama(hd, kr, qf) : kn->attn_score_step_llama(hd, kr, qf)) * scale;
            mx = att[p] > mx ? att[p] : mx;
        }
        const float inv = (float)(1.0 / kn->softmax_exp_llama(n, att, mx, att));
        for (int64_t p = 0; p < n; p++) att[p] *= inv;
        mh_round_to(MH_DTYPE_F16, att, n);
        float *o = j->out + t * hp->n_head * hd + h * hd;
        if (step) kn->attn_mix_step_llama(n, n_kv - n_kv % 64, hd, att, v, ld, acc, o);
        else kn->attn_mix_llama(n, hd, att, v, ld, acc, o);
    }
    free(att);
}

/* ===== batched attention: per head, S = Q K^T (sgemm), causal softmax,
 * O = P V (sgemm). For prompts on f32 and q8_0 caches; the cache rows are
 * first widened to f32. */

typedef struct softmax_job { float *S; int64_t n, pos0; float scale; bool round_f16; } softmax_job;

static void causal_softmax_rows(void *ctx, int64_t r0, int64_t r1)
{
    const softmax_job *j = ctx;
    const mh_kernels *k = mh_kernels_get();
    for (int64_t t = r0; t < r1; t++) {
        float *row = j->S + t * j->n;
        int64_t live = j->pos0 + t + 1;         /* positions this token may see */
        k->scale(live, row, j->scale, row);
        k->softmax_row(live, row, row, false);
        if (j->round_f16) mh_round_to(MH_DTYPE_F16, row, live);
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

static int attn_gemm(const mh_hparams *hp, const mh_kv_cache *c, const float *q /* (T, n_head*hd) */,
                     const uint8_t *k, const uint8_t *v, float *out /* (T, n_head*hd) */,
                     int64_t T, int64_t pos0, mh_err *err)
{
    int64_t hd = hp->head_dim, n = pos0 + T, kvd = c->kv_dim, qd = hp->n_head * hd;
    int64_t group = hp->n_head / hp->n_head_kv;
    float *kf = (float *)k, *vf = (float *)v, *wide = NULL;
    if (c->type != MH_DTYPE_F32) {
        wide = malloc(sizeof(float) * (size_t)(2 * n * kvd));
        if (!wide) return mh_err_set(err, MH_ENOMEM, "attention: out of memory");
        kf = wide;
        vf = wide + n * kvd;
        widen_job wj = { c, k, v, kf, vf };
        mh_parallel_for(n, 16, widen_rows, &wj);
    }
    float *S = malloc(sizeof(float) * (size_t)(T * n + T * qd));
    if (!S) { free(wide); return mh_err_set(err, MH_ENOMEM, "attention: out of memory"); }
    if (c->type != MH_DTYPE_F32) {   /* q and the probabilities on the cache's grid, as llama.cpp */
        float *qr = S + T * n;
        memcpy(qr, q, sizeof(float) * (size_t)(T * qd));
        mh_round_to(MH_DTYPE_F16, qr, T * qd);
        q = qr;
    }
    for (int64_t h = 0; h < hp->n_head; h++) {
        int64_t kvh = h / group;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)n, (int)hd, 1.0f,
                    q + h * hd, (int)qd, kf + kvh * hd, (int)kvd, 0.0f, S, (int)n);
        softmax_job sj = { S, n, pos0, 1.0f / sqrtf((float)hd), c->type != MH_DTYPE_F32 };
        mh_parallel_for(T, 8, causal_softmax_rows, &sj);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)n, 1.0f,
                    S, (int)n, vf + kvh * hd, (int)kvd, 0.0f, out + h * hd, (int)qd);
    }
    free(S);
    free(wide);
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
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up;
} scratch;

static int scratch_alloc(scratch *s, const mh_hparams *hp, int64_t T)
{
    size_t E = (size_t)hp->n_embd, qd = (size_t)(hp->n_head * hp->head_dim),
           kvd = (size_t)(hp->n_head_kv * hp->head_dim), F = (size_t)hp->n_ff, t = (size_t)T;
    float *base = malloc(sizeof(float) * t * (3 * E + 2 * qd + 2 * kvd + 2 * F));
    if (!base) return MH_ENOMEM;
    s->x = base;
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

/* Attention of one sequence's rows [r0, r0+T) in layer l: stores its K/V
 * rows in its cache, then attends over everything the cache holds. */
static int seq_attention(const mh_model *m, const mh_batch_seq *q, int64_t l, scratch *s,
                         int64_t r0, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    mh_kv_cache *c = q->cache;
    int64_t T = q->n, kvd = c->kv_dim, qd = hp->n_head * hp->head_dim, pos0 = c->n_past;
    float *qr = s->q + r0 * qd, *kr = s->k + r0 * kvd, *vr = s->v + r0 * kvd, *out = s->att + r0 * qd;
    rope(m, qr, T, hp->n_head, pos0);
    rope(m, kr, T, hp->n_head_kv, pos0);
    size_t layer_bytes = c->row_bytes * (size_t)c->n_ctx;
    uint8_t *kc = c->k + (size_t)l * layer_bytes, *vc = c->v + (size_t)l * layer_bytes;
    /* the cache type's activation quantizer, as ggml's copy into its cache */
    mh_from_float_fn store = mh_quant_traits_get(c->type)->from_float;
    for (int64_t t = 0; t < T; t++) {
        store(kr + t * kvd, kc + (size_t)(pos0 + t) * c->row_bytes, kvd);
        store(vr + t * kvd, vc + (size_t)(pos0 + t) * c->row_bytes, kvd);
    }
    attn_job aj = { hp, c, qr, T, kc, vc, out, pos0 };
    if (c->type == MH_DTYPE_F16) mh_parallel_for(T * hp->n_head, 1, attn_llama_items, &aj);
    else if (T >= 8) return attn_gemm(hp, c, qr, kc, vc, out, T, pos0, err);
    else mh_parallel_for(T * hp->n_head, 1, attn_items, &aj);
    return MH_OK;
}

/* One layer over all T rows of the batch: the matmuls see every sequence's
 * rows at once (weights read once); attention runs per sequence. */
static int layer_forward(mh_model *m, const mh_batch_seq *seqs, int n_seqs, int64_t l, scratch *s,
                         int64_t T, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    const mh_layer *L = &m->layers[l];
    int64_t E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    int64_t F = hp->n_ff;
    int st;
    rmsnorm(s->xn, s->x, L->attn_norm, T, E, hp->rms_eps);
    if ((st = mh_linear(&L->wq, s->xn, T, s->q, err)) || (st = mh_lora_apply(m, l, 0, s->xn, T, s->q, err)) ||
        (st = mh_linear(&L->wk, s->xn, T, s->k, err)) || (st = mh_lora_apply(m, l, 1, s->xn, T, s->k, err)) ||
        (st = mh_linear(&L->wv, s->xn, T, s->v, err)) || (st = mh_lora_apply(m, l, 2, s->xn, T, s->v, err)))
        return st;
    add_bias(s->q, L->bq, T, qd);
    add_bias(s->k, L->bk, T, kvd);
    add_bias(s->v, L->bv, T, kvd);
    for (int i = 0, r0 = 0; i < n_seqs; r0 += (int)seqs[i].n, i++)
        if ((st = seq_attention(m, &seqs[i], l, s, r0, err))) return st;
    if ((st = mh_linear(&L->wo, s->att, T, s->tmp, err)) || (st = mh_lora_apply(m, l, 3, s->att, T, s->tmp, err)))
        return st;
    for (int64_t i = 0; i < T * E; i++) s->x[i] += s->tmp[i];
    rmsnorm(s->xn, s->x, L->ffn_norm, T, E, hp->rms_eps);
    if ((st = mh_linear(&L->w_gate, s->xn, T, s->gate, err)) ||
        (st = mh_lora_apply(m, l, 4, s->xn, T, s->gate, err)) ||
        (st = mh_linear(&L->w_up, s->xn, T, s->up, err)) || (st = mh_lora_apply(m, l, 5, s->xn, T, s->up, err)))
        return st;
    const mh_kernels *kn = mh_kernels_get();
    for (int64_t t = 0; t < T; t++)   /* row by row: ggml's vector chunks restart per row */
        kn->swiglu_llama(F, s->gate + t * F, s->up + t * F, s->gate + t * F);
    if ((st = mh_linear(&L->w_down, s->gate, T, s->tmp, err)) ||
        (st = mh_lora_apply(m, l, 6, s->gate, T, s->tmp, err)))
        return st;
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
        for (int64_t t = 0; t < q->n; t++)
            if (q->tokens[t] < 0 || q->tokens[t] >= hp->n_vocab)
                return mh_err_set(err, MH_EINVAL, "forward: token id %d outside the vocabulary (0..%lld)",
                                  q->tokens[t], (long long)hp->n_vocab - 1);
        *T += q->n;
    }
    return MH_OK;
}

int mh_model_forward_batch(mh_model *m, mh_batch_seq *seqs, int n_seqs, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    int64_t T, E = hp->n_embd;
    int st = check_batch(m, seqs, n_seqs, &T, err);
    if (st) return st;
    scratch s;
    if (scratch_alloc(&s, hp, T))
        return mh_err_set(err, MH_ENOMEM, "forward: out of memory for %lld tokens", (long long)T);
    size_t erow = mh_dtype_row_size(m->tok_embd.dtype, E);
    for (int i = 0, r = 0; i < n_seqs && !st; i++)
        for (int64_t t = 0; t < seqs[i].n && !st; t++, r++)
            st = mh_dequantize_row(m->tok_embd.dtype,
                                   (const uint8_t *)m->tok_embd.data + (size_t)seqs[i].tokens[t] * erow,
                                   s.x + r * E, E);
    if (st) st = mh_err_set(err, st, "forward: cannot read the token embedding");
    for (int64_t l = 0; l < hp->n_layer && !st; l++) st = layer_forward(m, seqs, n_seqs, l, &s, T, err);
    for (int i = 0, r = 0; i < n_seqs && !st; r += (int)seqs[i].n, i++)
        if (seqs[i].hidden)
            rmsnorm(seqs[i].hidden, s.x + (int64_t)r * E, m->output_norm, seqs[i].n, E, hp->rms_eps);
    /* gather the rows whose logits were asked for, then one output matmul */
    int64_t n_out = 0;
    for (int i = 0, r = 0; i < n_seqs && !st; r += (int)seqs[i].n, i++) {
        if (!seqs[i].logits) continue;
        int64_t first = seqs[i].all_logits ? 0 : seqs[i].n - 1;
        for (int64_t t = first; t < seqs[i].n; t++, n_out++)
            memcpy(s.tmp + n_out * E, s.x + (r + t) * E, sizeof(float) * (size_t)E);
    }
    float *out = NULL;
    if (!st && n_out) {
        out = malloc(sizeof(float) * (size_t)(n_out * hp->n_vocab));
        if (!out) st = mh_err_set(err, MH_ENOMEM, "forward: out of memory for logits");
    }
    if (!st && n_out) {
        rmsnorm(s.xn, s.tmp, m->output_norm, n_out, E, hp->rms_eps);
        st = mh_linear(&m->output, s.xn, n_out, out, err);
    }
    for (int i = 0, o = 0; i < n_seqs && !st; i++) {
        if (seqs[i].logits) {
            int64_t k = seqs[i].all_logits ? seqs[i].n : 1;
            memcpy(seqs[i].logits, out + (size_t)o * (size_t)hp->n_vocab, sizeof(float) * (size_t)(k * hp->n_vocab));
            o += (int)k;
        }
    }
    if (!st)
        for (int i = 0; i < n_seqs; i++) seqs[i].cache->n_past += seqs[i].n;
    free(out);
    free(s.x);
    return st;
}

int mh_model_forward(mh_model *m, mh_kv_cache *c, const int32_t *tokens, int64_t T,
                     float *logits, bool all_logits, mh_err *err)
{
    mh_batch_seq q = { c, tokens, T, logits, all_logits, NULL };
    return mh_model_forward_batch(m, &q, 1, err);
}

int mh_model_embed(mh_model *m, const int32_t *tokens, int64_t n, float *out, mh_err *err)
{
    int64_t E = m->hp.n_embd;
    if (n <= 0) return mh_err_set(err, MH_EINVAL, "embed: no tokens");
    mh_kv_cache *c = mh_kv_cache_new_type(m, n, MH_DTYPE_F32, err);
    float *h = malloc(sizeof(float) * (size_t)(n * E));
    int st = !c ? err->code : !h ? mh_err_set(err, MH_ENOMEM, "embed: out of memory") : MH_OK;
    if (!st) {
        mh_batch_seq q = { c, tokens, n, NULL, false, h };
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
