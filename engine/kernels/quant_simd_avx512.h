/* quant_simd_avx512.h: helpers shared by the AVX-512 quant kernels (dot
 * and gemm). Layer: engine/kernels, private; include only from *_avx512.c
 * files. hsum16 is the canonical lane sum (mh_k_lanes_sum in
 * quant_kernels.h): every level must add the 16 lanes in this one tree. */
#ifndef MH_QUANT_SIMD_AVX512_H
#define MH_QUANT_SIMD_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

INLINE __m512i join256(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* halves, quarters, pairs, one */
INLINE float hsum16(__m512 v)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
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

#endif
