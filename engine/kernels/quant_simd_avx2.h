/* quant_simd_avx2.h: helpers shared by the AVX2 quant kernels (dot and
 * gemm) on top of quant_simd_x86.h. Layer: engine/kernels, private;
 * include only from *_avx2.c files. */
#ifndef MH_QUANT_SIMD_AVX2_H
#define MH_QUANT_SIMD_AVX2_H

#include "quant_simd_x86.h"

/* exact sum of 8 int32 lanes (q4_0's whole-block dot) */
INLINE int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

#endif
