/* quant_gemm_avx512.c: AVX-512 tiled quantized GEMM (prompt processing) for
 * q8_0, q4_0, q5_0 (against q8_0 x) and q4_K, q6_K (against q8_K x), each in
 * a VNNI (vpdpbusd / vpdpwssd) and a plain variant. Layer: engine/kernels;
 * compiled with the AVX-512 flags, chosen at run time by quant_traits.c.
 * A tile of RM weight rows x CN tokens reuses every unpacked weight block
 * for CN tokens and every activation block for RM rows. Per pair, the lanes
 * and the float accumulation order are those of quant_dot_avx512.c, so each
 * result is bit-identical to that level's vec_dot, and with it to the
 * _ref one (the canonical lanes and hsum8 tree of quant_kernels.h). */
#include <stdbool.h>
#include <immintrin.h>
#include "quant_kernels.h"
#include "quant_simd_avx512.h"

#define UNROLL _Pragma("GCC unroll 8")

/* acc + u8 . s8 in 16 lanes of 4-products (no saturation for u <= 127 x 2) */
INLINE __m512i dot_us(__m512i acc, __m512i u, __m512i s, bool vnni)
{
    if (vnni) return _mm512_dpbusd_epi32(acc, u, s);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
}

/* ===== 32-element blocks against q8_0 x, two blocks per register =====
 * Weights become unsigned levels u = q + bias (q8_0: xor 0x80, q4_0 / q5_0:
 * the raw 4 / 5-bit levels), so u . x - bias * sum(x) is the signed dot;
 * the correction depends on x only and is made once per token and block
 * pair. Plain AVX-512 q8_0 cannot use it (255 x 127 x 2 saturates
 * maddubs): there |w| meets x carrying w's sign, as the vec_dot does. */

enum { K_Q8_0, K_Q4_0, K_Q5_0 };

/* 32 levels of block i of a weight row, as unsigned u8 (q8_0: signed raw) */
INLINE __m256i w_levels(int kind, const uint8_t *row, int64_t i)
{
    if (kind == K_Q8_0) return _mm256_loadu_si256((const __m256i *)((const mh_block_q8_0 *)row + i)->qs);
    const uint8_t *qs = kind == K_Q4_0 ? ((const mh_block_q4_0 *)row + i)->qs : ((const mh_block_q5_0 *)row + i)->qs;
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    const __m256i lo = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    if (kind == K_Q4_0) return lo;
    uint32_t qh;
    memcpy(&qh, ((const mh_block_q5_0 *)row + i)->qh, 4);
    return _mm256_or_si256(lo, _mm256_maskz_mov_epi8(qh, _mm256_set1_epi8(16)));
}

/* the fp16 scale of block i (every 32-block type starts with it) */
INLINE uint32_t d_bits(int kind, const uint8_t *row, int64_t i)
{
    const size_t bs = kind == K_Q4_0 ? sizeof(mh_block_q4_0) : kind == K_Q5_0 ? sizeof(mh_block_q5_0)
                                                                                : sizeof(mh_block_q8_0);
    uint16_t d;
    memcpy(&d, row + (size_t)i * bs, 2);
    return d;
}

/* fp16 scales h0 | h1 << 16 -> h0 in the low 8 lanes, h1 in the high 8 */
INLINE __m512 scales2_h(uint32_t h01)
{
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h01));
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

INLINE int kind_bias(int kind) { return kind == K_Q8_0 ? 128 : kind == K_Q4_0 ? 8 : 16; }

/* blocks i and i + 1 of a row (the second zero when !two): levels, scales */
INLINE __m512i w_pair(int kind, const uint8_t *row, int64_t i, bool two, __m512 *d)
{
    if (!two) {
        *d = scales2_h(d_bits(kind, row, i));
        return join256(w_levels(kind, row, i), _mm256_setzero_si256());
    }
    *d = scales2_h(d_bits(kind, row, i) | d_bits(kind, row, i + 1) << 16);
    return join256(w_levels(kind, row, i), w_levels(kind, row, i + 1));
}

INLINE __m512i x_pair(const uint8_t *row, int64_t i, bool two, __m512 *d)
{
    return w_pair(K_Q8_0, row, i, two, d);
}

#define RM32 4
#define CN32 4

