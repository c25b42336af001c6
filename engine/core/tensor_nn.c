/* tensor_nn.c: matmul (OpenBLAS sgemm), softmax / log_softmax over any dim,
 * rms_norm and layer_norm. Layer: engine/core; uses cblas, the f32 kernels
 * and the thread pool. Float dtypes only; f16/bf16 are computed in f32.
 * Transposed operands are handed to sgemm as Trans, never copied. */
#include <stdlib.h>
#include <math.h>
#include <cblas.h>
#include "tensor_internal.h"
#include "mh/kernels.h"
#include "mh/threadpool.h"

static bool need_float(const char *fn, const mh_tensor *t, mh_err *err)
{
    if (t && !mh_dtype_info(t->dtype)->is_float) {
        mh_err_set(err, MH_ETYPE, "%s: needs a float tensor (f32/f16/bf16), got %s", fn,
                   mh_dtype_info(t->dtype)->name);
        return false;
    }
    return true;
}

/* f32 version of t: t itself (retained) when it already is f32 */
static mh_tensor *as_f32(const mh_tensor *t, mh_err *err)
{
    return mh_tensor_to(t, MH_DTYPE_F32, err);
}

/* ===== matmul ===== */

typedef struct mat { CBLAS_TRANSPOSE tr; int64_t ld; } mat;

/* How sgemm can read a (rows, cols) matrix with strides (sr, sc); false
 * when it needs a copy. */
static bool mat_layout(int64_t rows, int64_t cols, int64_t sr, int64_t sc, mat *m)
{
    int64_t r1 = cols > 1 ? cols : 1, c1 = rows > 1 ? rows : 1;
    int64_t nsr = rows == 1 ? r1 : sr, nsc = cols == 1 ? 1 : sc;
    if (nsc == 1 && nsr >= r1) { m->tr = CblasNoTrans; m->ld = nsr; return true; }
    int64_t tsr = rows == 1 ? 1 : sr, tsc = cols == 1 ? c1 : sc;
    if (tsr == 1 && tsc >= c1) { m->tr = CblasTrans; m->ld = tsc; return true; }
    return false;
}

static bool mm_shapes(const mh_tensor *a, const mh_tensor *b, int *nb, int64_t *batch, mh_err *err)
{
    char sa[160], sb[160];
    if (a->ndim == 0 || b->ndim == 0)
        return mh_err_set(err, MH_ESHAPE, "matmul: needs at least 1-D operands, got shapes %s and %s",
                          mh_shape_str(a->ndim, a->shape, sa, sizeof sa),
                          mh_shape_str(b->ndim, b->shape, sb, sizeof sb)), false;
    int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim >= 2 ? b->ndim - 2 : 0];
    if (ka != kb)
        return mh_err_set(err, MH_ESHAPE, "matmul: shapes %s and %s do not fit: %lld != %lld",
                          mh_shape_str(a->ndim, a->shape, sa, sizeof sa),
                          mh_shape_str(b->ndim, b->shape, sb, sizeof sb), (long long)ka, (long long)kb), false;
    int na = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0;
    return mh__broadcast_shape("matmul", na, a->shape, nbb, b->shape, nb, batch, err);
}

/* (n, k) x (k, m) -> c (n, m) contiguous; a2/b2 are 2-D f32 views */
static void gemm(const mh_tensor *a2, const mh_tensor *b2, const float *ap, const float *bp, float *c)
{
    int64_t n = a2->shape[0], k = a2->shape[1], m = b2->shape[1];
    mat ma, mb;
    mat_layout(n, k, a2->stride[0], a2->stride[1], &ma);
    mat_layout(k, m, b2->stride[0], b2->stride[1], &mb);
    if (n == 0 || m == 0) return;
    if (k == 0) { memset(c, 0, sizeof(float) * (size_t)(n * m)); return; }
    cblas_sgemm(CblasRowMajor, ma.tr, mb.tr, (int)n, (int)m, (int)k, 1.0f, ap, (int)ma.ld,
                bp, (int)mb.ld, 0.0f, c, (int)m);
}

