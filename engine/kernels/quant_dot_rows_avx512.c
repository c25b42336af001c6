/* quant_dot_rows_avx512.c: AVX-512 matvec kernels of token generation for
 * q4_K, q6_K and q5_0: one activation against a run of weight rows, RB
 * rows at a time sharing its loads (mh_vec_dot_rows_fn). Layer:
 * engine/kernels; compiled with the AVX-512 flags, chosen at run time by
 * quant_traits.c. Each row's int32 lanes are exact and its floats go in the
 * canonical order of quant_kernels.h, so every row is bit for bit the
 * level's vec_dot (and _ref). */
#include <stdbool.h>
#include <string.h>
#include <immintrin.h>
#include "quant_kernels.h"
#include "quant_simd_avx512.h"

#define UNROLL _Pragma("GCC unroll 8")
#define RB 4   /* rows per pass at most: their activation loads are shared */

/* Decode streams every weight once from DRAM: the rows' bytes are
 * prefetched this far ahead (the hardware prefetcher alone left a core
 * ~10-20 % stalled, docs/performance.md "Decode, session 6"). A hint past
 * the weight's end never faults. */
#define PF_AHEAD 8192
/* A pass reads its TR rows in lockstep: TR short streams that the hardware
 * prefetcher barely trains on (rows kernels measured at half the speed of
 * row-by-row dots from DRAM without help). So each step prefetches, in
 * address order, the next slice of the bytes PF_AHEAD (or one pass, when
 * longer) past the pass's start, at the pass's own pace: over the pass it
 * covers as many bytes as it reads, and the passes' prefetches join into
 * one forward stream that is never inside the pass being read. */
INLINE void pf_step(const uint8_t *w, size_t pass_bytes, int64_t i, int64_t nb)
{
    const size_t per = (pass_bytes + (size_t)nb - 1) / (size_t)nb;
    const uint8_t *p = w + (pass_bytes > PF_AHEAD ? pass_bytes : PF_AHEAD) + (size_t)i * per;
    for (size_t k = 0; k < per; k += 64) _mm_prefetch((const char *)p + k, _MM_HINT_T0);
}

/* The bytes the passes' pf_step never covers: the first PF_AHEAD of a
 * call's rows, asked for at once (the thread pool hands each thread
 * several separate row ranges per matrix, and each would otherwise start
 * on demand misses while the prefetcher trains) */
INLINE void pf_start(const uint8_t *w, size_t bytes)
{
    if (bytes > PF_AHEAD) bytes = PF_AHEAD;
    for (size_t k = 0; k < bytes; k += 64) _mm_prefetch((const char *)w + k, _MM_HINT_T0);
}

/* b (16-bit lanes) into the high words of a's 32-bit lanes, a's low words
 * kept: two exact int16 partials that one vpdpwssd scales and adds */
INLINE __m512i pair_words(__m512i a, __m512i b)
{
    return _mm512_mask_mov_epi16(a, 0xAAAAAAAAu, _mm512_slli_epi32(b, 16));
}

/* (A & C) | B, bitwise (vpternlog truth table 0xEC) */
INLINE __m512i and_or(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0xEC); }

/* ===== q4_K =====
 * A 64-byte load of a super-block's nibbles holds groups 4h (low nibbles,
 * bytes 0-31), 4h+2 (low, 32-63), 4h+1 and 4h+3 (high): the activations are
 * loaded to meet them in that order (once for all RB rows), so the weights
 * need one mask (VNNI, both halves) or a shift and a mask (plain, high) and
 * no shuffle. VNNI: vpdpbusd gives the exact 4-element partials D (|D| <=
 * 4 x 15 x 128, an int16), the partials of groups 2k and 2k+1 pair up as
 * the two words of one lane and one vpdpwssd applies both 6-bit scales.
 * Per pass, the rows' scales, mins, d and dmin are handled together
 * (q4k_rows): that, more than the multiplies, was the kernel's cost
 * (23 -> 28 GB/s from L2, docs/performance.md, session 8). */

typedef struct q4k_x {
    __m512i lo[2], hi[2];   /* x of groups (4h, 4h+2) and (4h+1, 4h+3) */
    __m128i xs;             /* bsums pair sums: the x side of the min lanes */
    float d;
} q4k_x;

