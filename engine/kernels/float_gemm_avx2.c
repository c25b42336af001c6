/* float_gemm_avx2.c: AVX2/FMA/F16C float-weight gemm (mh/float_gemm.h):
 * the 16 canonical lanes of one (row, token) dot are two ymm (lanes 0-7 and
 * 8-15). Layer: engine/kernels; compiled with -mavx2 -mfma -mf16c, chosen by
 * float_gemm.c. Tiles of 2 rows x 3 tokens (12 accumulators); the last
 * partial block goes through a zero-padded f32 copy (the canonical 0 * 0). */
#include <immintrin.h>
#include <string.h>
#include "mh/float_gemm.h"

#define INLINE static inline __attribute__((always_inline))
#define TR 2   /* rows per tile */
#define TC 3   /* tokens per tile */

INLINE __m256 ld_f32(const void *p, int64_t i) { return _mm256_loadu_ps((const float *)p + i); }
INLINE __m256 ld_f16(const void *p, int64_t i)
{ return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i))); }

/* the canonical tree over lo (lanes 0-7) and hi (8-15) */
INLINE float hsum16(__m256 lo, __m256 hi)
{
    __m256 h8 = _mm256_add_ps(lo, hi);
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

/* one 16-element step at element i of rows wp[r] (stride ws) and tokens xp */
#define STEP(LD, wp, ws, xp, xs, i) do {                                                  \
        _Pragma("GCC unroll 4") for (int h = 0; h < 2; h++) {                             \
            __m256 wv[TR];                                                                \
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                           \
                wv[r] = LD((wp) + (size_t)r * (ws), (i) + 8 * h);                         \
            _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) {                         \
                const __m256 xv = _mm256_loadu_ps((xp) + c * (xs) + (i) + 8 * h);         \
                _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                       \
                    acc[r][c][h] = _mm256_fmadd_ps(wv[r], xv, acc[r][c][h]);              \
            }                                                                             \
        }                                                                                 \
    } while (0)

#define DEFINE_TILE(SFX, LD, WSIZE, TOF32)                                                \
INLINE void tile_##SFX(int R, int C, int64_t n, const uint8_t *w, size_t w_row,          \
                       const float *x, int64_t ldx, float *y, int64_t ldy)               \
{                                                                                         \
    __m256 acc[TR][TC][2];                                                                \
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                   \
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++)                               \
            acc[r][c][0] = acc[r][c][1] = _mm256_setzero_ps();                            \
    int64_t i = 0;                                                                        \
    for (; i + 16 <= n; i += 16) STEP(LD, w, w_row, x, ldx, i);                           \
    if (i < n) {                                                                          \
        float wpad[TR][16], xpad[TC][16];                                                 \
        memset(wpad, 0, sizeof wpad);                                                     \
        memset(xpad, 0, sizeof xpad);                                                     \
        for (int r = 0; r < R; r++)                                                       \
            for (int64_t k = i; k < n; k++)                                               \
                wpad[r][k - i] = TOF32(w + (size_t)r * w_row + (size_t)k * WSIZE);        \
        for (int c = 0; c < C; c++) memcpy(xpad[c], x + c * ldx + i, sizeof(float) * (size_t)(n - i)); \
        STEP(ld_f32, (const uint8_t *)wpad, sizeof wpad[0], &xpad[0][0], 16, 0);          \
    }                                                                                     \
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)                                   \
        _Pragma("GCC unroll 4") for (int c = 0; c < C; c++)                               \
            y[c * ldy + r] = hsum16(acc[r][c][0], acc[r][c][1]);                          \
}                                                                                         \
static void tiles_##SFX(int R, int C, int64_t n, const uint8_t *w, size_t w_row,          \
                        const float *x, int64_t ldx, float *y, int64_t ldy)               \
{                                                                                         \
    switch (R * 8 + C) {                                                                  \
    case 2 * 8 + 3: tile_##SFX(2, 3, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 2 * 8 + 2: tile_##SFX(2, 2, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 2 * 8 + 1: tile_##SFX(2, 1, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 1 * 8 + 3: tile_##SFX(1, 3, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 1 * 8 + 2: tile_##SFX(1, 2, n, w, w_row, x, ldx, y, ldy); break;                  \
    default: tile_##SFX(1, 1, n, w, w_row, x, ldx, y, ldy); break;                         \
    }                                                                                     \
}                                                                                         \
void mh_k_fgemm_##SFX##_avx2(int64_t n, const void *w, size_t w_row, int64_t rows,        \
                             const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy) \
{                                                                                         \
    const uint8_t *wb = w;                                                                \
    for (int64_t t = 0; t < T; t += TC) {                                                 \
        int c = T - t < TC ? (int)(T - t) : TC;                                           \
        int64_t r = 0;                                                                    \
        for (; r + TR <= rows; r += TR)                                                   \
            tiles_##SFX(TR, c, n, wb + (size_t)r * w_row, w_row, x + t * ldx, ldx, y + t * ldy + r, ldy); \
        for (; r < rows; r++)                                                             \
            tiles_##SFX(1, c, n, wb + (size_t)r * w_row, w_row, x + t * ldx, ldx, y + t * ldy + r, ldy); \
    }                                                                                     \
}

