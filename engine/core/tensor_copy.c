/* tensor_copy.c: copies and conversions (contiguous, clone, to, copy_,
 * fill_, cat, stack) and the strided row converters the other tensor files
 * use. Layer: engine/core; uses the f32 kernels for half conversions and
 * mh/quant.h for quantized <-> f32 rows. */
#include <stdlib.h>
#include "tensor_internal.h"
#include "mh/kernels.h"
#include "mh/quant.h"
#include "mh/threadpool.h"

mh_dtype mh__promote(mh_dtype a, mh_dtype b)
{
    if (a == b) return a;
    bool fa = mh_dtype_info(a)->is_float, fb = mh_dtype_info(b)->is_float;
    if (fa && !fb) return a;
    if (fb && !fa) return b;
    if (fa && fb) return MH_DTYPE_F32;
    return (a == MH_DTYPE_I64 || b == MH_DTYPE_I64) ? MH_DTYPE_I64 : MH_DTYPE_I32;
}

/* ===== strided row converters ===== */

#define GATHER(T, expr) do { const T *s_ = src; \
    for (int64_t i = 0; i < n; i++) y[i] = expr(s_[i * stride]); } while (0)
#define SCATTER(T, expr) do { T *d_ = dst; \
    for (int64_t i = 0; i < n; i++) d_[i * stride] = expr(x[i]); } while (0)
#define AS_IS(v) (v)

void mh__row_to_f32(mh_dtype dt, const void *src, int64_t stride, int64_t n, float *y)
{
    const mh_kernels *k = mh_kernels_get();
    switch (dt) {
    case MH_DTYPE_F32:
        if (stride == 1) memcpy(y, src, (size_t)n * 4);
        else GATHER(float, AS_IS);
        break;
    case MH_DTYPE_F16:
        if (stride == 1) k->f16_to_f32(n, src, y);
        else GATHER(uint16_t, mh_f16_to_f32);
        break;
    case MH_DTYPE_BF16:
        if (stride == 1) k->bf16_to_f32(n, src, y);
        else GATHER(uint16_t, mh_bf16_to_f32);
        break;
    case MH_DTYPE_I32: GATHER(int32_t, (float)); break;
    case MH_DTYPE_I64: GATHER(int64_t, (float)); break;
    case MH_DTYPE_U8: GATHER(uint8_t, (float)); break;
    case MH_DTYPE_I8: GATHER(int8_t, (float)); break;
    default: memset(y, 0, (size_t)n * 4); break;
    }
}

static inline int64_t f2i(float v) { return mh__sat_i64(v, -9.3e18, 9.3e18); }
static inline int32_t f2i32(float v) { return (int32_t)mh__sat_i64(v, -2147483648.0, 2147483647.0); }
static inline uint8_t f2u8(float v) { return (uint8_t)mh__sat_i64(v, 0, 255); }
static inline int8_t f2i8(float v) { return (int8_t)mh__sat_i64(v, -128, 127); }

void mh__row_from_f32(mh_dtype dt, const float *x, int64_t n, void *dst, int64_t stride)
{
    const mh_kernels *k = mh_kernels_get();
    switch (dt) {
    case MH_DTYPE_F32:
        if (stride == 1) { if (dst != x) memmove(dst, x, (size_t)n * 4); }
        else SCATTER(float, AS_IS);
        break;
    case MH_DTYPE_F16:
        if (stride == 1) k->f32_to_f16(n, x, dst);
        else SCATTER(uint16_t, mh_f32_to_f16);
        break;
    case MH_DTYPE_BF16:
        if (stride == 1) k->f32_to_bf16(n, x, dst);
        else SCATTER(uint16_t, mh_f32_to_bf16);
        break;
    case MH_DTYPE_I32: SCATTER(int32_t, f2i32); break;
    case MH_DTYPE_I64: SCATTER(int64_t, f2i); break;
    case MH_DTYPE_U8: SCATTER(uint8_t, f2u8); break;
    case MH_DTYPE_I8: SCATTER(int8_t, f2i8); break;
    default: break;
    }
}

void mh__row_to_i64(mh_dtype dt, const void *src, int64_t stride, int64_t n, int64_t *y)
{
    switch (dt) {
    case MH_DTYPE_I32: GATHER(int32_t, AS_IS); break;
    case MH_DTYPE_I64: GATHER(int64_t, AS_IS); break;
    case MH_DTYPE_U8: GATHER(uint8_t, AS_IS); break;
    case MH_DTYPE_I8: GATHER(int8_t, AS_IS); break;
    default: {
        const char *p = src;
        size_t es = mh__esize(dt);
        for (int64_t i = 0; i < n; i++) y[i] = mh__load_i(dt, p + i * stride * (int64_t)es);
    }
    }
}

