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
INLINE __m256 ld_bf16(const void *p, int64_t i)
{   /* bf16 is the top half of an f32 */
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

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
static inline float bf16_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return mh_bf16_to_f32(h); }

DEFINE_TILE(f32, ld_f32, 4, f32_at)
DEFINE_TILE(f16, ld_f16, 2, f16_at)
DEFINE_TILE(bf16, ld_bf16, 2, bf16_at)