static inline float f32_at(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }
static inline float f16_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return mh_f16_to_f32(h); }

DEFINE_TILE(f32, ld_f32, 4, f32_at)
DEFINE_TILE(f16, ld_f16, 2, f16_at)

/* ===== bf16: AVX512_BF16's pair order, emulated (mh/float_gemm.h) ===== */

/* lanes 8h .. 8h + 7 of one 32-element block at wp / xp (half h: its
 * elements 16h .. 16h + 15): odd element of each pair, then even, fused */
INLINE void bf16_half(const uint16_t *wp, const float *xp, int64_t ldx, int C, __m256 acc[TC][2], int h)
{
    const __m256i u = _mm256_loadu_si256((const __m256i *)(wp + 16 * h));
    const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32((int)0xFFFF0000u)));
    const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
    for (int c = 0; c < C; c++) {
        const __m256 a = _mm256_loadu_ps(xp + c * ldx + 16 * h), b = _mm256_loadu_ps(xp + c * ldx + 16 * h + 8);
        /* a0 a2 b0 b2 | a4 a6 b4 b6 -> a0 a2 a4 a6 b0 b2 b4 b6 */
        const __m256 xe = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
        const __m256 xo = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
        acc[c][h] = _mm256_fmadd_ps(wo, xo, acc[c][h]);
        acc[c][h] = _mm256_fmadd_ps(we, xe, acc[c][h]);
    }
}

INLINE void bf16_row(int C, int64_t n, const uint16_t *w, const float *x, int64_t ldx, float *y, int64_t ldy)
{
    __m256 acc[TC][2];
    for (int c = 0; c < C; c++) acc[c][0] = acc[c][1] = _mm256_setzero_ps();
    int64_t i = 0;
    const unsigned csr = _mm_getcsr();
    _mm_setcsr((csr & ~0x6000u) | 0x8040u);   /* DAZ, FTZ, to nearest: the instruction's modes */
    for (; i + 32 <= n; i += 32) {
        bf16_half(w + i, x + i, ldx, C, acc, 0);
        bf16_half(w + i, x + i, ldx, C, acc, 1);
    }
    if (i < n) {   /* a zero-padded copy of the last block */
        uint16_t wpad[32] = {0};
        float xpad[TC][32];
        memset(xpad, 0, sizeof xpad);
        memcpy(wpad, w + i, sizeof(uint16_t) * (size_t)(n - i));
        for (int c = 0; c < C; c++) memcpy(xpad[c], x + c * ldx + i, sizeof(float) * (size_t)(n - i));
        bf16_half(wpad, &xpad[0][0], 32, C, acc, 0);
        bf16_half(wpad, &xpad[0][0], 32, C, acc, 1);
    }
    _mm_setcsr(csr);   /* the lane tree in the default modes, as with the instruction */
    for (int c = 0; c < C; c++) y[c * ldy] = hsum16(acc[c][0], acc[c][1]);
}

void mh_k_fgemm_bf16_avx2(int64_t n, const void *w, size_t w_row, int64_t rows,
                          const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{
    for (int64_t t = 0; t < T; t += TC) {
        int c = T - t < TC ? (int)(T - t) : TC;
        for (int64_t r = 0; r < rows; r++) {
            const uint16_t *wr = (const uint16_t *)((const uint8_t *)w + (size_t)r * w_row);
            switch (c) {   /* C a constant in each */
            case 3: bf16_row(3, n, wr, x + t * ldx, ldx, y + t * ldy + r, ldy); break;
            case 2: bf16_row(2, n, wr, x + t * ldx, ldx, y + t * ldy + r, ldy); break;
            default: bf16_row(1, n, wr, x + t * ldx, ldx, y + t * ldy + r, ldy); break;
            }
        }
    }
}