/* a 2-D f32 operand sgemm can read as it is (retained), else a contiguous copy */
static mh_tensor *readable(mh_tensor *t, mh_err *err)
{
    mat m;
    int nd = t->ndim;
    if (mat_layout(t->shape[nd - 2], t->shape[nd - 1], t->stride[nd - 2], t->stride[nd - 1], &m)) {
        mh_tensor_retain(t);
        return t;
    }
    return mh_tensor_clone(t, err);
}

static int mm_batched(mh_tensor *a, mh_tensor *b, int nb, const int64_t *batch, float *c, mh_err *err)
{
    int64_t n = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], m = b->shape[b->ndim - 1];
    if (nb == 0 || b->ndim == 2) {         /* fold a's batch into rows when a view allows */
        int64_t fold[2] = {-1, k};
        mh_tensor *a2 = mh_tensor_view(a, 2, fold, NULL);
        mat ma;
        if (a2 && mat_layout(a2->shape[0], k, a2->stride[0], a2->stride[1], &ma) && b->ndim == 2) {
            gemm(a2, b, mh_tensor_data(a2), mh_tensor_data(b), c);
            mh_tensor_release(a2);
            return MH_OK;
        }
        mh_tensor_release(a2);
    }
    int64_t sa[MH_MAX_DIMS], sb[MH_MAX_DIMS], idx[MH_MAX_DIMS] = {0}, total = 1;
    mh_tensor ha = *a, hb = *b;            /* per-batch 2-D headers (no refcount use) */
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (a->ndim - 2)), ib = i - (nb - (b->ndim - 2));
        sa[i] = ia < 0 || a->shape[ia] == 1 ? 0 : a->stride[ia];
        sb[i] = ib < 0 || b->shape[ib] == 1 ? 0 : b->stride[ib];
        total *= batch[i];
    }
    ha.ndim = hb.ndim = 2;
    ha.shape[0] = n; ha.shape[1] = k; ha.stride[0] = a->stride[a->ndim - 2]; ha.stride[1] = a->stride[a->ndim - 1];
    hb.shape[0] = k; hb.shape[1] = m; hb.stride[0] = b->stride[b->ndim - 2]; hb.stride[1] = b->stride[b->ndim - 1];
    const float *ap = mh_tensor_data(a), *bp = mh_tensor_data(b);
    for (int64_t t = 0; t < total; t++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < nb; i++) { oa += idx[i] * sa[i]; ob += idx[i] * sb[i]; }
        gemm(&ha, &hb, ap + oa, bp + ob, c + t * n * m);
        for (int i = nb - 1; i >= 0 && ++idx[i] == batch[i]; i--) idx[i] = 0;
    }
    (void)err;
    return MH_OK;
}

mh_tensor *mh_tensor_matmul(const mh_tensor *a, const mh_tensor *b, mh_err *err)
{
    if (!need_float("matmul", a, err) || !need_float("matmul", b, err)) return NULL;
    mh_threads_get();                      /* OpenBLAS gets our thread count before its first use */
    int nb;
    int64_t batch[MH_MAX_DIMS];
    if (!mm_shapes(a, b, &nb, batch, err)) return NULL;
    mh_tensor *a32 = as_f32(a, err), *b32 = a32 ? as_f32(b, err) : NULL;
    mh_tensor *a2 = NULL, *b2 = NULL, *ar = NULL, *br = NULL, *r = NULL;
    if (!b32) goto done;
    /* 1-D operands become (1, k) and (k, 1) */
    a2 = a->ndim == 1 ? mh_tensor_unsqueeze(a32, 0, err) : (mh_tensor_retain(a32), a32);
    b2 = a2 ? (b->ndim == 1 ? mh_tensor_unsqueeze(b32, 1, err) : (mh_tensor_retain(b32), b32)) : NULL;
    ar = b2 ? readable(a2, err) : NULL;
    br = ar ? readable(b2, err) : NULL;
    if (!br) goto done;
    int64_t shape[MH_MAX_DIMS];
    int nd = nb;
    memcpy(shape, batch, sizeof(int64_t) * (size_t)nb);
    if (a->ndim > 1) shape[nd++] = ar->shape[ar->ndim - 2];
    if (b->ndim > 1) shape[nd++] = br->shape[br->ndim - 1];
    mh_dtype dt = mh__promote(a->dtype, b->dtype);
    r = mh__tensor_empty(MH_DTYPE_F32, nd, shape, err);
    if (r) mm_batched(ar, br, nb, batch, mh_tensor_data(r), err);
    if (r && dt != MH_DTYPE_F32) {
        mh_tensor *c = mh_tensor_to(r, dt, err);
        mh_tensor_release(r);
        r = c;
    }
done:
    mh_tensor_release(a32); mh_tensor_release(b32);
    mh_tensor_release(a2); mh_tensor_release(b2);
    mh_tensor_release(ar); mh_tensor_release(br);
    return r;
}

