/* float_gemm_avx512.c: AVX-512 float-weight gemm (mh/float_gemm.h), one zmm
 * per (row, token) dot holding its 16 canonical lanes. Layer: engine/kernels,
 * built with the AVX-512 flags, chosen by float_gemm.c. Tails: masked loads
 * (zeros), the canonical 0 * 0. */
#include <immintrin.h>
#include "mh/float_gemm.h"

#define INLINE static inline __attribute__((always_inline))
/* Tiles of 4 rows x 6 tokens keep 24 accumulators in registers (each weight
 * vector converted once, used for 6 tokens). One token walks one row at a
 * time, a single stream through memory: measured 3-5x faster from DRAM than
 * 2 or 4 interleaved rows on the build machine. */
#define TR 4   /* rows per tile */
#define TC 6   /* tokens per tile */

INLINE __m512 ld_f32(const void *p, int64_t i, __mmask16 m)
{ return _mm512_maskz_loadu_ps(m, (const float *)p + i); }
INLINE __m512 ld_f16(const void *p, int64_t i, __mmask16 m)
{ return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i)); }

/* the canonical tree: l + (l + 8), + 4, + 2, + 1 */
INLINE float hsum16(__m512 v)
{
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

#define MASK16(left) ((left) >= 16 ? (__mmask16)0xFFFF : (left) <= 0 ? (__mmask16)0 \
                      : (__mmask16)((1u << (left)) - 1))
#define MASK32(left) ((left) >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << (left)) - 1))

/* one 16-element step (left: elements from i to n): R weight vectors, each
 * used for C tokens */
#define STEP_F(LD, left) do {                                                             \
        __m512 wv[TR];                                                                    \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                               \
            wv[r] = LD(w + (size_t)r * w_row, i, MASK16(left));                           \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) {                             \
            const __m512 xv = _mm512_maskz_loadu_ps(MASK16(left), x + c * ldx + i);       \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                           \
                acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);                        \
        }                                                                                 \
    } while (0)
#define STEP_F32(left) STEP_F(ld_f32, left)
#define STEP_F16(left) STEP_F(ld_f16, left)

/* bf16, one 32-element step with vdpbf16ps (x is on the bf16 grid, so the
 * conversion is exact) */
#define STEP_BF16_HW(left) do {                                                           \
        __m512bh wv[TR];                                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                               \
            wv[r] = (__m512bh)_mm512_maskz_loadu_epi16(MASK32(left),                      \
                                                       (const uint16_t *)(w + (size_t)r * w_row) + i); \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) {                             \
            const float *xc = x + c * ldx + i;                                            \
            const __m512bh xv = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(MASK16((left) - 16), xc + 16), \
                                                    _mm512_maskz_loadu_ps(MASK16(left), xc)); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                           \
                acc[r][c] = _mm512_dpbf16_ps(acc[r][c], wv[r], xv);                       \
        }                                                                                 \
    } while (0)

/* the same arithmetic without the instruction: odd and even elements of
 * each pair as f32, two fmas (the caller sets MXCSR to DAZ/FTZ) */
#define STEP_BF16_EM(left) do {                                                           \
        __m512 wo[TR], we[TR];                                                            \
        const __m512i hi16 = _mm512_set1_epi32((int)0xFFFF0000u);                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                             \
            const __m512i u = _mm512_maskz_loadu_epi16(MASK32(left),                      \
                                                       (const uint16_t *)(w + (size_t)r * w_row) + i); \
            wo[r] = _mm512_castsi512_ps(_mm512_and_si512(u, hi16));                       \
            we[r] = _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));                        \
        }                                                                                 \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) {                             \
            const float *xc = x + c * ldx + i;                                            \
            const __m512 lo = _mm512_maskz_loadu_ps(MASK16(left), xc);                    \
            const __m512 hi = _mm512_maskz_loadu_ps(MASK16((left) - 16), xc + 16);        \
            const __m512 xo = _mm512_permutex2var_ps(lo, odd_idx(), hi);                  \
            const __m512 xe = _mm512_permutex2var_ps(lo, _mm512_sub_epi32(odd_idx(), _mm512_set1_epi32(1)), hi); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                         \
                acc[r][c] = _mm512_fmadd_ps(wo[r], xo, acc[r][c]);                        \
                acc[r][c] = _mm512_fmadd_ps(we[r], xe, acc[r][c]);                        \
            }                                                                             \
        }                                                                                 \
    } while (0)

