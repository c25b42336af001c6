/* quant_simd_avx512.h: helpers shared by the AVX-512 quant kernels (dot
 * and gemm) on top of quant_simd_x86.h. Layer: engine/kernels, private;
 * include only from *_avx512.c files. */
#ifndef MH_QUANT_SIMD_AVX512_H
#define MH_QUANT_SIMD_AVX512_H

#include <stdbool.h>
#include "quant_simd_x86.h"

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

/* 16 int32 lanes (64 elements of a k-quant) -> the 8 canonical ones:
 * exact, any order */
INLINE __m256i fold_lanes(__m512i v)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* ===== q6_K (its dot and its gemm) ===== */

/* word indices spreading scale k of 4 over each 128-bit lane (8 words) */
static const uint8_t g_q6_lane_idx[4][32] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9,
     10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13,
     14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

/* 64 6-bit levels: 4 bits of l, 2 bits of h shifted by sh (per 16-bit word) */
INLINE __m512i q6_levels(__m512i l, __m512i h, __m512i sh)
{
    const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(h, sh), _mm512_set1_epi8(3));
    return _mm512_or_si512(_mm512_and_si512(l, _mm512_set1_epi8(0x0F)), _mm512_slli_epi16(hb, 4));
}

/* acc + ((q - 32) . x pair sums) * scales: q . x - 32 . x (x32, from
 * maddubs(32, x)) cannot leave s16 for levels 0..63 */
INLINE __m512i acc_q6(__m512i acc, __m512i q, __m512i xv, __m512i x32, __m512i sc16, bool vnni)
{
    const __m512i p = _mm512_sub_epi16(_mm512_maddubs_epi16(q, xv), x32);
    if (vnni) return _mm512_dpwssd_epi32(acc, p, sc16);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, sc16));
}

#endif
