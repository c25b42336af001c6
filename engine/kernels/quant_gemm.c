/* quant_gemm.c: scalar reference twins of the tiled quantized GEMM kernels
 * (the trait table's gemm entry at the ref level). Layer: engine/kernels
 * (pure C11). Scalar code gains nothing from register tiles, so each pair
 * is the _ref vec_dot itself: bit-identical to it by construction, and the
 * yardstick the SIMD gemms are tested against. */
#include "quant_kernels.h"

/* y[c * ldy + r] = dot(w row r, x row c); rows walked outermost so one
 * weight row stays in cache across the tokens */
static void gemm_pairs(mh_vec_dot_fn dot, int64_t n, const uint8_t *w, size_t w_row, int64_t R,
                       const uint8_t *x, size_t x_row, int64_t C, float *y, int64_t ldy)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            dot(n, w + (size_t)r * w_row, x + (size_t)c * x_row, &y[c * ldy + r]);
}

#define GEMM_REF(dtype)                                                                           \
    void mh_k_gemm_##dtype##_ref(int64_t n, const void *w, size_t w_row, int64_t R, const void *x, \
                                 size_t x_row, int64_t C, float *y, int64_t ldy)                  \
    {                                                                                             \
        gemm_pairs(mh_k_vec_dot_##dtype##_ref, n, w, w_row, R, x, x_row, C, y, ldy);              \
    }

GEMM_REF(q8_0)
GEMM_REF(q4_0)
GEMM_REF(q5_0)
GEMM_REF(q4_K)
GEMM_REF(q6_K)