/* q4_0 in the order of llama.cpp's repacked matmul: each block's whole
 * int32 dot, one fma per block. The 4 rows' dots of a block come out of
 * one hadd tree, and acc's low 4 lanes hold the 4 rows of this token. */
INLINE __m128i block_sums4(__m256i v0, __m256i v1, __m256i v2, __m256i v3)
{
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

INLINE void q4_0_blocks(const __m512i p[4], __m256 wd, __m512 dx, bool two, __m256 *acc)
{
    __m128 a = _mm256_castps256_ps128(*acc);
    const __m128 d0 = _mm_mul_ps(_mm256_castps256_ps128(wd), _mm512_castps512_ps128(dx));
    const __m128i s0 = block_sums4(_mm512_castsi512_si256(p[0]), _mm512_castsi512_si256(p[1]),
                                   _mm512_castsi512_si256(p[2]), _mm512_castsi512_si256(p[3]));
    a = _mm_fmadd_ps(_mm_cvtepi32_ps(s0), d0, a);
    if (two) {
        const __m128 d1 = _mm_mul_ps(_mm256_extractf128_ps(wd, 1), _mm512_extractf32x4_ps(dx, 2));
        const __m128i s1 = block_sums4(_mm512_extracti64x4_epi64(p[0], 1), _mm512_extracti64x4_epi64(p[1], 1),
                                       _mm512_extracti64x4_epi64(p[2], 1), _mm512_extracti64x4_epi64(p[3], 1));
        a = _mm_fmadd_ps(_mm_cvtepi32_ps(s1), d1, a);
    }
    *acc = _mm256_castps128_ps256(a);
}

INLINE float lane_of(__m256 v, int r)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[r];
}

/* one step of tile32: blocks i, i + 1 (two) of TR rows x TC tokens */
INLINE void step32(int kind, bool vnni, int TR, int TC, const uint8_t *const *wr,
                   const uint8_t *x, size_t x_row, int64_t i, bool two, __m256 acc[RM32][CN32])
{
    const bool signs = kind == K_Q8_0 && !vnni;   /* the |w|, sign(x, w) path */
    const __m512i bias = _mm512_set1_epi8((char)kind_bias(kind));
    __m512i u[RM32];
    __m512 dw[RM32];
    __mmask64 neg[RM32];
    __m512i pq[RM32] = { 0 };   /* rows past TR (1-row tiles) add zeros to unused lanes */
    float wl[8];   /* q4_0: the rows' scales, block i in 0..3, block i + 1 in 4..7 */
    UNROLL for (int r = 0; r < TR; r++) {
        u[r] = w_pair(kind, wr[r], i, two, &dw[r]);
        if (kind == K_Q4_0) {
            wl[r] = _mm512_cvtss_f32(dw[r]);
            wl[4 + r] = _mm256_cvtss_f32(_mm512_extractf32x8_ps(dw[r], 1));
        }
        neg[r] = signs ? _mm512_movepi8_mask(u[r]) : 0;
        if (signs) u[r] = _mm512_abs_epi8(u[r]);
        else if (kind == K_Q8_0) u[r] = _mm512_xor_si512(u[r], bias);
    }
    UNROLL for (int c = 0; c < TC; c++) {
        __m512 dx;
        const __m512i xv = x_pair(x + (size_t)c * x_row, i, two, &dx);
        __m512i corr = _mm512_setzero_si512();
        if (!signs) corr = _mm512_sub_epi32(corr, dot_us(corr, bias, xv, vnni));
        UNROLL for (int r = 0; r < TR; r++) {
            __m512i p;
            if (signs) {
                const __m512i sx = _mm512_mask_sub_epi8(xv, neg[r], _mm512_setzero_si512(), xv);
                p = dot_us(_mm512_setzero_si512(), u[r], sx, false);
            } else {
                p = dot_us(corr, u[r], xv, vnni);
            }
            if (kind == K_Q4_0) pq[r] = p;
            else acc[r][c] = fma_blocks(acc[r][c], _mm512_mul_ps(dw[r], dx), _mm512_cvtepi32_ps(p), two);
        }
        if (kind == K_Q4_0) q4_0_blocks(pq, _mm256_loadu_ps(wl), dx, two, &acc[0][c]);
    }
}

/* y[c * ldy + r] for r < rm, c < cn. TR x TC (compile-time, <= RM32 x CN32)
 * is the register tile; rows past rm repeat row rm - 1 (edge tiles only)
 * and are not stored, so no load goes past the R rows given. */