/* ===== softmax ===== */

typedef struct sm_job {
    const mh_tensor *x;        /* (..., n) f32, the softmax dim last */
    mh_tensor *y;              /* same geometry as x, f32 */
    mh__iter it;
    bool log;
    const mh_kernels *k;
} sm_job;

/* no memory for a row buffer: the same result straight on strided memory */
static void strided_softmax(int64_t n, const float *x, int64_t sx, float *y, int64_t sy, bool log)
{
    float m = -INFINITY;
    double s = 0;
    for (int64_t i = 0; i < n; i++) m = x[i * sx] > m ? x[i * sx] : m;
    for (int64_t i = 0; i < n; i++) s += expf(x[i * sx] - m);
    for (int64_t i = 0; i < n; i++)
        y[i * sy] = log ? x[i * sx] - m - (float)logl(s) : (float)(expf(x[i * sx] - m) / s);
}

static void sm_range(void *ctx, int64_t r0, int64_t r1)
{
    const sm_job *j = ctx;
    mh__iter it = j->it;
    int64_t n = it.inner;
    bool direct = it.istride[0] == 1 && it.istride[1] == 1;
    float *buf = direct ? NULL : malloc(sizeof(float) * (size_t)(2 * n));
    const float *xb = mh_tensor_data(j->x);
    float *yb = mh_tensor_data(j->y);
    mh__iter_seek(&it, r0);
    for (int64_t r = r0; r < r1; r++, mh__iter_next(&it)) {
        const float *xr = xb + it.off[0];
        float *yr = yb + it.off[1];
        if (it.istride[0] == 1 && it.istride[1] == 1) { j->k->softmax_row(n, xr, yr, j->log); continue; }
        if (!buf) { strided_softmax(n, xr, it.istride[0], yr, it.istride[1], j->log); continue; }
        mh__row_to_f32(MH_DTYPE_F32, xr, it.istride[0], n, buf);
        j->k->softmax_row(n, buf, buf + n, j->log);
        mh__row_from_f32(MH_DTYPE_F32, buf + n, n, yr, it.istride[1]);
    }
    free(buf);
}

mh_tensor *mh_tensor_softmax(const mh_tensor *a, int dim, bool log, mh_err *err)
{
    const char *fn = log ? "log_softmax" : "softmax";
    if (!need_float(fn, a, err)) return NULL;
    int d = a->ndim == 0 ? 0 : mh__dim(dim, a->ndim);
    if (d < 0) return mh_err_set(err, MH_ERANGE, "%s: dim %d out of range for %d dims", fn, dim, a->ndim), NULL;
    mh_tensor *x = as_f32(a, err), *y = NULL, *xp = NULL, *yp = NULL, *r = NULL;
    if (x) y = mh__tensor_empty(MH_DTYPE_F32, a->ndim, a->shape, err);
    if (!y) goto done;
    int perm[MH_MAX_DIMS], k = 0;
    for (int i = 0; i < a->ndim; i++) if (i != d) perm[k++] = i;
    perm[k] = d;
    xp = mh_tensor_permute(x, perm, a->ndim, err);
    yp = xp ? mh_tensor_permute(y, perm, a->ndim, err) : NULL;
    if (!yp) goto done;
    sm_job j = {xp, yp, {0}, log, mh_kernels_get()};
    const int64_t *strides[2] = {xp->stride, yp->stride};
    mh__iter_init(&j.it, xp->ndim, xp->shape, 2, strides);
    int64_t grain = j.it.inner >= 8192 ? 1 : 8192 / (j.it.inner ? j.it.inner : 1);
    mh_parallel_for(j.it.rows, grain, sm_range, &j);
    r = a->dtype == MH_DTYPE_F32 ? (mh_tensor_retain(y), y) : mh_tensor_to(y, a->dtype, err);
done:
    mh_tensor_release(x); mh_tensor_release(y);
    mh_tensor_release(xp); mh_tensor_release(yp);
    return r;
}

