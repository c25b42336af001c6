/* train_ops.c: forward and backward kernels of the training graph
 * (RMSNorm, RoPE, causal GQA attention, SwiGLU, cross-entropy, dense
 * matmul). Layer: engine/train; uses OpenBLAS and the thread pool.
 * Every parallel loop writes disjoint outputs and reduces in a fixed
 * order, so results are bitwise repeatable for a given thread count. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "mh/threadpool.h"
#include "mh/train.h"

/* Items per parallel chunk so that each chunk holds ~32K element-ops:
 * smaller jobs run inline, since waking a worker costs more than they do
 * (and on a busy machine a sleeping worker can cost milliseconds). */
int64_t mh_tr_grain(int64_t per_item)
{
    int64_t g = ((int64_t)1 << 15) / (per_item > 0 ? per_item : 1);
    return g < 1 ? 1 : g;
}

/* ===== RMSNorm ===== */

typedef struct norm_job {
    float *y, *rstd, *dx, *dw;
    const float *x, *w, *dy, *rs;
    int64_t T, n;
    float eps;
} norm_job;

static void norm_fwd_rows(void *ctx, int64_t t0, int64_t t1)
{
    const norm_job *j = ctx;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + t * j->n;
        double ss = 0;
        for (int64_t i = 0; i < j->n; i++) ss += (double)x[i] * x[i];
        float r = 1.0f / sqrtf((float)(ss / (double)j->n) + j->eps);   /* as inference */
        j->rstd[t] = r;
        for (int64_t i = 0; i < j->n; i++) j->y[t * j->n + i] = x[i] * r * j->w[i];
    }
}

void mh_tr_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t T, int64_t n, float eps)
{
    norm_job j = { .y = y, .rstd = rstd, .x = x, .w = w, .T = T, .n = n, .eps = eps };
    mh_parallel_for(T, mh_tr_grain(n), norm_fwd_rows, &j);
}

/* dx = r * (dy*w) - r^3 / n * x * sum(dy*w*x) */
static void norm_bwd_rows(void *ctx, int64_t t0, int64_t t1)
{
    const norm_job *j = ctx;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + t * j->n, *dy = j->dy + t * j->n;
        float r = j->rs[t];
        double dot = 0;
        for (int64_t i = 0; i < j->n; i++) dot += (double)dy[i] * j->w[i] * x[i];
        float c = (float)(dot * r * r * r / (double)j->n);
        for (int64_t i = 0; i < j->n; i++) j->dx[t * j->n + i] = r * dy[i] * j->w[i] - c * x[i];
    }
}

/* columns: each dw[i] sums over rows in order (deterministic) */
static void norm_bwd_cols(void *ctx, int64_t i0, int64_t i1)
{
    const norm_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) {
        double s = 0;
        for (int64_t t = 0; t < j->T; t++) s += (double)j->dy[t * j->n + i] * j->x[t * j->n + i] * j->rs[t];
        j->dw[i] += (float)s;
    }
}

void mh_tr_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                       const float *w, int64_t T, int64_t n)
{
    norm_job j = { .dx = dx, .dw = dw, .x = x, .w = w, .dy = dy, .rs = rstd, .T = T, .n = n };
    mh_parallel_for(T, mh_tr_grain(2 * n), norm_bwd_rows, &j);
    if (dw) mh_parallel_for(n, mh_tr_grain(T), norm_bwd_cols, &j);
}

/* ===== RoPE ===== */

int mh_tr_rope_table(float *cs, int64_t T, int64_t n_rot, float base, const float *freq_factors)
{
    int64_t half = n_rot / 2;
    if (n_rot <= 0 || n_rot % 2) return MH_EINVAL;
    for (int64_t i = 0; i < half; i++) {
        float freq = powf(base, -2.0f * (float)i / (float)n_rot);   /* as inference */
        if (freq_factors) freq /= freq_factors[i];
        for (int64_t t = 0; t < T; t++) {
            float theta = (float)t * freq;
            cs[(t * half + i) * 2] = cosf(theta);
            cs[(t * half + i) * 2 + 1] = sinf(theta);
        }
    }
    return MH_OK;
}

typedef struct rope_job {
    float *x;
    const float *cs;
    int64_t T, nh, hd, n_rot;
    bool neox, inverse;
} rope_job;

static void rope_rows(void *ctx, int64_t r0, int64_t r1)
{
    const rope_job *j = ctx;
    int64_t half = j->n_rot / 2;
    for (int64_t r = r0; r < r1; r++) {
        const float *cs = j->cs + (r % j->T) * half * 2;
        for (int64_t h = 0; h < j->nh; h++) {
            float *x = j->x + r * j->nh * j->hd + h * j->hd;
            for (int64_t i = 0; i < half; i++) {
                float c = cs[2 * i], s = j->inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
                int64_t a = j->neox ? i : 2 * i, b = j->neox ? i + half : 2 * i + 1;
                float x0 = x[a], x1 = x[b];
                x[a] = x0 * c - x1 * s;
                x[b] = x0 * s + x1 * c;
            }
        }
    }
}