void mh__row_from_i64(mh_dtype dt, const int64_t *x, int64_t n, void *dst, int64_t stride)
{
    switch (dt) {
    case MH_DTYPE_I32: SCATTER(int32_t, (int32_t)); break;
    case MH_DTYPE_I64: SCATTER(int64_t, AS_IS); break;
    case MH_DTYPE_U8: SCATTER(uint8_t, (uint8_t)); break;
    case MH_DTYPE_I8: SCATTER(int8_t, (int8_t)); break;
    default: {
        char *p = dst;
        size_t es = mh__esize(dt);
        for (int64_t i = 0; i < n; i++) mh__store_d(dt, p + i * stride * (int64_t)es, (double)x[i]);
    }
    }
}

/* ===== copy_ ===== */

/* one row: n elements, src stride ss (elements) -> dst stride ds */
static void copy_row(mh_dtype sdt, const char *s, int64_t ss, mh_dtype ddt, char *d, int64_t ds, int64_t n)
{
    enum { CH = 256 };
    size_t se = mh__esize(sdt), de = mh__esize(ddt);
    if (sdt == ddt && ss == 1 && ds == 1) { memmove(d, s, (size_t)n * se); return; }
    if (sdt == ddt) {
        for (int64_t i = 0; i < n; i++) memcpy(d + i * ds * (int64_t)de, s + i * ss * (int64_t)se, se);
        return;
    }
    bool ints = mh__is_int(sdt) && mh__is_int(ddt);
    union { float f[CH]; int64_t i[CH]; } buf;
    for (int64_t o = 0; o < n; o += CH) {
        int64_t m = n - o < CH ? n - o : CH;
        const char *sp = s + o * ss * (int64_t)se;
        char *dp = d + o * ds * (int64_t)de;
        if (ints) {
            mh__row_to_i64(sdt, sp, ss, m, buf.i);
            mh__row_from_i64(ddt, buf.i, m, dp, ds);
        } else {
            mh__row_to_f32(sdt, sp, ss, m, buf.f);
            mh__row_from_f32(ddt, buf.f, m, dp, ds);
        }
    }
}

typedef struct flat_job { mh_dtype sdt, ddt; const char *s; char *d; } flat_job;

static void flat_range(void *ctx, int64_t b, int64_t e)
{
    const flat_job *j = ctx;
    copy_row(j->sdt, j->s + b * (int64_t)mh__esize(j->sdt), 1, j->ddt,
             j->d + b * (int64_t)mh__esize(j->ddt), 1, e - b);
}

static int copy_quant(mh_tensor *dst, const mh_tensor *src, mh_err *err)
{
    const mh_dtype_traits *tr = mh_dtype_info(dst->dtype);
    if (src->dtype != dst->dtype || src->ndim != dst->ndim)
        return mh_err_set(err, MH_ETYPE, "copy_: %s <- %s needs equal shapes and dtypes (use to())",
                          tr->name, mh_dtype_info(src->dtype)->name);
    int64_t sst[MH_MAX_DIMS];
    mh__broadcast_strides(src, dst->ndim, dst->shape, sst);
    const int64_t *strides[2] = {dst->stride, sst};
    mh__iter it;
    mh__iter_init(&it, dst->ndim, dst->shape, 2, strides);
    size_t row = mh_dtype_row_size(dst->dtype, it.inner);
    char *d = mh_tensor_data(dst);
    const char *s = mh_tensor_data(src);
    if (it.rows) do {
        memmove(d + it.off[0] / tr->block_size * tr->type_size,
                s + it.off[1] / tr->block_size * tr->type_size, row);
    } while (mh__iter_next(&it));
    return MH_OK;
}

