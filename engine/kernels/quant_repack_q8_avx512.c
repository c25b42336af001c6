/* quant_repack_q8_avx512.c: AVX-512 kernel for packed q8_0 groups (layout in
 * mh/quant_repack.h), in a VNNI (vpdpbusd) and a plain variant. Layer:
 * engine/kernels; compiled with the AVX-512 flags, chosen at run time by
 * quant_repack.c. A zmm holds level dword k of each of the 16 rows, so a
 * broadcast activation dword meets 16 rows at once and its 16 dots are
 * lane k's partials of q8_0's canonical order (quant_kernels.h) for those
 * rows: the 8 lanes of 16 rows are 8 registers, each int -> float
 * conversion and fma serves 16 rows (the file layout spends them per row,
 * which bound batched decode), and the lanes end in the canonical tree by
 * vertical adds. Bit-identical to the plain q8_0 kernels of every level. */
#include <stdbool.h>
#include <string.h>
#include <immintrin.h>
#include "quant_repack_kernels.h"
#include "quant_simd_avx512.h"

#define UNROLL _Pragma("GCC unroll 8")
/* tokens per register tile: 8 lane accumulators each, 24 of the 32 zmm at
 * 3; more tokens take another pass over the group (from L1) */
#define CN 3
/* Several tokens make a block cost ~3-4x the compute of one, and then the
 * hardware prefetcher alone no longer keeps the weights' DRAM stream busy:
 * weights streamed from memory (build/bench/repack_q4_0 --stream 4, thread
 * CPU time, loaded machine) went 7-9 GB/s -> 15-18 GB/s with each block
 * prefetched 8 KiB ahead into L2 (2 KiB into L1: 8-11). One token is
 * memory-bound without it (18-21 GB/s with or without), so only the first
 * token pass of a multi-token call prefetches. */
#define PF_DIST 8192

INLINE __m512i bcast32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* one group x TC tokens, all blocks. Per level dword k: VNNI multiplies the
 * stored q + 128 and starts from x's correction (-128 times the dword's
 * sum); the plain path takes |q| against x carrying q's sign (a maddubs
 * pair sum, <= 2 x 128 x 127, fits int16) and widens each dword alone. */
INLINE void tile(bool vnni, int TC, bool pf, int64_t nb, const uint8_t *wg, const uint8_t *x, size_t x_row,
                 const mh_repack_xsum8 *xs, float *y, int64_t ldy)
{
    const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi16(1);
    __m512 acc[CN][8];
    UNROLL for (int c = 0; c < TC; c++)
        UNROLL for (int k = 0; k < 8; k++) acc[c][k] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = wg + (size_t)b * MH_RP8_BLOCK;
        if (pf)   /* a hint never faults: past the weight's end is harmless */
            for (int l = 0; l < MH_RP8_BLOCK; l += 64) _mm_prefetch((const char *)blk + PF_DIST + l, _MM_HINT_T1);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + MH_RP8_QS)));
        __m512 d[CN];
        const int8_t *xq[CN];
        const mh_repack_xsum8 *s[CN];
        UNROLL for (int c = 0; c < TC; c++) {
            s[c] = &xs[c * nb + b];
            xq[c] = ((const mh_block_q8_0 *)(x + (size_t)c * x_row) + b)->qs;
            d[c] = _mm512_mul_ps(dw, _mm512_set1_ps(s[c]->d));
        }
        UNROLL for (int k = 0; k < 8; k++) {
            __m512i u = _mm512_loadu_si512((const void *)(blk + 64 * k));
            __mmask64 neg = 0;
            if (!vnni) {
                const __m512i q = _mm512_xor_si512(u, _mm512_set1_epi8((char)0x80));
                neg = _mm512_movepi8_mask(q);
                u = _mm512_abs_epi8(q);
            }
            UNROLL for (int c = 0; c < TC; c++) {
                const __m512i xb = bcast32(xq[c] + 4 * k);
                const __m512i p = vnni ? _mm512_dpbusd_epi32(_mm512_set1_epi32(s[c]->corr[k]), u, xb)
                    : _mm512_madd_epi16(_mm512_maddubs_epi16(u, _mm512_mask_sub_epi8(xb, neg, zero, xb)), ones);
                acc[c][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d[c], acc[c][k]);
            }
        }
    }
    UNROLL for (int c = 0; c < TC; c++) {   /* the canonical tree: halves, pairs, one */
        const __m512 t0 = _mm512_add_ps(acc[c][0], acc[c][4]), t1 = _mm512_add_ps(acc[c][1], acc[c][5]);
        const __m512 t2 = _mm512_add_ps(acc[c][2], acc[c][6]), t3 = _mm512_add_ps(acc[c][3], acc[c][7]);
        _mm512_storeu_ps(y + c * ldy, _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3)));
    }
}

#define TILE_CASE(TC) case TC: tile(vnni, TC, pf, nb, wg, xc, x_row, xs + c * nb, yc, ldy); break;

INLINE void rgemm(bool vnni, int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                  const mh_repack_xsum8 *xs, int64_t C, float *y, int64_t ldy)
{
    const int64_t nb = n / 32;
    const size_t g_bytes = (size_t)nb * MH_RP8_BLOCK;
    for (int64_t g = 0; g < G; g++) {
        const uint8_t *wg = wp + (size_t)g * g_bytes;
        for (int64_t c = 0; c < C; c += CN) {
            const uint8_t *xc = x + (size_t)c * x_row;
            float *yc = y + c * ldy + g * 16;
            const bool pf = c == 0 && C > 1;
            switch (C - c < CN ? (int)(C - c) : CN) {
                TILE_CASE(1) TILE_CASE(2) TILE_CASE(3)
            }
        }
    }
}

void mh_k_rgemm_q8_0x16_avx512(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                               const mh_repack_xsum8 *xs, int64_t C, float *y, int64_t ldy)
{
    rgemm(false, n, wp, G, x, x_row, xs, C, y, ldy);
}

void mh_k_rgemm_q8_0x16_avx512vnni(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                                   const mh_repack_xsum8 *xs, int64_t C, float *y, int64_t ldy)
{
    rgemm(true, n, wp, G, x, x_row, xs, C, y, ldy);
}