/* The rotation is orthogonal: its backward is the rotation by -theta. */
void mh_tr_rope(float *x, const float *cs, int64_t B, int64_t T, int64_t n_heads, int64_t hd,
                int64_t n_rot, bool neox, bool inverse)
{
    rope_job j = { x, cs, T, n_heads, hd, n_rot, neox, inverse };
    mh_parallel_for(B * T, mh_tr_grain(n_heads * n_rot), rope_rows, &j);
}

/* ===== causal GQA attention =====
 * Forward keeps only the output and the log-sum-exp of each score row;
 * backward recomputes the probabilities from q and k (flash-attention's
 * trade: O(T) memory per head instead of O(T^2)). */

typedef struct attn_job {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *o, *ls;
    int64_t B, T, H, Hkv, hd;
    atomic_int oom;          /* a task could not get its scratch */
} attn_job;

static float dotf(const float *a, const float *b, int64_t n)
{
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* items (b, h) */
static void attn_fwd_items(void *ctx, int64_t i0, int64_t i1)
{
    attn_job *j = ctx;
    int64_t T = j->T, hd = j->hd, qd = j->H * hd, kvd = j->Hkv * hd, group = j->H / j->Hkv;
    float scale = 1.0f / sqrtf((float)hd);
    float *s = malloc(sizeof(float) * (size_t)T);
    if (!s) { atomic_store(&j->oom, 1); return; }
    for (int64_t it = i0; it < i1; it++) {
        int64_t b = it / j->H, h = it % j->H, kh = h / group;
        for (int64_t i = 0; i < T; i++) {
            const float *qi = j->q + (b * T + i) * qd + h * hd;
            float mx = -INFINITY;
            for (int64_t p = 0; p <= i; p++) {
                s[p] = dotf(qi, j->k + (b * T + p) * kvd + kh * hd, hd) * scale;
                if (s[p] > mx) mx = s[p];
            }
            double sum = 0;
            for (int64_t p = 0; p <= i; p++) sum += (s[p] = expf(s[p] - mx));
            float inv = (float)(1.0 / sum);
            float *o = j->out + (b * T + i) * qd + h * hd;
            memset(o, 0, sizeof(float) * (size_t)hd);
            for (int64_t p = 0; p <= i; p++) {
                const float *vp = j->v + (b * T + p) * kvd + kh * hd;
                float a = s[p] * inv;
                for (int64_t d = 0; d < hd; d++) o[d] += a * vp[d];
            }
            j->lse[(b * j->H + h) * T + i] = mx + (float)log(sum);
        }
    }
    free(s);
}

int mh_tr_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                   int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t hd)
{
    attn_job j = { .out = out, .lse = lse, .q = q, .k = k, .v = v, .B = B, .T = T, .H = H, .Hkv = Hkv, .hd = hd };
    atomic_init(&j.oom, 0);
    mh_parallel_for(B * H, mh_tr_grain(T * T * hd), attn_fwd_items, &j);
    return atomic_load(&j.oom) ? MH_ENOMEM : MH_OK;
}

/* items (b, kv head): each owns its dk/dv slices; the heads of its group
 * run in order, so the sums do not depend on the chunking */
static void attn_bwd_items(void *ctx, int64_t i0, int64_t i1)
{
    attn_job *j = ctx;
    int64_t T = j->T, hd = j->hd, qd = j->H * hd, kvd = j->Hkv * hd, group = j->H / j->Hkv;
    float scale = 1.0f / sqrtf((float)hd);
    float *p = malloc(sizeof(float) * (size_t)(2 * T));
    if (!p) { atomic_store(&j->oom, 1); return; }
    float *dp = p + T;
    for (int64_t it = i0; it < i1; it++) {
        int64_t b = it / j->Hkv, kh = it % j->Hkv;
        for (int64_t t = 0; t < T; t++) {
            memset(j->dk + (b * T + t) * kvd + kh * hd, 0, sizeof(float) * (size_t)hd);
            memset(j->dv + (b * T + t) * kvd + kh * hd, 0, sizeof(float) * (size_t)hd);
        }
        for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
            for (int64_t i = 0; i < T; i++) {
                const float *qi = j->q + (b * T + i) * qd + h * hd;
                const float *doi = j->dout + (b * T + i) * qd + h * hd;
                float lse = j->ls[(b * j->H + h) * T + i];
                float D = dotf(doi, j->o + (b * T + i) * qd + h * hd, hd);
                for (int64_t s = 0; s <= i; s++) {
                    p[s] = expf(dotf(qi, j->k + (b * T + s) * kvd + kh * hd, hd) * scale - lse);
                    dp[s] = dotf(doi, j->v + (b * T + s) * kvd + kh * hd, hd);
                }
                float *dqi = j->dq + (b * T + i) * qd + h * hd;
                memset(dqi, 0, sizeof(float) * (size_t)hd);
                for (int64_t s = 0; s <= i; s++) {
                    float ds = p[s] * (dp[s] - D) * scale;
                    const float *ks = j->k + (b * T + s) * kvd + kh * hd;
                    float *dks = j->dk + (b * T + s) * kvd + kh * hd;
                    float *dvs = j->dv + (b * T + s) * kvd + kh * hd;
                    for (int64_t d = 0; d < hd; d++) {
                        dqi[d] += ds * ks[d];
                        dks[d] += ds * qi[d];
                        dvs[d] += p[s] * doi[d];
                    }
                }
            }
        }
    }
    free(p);
}

