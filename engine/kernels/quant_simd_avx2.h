/* quant_simd_avx2.h: helpers shared by the AVX2 quant kernels (dot and
 * gemm). Layer: engine/kernels, private; include only from *_avx2.c files.
 * hsum_ps is the canonical lane sum (mh_k_lanes_sum8 in quant_kernels.h,
 * ggml's hsum_float_8): every level must add the 8 lanes in this one tree
 * to stay bit-identical. */
#ifndef MH_QUANT_SIMD_AVX2_H
#define MH_QUANT_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* exact sum of 8 int32 lanes (q4_0's whole-block dot) */
INLINE int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* 8 lanes: halves, pairs, one */
INLINE float hsum_ps(__m256 v)
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

#endif
