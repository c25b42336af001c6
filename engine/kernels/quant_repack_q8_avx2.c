/* quant_repack_q8_avx2.c: AVX2 kernel for packed q8_0 groups (layout in
 * mh/quant_repack.h). Layer: engine/kernels; compiled with -mavx2, chosen
 * at run time by quant_repack.c. A group's 16 rows go as two halves of 8:
 * a ymm holds level dword k of each of 8 rows, a broadcast activation
 * dword meets all 8, and its 8 dots are lane k's partials of q8_0's
 * canonical order for those rows (8 lanes: 8 registers, one token at a
 * time in 16 ymm). Bit-identical to the plain q8_0 kernels of every level. */
#include <string.h>
#include <immintrin.h>
#include "quant_repack_kernels.h"
#include "quant_simd_avx2.h"

#define UNROLL _Pragma("GCC unroll 8")

INLINE __m256i bcast32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* half h (rows 8h..8h+7) of one group x one token, all blocks: |q| against
 * x carrying q's sign (the stored q + 128 would saturate maddubs); a pair
 * sum (<= 2 x 128 x 127) fits int16, so each dword widens alone */
static void half_row(int h, int64_t nb, const uint8_t *wg, const mh_block_q8_0 *x, const mh_repack_xsum8 *xs,
                     float *y)
{
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    __m256 acc[8];
    UNROLL for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = wg + (size_t)b * MH_RP8_BLOCK + 32 * h;
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(q - 32 * h + MH_RP8_QS + 16 * h)));
        const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(xs[b].d));
        UNROLL for (int k = 0; k < 8; k++) {
            const __m256i w = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + 64 * k)), flip);
            const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(bcast32(x[b].qs + 4 * k), w));
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), d, acc[k]);
        }
    }
    const __m256 t0 = _mm256_add_ps(acc[0], acc[4]), t1 = _mm256_add_ps(acc[1], acc[5]);
    const __m256 t2 = _mm256_add_ps(acc[2], acc[6]), t3 = _mm256_add_ps(acc[3], acc[7]);
    _mm256_storeu_ps(y + 8 * h, _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3)));
}

void mh_k_rgemm_q8_0x16_avx2(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                             const mh_repack_xsum8 *xs, int64_t C, float *y, int64_t ldy)
{
    const int64_t nb = n / 32;
    const size_t g_bytes = (size_t)nb * MH_RP8_BLOCK;
    for (int64_t g = 0; g < G; g++)
        for (int64_t c = 0; c < C; c++)
            for (int h = 0; h < 2; h++)
                half_row(h, nb, wp + (size_t)g * g_bytes, (const mh_block_q8_0 *)(x + (size_t)c * x_row),
                         xs + c * nb, y + c * ldy + g * 16);
}
