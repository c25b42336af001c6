/* linear.c: y = x @ W^T for any weight dtype — the matmul of inference.
 * Layer: engine/model. Float weights: one tiled kernel for every T
 * (mh/float_gemm.h). Others: one token is a matvec through the trait table;
 * several quantize the activations once and run the type's tiled gemm (or
 * its vec_dot row by row) over groups of rows in parallel; q4_0 and q8_0
 * weights repacked at load take their own kernels (mh/quant_repack.h). */
#include <stdlib.h>
#include <string.h>
#include "mh/kernels.h"
#include "mh/model.h"
#include "mh/quant.h"
#include "mh/quant_repack.h"
#include "mh/threadpool.h"
#include "mh/float_gemm.h"

static int linear_rows_any(const mh_weight *w, const float *x, int64_t T, float *y, mh_err *err);

typedef struct linear_job {
    const mh_weight *w;
    const mh_quant_traits *tr;
    const uint8_t *xq;       /* (T, xq_row) activations in vec_dot_type */
    size_t xq_row, w_row;    /* bytes per row */
    int64_t T;
    float *y;                /* (T, rows) */
} linear_job;

/* rows per parallel work item with a gemm, and tokens per gemm call: the
 * activations of one token block (<= 64 x ~1.6 KB) stay in L2 while a
 * worker's weight rows stream through L1 tile by tile */
#define GEMM_ROWS 16
#define GEMM_TOKENS 64

/* [g0, g1) are groups of GEMM_ROWS rows */
static void linear_tiles(void *ctx, int64_t g0, int64_t g1)
{
    const linear_job *j = ctx;
    int64_t rows = j->w->rows, r0 = g0 * GEMM_ROWS, r1 = g1 * GEMM_ROWS < rows ? g1 * GEMM_ROWS : rows;
    const uint8_t *w = (const uint8_t *)j->w->data + (size_t)r0 * j->w_row;
    for (int64_t t = 0; t < j->T; t += GEMM_TOKENS) {
        int64_t tn = j->T - t < GEMM_TOKENS ? j->T - t : GEMM_TOKENS;
        j->tr->gemm(j->w->cols, w, j->w_row, r1 - r0, j->xq + (size_t)t * j->xq_row, j->xq_row, tn,
                    j->y + t * rows + r0, rows);
    }
}

static void linear_rows(void *ctx, int64_t r0, int64_t r1)
{
    const linear_job *j = ctx;
    const uint8_t *w = j->w->data;
    int64_t rows = j->w->rows, n = j->w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t)r * j->w_row;
        for (int64_t t = 0; t < j->T; t++)
            j->tr->vec_dot(n, wr, j->xq + (size_t)t * j->xq_row, &j->y[t * rows + r]);
    }
}

typedef struct quant_job {
    mh_from_float_fn q;
    const float *x;          /* (T, n) */
    int64_t n;
    uint8_t *xq;             /* (T, xq_row) */
    size_t xq_row;
} quant_job;

static void quant_rows(void *ctx, int64_t t0, int64_t t1)
{
    const quant_job *j = ctx;
    for (int64_t t = t0; t < t1; t++) j->q(j->x + t * j->n, j->xq + (size_t)t * j->xq_row, j->n);
}

/* f16 and bf16 through the level's row converters (exact, as the scalar
 * ones: round to nearest even, NaNs kept quiet): they run on every matmul
 * input of f16/bf16 weights and on attention rows, where the generic row
 * quantizer's scalar bf16 path and per-call checks showed in profiles */