INLINE void tile32(int kind, bool vnni, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
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
    for (; i + 2 <= nb; i += 2) step32(kind, vnni, TR, TC, wr, x, x_row, i, true, acc);
    if (i < nb) step32(kind, vnni, TR, TC, wr, x, x_row, i, false, acc);   /* odd block: upper half zero */
    UNROLL for (int c = 0; c < TC; c++)
        UNROLL for (int r = 0; r < TR; r++)
            if (r < rm) y[c * ldy + r] = kind == K_Q4_0 ? lane_of(acc[0][c], r) : hsum8(acc[r][c]);
}

GEMM_TILED(mh_k_gemm_q4_0_avx512, tile32, RM32, CN32, 0, K_Q4_0, false)
GEMM_TILED(mh_k_gemm_q4_0_avx512vnni, tile32, RM32, CN32, 0, K_Q4_0, true)

/* ===== prompts of q8_0 and q5_0: two tokens per register =====
 * Past GEMM_FEW_MAX tokens one block of two tokens shares a register (token
 * c in the low 8 lanes, c + 1 in the high 8) against the row's block
 * broadcast to both halves: per (row, token pair, block) one dot, one scale
 * product, one conversion and one 16-lane fma, where two blocks of one
 * token per register (tile32) need two 8-lane fmas and the extracts feeding
 * them. Each pair's lanes and float order are tile32's (block by block, the
 * scale product dw * dx, one fma), so the bits are the same. */
#define RMP 4   /* register tile bounds: rows, tokens (4 x 8 measured best for both) */
#define CNP 8

/* block i of a weight row as unsigned levels (q8_0: signed raw) in both
 * halves; q5_0 unpacks the broadcast bytes, 128-bit lanes 1 and 3 taking
 * the high nibbles, so no shuffle follows */
INLINE __m512i w_bcast(int kind, const uint8_t *row, int64_t i)
{
    if (kind == K_Q8_0)
        return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)((const mh_block_q8_0 *)row + i)->qs));
    if (kind != K_Q5_0) return _mm512_broadcast_i64x4(w_levels(kind, row, i));
    const mh_block_q5_0 *b = (const mh_block_q5_0 *)row + i;
    const __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b->qs));
    const __m512i lo = _mm512_and_si512(_mm512_srlv_epi16(q, _mm512_setr_epi64(0, 0, 0x0004000400040004ll,
        0x0004000400040004ll, 0, 0, 0x0004000400040004ll, 0x0004000400040004ll)), _mm512_set1_epi8(0x0F));
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    return _mm512_or_si512(lo, _mm512_maskz_mov_epi8((uint64_t)qh | (uint64_t)qh << 32, _mm512_set1_epi8(16)));
}

/* block i of tokens c (low half) and c + 1 (high half; zeros when !two) */
INLINE __m512i x_tokens(const uint8_t *xc, size_t x_row, int64_t i, bool two, __m512 *d)
{
    const mh_block_q8_0 *b0 = (const mh_block_q8_0 *)xc + i;
    const __m256i lo = _mm256_loadu_si256((const __m256i *)b0->qs);
    if (!two) {
        *d = scales2_h(b0->d);
        return _mm512_zextsi256_si512(lo);
    }
    const mh_block_q8_0 *b1 = (const mh_block_q8_0 *)(xc + x_row) + i;
    *d = scales2_h((uint32_t)b0->d | (uint32_t)b1->d << 16);
    return join256(lo, _mm256_loadu_si256((const __m256i *)b1->qs));
}

/* one token pair's block, made ready for every row: levels, scales and
 * the bias correction (see tile32p) */
typedef struct xprep { __m512i xv, corr; __m512 dx; } xprep;

INLINE xprep prep_pair(int kind, bool vnni, const uint8_t *xc, size_t x_row, int64_t i, bool two)
{
    const bool signs = kind == K_Q8_0 && !vnni;
    const __m512i bias = _mm512_set1_epi8((char)kind_bias(kind)), zero = _mm512_setzero_si512();
    xprep e;
    e.xv = x_tokens(xc, x_row, i, two, &e.dx);
    e.corr = signs ? zero : _mm512_sub_epi32(zero, dot_us(zero, bias, e.xv, vnni));
    return e;
}

