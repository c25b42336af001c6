/* quant_dot_avx512.c: AVX-512 (F/BW/VL/DQ) vec-dot kernels for f32, f16,
 * bf16, q8_0, q4_0, q4_K and q6_K, each integer one in a plain and a VNNI
 * variant (vpdpbusd / vpdpwssd). Layer: engine/kernels; compiled with the
 * AVX-512 flags and chosen at run time by quant_traits.c. The 32-blocks go
 * two per 512-bit register; the k-quants 64 levels at a time, their 16
 * int32 lanes folded to 8 per super-block. The integer types accumulate in
 * the canonical 8 float lanes of quant_kernels.h (ggml's) and end in hsum8,
 * its fixed tree: bit-identical to _ref at every level. */
#include <stdbool.h>
#include <immintrin.h>
#include <math.h>
#include "quant_kernels.h"
#include "quant_simd_avx512.h"

/* ===== float weights (masked loads do the tail) ===== */

static inline __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1); }

void mh_k_vec_dot_f32_avx512(int64_t n, const void *w, const void *x, float *out)
{
    const float *a = w, *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
    }
    *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void mh_k_vec_dot_f16_avx512(int64_t n, const void *w, const void *x, float *out)
{
    const uint16_t *a = w;
    const float *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i + 16)));
        acc0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i));
        acc0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, b + i), acc0);
    }
    *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void mh_k_vec_dot_bf16_avx512(int64_t n, const void *w, const void *x, float *out)
{
    const uint16_t *a = w;
    const float *b = x;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {   /* bf16 is the top half of an f32 */
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, a + i));
        __m512 wv = _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
        acc = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    *out = _mm512_reduce_add_ps(acc);
}

/* ===== 32-element blocks against q8_0, two blocks per register ===== */

/* s8 . s8 in 16 lanes of 4-products: |a| times b carrying a's sign */
INLINE __m512i dot_s8(__m512i a, __m512i b, bool vnni)
{
    const __mmask64 neg = _mm512_movepi8_mask(a);
    const __m512i ua = _mm512_abs_epi8(a);
    const __m512i sb = _mm512_mask_sub_epi8(b, neg, _mm512_setzero_si512(), b);
    if (vnni) return _mm512_dpbusd_epi32(_mm512_setzero_si512(), ua, sb);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(ua, sb), _mm512_set1_epi16(1));
}

/* d0 in the low 8 lanes, d1 in the high 8 */
INLINE __m512 scales2_ps(float d0, float d1)
{
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)), _mm256_set1_ps(d1), 1);
}

INLINE __m256i load_q8_0(const mh_block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

INLINE __m256i load_q4_0(const mh_block_q4_0 *b)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)b->qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
}

INLINE float q8_0_dot(int64_t n, const mh_block_q8_0 *a, const mh_block_q8_0 *b, bool vnni)
{
    const int64_t nb = n / MH_QK;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i qa = join256(load_q8_0(&a[i]), load_q8_0(&a[i + 1]));
        const __m512i qb = join256(load_q8_0(&b[i]), load_q8_0(&b[i + 1]));
        const __m512 d = scales2_ps(h2f(a[i].d) * h2f(b[i].d), h2f(a[i + 1].d) * h2f(b[i + 1].d));
        acc = fma_blocks(acc, d, _mm512_cvtepi32_ps(dot_s8(qa, qb, vnni)), 1);
    }
    if (i < nb) {   /* odd block: upper half zero */
        const __m512i qa = join256(load_q8_0(&a[i]), _mm256_setzero_si256());
        const __m512i qb = join256(load_q8_0(&b[i]), _mm256_setzero_si256());
        const __m512 d = scales2_ps(h2f(a[i].d) * h2f(b[i].d), 0.0f);
        acc = fma_blocks(acc, d, _mm512_cvtepi32_ps(dot_s8(qa, qb, vnni)), 0);
    }
    return hsum8(acc);
}