void mh_round_to(mh_dtype t, float *x, int64_t n)
{
    uint16_t buf[256];
    const mh_kernels *kn = t == MH_DTYPE_F16 || t == MH_DTYPE_BF16 ? mh_kernels_get() : NULL;
    for (int64_t i = 0; i < n; i += 256) {
        int64_t k = n - i < 256 ? n - i : 256;
        if (t == MH_DTYPE_F16) {
            kn->f32_to_f16(k, x + i, buf);
            kn->f16_to_f32(k, buf, x + i);
        } else if (t == MH_DTYPE_BF16) {
            kn->f32_to_bf16(k, x + i, buf);
            kn->bf16_to_f32(k, buf, x + i);
        } else {
            mh_quantize_row(t, x + i, buf, k);
            mh_dequantize_row(t, buf, x + i, k);
        }
    }
}

/* ===== float weights (f32, f16, bf16): mh/float_gemm.h ===== */

#define FLOAT_STACK 2048     /* floats of rounded activations kept on the stack (8 KiB) */

typedef struct float_job {
    mh_fgemm_fn gemm;
    const mh_weight *w;
    size_t w_row;
    const float *x;          /* (T, n) */
    int64_t T;
    float *y;                /* (T, rows) */
} float_job;

/* [g0, g1) are groups of GEMM_ROWS rows; each token block's activations
 * stay in L2 while the group's weight rows (<= 16 x 8 KB) stay in L1/L2 */
static void float_tiles(void *ctx, int64_t g0, int64_t g1)
{
    const float_job *j = ctx;
    int64_t rows = j->w->rows, n = j->w->cols;
    int64_t r0 = g0 * GEMM_ROWS, r1 = g1 * GEMM_ROWS < rows ? g1 * GEMM_ROWS : rows;
    const uint8_t *w = (const uint8_t *)j->w->data + (size_t)r0 * j->w_row;
    for (int64_t t = 0; t < j->T; t += GEMM_TOKENS) {
        int64_t tn = j->T - t < GEMM_TOKENS ? j->T - t : GEMM_TOKENS;
        j->gemm(n, w, j->w_row, r1 - r0, j->x + t * n, n, tn, j->y + t * rows + r0, rows);
    }
}

/* One kernel and one summation order for every T, so a batched forward
 * gives each row the very bits of a one-token forward (greedy identity of
 * speculative and continuous batching). f16/bf16 weights see activations
 * on their own grid, as llama.cpp's vec_dot_type does: results then match
 * it upstream of any int8 activation quantization, which amplifies tiny
 * differences. */
static int linear_float(const mh_weight *w, const float *x, int64_t T, float *y, mh_err *err)
{
    int64_t n = w->cols, rows = w->rows;
    float small[FLOAT_STACK], *xr = NULL;   /* a decode step's row needs no malloc */
    if (w->dtype != MH_DTYPE_F32) {
        xr = T * n <= FLOAT_STACK ? small : malloc(sizeof(float) * (size_t)(T * n));
        if (!xr) return mh_err_set(err, MH_ENOMEM, "linear: out of memory");
        memcpy(xr, x, sizeof(float) * (size_t)(T * n));
        mh_round_to(w->dtype, xr, T * n);
        x = xr;
    }
    float_job j = { mh_fgemm_get(w->dtype), w, mh_dtype_row_size(w->dtype, n), x, T, y };
    /* work items of at least ~64K multiply-adds keep the pool overhead small */
    int64_t groups = (rows + GEMM_ROWS - 1) / GEMM_ROWS, per = GEMM_ROWS * n * T;
    mh_parallel_for(groups, per >= 65536 ? 1 : 65536 / per, float_tiles, &j);
    if (xr != small) free(xr);
    return MH_OK;
}

int mh_linear(const mh_weight *w, const float *x, int64_t T, float *y, mh_err *err)
{
    if (T <= 0) return MH_OK;
    if (w->packed) {   /* q4_0 / q8_0 repacked at load: one path for any T */
        int st = mh_repack_linear(mh_repack_kernels_get(), w->dtype, w->packed, w->data, w->rows, w->cols, x,
                                  T, y);
        return st ? mh_err_set(err, st, "linear: packed %s matmul of (%lld,%lld) failed",
                               mh_dtype_info(w->dtype)->name, (long long)w->rows, (long long)w->cols)
                  : MH_OK;
    }
    if (mh_fgemm_get(w->dtype)) return linear_float(w, x, T, y, err);
    return linear_rows_any(w, x, T, y, err);
}

