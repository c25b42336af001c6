/* float_gemm.h: matmuls of float weights (f32, f16, bf16 rows) against f32
 * activations, for one token (matvec) and many (tiled gemm), one function
 * per dtype and CPU level. Layer: engine/kernels (float_gemm*.c).
 * Every level, and every tiling, sums in one canonical order, so results are
 * bit-identical across levels and between batched and one-token forwards. */
#ifndef MH_FLOAT_GEMM_H
#define MH_FLOAT_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include "mh/cpu.h"
#include "mh/dtype.h"

/* The canonical order: 16 lanes; lane l accumulates w[i] * x[i] for
 * i = l, l + 16, l + 32, ... with one fused multiply-add each, in i order
 * (a last partial block counts its missing elements as 0 * 0); then the
 * lanes are summed as a tree: l + (l + 8), then + 4, + 2, + 1. */
#define MH_FGEMM_LANES 16
/* bf16 weights take AVX512_BF16's own order instead (float_gemm.c,
 * dot_ref_bf16): lane l of each 32-element block sums the pair (2l, 2l + 1),
 * odd element first, subnormals flushed; then the same lane tree. x must be
 * on the bf16 grid (mh_linear rounds it), as that instruction reads bf16. */

/* y[t * ldy + r] = dot(row r of w, x[t * ldx ...]) over n elements, for
 * r < rows and t < T. w: rows of n elements of the dtype, w_row bytes apart. */
typedef void (*mh_fgemm_fn)(int64_t n, const void *w, size_t w_row, int64_t rows,
                            const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy);

/* the kernel of a float dtype at a level (clamped to what the CPU has);
 * NULL for other dtypes */
mh_fgemm_fn mh_fgemm_for(mh_dtype t, mh_cpu_level level);
mh_fgemm_fn mh_fgemm_get(mh_dtype t);   /* at the level in force */

void mh_k_fgemm_f32_ref(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_f16_ref(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_bf16_ref(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_f32_avx2(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_f16_avx2(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_bf16_avx2(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_f32_avx512(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_f16_avx512(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_bf16_avx512(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);
void mh_k_fgemm_bf16_avx512bf16(int64_t, const void *, size_t, int64_t, const float *, int64_t, int64_t, float *, int64_t);

#endif
