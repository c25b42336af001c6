/* quant_repack_avx512.c: AVX-512 kernel for packed q4_0 groups (layout in
 * mh/quant_repack.h), in a VNNI (vpdpbusd) and a plain variant. Layer:
 * engine/kernels; compiled with the AVX-512 flags, chosen at run time by
 * quant_repack.c. A zmm holds one nibble dword of each of the 16 rows, so
 * a broadcast activation dword meets 16 rows at once and the 16 block dots
 * land one per lane: no horizontal sums. Per row the float order is the
 * canonical q4_0 one (one fma per block), bit-identical to every level. */
#include <stdbool.h>
#include <string.h>
#include <immintrin.h>
#include "quant_repack_kernels.h"
#include "quant_simd_avx512.h"

#define UNROLL _Pragma("GCC unroll 8")
#define CN 8   /* tokens per register tile: 8 levels + 8 float accumulators */

INLINE __m512i bcast32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* the 8 unsigned level vectors of a block: u[k] pairs with x dword k.
 * VNNI keeps the high nibbles in place (16 times their level, < 256): its
 * int32 sums take them exactly and one shift per block divides the 16 out,
 * where the plain path's int16 pair sums need the levels themselves. */
INLINE void unpack(const uint8_t *q, __m512i u[8], bool vnni)
{
    const __m512i m = _mm512_set1_epi8(0x0F), mh = _mm512_set1_epi8((char)0xF0);
    UNROLL for (int k = 0; k < 4; k++) {
        const __m512i v = _mm512_loadu_si512((const void *)(q + 64 * k));
        u[k] = _mm512_and_si512(v, m);
        u[k + 4] = vnni ? _mm512_and_si512(v, mh) : _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
    }
}

/* 16 exact block dots sum((u - 8) x): u . x plus the block's -8 sum(x).
 * Plain AVX-512: the 8 maddubs pair sums stay within int16 (8 x 2 x 15 x
 * 128 < 32768), so one madd widens them all. */
INLINE __m512i block_dot(const __m512i u[8], const int8_t *xq, int32_t corr, bool vnni)
{
    __m512i a = _mm512_set1_epi32(corr);
    if (vnni) {   /* two chains of 4 (half the latency a one-token step waits on) */
        __m512i a1 = _mm512_setzero_si512();
        UNROLL for (int k = 0; k < 4; k++) {
            a = _mm512_dpbusd_epi32(a, u[k], bcast32(xq + 4 * k));
            a1 = _mm512_dpbusd_epi32(a1, u[k + 4], bcast32(xq + 16 + 4 * k));   /* 16 x hi . x */
        }
        return _mm512_add_epi32(a, _mm512_srai_epi32(a1, 4));
    }
    __m512i s = _mm512_maddubs_epi16(u[0], bcast32(xq));
    UNROLL for (int k = 1; k < 8; k++) s = _mm512_add_epi16(s, _mm512_maddubs_epi16(u[k], bcast32(xq + 4 * k)));
    return _mm512_add_epi32(a, _mm512_madd_epi16(s, _mm512_set1_epi16(1)));
}

/* one group x TC tokens, all blocks */
INLINE void tile(bool vnni, int TC, int64_t nb, const uint8_t *wg, const uint8_t *x, size_t x_row,
                 const mh_repack_xsum *xs, float *y, int64_t ldy)
{
    __m512 acc[CN];
    UNROLL for (int c = 0; c < TC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i u[8];
        const uint8_t *blk = wg + (size_t)b * MH_RP_BLOCK;
        unpack(blk, u, vnni);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + MH_RP_QS)));
        UNROLL for (int c = 0; c < TC; c++) {
            const mh_repack_xsum s = xs[c * nb + b];
            const mh_block_q8_0 *xb = (const mh_block_q8_0 *)(x + (size_t)c * x_row) + b;
            const __m512i p = block_dot(u, xb->qs, s.corr, vnni);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(s.d)), acc[c]);
        }
    }
    UNROLL for (int c = 0; c < TC; c++) _mm512_storeu_ps(y + c * ldy, acc[c]);
}

#define TILE_CASE(TC) case TC: tile(vnni, TC, nb, wg, xc, x_row, xs + c * nb, yc, ldy); break;

INLINE void rgemm(bool vnni, int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                  const mh_repack_xsum *xs, int64_t C, float *y, int64_t ldy)
{
    const int64_t nb = n / 32;
    const size_t g_bytes = (size_t)nb * MH_RP_BLOCK;
    for (int64_t g = 0; g < G; g++) {
        const uint8_t *wg = wp + (size_t)g * g_bytes;
        for (int64_t c = 0; c < C; c += CN) {
            const uint8_t *xc = x + (size_t)c * x_row;
            float *yc = y + c * ldy + g * 16;
            switch (C - c < CN ? (int)(C - c) : CN) {
                TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4)
                TILE_CASE(5) TILE_CASE(6) TILE_CASE(7) TILE_CASE(8)
            }
        }
    }
}

void mh_k_rgemm_q4_0x16_avx512(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                               const mh_repack_xsum *xs, int64_t C, float *y, int64_t ldy)
{
    rgemm(false, n, wp, G, x, x_row, xs, C, y, ldy);
}

void mh_k_rgemm_q4_0x16_avx512vnni(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                                   const mh_repack_xsum *xs, int64_t C, float *y, int64_t ldy)
{
    rgemm(true, n, wp, G, x, x_row, xs, C, y, ldy);
}
