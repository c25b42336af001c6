/* tensor.h: n-dimensional views over refcounted storage, and the tensor
 * operations the Lua API exposes. Layer: engine/core (pure C11).
 *
 * Conventions
 * - Every function that returns an mh_tensor* returns a NEW reference (or
 *   NULL with err set). Arguments are borrowed.
 * - shape/stride are in elements; offset is in bytes from storage->data.
 *   Quantized types: the last dim must be contiguous and a multiple of the
 *   block size; strides of other dims are in elements too.
 * - dim arguments are 0-based here; negative dims count from the end.
 * - `out` arguments: NULL allocates the result; non-NULL writes into out
 *   (which must have the result shape; out == a gives the in-place form). */
#ifndef MH_TENSOR_H
#define MH_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "mh/err.h"
#include "mh/dtype.h"
#include "mh/storage.h"

#define MH_MAX_DIMS 8

typedef struct mh_tensor {
    _Atomic int refs;
    mh_storage *st;                /* one reference held */
    size_t offset;                 /* bytes */
    mh_dtype dtype;
    int ndim;                      /* 0 = scalar */
    int64_t shape[MH_MAX_DIMS];
    int64_t stride[MH_MAX_DIMS];   /* elements */
} mh_tensor;

/* ===== life cycle ===== */
mh_tensor *mh_tensor_new(mh_dtype dt, int ndim, const int64_t *shape, mh_err *err);  /* zeroed */
/* A view on st (retained) with the given geometry; stride NULL = contiguous.
 * Checks that the view lies within the storage. */
mh_tensor *mh_tensor_from_storage(mh_storage *st, size_t offset, mh_dtype dt, int ndim,
                                  const int64_t *shape, const int64_t *stride, mh_err *err);
void mh_tensor_retain(mh_tensor *t);
void mh_tensor_release(mh_tensor *t);      /* NULL is a no-op */

/* ===== geometry ===== */
int64_t mh_tensor_numel(const mh_tensor *t);
bool mh_tensor_is_contiguous(const mh_tensor *t);
void *mh_tensor_data(const mh_tensor *t);          /* st->data + offset */
size_t mh_tensor_nbytes(const mh_tensor *t);       /* of a contiguous tensor */
/* Writes "(2,3,4)" into buf. */
const char *mh_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);
/* Address of element idx[0..ndim-1] (plain dtypes only; no bounds check). */
void *mh_tensor_ptr(const mh_tensor *t, const int64_t *idx);
/* Element read/write as double (plain dtypes; indices bounds-checked). */
int mh_tensor_get(const mh_tensor *t, const int64_t *idx, double *v, mh_err *err);
int mh_tensor_set(mh_tensor *t, const int64_t *idx, double v, mh_err *err);
/* Element at flat (row-major logical) position i, as double / int64. */
double mh_tensor_get_flat(const mh_tensor *t, int64_t i);
int64_t mh_tensor_get_flat_i64(const mh_tensor *t, int64_t i);

/* ===== constructors ===== */
mh_tensor *mh_tensor_full(mh_dtype dt, int ndim, const int64_t *shape, double v, mh_err *err);
mh_tensor *mh_tensor_arange(mh_dtype dt, double start, double stop, double step, mh_err *err);
mh_tensor *mh_tensor_linspace(mh_dtype dt, double start, double stop, int64_t n, mh_err *err);
mh_tensor *mh_tensor_eye(mh_dtype dt, int64_t n, int64_t m, mh_err *err);
/* Seeded PRNG: the same seed gives the same numbers on any run and any
 * thread count (counter-based: element i depends only on seed and i). */
mh_tensor *mh_tensor_rand(mh_dtype dt, int ndim, const int64_t *shape, uint64_t seed,
                          double lo, double hi, mh_err *err);
mh_tensor *mh_tensor_randn(mh_dtype dt, int ndim, const int64_t *shape, uint64_t seed,
                           double mean, double std, mh_err *err);
/* From n doubles in row-major order. */
mh_tensor *mh_tensor_from_doubles(mh_dtype dt, int ndim, const int64_t *shape,
                                  const double *v, int64_t n, mh_err *err);

/* ===== views (share storage) ===== */
mh_tensor *mh_tensor_view(const mh_tensor *t, int ndim, const int64_t *shape, mh_err *err);  /* one dim may be -1; needs a compatible layout */
mh_tensor *mh_tensor_reshape(const mh_tensor *t, int ndim, const int64_t *shape, mh_err *err); /* view when possible, else copy */
mh_tensor *mh_tensor_narrow(const mh_tensor *t, int dim, int64_t start, int64_t len, mh_err *err);
mh_tensor *mh_tensor_select(const mh_tensor *t, int dim, int64_t index, mh_err *err);  /* drops dim */
mh_tensor *mh_tensor_transpose(const mh_tensor *t, int d0, int d1, mh_err *err);
mh_tensor *mh_tensor_permute(const mh_tensor *t, const int *perm, int n, mh_err *err);
mh_tensor *mh_tensor_squeeze(const mh_tensor *t, int dim, mh_err *err);   /* dim = MH_ALL: every size-1 dim */
mh_tensor *mh_tensor_unsqueeze(const mh_tensor *t, int dim, mh_err *err);
mh_tensor *mh_tensor_expand(const mh_tensor *t, int ndim, const int64_t *shape, mh_err *err);  /* -1 keeps a dim */