INLINE __m512i odd_idx(void)
{
    return _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
}

/* MXCSR with DAZ (bit 6) and FTZ (bit 15), rounding to nearest */
#define CSR_DAZ_FTZ(old) ((((old) & ~0x6000u)) | 0x8040u)

/* NAME: a kernel over tiles of RT x TC (R and C are constants after
 * inlining) and single rows, BS elements a step; PRE/POST wrap the sums
 * (not the lane tree, which runs in the default modes as with the
 * instruction) */
#define DEFINE_GEMM(NAME, STEP, BS, RT, PRE, POST)                                        \
INLINE void tile_##NAME(int R, int C, int64_t n, const uint8_t *w, size_t w_row,         \
                        const float *x, int64_t ldx, float *y, int64_t ldy)              \
{                                                                                         \
    __m512 acc[TR][TC];                                                                   \
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps(); \
    int64_t i = 0;                                                                        \
    PRE;                                                                                  \
    for (; i + BS <= n; i += BS) STEP(BS);                                                \
    if (i < n) STEP(n - i);                                                               \
    POST;                                                                                 \
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) y[c * ldy + r] = hsum16(acc[r][c]); \
}                                                                                         \
static void tiles_##NAME(int R, int C, int64_t n, const uint8_t *w, size_t w_row,         \
                         const float *x, int64_t ldx, float *y, int64_t ldy)              \
{                                                                                         \
    switch (R * 8 + C) {                                                                  \
    case RT * 8 + 6: tile_##NAME(RT, 6, n, w, w_row, x, ldx, y, ldy); break;               \
    case RT * 8 + 5: tile_##NAME(RT, 5, n, w, w_row, x, ldx, y, ldy); break;               \
    case RT * 8 + 4: tile_##NAME(RT, 4, n, w, w_row, x, ldx, y, ldy); break;               \
    case RT * 8 + 3: tile_##NAME(RT, 3, n, w, w_row, x, ldx, y, ldy); break;               \
    case RT * 8 + 2: tile_##NAME(RT, 2, n, w, w_row, x, ldx, y, ldy); break;               \
    case 1 * 8 + 6: tile_##NAME(1, 6, n, w, w_row, x, ldx, y, ldy); break;                 \
    case 1 * 8 + 5: tile_##NAME(1, 5, n, w, w_row, x, ldx, y, ldy); break;                 \
    case 1 * 8 + 4: tile_##NAME(1, 4, n, w, w_row, x, ldx, y, ldy); break;                 \
    case 1 * 8 + 3: tile_##NAME(1, 3, n, w, w_row, x, ldx, y, ldy); break;                 \
    case 1 * 8 + 2: tile_##NAME(1, 2, n, w, w_row, x, ldx, y, ldy); break;                 \
    default: tile_##NAME(1, 1, n, w, w_row, x, ldx, y, ldy); break;                        \
    }                                                                                     \
}                                                                                         \
void NAME(int64_t n, const void *w, size_t w_row, int64_t rows,                           \
          const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)                  \
{                                                                                         \
    const uint8_t *wb = w;                                                                \
    for (int64_t t = 0; t < T; t += TC) {                                                 \
        int c = T - t < TC ? (int)(T - t) : TC;                                           \
        int64_t r = 0;                                                                    \
        for (; c > 1 && r + RT <= rows; r += RT)                                          \
            tiles_##NAME(RT, c, n, wb + (size_t)r * w_row, w_row, x + t * ldx, ldx, y + t * ldy + r, ldy); \
        for (; r < rows; r++)                                                             \
            tiles_##NAME(1, c, n, wb + (size_t)r * w_row, w_row, x + t * ldx, ldx, y + t * ldy + r, ldy); \
    }                                                                                     \
}

DEFINE_GEMM(mh_k_fgemm_f32_avx512, STEP_F32, 16, 4, (void)0, (void)0)
DEFINE_GEMM(mh_k_fgemm_f16_avx512, STEP_F16, 16, 4, (void)0, (void)0)
DEFINE_GEMM(mh_k_fgemm_bf16_avx512bf16, STEP_BF16_HW, 32, 4, (void)0, (void)0)
DEFINE_GEMM(mh_k_fgemm_bf16_avx512, STEP_BF16_EM, 32, 2,
            const unsigned csr = _mm_getcsr(); _mm_setcsr(CSR_DAZ_FTZ(csr)), _mm_setcsr(csr))