/* y[c * ldy + r] for r < rm, c < TC; TR x TC <= RMP x CNP; rows past rm as
 * in tile32. xp: the tokens' blocks made ready (prep_x), or NULL to make
 * them here */
INLINE void tile32p(int kind, bool vnni, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                    const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm, const xprep *xp)
{
    enum { NP = CNP / 2 };
    const int TP = (TC + 1) / 2;
    const bool signs = kind == K_Q8_0 && !vnni;   /* the |w|, sign(x, w) path */
    const __m512i bias = _mm512_set1_epi8((char)kind_bias(kind)), zero = _mm512_setzero_si512();
    const uint8_t *wr[RMP];
    __m512 acc[RMP][NP];
    UNROLL for (int r = 0; r < TR; r++) {
        wr[r] = w + (size_t)(r < rm ? r : rm - 1) * w_row;
        UNROLL for (int p = 0; p < TP; p++) acc[r][p] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < n / MH_QK; i++) {
        xprep e[NP];
        UNROLL for (int p = 0; p < TP; p++) {
            if (xp) e[p] = xp[i * NP + p];
            else e[p] = prep_pair(kind, vnni, x + (size_t)(2 * p) * x_row, x_row, i, 2 * p + 1 < TC);
        }
        UNROLL for (int r = 0; r < TR; r++) {
            __m512i u = w_bcast(kind, wr[r], i);
            const __m512 dw = _mm512_set1_ps(h2f((uint16_t)d_bits(kind, wr[r], i)));
            const __mmask64 neg = signs ? _mm512_movepi8_mask(u) : 0;
            if (signs) u = _mm512_abs_epi8(u);
            else if (kind == K_Q8_0) u = _mm512_xor_si512(u, bias);
            UNROLL for (int p = 0; p < TP; p++) {
                const __m512i s = signs ? dot_us(zero, u, _mm512_mask_sub_epi8(e[p].xv, neg, zero, e[p].xv), false)
                                        : dot_us(e[p].corr, u, e[p].xv, vnni);
                acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dw, e[p].dx), _mm512_cvtepi32_ps(s), acc[r][p]);
            }
        }
    }
    UNROLL for (int p = 0; p < TP; p++)
        UNROLL for (int r = 0; r < TR; r++) {
            if (r >= rm) continue;
            y[2 * p * ldy + r] = hsum8(_mm512_castps512_ps256(acc[r][p]));
            if (2 * p + 1 < TC) y[(2 * p + 1) * ldy + r] = hsum8(_mm512_extractf32x8_ps(acc[r][p], 1));
        }
}

/* CNP tokens' blocks made ready once and read by every row band: 4 pairs
 * x n / 32 blocks, 12 KB at n = 576; longer rows make them per band */
#define XPREP_MAX 256
static _Thread_local xprep g_xprep[XPREP_MAX];

/* rows [0, R) x tokens [c, C) by RMP x 2 and RMP x 1 tiles */
INLINE void pairs_tail(int kind, bool vnni, int64_t n, const uint8_t *wb, size_t w_row, int64_t R,
                       const uint8_t *xb, size_t x_row, int64_t c, int64_t C, float *y, int64_t ldy)
{
    for (int64_t r = 0; r < R; r += RMP) {
        const int rm = R - r < RMP ? (int)(R - r) : RMP;
        const uint8_t *wt = wb + (size_t)r * w_row;
        int64_t k = c;
        for (; k + 2 <= C; k += 2)
            tile32p(kind, vnni, RMP, 2, n, wt, w_row, xb + (size_t)k * x_row, x_row, y + k * ldy + r, ldy, rm, NULL);
        if (k < C)
            tile32p(kind, vnni, RMP, 1, n, wt, w_row, xb + (size_t)k * x_row, x_row, y + k * ldy + r, ldy, rm, NULL);
    }
}

/* up to GEMM_FEW_MAX tokens row by row (tile32), else RMP x CNP tiles,
 * token tiles outermost so each tile's x blocks are made ready once, then
 * the last C % CNP tokens two by two and one */
