/* quant_simd_avx512.h: helpers shared by the AVX-512 quant kernels (dot
 * and gemm). Layer: engine/kernels, private; include only from *_avx512.c
 * files. hsum8 is the canonical lane sum (mh_k_lanes_sum8 in
 * quant_kernels.h, ggml's hsum_float_8): every level must add the 8 lanes
 * in this one tree. */
#ifndef MH_QUANT_SIMD_AVX512_H
#define MH_QUANT_SIMD_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* exact sums of the low and the high 8 int32 lanes (two q4_0 blocks) */
INLINE void hsum2_epi32(__m512i v, int *lo, int *hi)
{
    const __m256i a = _mm512_castsi512_si256(v), b = _mm512_extracti64x4_epi64(v, 1);
    __m256i s = _mm256_hadd_epi32(a, b);   /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    s = _mm256_hadd_epi32(s, s);           /* a0123 b0123 . . | a4567 b4567 . . */
    const __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    *lo = _mm_cvtsi128_si32(t);
    *hi = _mm_extract_epi32(t, 1);
}

INLINE __m512i join256(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* acc (8 lanes) += the low 8 lanes of d * p, then the high 8 when two:
 * the two 32-blocks of a register in block order, ggml's float order */
INLINE __m256 fma_blocks(__m256 acc, __m512 d, __m512 p, int two)
{
    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(d), _mm512_castps512_ps256(p), acc);
    if (two) acc = _mm256_fmadd_ps(_mm512_extractf32x8_ps(d, 1), _mm512_extractf32x8_ps(p, 1), acc);
    return acc;
}

/* 8 lanes: halves, pairs, one (ggml's hsum_float_8) */
INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 4 lanes: (0 + 2) + (1 + 3), mh_k_lanes_sum4 (q4_K's min lanes) */
INLINE float hsum4(__m128 v)
{
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* 16 int32 lanes (64 elements of a k-quant) -> the 8 canonical ones:
 * exact, any order */
INLINE __m256i fold_lanes(__m512i v)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

#endif