/* ===== norms over the last dim ===== */

typedef struct norm_job {
    const float *x, *w, *b;    /* x: (rows, n); w, b: (n) or NULL */
    float *y;
    int64_t n;
    float eps;
    bool layer;
    const mh_kernels *k;
} norm_job;

static void norm_range(void *ctx, int64_t r0, int64_t r1)
{
    const norm_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->n;
        float *y = j->y + r * j->n;
        if (!j->layer) { j->k->rms_norm_row(j->n, x, j->w, j->eps, y); continue; }
        double mean = 0, var = 0;
        for (int64_t i = 0; i < j->n; i++) mean += x[i];
        mean /= (double)j->n;
        for (int64_t i = 0; i < j->n; i++) var += (x[i] - mean) * (x[i] - mean);
        float inv = (float)(1.0 / sqrt(var / (double)j->n + j->eps)), mu = (float)mean;
        for (int64_t i = 0; i < j->n; i++)
            y[i] = (x[i] - mu) * inv * (j->w ? j->w[i] : 1.0f) + (j->b ? j->b[i] : 0.0f);
    }
}

static bool vec_fits(const char *fn, const char *what, const mh_tensor *v, int64_t n, mh_err *err)
{
    char s[160];
    if (!v || (v->ndim == 1 && v->shape[0] == n)) return need_float(fn, v, err);
    mh_err_set(err, MH_ESHAPE, "%s: %s has shape %s, needs (%lld)", fn, what,
               mh_shape_str(v->ndim, v->shape, s, sizeof s), (long long)n);
    return false;
}

static mh_tensor *norm(const char *fn, const mh_tensor *x, const mh_tensor *w, const mh_tensor *b,
                       double eps, bool layer, mh_err *err)
{
    if (!need_float(fn, x, err)) return NULL;
    if (x->ndim == 0) return mh_err_set(err, MH_ESHAPE, "%s: needs at least 1 dim, got a scalar", fn), NULL;
    int64_t n = x->shape[x->ndim - 1];
    if (!vec_fits(fn, "weight", w, n, err) || !vec_fits(fn, "bias", b, n, err)) return NULL;
    mh_tensor *xf = as_f32(x, err), *xc = xf ? mh_tensor_contiguous(xf, err) : NULL;
    mh_tensor *wc = NULL, *bc = NULL, *y = NULL, *r = NULL;
    if (!xc) goto done;
    if (w) { mh_tensor *t = as_f32(w, err); wc = t ? mh_tensor_contiguous(t, err) : NULL; mh_tensor_release(t); if (!wc) goto done; }
    if (b) { mh_tensor *t = as_f32(b, err); bc = t ? mh_tensor_contiguous(t, err) : NULL; mh_tensor_release(t); if (!bc) goto done; }
    y = mh__tensor_empty(MH_DTYPE_F32, x->ndim, x->shape, err);
    if (!y) goto done;
    norm_job j = {mh_tensor_data(xc), wc ? mh_tensor_data(wc) : NULL, bc ? mh_tensor_data(bc) : NULL,
                  mh_tensor_data(y), n, (float)eps, layer, mh_kernels_get()};
    int64_t rows = n ? mh_tensor_numel(x) / n : 0;
    mh_parallel_for(rows, n >= 8192 ? 1 : 8192 / (n ? n : 1), norm_range, &j);
    r = x->dtype == MH_DTYPE_F32 ? (mh_tensor_retain(y), y) : mh_tensor_to(y, x->dtype, err);
done:
    mh_tensor_release(xf); mh_tensor_release(xc);
    mh_tensor_release(wc); mh_tensor_release(bc); mh_tensor_release(y);
    return r;
}

mh_tensor *mh_tensor_rms_norm(const mh_tensor *x, const mh_tensor *w, double eps, mh_err *err)
{
    return norm("rms_norm", x, w, NULL, eps, false, err);
}

mh_tensor *mh_tensor_layer_norm(const mh_tensor *x, const mh_tensor *w, const mh_tensor *b, double eps, mh_err *err)
{
    return norm("layer_norm", x, w, b, eps, true, err);
}
