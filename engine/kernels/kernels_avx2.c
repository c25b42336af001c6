/* kernels_avx2.c: AVX2+FMA+F16C f32 kernels (mh/kernels.h). Layer:
 * engine/kernels. Compiled with -mavx2 -mfma -mf16c; reached only through
 * the kernel table when cpuid reports AVX2. The arithmetic is shared with
 * the AVX-512 file in simd_impl.h. */
#include <immintrin.h>
#include "mh/kernels.h"
#include "mh/dtype.h"

#define SFX avx2
#define VW 8
typedef __m256 VF;
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_DIV _mm256_div_ps
#define V_MAX _mm256_max_ps
#define V_MIN _mm256_min_ps
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_ABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define V_SEL_GT(x, t, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, t, _CMP_GT_OQ))
#define V_SEL_LT(x, t, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, t, _CMP_LT_OQ))
#define V_SEL_NAN(x, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, x, _CMP_UNORD_Q))

/* p * 2^n for integral n in [-150, 128], in two steps of 2^(n/2) */
static inline VF V_LDEXP(VF p, VF n)
{
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    VF s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    VF s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return V_MUL(V_MUL(p, s1), s2);
}

static inline float V_HSUM(VF v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float V_HMAX(VF v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#include "simd_impl.h"

#define V_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
/* doubles: VW / 2 a register (the llama-order sums that ggml keeps in double) */
typedef __m256d VD;
#define VD_ADD _mm256_add_pd
#define V_WIDEN_LO(x) _mm256_cvtps_pd(_mm256_castps256_ps128(x))
#define V_WIDEN_HI(x) _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))
#define V_NARROW(lo, hi) _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo))
#define KNAME_L(op) mh_k_##op##_llama_avx2
#include "kernels_llama_simd.h"

/* ===== half conversions (F16C is exact round-to-nearest-even) ===== */
void mh_k_f16_to_f32_avx2(int64_t n, const uint16_t *x, float *y)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
}

void mh_k_f32_to_f16_avx2(int64_t n, const float *x, uint16_t *y)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

void mh_k_bf16_to_f32_avx2(int64_t n, const uint16_t *x, float *y)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) y[i] = mh_bf16_to_f32(x[i]);
}

void mh_k_f32_to_bf16_avx2(int64_t n, const float *x, uint16_t *y)
{
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(x + i);
        __m256i u = _mm256_castps_si256(f);
        __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
        __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));   /* nan: quiet, truncated */
        __m256 nan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
        r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q), nan));
        r = _mm256_srli_epi32(r, 16);
        __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(y + i), p);
    }
    for (; i < n; i++) y[i] = mh_f32_to_bf16(x[i]);
}