int mh_tensor_copy_(mh_tensor *dst, const mh_tensor *src, mh_err *err)
{
    char a[160], b[160];
    int nd;
    int64_t shape[MH_MAX_DIMS];
    if (!mh__broadcast_shape("copy_", dst->ndim, dst->shape, src->ndim, src->shape, &nd, shape, err))
        return err ? err->code : MH_ESHAPE;
    if (nd != dst->ndim || memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd))
        return mh_err_set(err, MH_ESHAPE, "copy_: source %s does not broadcast to destination %s",
                          mh_shape_str(src->ndim, src->shape, a, sizeof a),
                          mh_shape_str(dst->ndim, dst->shape, b, sizeof b));
    if (mh_dtype_info(dst->dtype)->is_quant || mh_dtype_info(src->dtype)->is_quant)
        return copy_quant(dst, src, err);
    int64_t n = mh_tensor_numel(dst);
    if (mh_tensor_is_contiguous(dst) && mh_tensor_is_contiguous(src) && mh_tensor_numel(src) == n) {
        flat_job j = {src->dtype, dst->dtype, mh_tensor_data(src), mh_tensor_data(dst)};
        if (src->dtype == dst->dtype) flat_range(&j, 0, n);   /* memcpy: bandwidth-bound */
        else mh_parallel_for(n, 1 << 16, flat_range, &j);
        return MH_OK;
    }
    int64_t sst[MH_MAX_DIMS];
    mh__broadcast_strides(src, nd, shape, sst);
    const int64_t *strides[2] = {dst->stride, sst};
    mh__iter it;
    mh__iter_init(&it, nd, shape, 2, strides);
    char *d = mh_tensor_data(dst);
    const char *s = mh_tensor_data(src);
    int64_t de = (int64_t)mh__esize(dst->dtype), se = (int64_t)mh__esize(src->dtype);
    if (it.rows) do {
        copy_row(src->dtype, s + it.off[1] * se, it.istride[1], dst->dtype, d + it.off[0] * de,
                 it.istride[0], it.inner);
    } while (mh__iter_next(&it));
    return MH_OK;
}

int mh_tensor_fill_(mh_tensor *t, double v, mh_err *err)
{
    if (mh__reject_quant("fill_", t, err)) return MH_ETYPE;
    unsigned char one[8];
    mh__store_d(t->dtype, one, v);
    size_t es = mh__esize(t->dtype);
    const int64_t *strides[1] = {t->stride};
    mh__iter it;
    mh__iter_init(&it, t->ndim, t->shape, 1, strides);
    char *base = mh_tensor_data(t);
    if (it.rows) do {
        char *p = base + it.off[0] * (int64_t)es;
        int64_t s = it.istride[0] * (int64_t)es;
        if (t->dtype == MH_DTYPE_F32 && it.istride[0] == 1) {
            float f = (float)v;
            for (int64_t i = 0; i < it.inner; i++) ((float *)p)[i] = f;
        } else {
            for (int64_t i = 0; i < it.inner; i++) memcpy(p + i * s, one, es);
        }
    } while (mh__iter_next(&it));
    return MH_OK;
}

/* ===== new tensors from old ===== */

mh_tensor *mh_tensor_clone(const mh_tensor *t, mh_err *err)
{
    mh_tensor *c = mh__tensor_empty(t->dtype, t->ndim, t->shape, err);
    if (!c) return NULL;
    if (mh_tensor_copy_(c, t, err)) {
        mh_tensor_release(c);
        return NULL;
    }
    return c;
}

mh_tensor *mh_tensor_contiguous(const mh_tensor *t, mh_err *err)
{
    if (mh_tensor_is_contiguous(t)) {
        mh_tensor_retain((mh_tensor *)t);
        return (mh_tensor *)t;
    }
    return mh_tensor_clone(t, err);
}

/* quantized t -> f32, row by row through the dequantizer */
static mh_tensor *dequant(const mh_tensor *t, mh_err *err)
{
    mh_tensor *c = mh_tensor_contiguous(t, err), *f = NULL;
    if (!c) return NULL;
    f = mh__tensor_empty(MH_DTYPE_F32, c->ndim, c->shape, err);
    int64_t n = mh_tensor_numel(c);
    if (f && n && mh_dequantize_row(c->dtype, mh_tensor_data(c), mh_tensor_data(f), n)) {
        mh_err_set(err, MH_ETYPE, "to: no dequantizer for %s", mh_dtype_info(c->dtype)->name);
        mh_tensor_release(f);
        f = NULL;
    }
    mh_tensor_release(c);
    return f;
}

static mh_tensor *quantize(const mh_tensor *t, mh_dtype dt, mh_err *err)
{
    const mh_dtype_traits *tr = mh_dtype_info(dt);
    char b[160];
    if (t->ndim == 0 || t->shape[t->ndim - 1] % tr->block_size)
        return mh_err_set(err, MH_ESHAPE, "to: %s needs a last dim that is a multiple of %d, got shape %s",
                          tr->name, tr->block_size, mh_shape_str(t->ndim, t->shape, b, sizeof b)), NULL;
    mh_tensor *f = t->dtype == MH_DTYPE_F32 ? mh_tensor_contiguous(t, err) : mh_tensor_to(t, MH_DTYPE_F32, err);
    if (!f) return NULL;
    mh_tensor *q = mh__tensor_empty(dt, f->ndim, f->shape, err);
    int64_t n = mh_tensor_numel(f);
    if (q && n && mh_quantize_row(dt, mh_tensor_data(f), mh_tensor_data(q), n)) {
        mh_err_set(err, MH_ETYPE, "to: no quantizer for %s", tr->name);
        mh_tensor_release(q);
        q = NULL;
    }
    mh_tensor_release(f);
    return q;
}