INLINE float q4_0_dot(int64_t n, const mh_block_q4_0 *a, const mh_block_q8_0 *b, bool vnni)
{
    const int64_t nb = n / MH_QK;
    float acc = 0.0f;   /* whole-block dots, one fma each (quant_dot.c) */
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i qa = join256(load_q4_0(&a[i]), load_q4_0(&a[i + 1]));
        const __m512i qb = join256(load_q8_0(&b[i]), load_q8_0(&b[i + 1]));
        int s0, s1;
        hsum2_epi32(dot_s8(qa, qb, vnni), &s0, &s1);
        acc = fmaf((float)s0, h2f(a[i].d) * h2f(b[i].d), acc);
        acc = fmaf((float)s1, h2f(a[i + 1].d) * h2f(b[i + 1].d), acc);
    }
    if (i < nb) {
        const __m512i qa = join256(load_q4_0(&a[i]), _mm256_setzero_si256());
        const __m512i qb = join256(load_q8_0(&b[i]), _mm256_setzero_si256());
        int s0, s1;
        hsum2_epi32(dot_s8(qa, qb, vnni), &s0, &s1);
        acc = fmaf((float)s0, h2f(a[i].d) * h2f(b[i].d), acc);
    }
    return acc;
}

void mh_k_vec_dot_q8_0_avx512(int64_t n, const void *w, const void *x, float *out)
{
    *out = q8_0_dot(n, w, x, false);
}

void mh_k_vec_dot_q8_0_avx512vnni(int64_t n, const void *w, const void *x, float *out)
{
    *out = q8_0_dot(n, w, x, true);
}

void mh_k_vec_dot_q4_0_avx512(int64_t n, const void *w, const void *x, float *out)
{
    *out = q4_0_dot(n, w, x, false);
}

void mh_k_vec_dot_q4_0_avx512vnni(int64_t n, const void *w, const void *x, float *out)
{
    *out = q4_0_dot(n, w, x, true);
}

/* ===== k-quants against q8_K ===== */

/* acc += sum over pairs of (u8 levels . s8 x) * 16-bit group scales */
INLINE __m512i acc_scaled(__m512i acc, __m512i q, __m512i xv, __m512i sc16, bool vnni)
{
    const __m512i p = _mm512_maddubs_epi16(q, xv);
    if (vnni) return _mm512_dpwssd_epi32(acc, p, sc16);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, sc16));
}

/* the 4 canonical min lanes of q4_K from the unpacked mins (sc + 8):
 * m_2k (bsums 4k, 4k+1) + m_2k+1 (bsums 4k+2, 4k+3) */
INLINE __m128i q4_K_summ(const uint8_t sc[16], const int16_t *bsums)
{
    const __m256i v = _mm256_loadu_si256((const __m256i *)bsums);
    const __m128i xs = _mm_hadd_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8))), xs);
}

/* word indices putting scale 2j in the low half and 2j+1 in the high half */
static const uint16_t g_q4_pair_idx[4][32] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7},
};

/* Decode reads every weight once per token, so this dot sets the speed of
 * generation: the 8 group scales go to words once per super-block and are
 * spread by one vpermw per 64 levels (not two broadcasts and an insert),
 * and the even and odd groups accumulate in two int32 chains (exact, so
 * the sum is the same) to halve the dependency chain. */
/* bytes ahead of the super-block being read that the q4_K dot prefetches:
 * a matvec streams the weights once from DRAM, rows back to back, and the
 * hardware prefetcher alone left ~10-20 % of a core's time in stalls
 * (thread CPU time per byte, interleaved runs); prefetching past the row's
 * end is harmless (a hint never faults) and warms the next row */