INLINE __m512i load2x32(const int8_t *p, int gap)
{
    return join256(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + gap)));
}

INLINE void q4k_x_load(const mh_block_q8_K *b, q4k_x *e)
{
    UNROLL for (int h = 0; h < 2; h++) {
        e->lo[h] = load2x32(b->qs + 128 * h, 64);
        e->hi[h] = load2x32(b->qs + 128 * h + 32, 64);
    }
    const __m256i v = _mm256_loadu_si256((const __m256i *)b->bsums);
    e->xs = _mm_hadd_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    e->d = b->d;
}

/* The 12 packed bytes of a q4_K super-block -> its 8 scales (sc) and its 8
 * mins (mn), 6 bits each (mh_k_scales_mins_k4, the two halves apart so the
 * rows of a pass keep their scales and their mins in two arrays) */
INLINE void q4k_unpack(const uint8_t q[12], uint8_t sc[8], uint8_t mn[8])
{
    const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
    uint32_t u[3], s[2], m[2];
    memcpy(u, q, 12);
    s[0] = u[0] & km1;
    s[1] = (u[2] & km2) | (((u[0] >> 6) & km3) << 4);
    m[0] = u[1] & km1;
    m[1] = ((u[2] >> 4) & km2) | (((u[1] >> 6) & km3) << 4);
    memcpy(sc, s, 8);
    memcpy(mn, m, 8);
}

/* one row's super-block: its 16 exact int32 lanes (folded to the 8
 * canonical ones by the caller). scw: the pass's scales as words, row r's 8
 * in 128-bit lane r. VNNI: the high nibbles are masked in place (16 q) and
 * their partial, 16 D, goes to the high word by a shift of 12. */
INLINE __m512i q4k_block(bool vnni, int r, const mh_block_q4_K *a, const q4k_x *e, __m512i scw)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m4h = _mm512_set1_epi8((char)0xF0);
    __m512i sumi = _mm512_setzero_si512();
    UNROLL for (int h = 0; h < 2; h++) {
        const __m512i v = _mm512_loadu_si512((const void *)(a->qs + 64 * h));
        if (vnni) {   /* lanes 0-7: groups (4h, 4h+1), 8-15: (4h+2, 4h+3) */
            const __m512i zero = _mm512_setzero_si512();
            const __m512i dl = _mm512_dpbusd_epi32(zero, _mm512_and_si512(v, m4), e->lo[h]);
            const __m512i dh = _mm512_dpbusd_epi32(zero, _mm512_and_si512(v, m4h), e->hi[h]);
            const __m512i w = _mm512_mask_mov_epi16(dl, 0xAAAAAAAAu, _mm512_slli_epi32(dh, 12));
            const __m512i idx = join256(_mm256_set1_epi32(4 * r + 2 * h), _mm256_set1_epi32(4 * r + 2 * h + 1));
            sumi = _mm512_dpwssd_epi32(sumi, w, _mm512_permutexvar_epi32(idx, scw));
        } else {      /* word scales: group 4h | 4h+2 for lo, 4h+1 | 4h+3 for hi */
            const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            const __m512i il = join256(_mm256_set1_epi16((short)(8 * r + 4 * h)), _mm256_set1_epi16((short)(8 * r + 4 * h + 2)));
            const __m512i ih = join256(_mm256_set1_epi16((short)(8 * r + 4 * h + 1)), _mm256_set1_epi16((short)(8 * r + 4 * h + 3)));
            const __m512i pl = _mm512_madd_epi16(_mm512_maddubs_epi16(lo, e->lo[h]), _mm512_permutexvar_epi16(il, scw));
            const __m512i ph = _mm512_madd_epi16(_mm512_maddubs_epi16(hi, e->hi[h]), _mm512_permutexvar_epi16(ih, scw));
            sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(pl, ph));
        }
    }
    return sumi;
}

/* A pass of TR rows: per super-block, the rows' d and dmin (f16) become
 * floats in one conversion (times x's d: the scales of their lanes), and
 * their min lanes go through one register (row r in lanes 4r..4r+3); each
 * lane's arithmetic is mh_k_vec_dot_q4_K_ref's, in its order. */
