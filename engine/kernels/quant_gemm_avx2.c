/* quant_gemm_avx2.c: AVX2/FMA/F16C tiled quantized GEMM (prompt processing)
 * for q8_0, q4_0, q5_0 (against q8_0 x) and q4_K, q6_K (against q8_K x).
 * Layer: engine/kernels; compiled with -mavx2, chosen at run time by
 * quant_traits.c. Same scheme as quant_gemm_avx512.c with 16 registers:
 * smaller tiles, one 32-block per register, lanes and float order of
 * quant_dot_avx2.c (bit-identical per pair to that level's vec_dot): the
 * canonical 8 float lanes of quant_kernels.h as one ymm accumulator per
 * pair, so every result also equals the _ref one bit for bit. */
#include <stdbool.h>
#include <immintrin.h>
#include "quant_kernels.h"

#include "quant_simd_avx2.h"

#define UNROLL _Pragma("GCC unroll 8")

/* acc + u8 . s8 in 8 lanes of 4-products (u <= 127: no maddubs saturation) */
INLINE __m256i dot_us(__m256i acc, __m256i u, __m256i s)
{
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

/* ===== 32-element blocks against q8_0 x =====
 * q4_0 / q5_0 weights stay unsigned (raw 4 / 5-bit levels) and the bias
 * comes back as -bias * sum(x), once per token and block; q8_0 uses |w|
 * against x carrying w's sign (its levels + 128 would saturate maddubs). */

enum { K_Q8_0, K_Q4_0, K_Q5_0, K_Q4_K, K_Q6_K };   /* the tiles' first argument */

/* 32 levels of block i of a weight row: q8_0 signed raw, else unsigned */
INLINE __m256i w_levels(int kind, const uint8_t *row, int64_t i, float *d)
{
    if (kind == K_Q8_0) {
        const mh_block_q8_0 *b = (const mh_block_q8_0 *)row + i;
        *d = h2f(b->d);
        return _mm256_loadu_si256((const __m256i *)b->qs);
    }
    const uint8_t *qs = kind == K_Q4_0 ? ((const mh_block_q4_0 *)row + i)->qs : ((const mh_block_q5_0 *)row + i)->qs;
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    const __m256i lo = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    if (kind == K_Q4_0) {
        *d = h2f(((const mh_block_q4_0 *)row + i)->d);
        return lo;
    }
    const mh_block_q5_0 *b = (const mh_block_q5_0 *)row + i;
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    *d = h2f(b->d);
    /* byte j takes byte j / 8 of qh, then tests bit j % 8 */
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i hv = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hv, bits), bits);
    return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

/* q8_0's signed levels again (an L1 load: cheaper than a register each) */
INLINE __m256i q8_raw(const uint8_t *row, int64_t i)
{
    return _mm256_loadu_si256((const __m256i *)((const mh_block_q8_0 *)row + i)->qs);
}

/* register tiles: q8_0 and q5_0 4 x 2 (8 accumulators, 4 weight blocks,
 * the x block and its scale in 16 registers; measured faster than 2 x 2,
 * 3 x 3 and 2 x 4), q4_0 2 x 2; the arrays are sized for the largest */
#define RM32 4
#define CN32 2

/* block i of TR rows x TC tokens, each block into the one accumulator */
INLINE void step32(int kind, int TR, int TC, const uint8_t *const *wr, const uint8_t *x,
                   size_t x_row, int64_t i, __m256 acc[RM32][CN32])
{
    const __m256i bias = _mm256_set1_epi8(kind == K_Q4_0 ? 8 : 16);
    __m256i u[RM32];
    float dw[RM32];
    __m256 dwv[RM32];   /* dw * dx as a vector product: the scalar product's bits */
    UNROLL for (int r = 0; r < TR; r++) {
        u[r] = w_levels(kind, wr[r], i, &dw[r]);
        dwv[r] = _mm256_set1_ps(dw[r]);
        if (kind == K_Q8_0) u[r] = _mm256_sign_epi8(u[r], u[r]);   /* |w|; x takes w's sign */
    }
    UNROLL for (int c = 0; c < TC; c++) {
        const mh_block_q8_0 *xb = (const mh_block_q8_0 *)(x + (size_t)c * x_row) + i;
        const __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
        const float dx = h2f(xb->d);
        const __m256 dxv = _mm256_set1_ps(dx);
        __m256i corr = _mm256_setzero_si256();
        if (kind != K_Q8_0) corr = _mm256_sub_epi32(corr, dot_us(corr, bias, xv));
        UNROLL for (int r = 0; r < TR; r++) {
            const __m256i p = kind == K_Q8_0
                ? dot_us(_mm256_setzero_si256(), u[r], _mm256_sign_epi8(xv, q8_raw(wr[r], i)))
                : dot_us(corr, u[r], xv);
            if (kind == K_Q4_0)   /* whole-block dot, one fma: its float lives in lane 0 */
                acc[r][c] = _mm256_castps128_ps256(_mm_fmadd_ss(_mm_cvtsi32_ss(_mm_setzero_ps(), hsum_epi32(p)),
                                                                _mm_set_ss(dw[r] * dx), _mm256_castps256_ps128(acc[r][c])));
            else
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dwv[r], dxv), acc[r][c]);
        }
    }
}

