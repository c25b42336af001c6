/* float_gemm.c: the scalar reference float-weight gemm (mh/float_gemm.h) in
 * the canonical 16-lane order, and the per-level choice of kernel.
 * Layer: engine/kernels (pure C11 + fmaf from libm). Slow but plain: the
 * yardstick every SIMD level must match bit for bit. */
#include <math.h>
#include "mh/float_gemm.h"

/* the canonical lane tree: l + (l + 8), then + 4, + 2, + 1 */
static float hsum16(const float *a)
{
    float h8[8], h4[4];
    for (int l = 0; l < 8; l++) h8[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; l++) h4[l] = h8[l] + h8[l + 4];
    return (h4[0] + h4[2]) + (h4[1] + h4[3]);
}

static float w_at(mh_dtype t, const void *w, int64_t i)
{
    switch (t) {
    case MH_DTYPE_F16: return mh_f16_to_f32(((const uint16_t *)w)[i]);
    case MH_DTYPE_BF16: return mh_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

static float dot_ref(mh_dtype t, int64_t n, const void *w, const float *x)
{
    float acc[MH_FGEMM_LANES] = {0};
    for (int64_t i = 0; i < n; i += MH_FGEMM_LANES)
        for (int l = 0; l < MH_FGEMM_LANES; l++) {
            int64_t k = i + l;   /* past n: 0 * 0, as the SIMD masked loads give */
            acc[l] = fmaf(k < n ? w_at(t, w, k) : 0.0f, k < n ? x[k] : 0.0f, acc[l]);
        }
    return hsum16(acc);
}

/* bf16: AVX512_BF16's vdpbf16ps order. Lane l of each 32-element block
 * takes the pair (2l, 2l + 1): odd element first, then even, each a fused
 * multiply-add with subnormal inputs read as 0 and a subnormal result
 * written as 0 (the instruction's DAZ/FTZ, whatever MXCSR says). */
static float ftz(float v) { return fpclassify(v) == FP_SUBNORMAL ? copysignf(0.0f, v) : v; }

static float dot_ref_bf16(int64_t n, const uint16_t *w, const float *x)
{
    float acc[MH_FGEMM_LANES] = {0};
    for (int64_t i = 0; i < n; i += 2 * MH_FGEMM_LANES)
        for (int l = 0; l < MH_FGEMM_LANES; l++)
            for (int64_t k = i + 2 * l + 1; k >= i + 2 * l; k--) {
                float a = k < n ? ftz(mh_bf16_to_f32(w[k])) : 0.0f, b = k < n ? ftz(x[k]) : 0.0f;
                acc[l] = ftz(fmaf(a, b, acc[l]));
            }
    return hsum16(acc);
}

static void gemm_ref(mh_dtype t, int64_t n, const void *w, size_t w_row, int64_t rows,
                     const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{
    for (int64_t tk = 0; tk < T; tk++)
        for (int64_t r = 0; r < rows; r++)
        {
            const void *wr = (const uint8_t *)w + (size_t)r * w_row;
            y[tk * ldy + r] = t == MH_DTYPE_BF16 ? dot_ref_bf16(n, wr, x + tk * ldx) : dot_ref(t, n, wr, x + tk * ldx);
        }
}

void mh_k_fgemm_f32_ref(int64_t n, const void *w, size_t w_row, int64_t rows,
                        const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{ gemm_ref(MH_DTYPE_F32, n, w, w_row, rows, x, ldx, T, y, ldy); }

void mh_k_fgemm_f16_ref(int64_t n, const void *w, size_t w_row, int64_t rows,
                        const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{ gemm_ref(MH_DTYPE_F16, n, w, w_row, rows, x, ldx, T, y, ldy); }

void mh_k_fgemm_bf16_ref(int64_t n, const void *w, size_t w_row, int64_t rows,
                         const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{ gemm_ref(MH_DTYPE_BF16, n, w, w_row, rows, x, ldx, T, y, ldy); }

mh_fgemm_fn mh_fgemm_for(mh_dtype t, mh_cpu_level level)
{
    static const mh_fgemm_fn table[3][3] = {
        {mh_k_fgemm_f32_ref, mh_k_fgemm_f16_ref, mh_k_fgemm_bf16_ref},
        {mh_k_fgemm_f32_avx2, mh_k_fgemm_f16_avx2, mh_k_fgemm_bf16_avx2},
        {mh_k_fgemm_f32_avx512, mh_k_fgemm_f16_avx512, mh_k_fgemm_bf16_avx512},
    };
    int k = t == MH_DTYPE_F32 ? 0 : t == MH_DTYPE_F16 ? 1 : t == MH_DTYPE_BF16 ? 2 : -1;
    if (k < 0) return NULL;
    mh_cpu_level best = mh_cpu_detect();
    if ((int)level > (int)best) level = best;
    if ((int)level < 0) level = MH_CPU_REF;
    if (level == MH_CPU_AVX512 && k == 2 && mh_cpu_has_avx512_bf16()) return mh_k_fgemm_bf16_avx512bf16;
    return table[level][k];
}

mh_fgemm_fn mh_fgemm_get(mh_dtype t)
{
    return mh_fgemm_for(t, mh_cpu_level_get());
}