INLINE void gemm_pairs(int kind, bool vnni, int64_t n, const void *w, size_t w_row, int64_t R,
                       const void *x, size_t x_row, int64_t C, float *y, int64_t ldy)
{
    const uint8_t *wb = w, *xb = x;
    const int64_t nb = n / MH_QK;
    if (C <= GEMM_FEW_MAX) {
        GEMM_FEW(tile32, CN32, kind, vnni);
        return;
    }
    int64_t c = 0;
    for (; c + CNP <= C; c += CNP) {
        const uint8_t *xt = xb + (size_t)c * x_row;
        const bool ready = nb * (CNP / 2) <= XPREP_MAX;
        if (ready)
            for (int64_t i = 0; i < nb; i++)
                for (int p = 0; p < CNP / 2; p++)
                    g_xprep[i * (CNP / 2) + p] = prep_pair(kind, vnni, xt + (size_t)(2 * p) * x_row, x_row, i, true);
        for (int64_t r = 0; r < R; r += RMP) {
            const int rm = R - r < RMP ? (int)(R - r) : RMP;
            tile32p(kind, vnni, RMP, CNP, n, wb + (size_t)r * w_row, w_row, xt, x_row, y + c * ldy + r, ldy, rm,
                    ready ? g_xprep : NULL);
        }
    }
    if (c < C) pairs_tail(kind, vnni, n, wb, w_row, R, xb, x_row, c, C, y, ldy);
}

#define GEMM_PAIRS(name, kind, vnni)                                                          \
    void name(int64_t n, const void *w, size_t w_row, int64_t R, const void *x, size_t x_row, \
              int64_t C, float *y, int64_t ldy)                                               \
    {                                                                                         \
        gemm_pairs(kind, vnni, n, w, w_row, R, x, x_row, C, y, ldy);                          \
    }

GEMM_PAIRS(mh_k_gemm_q8_0_avx512, K_Q8_0, false)
GEMM_PAIRS(mh_k_gemm_q8_0_avx512vnni, K_Q8_0, true)
GEMM_PAIRS(mh_k_gemm_q5_0_avx512, K_Q5_0, false)
GEMM_PAIRS(mh_k_gemm_q5_0_avx512vnni, K_Q5_0, true)

/* ===== k-quants against q8_K x =====
 * Per pair and super-block an int32 sum of scaled group dots, as in the
 * vec_dot; the weights' levels, scales and the x loads are shared by the
 * tile. Float accumulators stay per pair, reduced once per row. */

#define RMK 4
#define CNK 4

/* acc + (u8 levels . s8 x) pair sums times 16-bit group scales */
INLINE __m512i acc_scaled(__m512i acc, __m512i q, __m512i xv, __m512i sc16, bool vnni)
{
    const __m512i p = _mm512_maddubs_epi16(q, xv);
    if (vnni) return _mm512_dpwssd_epi32(acc, p, sc16);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, sc16));
}

/* fold_lanes of two tokens at once: a's 8 lanes low, b's high (exact) */
INLINE __m512i fold_pair(__m512i a, __m512i b)
{
    return _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, 0x44), _mm512_shuffle_i64x2(a, b, 0xEE));
}