/* The rows' scales and mins of super-block i into sc / mn (row r at 8r),
 * their d | dmin << 16 into dd[r] */
INLINE void q4k_pass_scales(int TR, const uint8_t *w, size_t w_row, int64_t i, uint8_t *sc, uint8_t *mn, uint32_t *dd)
{
    UNROLL for (int r = 0; r < TR; r++) {
        const mh_block_q4_K *a = (const mh_block_q4_K *)(w + (size_t)r * w_row) + i;
        q4k_unpack(a->scales, sc + 8 * r, mn + 8 * r);
        memcpy(&dd[r], &a->d, 4);
    }
}

INLINE void q4k_rows(bool vnni, int TR, int64_t n, const uint8_t *w, size_t w_row, const mh_block_q8_K *x, float *y)
{
    __m256 acc[RB];
    __m512 mins = _mm512_setzero_ps();
    /* unpacked one super-block ahead, so the vector loads of a block's
     * scales never wait on the scalar stores that made them */
    _Alignas(64) uint8_t sc[2][8 * RB] = {{0}}, mn[2][8 * RB] = {{0}};
    _Alignas(16) uint32_t dd[2][RB] = {{0}};
    UNROLL for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps();
    const int64_t nb = n / MH_QK_K;
    const __m512i mins_idx = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
    if (nb > 0) q4k_pass_scales(TR, w, w_row, 0, sc[0], mn[0], dd[0]);
    for (int64_t i = 0; i < nb; i++) {
        const int cur = (int)(i & 1);
        if (i + 1 < nb) q4k_pass_scales(TR, w, w_row, i + 1, sc[cur ^ 1], mn[cur ^ 1], dd[cur ^ 1]);
        q4k_x e;
        q4k_x_load(&x[i], &e);
        pf_step(w, (size_t)TR * w_row, i, nb);
        /* (d_x d_r, d_x dmin_r) for each row r */
        const __m256 ds = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)dd[cur])), _mm256_set1_ps(e.d));
        const __m512i scw = _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)sc[cur]));
        UNROLL for (int r = 0; r < TR; r++) {
            const mh_block_q4_K *a = (const mh_block_q4_K *)(w + (size_t)r * w_row) + i;
            const __m512i sumi = q4k_block(vnni, r, a, &e, scw);
            const __m256 dr = _mm256_permutexvar_ps(_mm256_set1_epi32(2 * r), ds);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_lanes(sumi)), dr, acc[r]);
        }
        const __m512i summ = _mm512_madd_epi16(_mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)mn[cur])),
                                               _mm512_broadcast_i32x4(e.xs));
        mins = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ), _mm512_permutexvar_ps(mins_idx, _mm512_castps256_ps512(ds)), mins);
    }
    _Alignas(64) float m[16];
    _mm512_store_ps(m, mins);
    UNROLL for (int r = 0; r < TR; r++) y[r] = hsum8(acc[r]) + hsum4(_mm_load_ps(m + 4 * r));
}

/* ===== q6_K =====
 * The 6-bit levels q (0..63) are built with a shift, a mask and one
 * ternary-logic op per 64; (q - 32) . x = q . x - 32 . x, whose x side is
 * made once for all rows. VNNI: vpdpbusd starts from -32 . x, so D is the
 * exact signed partial (|D| <= 4 x 32 x 128, an int16), and the two
 * 64-element chunks of a half pair up under one vpdpwssd as for q4_K. */

typedef struct q6k_x {
    __m512i x[4];    /* the 4 chunks of 64 */
    __m512i c32[4];  /* VNNI: -(32 . x) per 4-element lane; plain: 32 . x per pair */
    float d;
} q6k_x;

INLINE void q6k_x_load(bool vnni, const mh_block_q8_K *b, q6k_x *e)
{
    const __m512i m32 = _mm512_set1_epi8(32), zero = _mm512_setzero_si512();
    UNROLL for (int k = 0; k < 4; k++) {
        e->x[k] = _mm512_loadu_si512((const void *)(b->qs + 64 * k));
        e->c32[k] = vnni ? _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, m32, e->x[k]))
                         : _mm512_maddubs_epi16(m32, e->x[k]);
    }
    e->d = b->d;
}

