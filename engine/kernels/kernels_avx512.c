/* kernels_avx512.c: AVX-512 (F/BW/VL/DQ) f32 kernels (mh/kernels.h).
 * Layer: engine/kernels. Compiled with the AVX-512 flags; reached only
 * through the kernel table when cpuid reports AVX-512. The arithmetic is
 * shared with the AVX2 file in simd_impl.h. */
#include <immintrin.h>
#include "mh/kernels.h"
#include "mh/dtype.h"

#define SFX avx512
#define VW 16
typedef __m512 VF;
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_MUL _mm512_mul_ps
#define V_DIV _mm512_div_ps
#define V_MAX _mm512_max_ps
#define V_MIN _mm512_min_ps
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_ABS(x) _mm512_abs_ps(x)
#define V_SEL_GT(x, t, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, t, _CMP_GT_OQ), b, a)
#define V_SEL_LT(x, t, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, t, _CMP_LT_OQ), b, a)
#define V_SEL_NAN(x, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), b, a)
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_HMAX(v) _mm512_reduce_max_ps(v)

/* p * 2^n for integral n in [-150, 128], in two steps of 2^(n/2) */
static inline VF V_LDEXP(VF p, VF n)
{
    __m512i ni = _mm512_cvtps_epi32(n), n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
    __m512i bias = _mm512_set1_epi32(127);
    VF s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
    VF s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
    return V_MUL(V_MUL(p, s1), s2);
}

#include "simd_impl.h"

#define V_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
/* doubles: VW / 2 a register (the llama-order sums that ggml keeps in double) */
typedef __m512d VD;
#define VD_ADD _mm512_add_pd
#define V_WIDEN_LO(x) _mm512_cvtps_pd(_mm512_castps512_ps256(x))
#define V_WIDEN_HI(x) _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1))
#define V_NARROW(lo, hi) _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1)
/* 8 lanes for heads of 8 (stories260K) that a 16-lane vector would leave scalar */
#define VH_W 8
#define VH_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define VH_LOAD(p) _mm256_loadu_ps(p)
#define VH_STORE(p, v) _mm256_storeu_ps(p, v)
#define VH_SET1(x) _mm256_set1_ps(x)
#define VH_MUL _mm256_mul_ps
#define VH_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VH_WIDEN(x) _mm512_cvtps_pd(x)
#define VH_NARROW(d) _mm512_cvtpd_ps(d)
/* ===== a step's attention scores, 16 positions a pass =====
 * Each position's 64 fused lanes are those of attn_score_step (one register
 * per 16); (0 + 2) + (1 + 3) leaves its 16-lane vector c, whose halving
 * tree (lanes l + 8, l + 4, l + 2, l + 1) the four stages below run for 16
 * positions at once: each stage adds the very pairs of the scalar tree,
 * shuffled so that one add serves two, four, eight, then sixteen rows. */

/* lanes l and l + 8 of x (low half of the result) and of y (high half) */
static inline __m512 tree_a(__m512 x, __m512 y)
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* x, y: two rows' 8-lane halves each; l and l + 4 of the four rows, one 128-bit lane a row */
static inline __m512 tree_b(__m512 x, __m512 y)
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* 16 positions from k (rows ldk apart), hd a multiple of 64, into s */
static inline void scores16(int64_t hd, const uint16_t *k, int64_t ldk, const float *q, float *s)
{
    __m512 c[16];
    for (int j = 0; j < 16; j++) {
        const uint16_t *kr = k + j * ldk;
        __m512 a[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
        for (int64_t i = 0; i < hd; i += 64)
            for (int v = 0; v < 4; v++)
                a[v] = _mm512_fmadd_ps(V_LOAD_F16(kr + i + 16 * v), _mm512_loadu_ps(q + i + 16 * v), a[v]);
        c[j] = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
    }
    __m512 t[8], u[4], w[2];
    for (int j = 0; j < 8; j++) t[j] = tree_a(c[2 * j], c[2 * j + 1]);
    for (int j = 0; j < 4; j++) u[j] = tree_b(t[2 * j], t[2 * j + 1]);   /* rows 4j .. 4j+3 */
    for (int j = 0; j < 2; j++)   /* lanes l and l + 2 within each row's 128 bits */
        w[j] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* lanes l and l + 1: 128-bit lane b ends holding rows b, 4 + b, 8 + b, 12 + b */
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_ps(s, _mm512_permutexvar_ps(order, r));
}
#define V_SCORES16 scores16
#define KNAME_L(op) mh_k_##op##_llama_avx512
#include "kernels_llama_simd.h"

/* ===== half conversions ===== */
void mh_k_f16_to_f32_avx512(int64_t n, const uint16_t *x, float *y)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)));
    }
}

void mh_k_f32_to_f16_avx512(int64_t n, const float *x, uint16_t *y)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(y + i, m, h);
    }
}

void mh_k_bf16_to_f32_avx512(int64_t n, const uint16_t *x, float *y)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++) y[i] = mh_bf16_to_f32(x[i]);
}

/* Integer rounding rather than VCVTNEPS2BF16: that instruction flushes
 * subnormal inputs to zero, the reference does not. */
void mh_k_f32_to_bf16_avx512(int64_t n, const float *x, uint16_t *y)
{
    int64_t i = 0;
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    for (; i + 16 <= n; i += 16) {
        __m512 f = _mm512_loadu_ps(x + i);
        __m512i u = _mm512_castps_si512(f);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
        r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
    for (; i < n; i++) y[i] = mh_f32_to_bf16(x[i]);
}