int mh_tr_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out,
                   const float *lse, const float *q, const float *k, const float *v,
                   int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t hd)
{
    attn_job j = { .dq = dq, .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .dout = dout, .o = out,
                   .ls = lse, .B = B, .T = T, .H = H, .Hkv = Hkv, .hd = hd };
    atomic_init(&j.oom, 0);
    mh_parallel_for(B * Hkv, mh_tr_grain(2 * T * T * hd * (H / Hkv)), attn_bwd_items, &j);
    return atomic_load(&j.oom) ? MH_ENOMEM : MH_OK;
}

/* ===== SwiGLU ===== */

void mh_tr_swiglu_fwd(float *h, const float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* d silu(g)/dg = sig(g) * (1 + g * (1 - sig(g))) */
void mh_tr_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i])), silu = g[i] * sg;
        float d = dh[i];
        dg[i] = d * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        du[i] = d * silu;
    }
}

/* ===== cross-entropy ===== */

typedef struct xent_job {
    float *dl;
    const float *l, *wt;
    const int32_t *y;
    double *row_loss;
    int64_t V;
    float gscale;
} xent_job;

static void xent_rows(void *ctx, int64_t t0, int64_t t1)
{
    const xent_job *j = ctx;
    for (int64_t t = t0; t < t1; t++) {
        const float *z = j->l + t * j->V;
        float w = j->wt ? j->wt[t] : 1.0f;
        if (w == 0) {
            j->row_loss[t] = 0;
            if (j->dl) memset(j->dl + t * j->V, 0, sizeof(float) * (size_t)j->V);
            continue;
        }
        float mx = -INFINITY;
        for (int64_t i = 0; i < j->V; i++) if (z[i] > mx) mx = z[i];
        double sum = 0;
        for (int64_t i = 0; i < j->V; i++) sum += exp((double)z[i] - mx);
        double lse = mx + log(sum);
        j->row_loss[t] = w * (lse - z[j->y[t]]);
        if (!j->dl) continue;
        float *d = j->dl + t * j->V, c = w * j->gscale;
        for (int64_t i = 0; i < j->V; i++) d[i] = (float)exp((double)z[i] - lse) * c;   /* z may alias d */
        d[j->y[t]] -= c;
    }
}

double mh_tr_xent(float *dlogits, const float *logits, const int32_t *targets, const float *wt,
                  int64_t T, int64_t V, float gscale)
{
    double *rl = malloc(sizeof(double) * (size_t)(T > 0 ? T : 1));
    if (!rl) return NAN;
    xent_job j = { dlogits, logits, wt, targets, rl, V, gscale };
    mh_parallel_for(T, mh_tr_grain(2 * V), xent_rows, &j);
    double s = 0;
    for (int64_t t = 0; t < T; t++) s += rl[t];
    free(rl);
    return s;
}

/* ===== dense matmul ===== */

void mh_tr_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void mh_tr_matmul(float *y, const float *x, const float *w, int64_t T, int64_t in, int64_t out, bool accumulate)
{
    mh_tr_sgemm(false, true, T, out, in, 1.0f, x, in, w, in, accumulate ? 1.0f : 0.0f, y, out);
}

void mh_tr_matmul_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      int64_t T, int64_t in, int64_t out, bool accumulate)
{
    if (dx)
        mh_tr_sgemm(false, false, T, in, out, 1.0f, dy, out, w, in, accumulate ? 1.0f : 0.0f, dx, in);
    if (dw)
        mh_tr_sgemm(true, false, out, in, T, 1.0f, dy, out, x, in, 1.0f, dw, in);
}