/* word indices for VNNI: lane k takes scale 8h + k/4 (low word, chunk 2h)
 * and 8h + 4 + k/4 (high word, chunk 2h + 1) */
static const uint16_t g_q6_pair_idx[2][32] = {
    {0, 4, 0, 4, 0, 4, 0, 4, 1, 5, 1, 5, 1, 5, 1, 5, 2, 6, 2, 6, 2, 6, 2, 6, 3, 7, 3, 7, 3, 7, 3, 7},
    {8, 12, 8, 12, 8, 12, 8, 12, 9, 13, 9, 13, 9, 13, 9, 13,
     10, 14, 10, 14, 10, 14, 10, 14, 11, 15, 11, 15, 11, 15, 11, 15},
};

INLINE void q6k_block(bool vnni, const mh_block_q6_K *a, const q6k_x *e, __m256 *acc)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* per 256-bit half: qh bit pair 0 / 1 to bits 4-5 (chunk 2h), 2 / 3 (chunk 2h + 1) */
    const __m512i shl = join256(_mm256_set1_epi16(4), _mm256_set1_epi16(2));
    const __m512i shr = join256(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
    const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a->scales)));
    __m512i sumi = _mm512_setzero_si512();
    UNROLL for (int h = 0; h < 2; h++) {
        const __m512i l = _mm512_loadu_si512((const void *)(a->ql + 64 * h));
        const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a->qh + 32 * h)));
        const __m512i q0 = and_or(l, _mm512_and_si512(_mm512_sllv_epi16(hb, shl), m30), m4);
        const __m512i q1 = and_or(_mm512_srli_epi16(l, 4), _mm512_and_si512(_mm512_srlv_epi16(hb, shr), m30), m4);
        if (vnni) {
            const __m512i w = pair_words(_mm512_dpbusd_epi32(e->c32[2 * h], q0, e->x[2 * h]),
                                         _mm512_dpbusd_epi32(e->c32[2 * h + 1], q1, e->x[2 * h + 1]));
            const __m512i s = _mm512_permutexvar_epi16(_mm512_loadu_si512((const void *)g_q6_pair_idx[h]), sc);
            sumi = _mm512_dpwssd_epi32(sumi, w, s);
        } else {
            const __m512i i0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)g_q6_lane_idx[2 * h]));
            const __m512i i1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)g_q6_lane_idx[2 * h + 1]));
            sumi = acc_q6(sumi, q0, e->x[2 * h], e->c32[2 * h], _mm512_permutexvar_epi16(i0, sc), false);
            sumi = acc_q6(sumi, q1, e->x[2 * h + 1], e->c32[2 * h + 1], _mm512_permutexvar_epi16(i1, sc), false);
        }
    }
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_lanes(sumi)), _mm256_set1_ps(e->d * h2f(a->d)), *acc);
}

INLINE void q6k_rows(bool vnni, int TR, int64_t n, const uint8_t *w, size_t w_row, const mh_block_q8_K *x, float *y)
{
    __m256 acc[RB];
    UNROLL for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps();
    const int64_t nb = n / MH_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        q6k_x e;
        q6k_x_load(vnni, &x[i], &e);
        pf_step(w, (size_t)TR * w_row, i, nb);
        UNROLL for (int r = 0; r < TR; r++)
            q6k_block(vnni, (const mh_block_q6_K *)(w + (size_t)r * w_row) + i, &e, &acc[r]);
    }
    UNROLL for (int r = 0; r < TR; r++) y[r] = hsum8(acc[r]);
}

/* ===== q5_0 against q8_0 =====
 * One 32-block per ymm: its 16 nibble bytes broadcast to both halves,
 * shifted 0 / 4, masked, and the fifth bits added from qh as a byte mask;
 * u = q + 16 (0..31) meets x as u . x - 16 . x, the x side made once for
 * all rows. Per block one exact 8-lane partial and one fma (the canonical
 * 32-block order). */

typedef struct q50_x {
    __m256i x, c16;   /* levels; -(16 . x) per 4-element lane */
    float d;
} q50_x;