/* bsums pair sums (bsums 2k + 2k+1), the x side of q4_K's min lanes */
INLINE __m128i q4_K_xsums(const int16_t *bsums)
{
    const __m256i v = _mm256_loadu_si256((const __m256i *)bsums);
    return _mm_hadd_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

INLINE void tile_q4_K(bool vnni, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                      const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
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
        uint8_t sc[RMK][16];   /* scales, then mins */
        __m512i sumi[RMK][CNK];
        UNROLL for (int r = 0; r < TR; r++) {
            mh_k_scales_mins_k4(a[r][i].scales, sc[r]);
            UNROLL for (int c = 0; c < TC; c++) sumi[r][c] = _mm512_setzero_si512();
        }
        for (int j = 0; j < 4; j++) {   /* low nibbles: group 2j, high: 2j+1 */
            __m512i q[RMK], s16[RMK];
            UNROLL for (int r = 0; r < TR; r++) {
                const __m256i q4 = _mm256_loadu_si256((const __m256i *)(a[r][i].qs + 32 * j));
                q[r] = _mm512_and_si512(join256(q4, _mm256_srli_epi16(q4, 4)), m4);
                s16[r] = join256(_mm256_set1_epi16(sc[r][2 * j]), _mm256_set1_epi16(sc[r][2 * j + 1]));
            }
            UNROLL for (int c = 0; c < TC; c++) {
                const __m512i xv = _mm512_loadu_si512((const void *)(b[c][i].qs + 64 * j));
                UNROLL for (int r = 0; r < TR; r++) sumi[r][c] = acc_scaled(sumi[r][c], q[r], xv, s16[r], vnni);
            }
        }
        __m128i xs[CNK];   /* min lanes: m_2k (bsums 4k, 4k+1) + m_2k+1 (bsums 4k+2, 4k+3) */
        UNROLL for (int c = 0; c < TC; c++) xs[c] = q4_K_xsums(b[c][i].bsums);
        UNROLL for (int r = 0; r < TR; r++) {
            const float d = h2f(a[r][i].d), dmin = h2f(a[r][i].dmin);
            const __m128i m8 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc[r] + 8)));
            UNROLL for (int c = 0; c < TC; c++) {
                const __m128i summ = _mm_madd_epi16(m8, xs[c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_lanes(sumi[r][c])), _mm256_set1_ps(b[c][i].d * d), acc[r][c]);
                mins[r][c] = _mm_fnmadd_ps(_mm_cvtepi32_ps(summ), _mm_set1_ps(b[c][i].d * dmin), mins[r][c]);
            }
        }
    }
    UNROLL for (int c = 0; c < TC; c++)
        UNROLL for (int r = 0; r < TR; r++)
            if (r < rm) y[c * ldy + r] = hsum8(acc[r][c]) + hsum4(mins[r][c]);
}

/* q4_K for prompts (RMK-row tiles): the same integer sums with cheaper
 * unpacking (the 32 bytes broadcast, the high nibbles shifted in place;
 * the group scales by one word permute), and the float tail two tokens per
 * register (main lanes) and four per register (min lanes): per pair the
 * lane values, products and fma order of tile_q4_K, so the same bits */
INLINE void tile_q4_Kp(bool vnni, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                       const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), zero = _mm512_setzero_si512();
    const __m512i sh4 = join256(_mm256_setzero_si256(), _mm256_set1_epi16(4));
    const mh_block_q4_K *a[RMK];
    const mh_block_q8_K *b[CNK];
    __m512 acc[RMK][CNK / 2];   /* tokens 2p (low 8 lanes) and 2p + 1 (high 8) */
    __m512 mins[RMK];           /* token c's 4 min lanes in 128-bit lane c */
    UNROLL for (int c = 0; c < TC; c++) b[c] = (const mh_block_q8_K *)(x + (size_t)c * x_row);
    UNROLL for (int r = 0; r < TR; r++) {
        a[r] = (const mh_block_q4_K *)(w + (size_t)(r < rm ? r : rm - 1) * w_row);
        mins[r] = _mm512_setzero_ps();
        UNROLL for (int p = 0; p < CNK / 2; p++) acc[r][p] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        uint8_t sc[RMK][16];   /* scales, then mins */
        __m512i sumi[RMK][CNK], sc16[RMK];
        UNROLL for (int r = 0; r < TR; r++) {
            mh_k_scales_mins_k4(a[r][i].scales, sc[r]);
            sc16[r] = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)sc[r])));
            UNROLL for (int c = 0; c < TC; c++) sumi[r][c] = zero;
        }
        for (int j = 0; j < 4; j++) {   /* low nibbles: group 2j, high: 2j+1 */
            const __m512i idx = join256(_mm256_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1)));
            __m512i q[RMK], s16[RMK];
            UNROLL for (int r = 0; r < TR; r++) {
                const __m512i q4 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a[r][i].qs + 32 * j)));
                q[r] = _mm512_and_si512(_mm512_srlv_epi16(q4, sh4), m4);
                s16[r] = _mm512_permutexvar_epi16(idx, sc16[r]);
            }
            UNROLL for (int c = 0; c < TC; c++) {
                const __m512i xv = _mm512_loadu_si512((const void *)(b[c][i].qs + 64 * j));
                UNROLL for (int r = 0; r < TR; r++) sumi[r][c] = acc_scaled(sumi[r][c], q[r], xv, s16[r], vnni);
            }
        }
        __m512i xs = zero;   /* min lanes' x side, token c in 128-bit lane c */
        __m512 bd = _mm512_setzero_ps(), bdp[CNK / 2];
        UNROLL for (int c = 0; c < TC; c++) {
            xs = _mm512_mask_broadcast_i32x4(xs, (__mmask16)(0xF << 4 * c), q4_K_xsums(b[c][i].bsums));
            bd = _mm512_mask_mov_ps(bd, (__mmask16)(0xF << 4 * c), _mm512_set1_ps(b[c][i].d));
        }
        UNROLL for (int p = 0; p < (TC + 1) / 2; p++)
            bdp[p] = _mm512_permutexvar_ps(join256(_mm256_set1_epi32(8 * p), _mm256_set1_epi32(8 * p + 4)), bd);
        UNROLL for (int r = 0; r < TR; r++) {
            const __m512 d = _mm512_set1_ps(h2f(a[r][i].d)), dmin = _mm512_set1_ps(h2f(a[r][i].dmin));
            const __m512i m8 = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc[r] + 8))));
            mins[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(m8, xs)), _mm512_mul_ps(bd, dmin), mins[r]);
            UNROLL for (int p = 0; p < (TC + 1) / 2; p++) {
                const __m512i f = fold_pair(sumi[r][2 * p], 2 * p + 1 < TC ? sumi[r][2 * p + 1] : zero);
                acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(f), _mm512_mul_ps(d, bdp[p]), acc[r][p]);
            }
        }
    }
    UNROLL for (int r = 0; r < TR; r++) {
        if (r >= rm) continue;
        float m[16];   /* lane c of a runtime c: through memory (no immediate at -O1) */
        _mm512_storeu_ps(m, mins[r]);
        UNROLL for (int c = 0; c < TC; c++) {
            const __m512 v = acc[r][c / 2];
            const __m256 h = c % 2 ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v);
            y[c * ldy + r] = hsum8(h) + hsum4(_mm_loadu_ps(m + 4 * c));
        }
    }
}

