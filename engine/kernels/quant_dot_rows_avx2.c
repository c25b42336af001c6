/* quant_dot_rows_avx2.c: AVX2/FMA/F16C matvec kernels of token generation
 * for q4_K, q6_K and q5_0: one activation against a run of weight rows, RB
 * rows at a time sharing its loads and its x-side terms
 * (mh_vec_dot_rows_fn). Layer: engine/kernels; compiled with -mavx2,
 * chosen at run time by quant_traits.c. Same integer lanes and float order
 * as quant_dot_avx2.c, so every row is bit for bit the vec_dot (and _ref). */
#include <string.h>
#include <immintrin.h>
#include "quant_kernels.h"
#include "quant_simd_avx2.h"

#define UNROLL _Pragma("GCC unroll 8")
#define RB 4   /* rows per pass at most */

/* one forward prefetch stream PF_AHEAD past the pass, at its pace (see
 * quant_dot_rows_avx512.c) */
#define PF_AHEAD 8192
INLINE void pf_step(const uint8_t *w, size_t pass_bytes, int64_t i, int64_t nb)
{
    const size_t per = (pass_bytes + (size_t)nb - 1) / (size_t)nb;
    const uint8_t *p = w + (pass_bytes > PF_AHEAD ? pass_bytes : PF_AHEAD) + (size_t)i * per;
    for (size_t k = 0; k < per; k += 64) _mm_prefetch((const char *)p + k, _MM_HINT_T0);
}

/* the first PF_AHEAD bytes of a call's rows, which pf_step never covers */
INLINE void pf_start(const uint8_t *w, size_t bytes)
{
    if (bytes > PF_AHEAD) bytes = PF_AHEAD;
    for (size_t k = 0; k < bytes; k += 64) _mm_prefetch((const char *)w + k, _MM_HINT_T0);
}

/* byte indices putting word k of each 128-bit lane in every word (vpshufb):
 * the group scales without a scalar broadcast */
INLINE __m256i word_sel(int lo, int hi)
{
    return _mm256_setr_epi8((char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo),
                            (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1),
                            (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo), (char)(2 * lo + 1), (char)(2 * lo),
                            (char)(2 * lo + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1),
                            (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi),
                            (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1), (char)(2 * hi), (char)(2 * hi + 1),
                            (char)(2 * hi), (char)(2 * hi + 1));
}

/* ===== q4_K: groups 2j (low nibbles) and 2j+1 (high) of 32 bytes ===== */

INLINE void q4k_block(const mh_block_q4_K *a, const mh_block_q8_K *b, const __m128i xs, __m256 *acc, __m128 *mins)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    uint8_t sc[16];   /* scales, then mins */
    mh_k_scales_mins_k4(a->scales, sc);
    const __m256i scw = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
    __m256i sumi = _mm256_setzero_si256();
    UNROLL for (int j = 0; j < 4; j++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * j));
        const __m256i q0 = _mm256_and_si256(q4, m4), q1 = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)(b->qs + 64 * j));
        const __m256i x1 = _mm256_loadu_si256((const __m256i *)(b->qs + 64 * j + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, x0), _mm256_shuffle_epi8(scw, word_sel(2 * j, 2 * j)));
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, x1),
                                             _mm256_shuffle_epi8(scw, word_sel(2 * j + 1, 2 * j + 1)));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(b->d * h2f(a->d)), *acc);
    const __m128i summ = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8))), xs);
    *mins = _mm_fnmadd_ps(_mm_cvtepi32_ps(summ), _mm_set1_ps(b->d * h2f(a->dmin)), *mins);
}

INLINE void q4k_rows(int TR, int64_t n, const uint8_t *w, size_t w_row, const mh_block_q8_K *x, float *y)
{
    __m256 acc[RB];
    __m128 mins[RB];
    UNROLL for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps(), mins[r] = _mm_setzero_ps();
    const int64_t nb = n / MH_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        pf_step(w, (size_t)TR * w_row, i, nb);
        const __m256i v = _mm256_loadu_si256((const __m256i *)x[i].bsums);
        const __m128i xs = _mm_hadd_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        UNROLL for (int r = 0; r < TR; r++)
            q4k_block((const mh_block_q4_K *)(w + (size_t)r * w_row) + i, &x[i], xs, &acc[r], &mins[r]);
    }
    UNROLL for (int r = 0; r < TR; r++) y[r] = hsum8(acc[r]) + hsum4(mins[r]);
}

/* ===== q6_K: (q - 32) . x = q . x - 32 . x, the x side once for all rows ===== */

INLINE __m256i q6_levels(__m256i l, __m256i h, int shift)
{
    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(h, shift), _mm256_set1_epi8(3));
    return _mm256_or_si256(_mm256_and_si256(l, _mm256_set1_epi8(0x0F)), _mm256_slli_epi16(hb, 4));
}

