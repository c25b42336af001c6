/* quant_dot_avx2.c: AVX2/FMA/F16C vec-dot kernels (f32, f16, bf16, q8_0,
 * q4_0, q4_K, q5_K, q6_K). Layer: engine/kernels; compiled with -mavx2 and
 * only called when cpuid says so (quant_traits.c). Integer products use
 * maddubs (u8 x s8 -> s16): the weights' levels are made unsigned first, so
 * no pair sum can saturate for in-range quants (|x| <= 127). The integer
 * types keep the canonical float order of quant_kernels.h (ggml's): its 8
 * lanes are one ymm accumulator, so these match _ref bit for bit. */
#include <math.h>
#include <immintrin.h>
#include "quant_kernels.h"
#include "quant_simd_avx2.h"


/* s8 . s8 in 8 lanes of 4-products: |a| times b carrying a's sign */
static inline __m256i dot_s8(__m256i a, __m256i b)
{
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* two 16-bit scales: s0 for the low 128-bit lane, s1 for the high one */
static inline __m256i scales2(int s0, int s1)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)s0)),
                                   _mm_set1_epi16((short)s1), 1);
}

/* ===== float weights ===== */

void mh_k_vec_dot_f32_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const float *a = w, *b = x;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += a[i] * b[i];
    *out = s;
}

void mh_k_vec_dot_f16_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const uint16_t *a = w;
    const float *b = x;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b + i + 8), acc1);
    }
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += h2f(a[i]) * b[i];
    *out = s;
}

void mh_k_vec_dot_bf16_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const uint16_t *a = w;
    const float *b = x;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {   /* bf16 is the top half of an f32 */
        __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
        acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(b + i), acc);
    }
    float s = hsum8(acc);
    for (; i < n; i++) s += mh_bf16_to_f32(a[i]) * b[i];
    *out = s;
}

/* ===== 32-element blocks against q8_0 ===== */


/* lanes 0..7 += partials * d, fused: every block into one accumulator, in
 * block order (ggml's order, see quant_kernels.h) */
static inline __m256 acc32(__m256 acc, float d, __m256i p)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc);
}

static inline __m256i load_q8(const mh_block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

void mh_k_vec_dot_q8_0_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q8_0 *a = w, *b = x;
    const int64_t nb = n / MH_QK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++)
        acc = acc32(acc, h2f(a[i].d) * h2f(b[i].d), dot_s8(load_q8(&a[i]), load_q8(&b[i])));
    *out = hsum8(acc);
}

/* 16 bytes of nibbles -> 32 levels 0..15 in element order (low then high) */
static inline __m256i unpack_nibbles32(const uint8_t *qs)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* q4_0 levels minus 8, signed */
static inline __m256i load_q4(const mh_block_q4_0 *b)
{
    return _mm256_sub_epi8(unpack_nibbles32(b->qs), _mm256_set1_epi8(8));
}

void mh_k_vec_dot_q4_0_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q4_0 *a = w;
    const mh_block_q8_0 *b = x;
    const int64_t nb = n / MH_QK;
    float acc = 0.0f;   /* whole-block dots, one fma each (quant_dot.c) */
    for (int64_t i = 0; i < nb; i++)
        acc = fmaf((float)hsum_epi32(dot_s8(load_q4(&a[i]), load_q8(&b[i]))), h2f(a[i].d) * h2f(b[i].d), acc);
    *out = acc;
}

/* ===== k-quants against q8_K ===== */

/* unpacks the 8 scales into sc and returns the 4 canonical min lanes,
 * m_2k (bsums 4k, 4k+1) + m_2k+1 (bsums 4k+2, 4k+3), still to be scaled */
static inline __m128i k4_scales_mins(const uint8_t scales[12], const int16_t *bsums, uint8_t sc[16])
{
    mh_k_scales_mins_k4(scales, sc);
    const __m256i v = _mm256_loadu_si256((const __m256i *)bsums);
    const __m128i xs = _mm_hadd_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8))), xs);
}

/* the 8 canonical lanes of one 64-element slice of q4_K / q5_K: levels q0
 * (group 2j) and q1 (group 2j+1) against x, times their 6-bit scales */
