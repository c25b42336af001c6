/* tensor_internal.h: helpers shared by the tensor_*.c files only (not a
 * public header). Layer: engine/core. Element access by dtype, uninitialized
 * result allocation, and a multi-operand strided iterator over rows. */
#ifndef MH_TENSOR_INTERNAL_H
#define MH_TENSOR_INTERNAL_H

#include <string.h>
#include "mh/tensor.h"

/* A tensor with fresh, UNINITIALIZED contiguous storage: for results that
 * are written in full (mh_tensor_new zeroes, which costs a pass). */
mh_tensor *mh__tensor_empty(mh_dtype dt, int ndim, const int64_t *shape, mh_err *err);
/* A tensor header over st (retained) with explicit geometry, no checks. */
mh_tensor *mh__tensor_header(mh_storage *st, size_t offset, mh_dtype dt, int ndim,
                             const int64_t *shape, const int64_t *stride, mh_err *err);
/* Normalizes a possibly negative dim for a tensor of ndim dims; -1 if bad. */
int mh__dim(int dim, int ndim);
/* Error helper: MH_ETYPE naming fn for a quantized dtype; returns true when t is one. */
bool mh__reject_quant(const char *fn, const mh_tensor *t, mh_err *err);
/* Result shape of broadcasting a and b; false with err set when they do not fit. */
bool mh__broadcast_shape(const char *fn, int na, const int64_t *sa, int nb, const int64_t *sb,
                         int *nout, int64_t *out, mh_err *err);
/* Strides of t seen with shape (nd, shape) under broadcasting (0 on broadcast dims). */
void mh__broadcast_strides(const mh_tensor *t, int nd, const int64_t *shape, int64_t *stride);

/* ===== element loads and stores ===== */
static inline double mh__load_d(mh_dtype dt, const void *p)
{
    switch (dt) {
    case MH_DTYPE_F32: return *(const float *)p;
    case MH_DTYPE_F16: return mh_f16_to_f32(*(const uint16_t *)p);
    case MH_DTYPE_BF16: return mh_bf16_to_f32(*(const uint16_t *)p);
    case MH_DTYPE_I32: return *(const int32_t *)p;
    case MH_DTYPE_I64: return (double)*(const int64_t *)p;
    case MH_DTYPE_U8: return *(const uint8_t *)p;
    case MH_DTYPE_I8: return *(const int8_t *)p;
    default: return 0;
    }
}

static inline int64_t mh__load_i(mh_dtype dt, const void *p)
{
    switch (dt) {
    case MH_DTYPE_I32: return *(const int32_t *)p;
    case MH_DTYPE_I64: return *(const int64_t *)p;
    case MH_DTYPE_U8: return *(const uint8_t *)p;
    case MH_DTYPE_I8: return *(const int8_t *)p;
    default: {
        double d = mh__load_d(dt, p);
        /* float -> int truncates like a C cast; out-of-range saturates */
        if (d != d) return 0;
        if (d >= 9.2233720368547758e18) return INT64_MAX;
        if (d <= -9.2233720368547758e18) return INT64_MIN;
        return (int64_t)d;
    }
    }
}

/* Saturating double -> integer conversion (NaN -> 0), so no UB on wild values. */
static inline int64_t mh__sat_i64(double d, double lo, double hi)
{
    if (d != d) return 0;
    if (d < lo) d = lo;
    if (d > hi) d = hi;
    if (d >= 9.2233720368547758e18) return INT64_MAX;
    return (int64_t)d;
}

static inline void mh__store_d(mh_dtype dt, void *p, double v)
{
    switch (dt) {
    case MH_DTYPE_F32: *(float *)p = (float)v; break;
    case MH_DTYPE_F16: *(uint16_t *)p = mh_f32_to_f16((float)v); break;
    case MH_DTYPE_BF16: *(uint16_t *)p = mh_f32_to_bf16((float)v); break;
    case MH_DTYPE_I32: *(int32_t *)p = (int32_t)mh__sat_i64(v, -2147483648.0, 2147483647.0); break;
    case MH_DTYPE_I64: *(int64_t *)p = mh__sat_i64(v, -9.3e18, 9.3e18); break;
    case MH_DTYPE_U8: *(uint8_t *)p = (uint8_t)mh__sat_i64(v, 0, 255); break;
    case MH_DTYPE_I8: *(int8_t *)p = (int8_t)mh__sat_i64(v, -128, 127); break;
    default: break;
    }
}

static inline void mh__store_i(mh_dtype dt, void *p, int64_t v)
{
    switch (dt) {
    case MH_DTYPE_I32: *(int32_t *)p = (int32_t)v; break;   /* wraps, like a C cast */
    case MH_DTYPE_I64: *(int64_t *)p = v; break;
    case MH_DTYPE_U8: *(uint8_t *)p = (uint8_t)v; break;
    case MH_DTYPE_I8: *(int8_t *)p = (int8_t)v; break;
    default: mh__store_d(dt, p, (double)v); break;
    }
}

static inline size_t mh__esize(mh_dtype dt) { return mh_dtype_info(dt)->type_size; }
static inline bool mh__is_int(mh_dtype dt) { return dt >= MH_DTYPE_I32 && dt <= MH_DTYPE_I8; }

/* ===== row iterator =====
 * Walks every position of the outer dims (all but the last) of a shape,
 * keeping the element offsets of up to 4 operands with their own strides.
 * The caller handles the last dim (length inner, strides istride[k]). */
#define MH_ITER_MAX 4
typedef struct mh__iter {
    int nd, nops;                           /* nd >= 1 (scalars become (1)) */
    int64_t shape[MH_MAX_DIMS];
    int64_t stride[MH_ITER_MAX][MH_MAX_DIMS];
    int64_t idx[MH_MAX_DIMS];
    int64_t off[MH_ITER_MAX];               /* elements, current row start */
    int64_t inner, istride[MH_ITER_MAX];
    int64_t rows, row;                      /* number of rows, current one */
} mh__iter;

void mh__iter_init(mh__iter *it, int nd, const int64_t *shape, int nops,
                   const int64_t *const *strides);
/* Advances to the next row; false after the last one. */
bool mh__iter_next(mh__iter *it);
/* Positions the iterator on row r (0 <= r < rows), for parallel chunks. */
void mh__iter_seek(mh__iter *it, int64_t r);

/* ===== conversion of a strided row into f32 and back ===== */
/* y[i] = (float)src[i*stride] for i < n */
void mh__row_to_f32(mh_dtype dt, const void *src, int64_t stride, int64_t n, float *y);
void mh__row_from_f32(mh_dtype dt, const float *x, int64_t n, void *dst, int64_t stride);
void mh__row_to_i64(mh_dtype dt, const void *src, int64_t stride, int64_t n, int64_t *y);
void mh__row_from_i64(mh_dtype dt, const int64_t *x, int64_t n, void *dst, int64_t stride);



/* Result dtype of combining a and b (the header's rules): same -> same;
 * float with int -> the float; two floats -> the wider (f16+bf16 -> f32);
 * two ints -> i64 when either is i64, else i32. */
mh_dtype mh__promote(mh_dtype a, mh_dtype b);
#endif