INLINE void q6k_block(const mh_block_q6_K *a, const mh_block_q8_K *b, const __m256i x32[8], __m256 *acc)
{
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a->scales));
    __m256i sumi = _mm256_setzero_si256();
    UNROLL for (int half = 0; half < 2; half++) {
        const uint8_t *ql = a->ql + 64 * half;
        const int8_t *xq = b->qs + 128 * half;
        /* scales 8 half .. 8 half + 7 in both 128-bit lanes */
        const __m256i sw = half ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
        const __m256i h = _mm256_loadu_si256((const __m256i *)(a->qh + 32 * half));
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        const __m256i q[4] = {q6_levels(l0, h, 0), q6_levels(l1, h, 2), q6_levels(_mm256_srli_epi16(l0, 4), h, 4),
                              q6_levels(_mm256_srli_epi16(l1, 4), h, 6)};
        UNROLL for (int k = 0; k < 4; k++) {
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * k));
            const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], xv), x32[4 * half + k]);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sw, word_sel(2 * k, 2 * k + 1))));
        }
    }
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(b->d * h2f(a->d)), *acc);
}

INLINE void q6k_rows(int TR, int64_t n, const uint8_t *w, size_t w_row, const mh_block_q8_K *x, float *y)
{
    const __m256i m32 = _mm256_set1_epi8(32);
    __m256 acc[RB];
    UNROLL for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps();
    const int64_t nb = n / MH_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        pf_step(w, (size_t)TR * w_row, i, nb);
        __m256i x32[8];   /* 32 . x per pair, chunk k of 32 */
        UNROLL for (int k = 0; k < 8; k++)
            x32[k] = _mm256_maddubs_epi16(m32, _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k)));
        UNROLL for (int r = 0; r < TR; r++)
            q6k_block((const mh_block_q6_K *)(w + (size_t)r * w_row) + i, &x[i], x32, &acc[r]);
    }
    UNROLL for (int r = 0; r < TR; r++) y[r] = hsum8(acc[r]);
}

/* ===== q5_0 against q8_0: u = q + 16 (0..31), u . x - 16 . x ===== */

INLINE __m256i q50_levels(const mh_block_q5_0 *a)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)a->qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    uint32_t qh;
    memcpy(&qh, a->qh, 4);
    /* byte j takes byte j / 8 of qh, then tests bit j % 8 */
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i hv = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hv, bits), bits);
    return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)), _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

INLINE void q50_rows(int TR, int64_t n, const uint8_t *w, size_t w_row, const mh_block_q8_0 *x, float *y)
{
    const __m256i m16 = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1);
    __m256 acc[RB];
    UNROLL for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps();
    const int64_t nb = n / MH_QK;
    for (int64_t i = 0; i < nb; i++) {
        pf_step(w, (size_t)TR * w_row, i, nb);
        const __m256i xv = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i corr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(_mm256_maddubs_epi16(m16, xv), ones));
        const float dx = h2f(x[i].d);
        UNROLL for (int r = 0; r < TR; r++) {
            const mh_block_q5_0 *a = (const mh_block_q5_0 *)(w + (size_t)r * w_row) + i;
            const __m256i p = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_maddubs_epi16(q50_levels(a), xv), ones));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(h2f(a->d) * dx), acc[r]);
        }
    }
    UNROLL for (int r = 0; r < TR; r++) y[r] = hsum8(acc[r]);
}

/* ===== the entry points: passes of 4 rows, of 2 when rows are long
 * (see quant_dot_rows_avx512.c), then the last one ===== */
#define LONG_ROW 2048

#define ROWS_FN(name, kern)                                                                  \
    void name(int64_t n, const void *w, size_t w_row, int64_t R, const void *x, float *y)    \
    {                                                                                        \
        const uint8_t *wb = w;                                                               \
        int64_t r = 0;                                                                       \
        pf_start(wb, (size_t)R * w_row);                                                     \
        if (w_row <= LONG_ROW)                                                               \
            for (; r + 4 <= R; r += 4) kern(4, n, wb + (size_t)r * w_row, w_row, x, y + r);  \
        for (; r + 2 <= R; r += 2) kern(2, n, wb + (size_t)r * w_row, w_row, x, y + r);      \
        if (r < R) kern(1, n, wb + (size_t)r * w_row, w_row, x, y + r);                      \
    }

ROWS_FN(mh_k_vec_dot_rows_q4_K_avx2, q4k_rows)
ROWS_FN(mh_k_vec_dot_rows_q6_K_avx2, q6k_rows)
ROWS_FN(mh_k_vec_dot_rows_q5_0_avx2, q50_rows)