static inline __m256i k4_slice(__m256i q0, __m256i q1, const int8_t *x, int s0, int s1)
{
    const __m256i x0 = _mm256_loadu_si256((const __m256i *)x);
    const __m256i x1 = _mm256_loadu_si256((const __m256i *)(x + 32));
    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, x0), _mm256_set1_epi16((short)s0));
    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, x1), _mm256_set1_epi16((short)s1));
    return _mm256_add_epi32(p0, p1);
}

void mh_k_vec_dot_q4_K_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q4_K *a = w;
    const mh_block_q8_K *b = x;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();   /* the canonical lanes */
    __m128 mins = _mm_setzero_ps();
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        uint8_t sc[16];
        const __m128i summ = k4_scales_mins(a[i].scales, b[i].bsums, sc);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {   /* 32 bytes = groups 2j (low) and 2j+1 (high) */
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * j));
            const __m256i q0 = _mm256_and_si256(q4, m4), q1 = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            sumi = _mm256_add_epi32(sumi, k4_slice(q0, q1, b[i].qs + 64 * j, sc[2 * j], sc[2 * j + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
        mins = _mm_fnmadd_ps(_mm_cvtepi32_ps(summ), _mm_set1_ps(b[i].d * h2f(a[i].dmin)), mins);
    }
    *out = hsum8(acc) + hsum4(mins);
}

void mh_k_vec_dot_q5_K_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q5_K *a = w;
    const mh_block_q8_K *b = x;
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        uint8_t sc[16];
        __m128i summ = k4_scales_mins(a[i].scales, b[i].bsums, sc);
        summ = _mm_hadd_epi32(summ, summ);
        summ = _mm_hadd_epi32(summ, summ);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)a[i].qh);
        __m256i bit_lo = _mm256_set1_epi8(1), bit_hi = _mm256_set1_epi8(2);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {   /* fifth bits: 2j for the low, 2j+1 for the high nibbles */
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * j));
            const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), sixteen);
            const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), sixteen);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(q4, m4), h0);
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), h1);
            sumi = _mm256_add_epi32(sumi, k4_slice(q0, q1, b[i].qs + 64 * j, sc[2 * j], sc[2 * j + 1]));
            bit_lo = _mm256_slli_epi16(bit_lo, 2);
            bit_hi = _mm256_slli_epi16(bit_hi, 2);
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
        mins = fmaf((float)_mm_cvtsi128_si32(summ), -(b[i].d * h2f(a[i].dmin)), mins);
    }
    *out = hsum8(acc) + mins;
}

/* 6-bit level: 4 bits of l (already shifted down) and 2 bits of h at shift */
static inline __m256i q6_levels(__m256i l, __m256i h, int shift)
{
    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(h, shift), _mm256_set1_epi8(3));
    return _mm256_or_si256(_mm256_and_si256(l, _mm256_set1_epi8(0x0F)), _mm256_slli_epi16(hb, 4));
}

void mh_k_vec_dot_q6_K_avx2(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q6_K *a = w;
    const mh_block_q8_K *b = x;
    const __m256i m32 = _mm256_set1_epi8(32);
    __m256 acc = _mm256_setzero_ps();   /* the canonical lanes */
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        const int8_t *sc = a[i].scales;
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = a[i].ql + 64 * half;
            const int8_t *xq = b[i].qs + 128 * half, *sh = sc + 8 * half;
            const __m256i h = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * half));
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i q[4] = {q6_levels(l0, h, 0), q6_levels(l1, h, 2),
                                  q6_levels(_mm256_srli_epi16(l0, 4), h, 4),
                                  q6_levels(_mm256_srli_epi16(l1, 4), h, 6)};
            for (int k = 0; k < 4; k++) {   /* (q - 32) . x = q . x - 32 . x, pair sums in s16 */
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * k));
                const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], xv), _mm256_maddubs_epi16(m32, xv));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scales2(sh[2 * k], sh[2 * k + 1])));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(b[i].d * h2f(a[i].d)), acc);
    }
    *out = hsum8(acc);
}