mh_tensor *mh_tensor_to(const mh_tensor *t, mh_dtype dt, mh_err *err)
{
    if ((unsigned)dt >= MH_DTYPE_COUNT)
        return mh_err_set(err, MH_EINVAL, "to: unknown dtype %d", (int)dt), NULL;
    if (dt == t->dtype) {
        mh_tensor_retain((mh_tensor *)t);
        return (mh_tensor *)t;
    }
    if (mh_dtype_info(t->dtype)->is_quant) {
        mh_tensor *f = dequant(t, err);
        if (!f || dt == MH_DTYPE_F32) return f;
        mh_tensor *r = mh_tensor_to(f, dt, err);
        mh_tensor_release(f);
        return r;
    }
    if (mh_dtype_info(dt)->is_quant) return quantize(t, dt, err);
    mh_tensor *r = mh__tensor_empty(dt, t->ndim, t->shape, err);
    if (r && mh_tensor_copy_(r, t, err)) {
        mh_tensor_release(r);
        return NULL;
    }
    return r;
}

mh_tensor *mh_tensor_cat(mh_tensor *const *ts, int n, int dim, mh_err *err)
{
    char a[160], b[160];
    if (n <= 0 || !ts || !ts[0]) return mh_err_set(err, MH_EINVAL, "cat: no tensors given"), NULL;
    const mh_tensor *t0 = ts[0];
    int d = mh__dim(dim, t0->ndim);
    if (d < 0) return mh_err_set(err, MH_ERANGE, "cat: dim %d out of range for %d dims", dim, t0->ndim), NULL;
    int64_t shape[MH_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof shape);
    mh_dtype dt = t0->dtype;
    shape[d] = 0;
    for (int i = 0; i < n; i++) {
        const mh_tensor *t = ts[i];
        bool ok = t && t->ndim == t0->ndim;
        for (int k = 0; ok && k < t0->ndim; k++) ok = k == d || t->shape[k] == t0->shape[k];
        if (!ok)
            return mh_err_set(err, MH_ESHAPE, "cat: tensor %d has shape %s, tensor 0 has %s (dim %d may differ)",
                              i, t ? mh_shape_str(t->ndim, t->shape, a, sizeof a) : "(nil)",
                              mh_shape_str(t0->ndim, t0->shape, b, sizeof b), d), NULL;
        if (mh__reject_quant("cat", t, err)) return NULL;
        dt = mh__promote(dt, t->dtype);
        shape[d] += t->shape[d];
    }
    mh_tensor *r = mh__tensor_empty(dt, t0->ndim, shape, err);
    int64_t at = 0;
    for (int i = 0; r && i < n; i++) {
        mh_tensor *part = mh_tensor_narrow(r, d, at, ts[i]->shape[d], err);
        int rc = part ? mh_tensor_copy_(part, ts[i], err) : MH_ENOMEM;
        mh_tensor_release(part);
        if (rc) { mh_tensor_release(r); return NULL; }
        at += ts[i]->shape[d];
    }
    return r;
}

mh_tensor *mh_tensor_stack(mh_tensor *const *ts, int n, int dim, mh_err *err)
{
    if (n <= 0 || !ts || !ts[0]) return mh_err_set(err, MH_EINVAL, "stack: no tensors given"), NULL;
    char a[160], b[160];
    mh_tensor *us[64], **u = n <= 64 ? us : malloc(sizeof *u * (size_t)n);
    if (!u) return mh_err_set(err, MH_ENOMEM, "stack: out of memory"), NULL;
    int made = 0;
    mh_tensor *r = NULL;
    for (; made < n; made++) {
        const mh_tensor *t = ts[made];
        if (!t || t->ndim != ts[0]->ndim || memcmp(t->shape, ts[0]->shape, sizeof(int64_t) * (size_t)t->ndim)) {
            mh_err_set(err, MH_ESHAPE, "stack: tensor %d has shape %s, tensor 0 has %s", made,
                       t ? mh_shape_str(t->ndim, t->shape, a, sizeof a) : "(nil)",
                       mh_shape_str(ts[0]->ndim, ts[0]->shape, b, sizeof b));
            goto done;
        }
        if (!(u[made] = mh_tensor_unsqueeze(t, dim, err))) goto done;
    }
    r = mh_tensor_cat(u, n, dim, err);
done:
    for (int i = 0; i < made; i++) mh_tensor_release(u[i]);
    if (u != us) free(u);
    return r;
}
