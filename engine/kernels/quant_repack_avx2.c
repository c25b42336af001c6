/* quant_repack_avx2.c: AVX2 kernel for packed q4_0 groups (layout in
 * mh/quant_repack.h). Layer: engine/kernels; compiled with -mavx2, chosen
 * at run time by quant_repack.c. A group's 16 rows go as two halves of 8:
 * a ymm holds one nibble dword of each of 8 rows, a broadcast activation
 * dword meets all 8, and the 8 block dots land one per lane. Per row the
 * float order is the canonical q4_0 one (one fma per block). */
#include <string.h>
#include <immintrin.h>
#include "quant_repack_kernels.h"
#include "quant_simd_avx2.h"

#define UNROLL _Pragma("GCC unroll 8")
#define CN 4   /* tokens per register tile (16 ymm registers) */

INLINE __m256i bcast32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* half h (rows 8h..8h+7) of one group x TC tokens, all blocks. The 8
 * maddubs pair sums of a block stay within int16 (8 x 2 x 15 x 128 <
 * 32768): one madd per token and block widens them. */
INLINE void tile(int TC, int h, int64_t nb, const uint8_t *wg, const uint8_t *x, size_t x_row,
                 const mh_repack_xsum *xs, float *y, int64_t ldy)
{
    const __m256i m = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc[CN];
    UNROLL for (int c = 0; c < TC; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = wg + (size_t)b * MH_RP_BLOCK + 32 * h;
        __m256i s[CN];
        UNROLL for (int c = 0; c < TC; c++) s[c] = _mm256_setzero_si256();
        UNROLL for (int k = 0; k < 4; k++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(q + 64 * k));
            const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
            UNROLL for (int c = 0; c < TC; c++) {
                const int8_t *xq = ((const mh_block_q8_0 *)(x + (size_t)c * x_row) + b)->qs;
                s[c] = _mm256_add_epi16(s[c], _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast32(xq + 4 * k)),
                                                               _mm256_maddubs_epi16(hi, bcast32(xq + 16 + 4 * k))));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(q - 32 * h + MH_RP_QS + 16 * h)));
        UNROLL for (int c = 0; c < TC; c++) {
            const mh_repack_xsum t = xs[c * nb + b];
            const __m256i p = _mm256_add_epi32(_mm256_set1_epi32(t.corr), _mm256_madd_epi16(s[c], ones));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_set1_ps(t.d)), acc[c]);
        }
    }
    UNROLL for (int c = 0; c < TC; c++) _mm256_storeu_ps(y + c * ldy + 8 * h, acc[c]);
}

#define TILE_CASE(TC) case TC: tile(TC, h, nb, wg, xc, x_row, xs + c * nb, yc, ldy); break;

void mh_k_rgemm_q4_0x16_avx2(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                             const mh_repack_xsum *xs, int64_t C, float *y, int64_t ldy)
{
    const int64_t nb = n / 32;
    const size_t g_bytes = (size_t)nb * MH_RP_BLOCK;
    for (int64_t g = 0; g < G; g++) {
        const uint8_t *wg = wp + (size_t)g * g_bytes;
        for (int64_t c = 0; c < C; c += CN) {
            const uint8_t *xc = x + (size_t)c * x_row;
            float *yc = y + c * ldy + g * 16;
            for (int h = 0; h < 2; h++)
                switch (C - c < CN ? (int)(C - c) : CN) {
                    TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4)
                }
        }
    }
}