static int linear_rows_any(const mh_weight *w, const float *x, int64_t T, float *y, mh_err *err)
{
    int64_t n = w->cols, rows = w->rows;
    const mh_quant_traits *tr = mh_quant_traits_get(w->dtype);
    if (!tr->vec_dot)
        return mh_err_set(err, MH_ETYPE, "linear: no kernel for weight type %s",
                          mh_dtype_info(w->dtype)->name);
    if (T == 1) {
        int st = mh_quant_matvec(w->dtype, w->data, rows, n, x, y);
        return st ? mh_err_set(err, st, "linear: matvec of (%lld,%lld) %s failed",
                               (long long)rows, (long long)n, mh_dtype_info(w->dtype)->name)
                  : MH_OK;
    }
    mh_dtype vt = tr->vec_dot_type;
    int bs = mh_dtype_info(vt)->block_size;
    if (n % bs)
        return mh_err_set(err, MH_ESHAPE, "linear: row length %lld is not a multiple of %d",
                          (long long)n, bs);
    size_t xq_row = mh_dtype_row_size(vt, n);
    uint8_t *xq = NULL;
    const uint8_t *xin = (const uint8_t *)x;
    if (vt != MH_DTYPE_F32) {
        xq = malloc(xq_row * (size_t)T);
        if (!xq) return mh_err_set(err, MH_ENOMEM, "linear: out of memory");
        /* the level's quantizer (bit-identical to the reference one), split
         * over the pool: done serially it costs as much as the gemm itself */
        quant_job qj = { mh_quant_traits_get(vt)->from_float, x, n, xq, xq_row };
        mh_parallel_for(T, 8, quant_rows, &qj);
        xin = xq;
    }
    linear_job j = { w, tr, xin, xq_row, mh_dtype_row_size(w->dtype, n), T, y };
    if (tr->gemm)   /* tiled kernels: each weight block reused across tokens in registers */
        mh_parallel_for((rows + GEMM_ROWS - 1) / GEMM_ROWS, 1, linear_tiles, &j);
    else
        mh_parallel_for(rows, 16, linear_rows, &j);
    free(xq);
    return MH_OK;
}

/* A decode step's matvecs that share x (a layer's q, k and v; its gate and
 * up) as one pool job with x quantized once, when every weight is a plain
 * quantized one with the same vec_dot_type; otherwise one mh_linear each.
 * The bits are mh_linear's either way. */
int mh_linear_multi(const mh_weight *const *w, int nw, const float *x, int64_t T, float *const *y, mh_err *err)
{
    bool fuse = T == 1 && nw > 1 && nw <= MH_MATVEC_PARTS_MAX;
    mh_matvec_part parts[MH_MATVEC_PARTS_MAX];
    for (int i = 0; fuse && i < nw; i++) {
        const mh_quant_traits *tr = mh_quant_traits_get(w[i]->dtype);
        fuse = !w[i]->packed && !mh_fgemm_get(w[i]->dtype) && tr->vec_dot && w[i]->cols == w[0]->cols &&
               tr->vec_dot_type == mh_quant_traits_get(w[0]->dtype)->vec_dot_type;
        parts[i] = (mh_matvec_part){w[i]->dtype, w[i]->data, w[i]->rows, y[i]};
    }
    if (!fuse) {
        for (int i = 0; i < nw; i++) {
            int st = mh_linear(w[i], x, T, y[i], err);
            if (st) return st;
        }
        return MH_OK;
    }
    int st = mh_quant_matvec_multi(parts, nw, w[0]->cols, x);
    return st ? mh_err_set(err, st, "linear: fused matvec of %d weights (%lld columns) failed", nw,
                           (long long)w[0]->cols)
              : MH_OK;
}