/* 1-row tiles (GEMM_FEW: a few tokens) as before, RMK-row tiles the above */
INLINE void tile_q4_Kx(bool vnni, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                       const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm)
{
    if (TR == 1) tile_q4_K(vnni, TR, TC, n, w, w_row, x, x_row, y, ldy, rm);
    else tile_q4_Kp(vnni, TR, TC, n, w, w_row, x, x_row, y, ldy, rm);
}

GEMM_TILED(mh_k_gemm_q4_K_avx512, tile_q4_Kx, RMK, CNK, GEMM_FEW_MAX, false)
GEMM_TILED(mh_k_gemm_q4_K_avx512vnni, tile_q4_Kx, RMK, CNK, GEMM_FEW_MAX, true)

INLINE void tile_q6_K(bool vnni, int TR, int TC, int64_t n, const uint8_t *w, size_t w_row,
                      const uint8_t *x, size_t x_row, float *y, int64_t ldy, int rm)
{
    const __m512i sh01 = join256(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
    const __m512i sh23 = join256(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
    const __m512i m32 = _mm512_set1_epi8(32);
    const mh_block_q6_K *a[RMK];
    const mh_block_q8_K *b[CNK];
    __m256 acc[RMK][CNK];   /* the canonical lanes */
    UNROLL for (int c = 0; c < TC; c++) b[c] = (const mh_block_q8_K *)(x + (size_t)c * x_row);
    UNROLL for (int r = 0; r < TR; r++) {
        a[r] = (const mh_block_q6_K *)(w + (size_t)(r < rm ? r : rm - 1) * w_row);
        UNROLL for (int c = 0; c < TC; c++) acc[r][c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        __m512i scv[RMK][4], sumi[RMK][CNK];
        UNROLL for (int r = 0; r < TR; r++) {
            const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[r][i].scales)));
            for (int k = 0; k < 4; k++)
                scv[r][k] = _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)g_q6_lane_idx[k])), sc);
            UNROLL for (int c = 0; c < TC; c++) sumi[r][c] = _mm512_setzero_si512();
        }
        for (int half = 0; half < 2; half++) {
            __m512i q01[RMK], q23[RMK];
            UNROLL for (int r = 0; r < TR; r++) {
                const __m256i h256 = _mm256_loadu_si256((const __m256i *)(a[r][i].qh + 32 * half));
                const __m512i h = join256(h256, h256);
                const __m512i l = _mm512_loadu_si512((const void *)(a[r][i].ql + 64 * half));
                q01[r] = q6_levels(l, h, sh01);
                q23[r] = q6_levels(_mm512_srli_epi16(l, 4), h, sh23);
            }
            UNROLL for (int c = 0; c < TC; c++) {
                const int8_t *xq = b[c][i].qs + 128 * half;
                const __m512i x0 = _mm512_loadu_si512((const void *)xq);
                const __m512i x1 = _mm512_loadu_si512((const void *)(xq + 64));
                const __m512i x32a = _mm512_maddubs_epi16(m32, x0), x32b = _mm512_maddubs_epi16(m32, x1);
                UNROLL for (int r = 0; r < TR; r++) {
                    sumi[r][c] = acc_q6(sumi[r][c], q01[r], x0, x32a, scv[r][2 * half], vnni);
                    sumi[r][c] = acc_q6(sumi[r][c], q23[r], x1, x32b, scv[r][2 * half + 1], vnni);
                }
            }
        }
        UNROLL for (int r = 0; r < TR; r++) {
            const float dr = h2f(a[r][i].d);
            UNROLL for (int c = 0; c < TC; c++)
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_lanes(sumi[r][c])), _mm256_set1_ps(b[c][i].d * dr), acc[r][c]);
        }
    }
    UNROLL for (int c = 0; c < TC; c++)
        UNROLL for (int r = 0; r < TR; r++)
            if (r < rm) y[c * ldy + r] = hsum8(acc[r][c]);
}