INLINE void tile32(int kind, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                   const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm)
{
    const int64_t nb = n / MH_QK;
    const uint8_t *wr[RM32];
    __m256 acc[RM32][CN32];
    UNROLL for (int r = 0; r < TR; r++) {
        wr[r] = w + (size_t)(r < rm ? r : rm - 1) * w_row;
        UNROLL for (int c = 0; c < TC; c++) acc[r][c] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i < nb; i++) step32(kind, TR, TC, wr, x, x_row, i, acc);
    UNROLL for (int c = 0; c < TC; c++)
        UNROLL for (int r = 0; r < TR; r++)
            if (r < rm) y[c * ldy + r] = kind == K_Q4_0 ? _mm256_cvtss_f32(acc[r][c]) : hsum8(acc[r][c]);
}

GEMM_TILED(mh_k_gemm_q8_0_avx2, tile32, 4, 2, GEMM_FEW_MAX, K_Q8_0)
GEMM_TILED(mh_k_gemm_q4_0_avx2, tile32, 2, 2, 0, K_Q4_0)
GEMM_TILED(mh_k_gemm_q5_0_avx2, tile32, 4, 2, GEMM_FEW_MAX, K_Q5_0)

/* q5_0 has no other SIMD vec_dot: the 1 x 1 tile is one (token generation) */
void mh_k_vec_dot_q5_0_avx2(int64_t n, const void *w, const void *x, float *out)
{
    tile32(K_Q5_0, 1, 1, n, w, 0, x, 0, out, 1, 1);
}

/* ===== k-quants against q8_K x ===== */

#define RMK 2
#define CNK 2

INLINE void tile_q4_K(int kind, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                      const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm)
{
    (void)kind;   /* always K_Q4_K */
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const mh_block_q4_K *a[RMK];
    const mh_block_q8_K *b[CNK];
    __m256 acc[RMK][CNK];    /* the canonical lanes */
    __m128 mins[RMK][CNK];   /* q4_K's 4 min lanes */
    UNROLL for (int c = 0; c < TC; c++) b[c] = (const mh_block_q8_K *)(x + (size_t)c * x_row);
    UNROLL for (int r = 0; r < TR; r++) {
        a[r] = (const mh_block_q4_K *)(w + (size_t)(r < rm ? r : rm - 1) * w_row);
        UNROLL for (int c = 0; c < TC; c++) acc[r][c] = _mm256_setzero_ps(), mins[r][c] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        uint8_t sc[RMK][16];
        __m256i sumi[RMK][CNK];
        UNROLL for (int r = 0; r < TR; r++) {
            mh_k_scales_mins_k4(a[r][i].scales, sc[r]);
            UNROLL for (int c = 0; c < TC; c++) sumi[r][c] = _mm256_setzero_si256();
        }
        for (int j = 0; j < 4; j++) {   /* 32 bytes = groups 2j (low) and 2j+1 (high) */
            __m256i q0[RMK], q1[RMK];
            UNROLL for (int r = 0; r < TR; r++) {
                const __m256i q4 = _mm256_loadu_si256((const __m256i *)(a[r][i].qs + 32 * j));
                q0[r] = _mm256_and_si256(q4, m4);
                q1[r] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            }
            UNROLL for (int c = 0; c < TC; c++) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(b[c][i].qs + 64 * j));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(b[c][i].qs + 64 * j + 32));
                UNROLL for (int r = 0; r < TR; r++) {
                    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0[r], x0), _mm256_set1_epi16(sc[r][2 * j]));
                    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1[r], x1), _mm256_set1_epi16(sc[r][2 * j + 1]));
                    sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_add_epi32(p0, p1));
                }
            }
        }
        __m128i xs[CNK];   /* min lanes: m_2k (bsums 4k, 4k+1) + m_2k+1 (bsums 4k+2, 4k+3) */
        UNROLL for (int c = 0; c < TC; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)b[c][i].bsums);
            xs[c] = _mm_hadd_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        }
        UNROLL for (int r = 0; r < TR; r++) {
            const float d = h2f(a[r][i].d), dmin = h2f(a[r][i].dmin);
            const __m128i m8 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc[r] + 8)));
            UNROLL for (int c = 0; c < TC; c++) {
                const __m128i summ = _mm_madd_epi16(m8, xs[c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][c]), _mm256_set1_ps(b[c][i].d * d), acc[r][c]);
                mins[r][c] = _mm_fnmadd_ps(_mm_cvtepi32_ps(summ), _mm_set1_ps(b[c][i].d * dmin), mins[r][c]);
            }
        }
    }
    UNROLL for (int c = 0; c < TC; c++)
        UNROLL for (int r = 0; r < TR; r++)
            if (r < rm) y[c * ldy + r] = hsum8(acc[r][c]) + hsum4(mins[r][c]);
}