INLINE void q50_x_load(bool vnni, const mh_block_q8_0 *b, q50_x *e)
{
    const __m256i zero = _mm256_setzero_si256(), m16 = _mm256_set1_epi8(16);
    e->x = _mm256_loadu_si256((const __m256i *)b->qs);
    const __m256i s = vnni ? _mm256_dpbusd_epi32(zero, m16, e->x)
                           : _mm256_madd_epi16(_mm256_maddubs_epi16(m16, e->x), _mm256_set1_epi16(1));
    e->c16 = _mm256_sub_epi32(zero, s);
    e->d = h2f(b->d);
}

INLINE void q50_block(bool vnni, const mh_block_q5_0 *a, const q50_x *e, __m256 *acc)
{
    const __m256i sh = _mm256_setr_epi64x(0, 0, 0x0004000400040004ll, 0x0004000400040004ll);
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)a->qs));
    uint32_t qh;
    memcpy(&qh, a->qh, 4);
    __m256i u = _mm256_and_si256(_mm256_srlv_epi16(t, sh), _mm256_set1_epi8(0x0F));
    u = _mm256_mask_add_epi8(u, (__mmask32)qh, u, _mm256_set1_epi8(16));
    __m256i p;
    if (vnni) p = _mm256_dpbusd_epi32(e->c16, u, e->x);
    else p = _mm256_add_epi32(e->c16, _mm256_madd_epi16(_mm256_maddubs_epi16(u, e->x), _mm256_set1_epi16(1)));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(a->d) * e->d), *acc);
}

INLINE void q50_rows(bool vnni, int TR, int64_t n, const uint8_t *w, size_t w_row, const mh_block_q8_0 *x, float *y)
{
    __m256 acc[RB];
    UNROLL for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps();
    const int64_t nb = n / MH_QK;
    for (int64_t i = 0; i < nb; i++) {
        q50_x e;
        q50_x_load(vnni, &x[i], &e);
        pf_step(w, (size_t)TR * w_row, i, nb);
        UNROLL for (int r = 0; r < TR; r++) {
            const mh_block_q5_0 *a = (const mh_block_q5_0 *)(w + (size_t)r * w_row) + i;
            q50_block(vnni, a, &e, &acc[r]);
        }
    }
    UNROLL for (int r = 0; r < TR; r++) y[r] = hsum8(acc[r]);
}

/* ===== the entry points =====
 * Passes of 4 rows, or of 2 when rows are longer than LONG_ROW bytes: the
 * lockstep rows are as many DRAM streams, and 4 long ones measured slower
 * from memory than 2 (up to 1.5x on 5632-column rows, q4_K and q6_K),
 * where 4 short ones share more activation loads (~8 % from L2). */
#define LONG_ROW 2048

#define ROWS_FN(name, kern, vnni)                                                                  \
    void name(int64_t n, const void *w, size_t w_row, int64_t R, const void *x, float *y)          \
    {                                                                                              \
        const uint8_t *wb = w;                                                                     \
        int64_t r = 0;                                                                             \
        pf_start(wb, (size_t)R * w_row);                                                           \
        if (w_row <= LONG_ROW)                                                                     \
            for (; r + 4 <= R; r += 4) kern(vnni, 4, n, wb + (size_t)r * w_row, w_row, x, y + r);  \
        for (; r + 2 <= R; r += 2) kern(vnni, 2, n, wb + (size_t)r * w_row, w_row, x, y + r);      \
        if (r < R) kern(vnni, 1, n, wb + (size_t)r * w_row, w_row, x, y + r);                      \
    }

ROWS_FN(mh_k_vec_dot_rows_q4_K_avx512, q4k_rows, false)
ROWS_FN(mh_k_vec_dot_rows_q4_K_avx512vnni, q4k_rows, true)
ROWS_FN(mh_k_vec_dot_rows_q6_K_avx512, q6k_rows, false)
ROWS_FN(mh_k_vec_dot_rows_q6_K_avx512vnni, q6k_rows, true)
ROWS_FN(mh_k_vec_dot_rows_q5_0_avx512, q50_rows, false)
ROWS_FN(mh_k_vec_dot_rows_q5_0_avx512vnni, q50_rows, true)