GEMM_TILED(mh_k_gemm_q6_K_avx512, tile_q6_K, RMK, CNK, GEMM_FEW_MAX, false)
GEMM_TILED(mh_k_gemm_q6_K_avx512vnni, tile_q6_K, RMK, CNK, GEMM_FEW_MAX, true)

/* q5_0 has no other SIMD vec_dot: the 1 x 1 tile is one (token generation) */
void mh_k_vec_dot_q5_0_avx512(int64_t n, const void *w, const void *x, float *out)
{
    tile32(K_Q5_0, false, 1, 1, n, w, 0, x, 0, out, 1, 1);
}

void mh_k_vec_dot_q5_0_avx512vnni(int64_t n, const void *w, const void *x, float *out)
{
    tile32(K_Q5_0, true, 1, 1, n, w, 0, x, 0, out, 1, 1);
}

/* ===== activation quantizers (the gemm's x, quantized once per prompt) =====
 * Bit-identical to mh_k_quant_q8_0_ref / mh_k_quant_q8_K_ref: the same
 * scalar scale arithmetic, products rounded once, roundf (ties away from
 * zero) rebuilt from a truncation, lrintf as the default-mode conversion. */

void mh_k_quant_q8_0_act_avx512(const float *src, void *dst, int64_t n)
{
    mh_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / MH_QK; i++, src += MH_QK) {
        const __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = _cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT);
        const __m512 vid = _mm512_set1_ps(id);   /* cvtps rounds ties to even */
        _mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid))));
        _mm_storeu_si128((__m128i *)(b[i].qs + 16), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid))));
    }
}

void mh_k_quant_q8_K_avx512(const float *src, void *dst, int64_t n)
{
    mh_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / MH_QK_K; i++, src += MH_QK_K) {
        __m512 am = _mm512_setzero_ps();
        for (int k = 0; k < MH_QK_K; k += 16) am = _mm512_max_ps(am, _mm512_abs_ps(_mm512_loadu_ps(src + k)));
        const float amax = _mm512_reduce_max_ps(am);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float max = 0.0f;   /* the first element of largest magnitude, with its sign */
        const __m512 va = _mm512_set1_ps(amax);
        for (int k = 0; k < MH_QK_K; k += 16) {
            const __m512 v = _mm512_loadu_ps(src + k);
            const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(v), va, _CMP_EQ_OQ);
            if (hit) { max = src[k + __builtin_ctz(hit)]; break; }
        }
        const float iscale = -127.0f / max;
        const __m512 vs = _mm512_set1_ps(iscale);
        for (int k = 0; k < MH_QK_K; k += 16) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(src + k)));
            q = _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)), _mm512_set1_epi32(-128));
            const __m128i q8 = _mm512_cvtepi32_epi8(q);
            _mm_storeu_si128((__m128i *)(b[i].qs + k), q8);
            b[i].bsums[k / 16] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        b[i].d = 1.0f / iscale;
    }
}