GEMM_TILED(mh_k_gemm_q4_K_avx2, tile_q4_K, RMK, CNK, GEMM_FEW_MAX, K_Q4_K)

/* 6-bit level: 4 bits of l (already shifted down) and 2 bits of h at shift */
INLINE __m256i q6_levels(__m256i l, __m256i h, int shift)
{
    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(h, shift), _mm256_set1_epi8(3));
    return _mm256_or_si256(_mm256_and_si256(l, _mm256_set1_epi8(0x0F)), _mm256_slli_epi16(hb, 4));
}

/* two 16-bit scales: s0 for the low 128-bit lane, s1 for the high one */
INLINE __m256i scales2(int s0, int s1)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)s0)),
                                   _mm_set1_epi16((short)s1), 1);
}

INLINE void tile_q6_K(int kind, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                      const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm)
{
    (void)kind;   /* always K_Q6_K */
    const __m256i m32 = _mm256_set1_epi8(32);
    const mh_block_q6_K *a[RMK];
    const mh_block_q8_K *b[CNK];
    __m256 acc[RMK][CNK];   /* the canonical lanes */
    UNROLL for (int c = 0; c < TC; c++) b[c] = (const mh_block_q8_K *)(x + (size_t)c * x_row);
    UNROLL for (int r = 0; r < TR; r++) {
        a[r] = (const mh_block_q6_K *)(w + (size_t)(r < rm ? r : rm - 1) * w_row);
        UNROLL for (int c = 0; c < TC; c++) acc[r][c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        __m256i sumi[RMK][CNK];
        UNROLL for (int r = 0; r < TR; r++)
            UNROLL for (int c = 0; c < TC; c++) sumi[r][c] = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            UNROLL for (int k = 0; k < 4; k++) {   /* levels 0..63, made q - 32 in the pair sums */
                __m256i q[RMK], scv[RMK];
                UNROLL for (int r = 0; r < TR; r++) {
                    const uint8_t *ql = a[r][i].ql + 64 * half + 32 * (k & 1);
                    const __m256i h = _mm256_loadu_si256((const __m256i *)(a[r][i].qh + 32 * half));
                    __m256i l = _mm256_loadu_si256((const __m256i *)ql);
                    if (k >= 2) l = _mm256_srli_epi16(l, 4);
                    q[r] = q6_levels(l, h, 2 * k);
                    const int8_t *sh = a[r][i].scales + 8 * half;
                    scv[r] = scales2(sh[2 * k], sh[2 * k + 1]);
                }
                UNROLL for (int c = 0; c < TC; c++) {
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(b[c][i].qs + 128 * half + 32 * k));
                    const __m256i x32 = _mm256_maddubs_epi16(m32, xv);   /* once per token, all rows */
                    UNROLL for (int r = 0; r < TR; r++) {
                        const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[r], xv), x32);
                        sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_madd_epi16(p, scv[r]));
                    }
                }
            }
        }
        UNROLL for (int r = 0; r < TR; r++) {
            const float dr = h2f(a[r][i].d);
            UNROLL for (int c = 0; c < TC; c++)
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r][c]), _mm256_set1_ps(b[c][i].d * dr), acc[r][c]);
        }
    }
    UNROLL for (int c = 0; c < TC; c++)
        UNROLL for (int r = 0; r < TR; r++)
            if (r < rm) y[c * ldy + r] = hsum8(acc[r][c]);
}

GEMM_TILED(mh_k_gemm_q6_K_avx2, tile_q6_K, RMK, CNK, GEMM_FEW_MAX, K_Q6_K)