/* ===== copies ===== */
mh_tensor *mh_tensor_contiguous(const mh_tensor *t, mh_err *err);  /* same tensor retained when already contiguous */
mh_tensor *mh_tensor_clone(const mh_tensor *t, mh_err *err);
mh_tensor *mh_tensor_to(const mh_tensor *t, mh_dtype dt, mh_err *err);  /* type conversion (quant types: from/to f32 where supported) */
int mh_tensor_copy_(mh_tensor *dst, const mh_tensor *src, mh_err *err);  /* broadcasting copy with conversion */
int mh_tensor_fill_(mh_tensor *t, double v, mh_err *err);
mh_tensor *mh_tensor_cat(mh_tensor *const *ts, int n, int dim, mh_err *err);
mh_tensor *mh_tensor_stack(mh_tensor *const *ts, int n, int dim, mh_err *err);

/* ===== elementwise ===== */
#define MH_ALL (-100)   /* "all dims" for squeeze and reductions */

typedef enum mh_binop {
    MH_OP_ADD, MH_OP_SUB, MH_OP_MUL, MH_OP_DIV, MH_OP_POW,
    MH_OP_MAX, MH_OP_MIN,
    MH_OP_EQ, MH_OP_NE, MH_OP_LT, MH_OP_LE, MH_OP_GT, MH_OP_GE,   /* results are u8 0/1 */
} mh_binop;

typedef enum mh_unop {
    MH_UOP_NEG, MH_UOP_ABS, MH_UOP_EXP, MH_UOP_LOG, MH_UOP_SQRT, MH_UOP_RSQRT,
    MH_UOP_TANH, MH_UOP_SIGMOID, MH_UOP_SILU, MH_UOP_GELU,
    MH_UOP_POW,     /* p0 = exponent */
    MH_UOP_CLAMP,   /* p0 = lo, p1 = hi */
    MH_UOP_ADD_S, MH_UOP_SUB_S, MH_UOP_RSUB_S, MH_UOP_MUL_S, MH_UOP_DIV_S, MH_UOP_RDIV_S, /* with scalar p0 */
} mh_unop;

/* Broadcasting binary op (NumPy rules). Result dtype: same dtype -> that
 * dtype; float with int -> the float type; comparisons -> u8. */
mh_tensor *mh_tensor_binary(mh_binop op, const mh_tensor *a, const mh_tensor *b, mh_tensor *out, mh_err *err);
mh_tensor *mh_tensor_unary(mh_unop op, const mh_tensor *a, double p0, double p1, mh_tensor *out, mh_err *err);
/* cond (u8 or any: nonzero = true) ? a : b, broadcasting all three. */
mh_tensor *mh_tensor_where(const mh_tensor *cond, const mh_tensor *a, const mh_tensor *b, mh_err *err);

/* ===== reductions ===== */
typedef enum mh_redop {
    MH_RED_SUM, MH_RED_MEAN, MH_RED_MAX, MH_RED_MIN, MH_RED_ARGMAX, MH_RED_ARGMIN,
    MH_RED_VAR,    /* p = correction (1 = unbiased) */
    MH_RED_NORM,   /* p = order (2 = L2) */
    MH_RED_PROD,
} mh_redop;
/* dim = MH_ALL reduces everything to a 0-dim tensor. ARGMAX/ARGMIN give i64.
 * For MAX/MIN over one dim, *indices (when non-NULL) receives the i64
 * positions. */
mh_tensor *mh_tensor_reduce(mh_redop op, const mh_tensor *a, int dim, bool keepdim, double p,
                            mh_tensor **indices, mh_err *err);

/* ===== linear algebra and NN ops (float dtypes; computed in f32) ===== */
mh_tensor *mh_tensor_matmul(const mh_tensor *a, const mh_tensor *b, mh_err *err); /* 1-D/2-D/batched, broadcasting batch dims like torch.matmul */
mh_tensor *mh_tensor_softmax(const mh_tensor *a, int dim, bool log, mh_err *err);
mh_tensor *mh_tensor_rms_norm(const mh_tensor *x, const mh_tensor *w /* nullable, (D) */, double eps, mh_err *err);
mh_tensor *mh_tensor_layer_norm(const mh_tensor *x, const mh_tensor *w, const mh_tensor *b, double eps, mh_err *err);

#endif