#define PF_DIST 2048
INLINE float q4_K_dot(int64_t n, const mh_block_q4_K *a, const mh_block_q8_K *b, bool vnni)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512i idx[4];
    for (int j = 0; j < 4; j++) idx[j] = _mm512_loadu_si512((const void *)g_q4_pair_idx[j]);
    __m256 acc = _mm256_setzero_ps();   /* the canonical lanes */
    __m128 mins = _mm_setzero_ps();     /* q4_K's 4 min lanes */
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        uint8_t sc[16];   /* scales, then mins */
        _mm_prefetch((const char *)(a + i) + PF_DIST, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + PF_DIST + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + PF_DIST + 128, _MM_HINT_T0);
        mh_k_scales_mins_k4(a[i].scales, sc);
        const __m512i scw = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {   /* low nibbles: group 2j, high: 2j+1; x is contiguous */
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * j));
            const __m512i q = _mm512_and_si512(join256(q4, _mm256_srli_epi16(q4, 4)), m4);
            const __m512i xv = _mm512_loadu_si512((const void *)(b[i].qs + 64 * j));
            const __m512i sc16 = _mm512_permutexvar_epi16(idx[j], scw);
            if (j & 1) s1 = acc_scaled(s1, q, xv, sc16, vnni);
            else s0 = acc_scaled(s0, q, xv, sc16, vnni);
        }
        const __m512i sumi = _mm512_add_epi32(s0, s1);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_lanes(sumi)), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
        mins = _mm_fnmadd_ps(_mm_cvtepi32_ps(q4_K_summ(sc, b[i].bsums)), _mm_set1_ps(b[i].d * h2f(a[i].dmin)), mins);
    }
    return hsum8(acc) + hsum4(mins);
}

void mh_k_vec_dot_q4_K_avx512(int64_t n, const void *w, const void *x, float *out)
{
    *out = q4_K_dot(n, w, x, false);
}

void mh_k_vec_dot_q4_K_avx512vnni(int64_t n, const void *w, const void *x, float *out)
{
    *out = q4_K_dot(n, w, x, true);
}

INLINE float q6_K_dot(int64_t n, const mh_block_q6_K *a, const mh_block_q8_K *b, bool vnni)
{
    __m512i idx[4];
    for (int k = 0; k < 4; k++) idx[k] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)g_q6_lane_idx[k]));
    /* qh shift: 0 for q1 / 2 for q2 (first pair), 4 / 6 for q3 / q4 */
    const __m512i sh01 = join256(_mm256_set1_epi16(0), _mm256_set1_epi16(2));
    const __m512i sh23 = join256(_mm256_set1_epi16(4), _mm256_set1_epi16(6));
    const __m512i m32 = _mm512_set1_epi8(32);
    __m256 acc = _mm256_setzero_ps();   /* the canonical lanes */
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales)));
        __m512i sumi = _mm512_setzero_si512();
        for (int half = 0; half < 2; half++) {
            const __m256i h256 = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * half));
            const __m512i h = join256(h256, h256);
            const __m512i l = _mm512_loadu_si512((const void *)(a[i].ql + 64 * half));
            const int8_t *xq = b[i].qs + 128 * half;
            const __m512i x0 = _mm512_loadu_si512((const void *)xq);
            const __m512i x1 = _mm512_loadu_si512((const void *)(xq + 64));
            sumi = acc_q6(sumi, q6_levels(l, h, sh01), x0, _mm512_maddubs_epi16(m32, x0),
                          _mm512_permutexvar_epi16(idx[2 * half], sc), vnni);
            sumi = acc_q6(sumi, q6_levels(_mm512_srli_epi16(l, 4), h, sh23), x1, _mm512_maddubs_epi16(m32, x1),
                          _mm512_permutexvar_epi16(idx[2 * half + 1], sc), vnni);
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_lanes(sumi)), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
    }
    return hsum8(acc);
}

void mh_k_vec_dot_q6_K_avx512(int64_t n, const void *w, const void *x, float *out)
{
    *out = q6_K_dot(n, w, x, false);
}

void mh_k_vec_dot_q6_K_avx512vnni(int64_t n, const void *w, const void *x, float *out)
{
    *out = q6_K_dot(n, w, x, true);
}
