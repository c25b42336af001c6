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
INLINE __m512 ld_bf16(const void *p, int64_t i, __mmask16 m)
{   /* bf16 is the top half of an f32 */
    __m512i u = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}

/* the canonical tree: l + (l + 8), + 4, + 2, + 1 */
INLINE float hsum16(__m512 v)
{
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

/* one 16-element step of a tile: R weight vectors, each used for C tokens */
#define STEP(LD, m) do {                                                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) wv[r] = LD(w + (size_t)r * w_row, i, m); \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) {                             \
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + c * ldx + i);                  \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                           \
                acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);                        \
        }                                                                                 \
    } while (0)

/* one R x C tile; R and C are constants after inlining */
#define DEFINE_TILE(SFX, LD)                                                              \
INLINE void tile_##SFX(int R, int C, int64_t n, const uint8_t *w, size_t w_row,          \
                       const float *x, int64_t ldx, float *y, int64_t ldy)               \
{                                                                                          \
    __m512 acc[TR][TC], wv[TR];                                                           \
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps(); \
    int64_t i = 0;                                                                        \
    for (; i + 16 <= n; i += 16) STEP(LD, (__mmask16)0xFFFF);                             \
    if (i < n) STEP(LD, (__mmask16)((1u << (n - i)) - 1));                                \
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
        _Pragma("GCC unroll 8") for (int c = 0; c < C; c++) y[c * ldy + r] = hsum16(acc[r][c]); \
}                                                                                         \
static void tiles_##SFX(int R, int C, int64_t n, const uint8_t *w, size_t w_row,          \
                        const float *x, int64_t ldx, float *y, int64_t ldy)               \
{                                                                                         \
    switch (R * 8 + C) {                                                                  \
    case 4 * 8 + 6: tile_##SFX(4, 6, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 4 * 8 + 5: tile_##SFX(4, 5, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 4 * 8 + 4: tile_##SFX(4, 4, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 4 * 8 + 3: tile_##SFX(4, 3, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 4 * 8 + 2: tile_##SFX(4, 2, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 4 * 8 + 1: tile_##SFX(4, 1, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 2 * 8 + 1: tile_##SFX(2, 1, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 1 * 8 + 6: tile_##SFX(1, 6, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 1 * 8 + 5: tile_##SFX(1, 5, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 1 * 8 + 4: tile_##SFX(1, 4, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 1 * 8 + 3: tile_##SFX(1, 3, n, w, w_row, x, ldx, y, ldy); break;                  \
    case 1 * 8 + 2: tile_##SFX(1, 2, n, w, w_row, x, ldx, y, ldy); break;                  \
    default: tile_##SFX(1, 1, n, w, w_row, x, ldx, y, ldy); break;                         \
    }                                                                                     \
}                                                                                         \
void mh_k_fgemm_##SFX##_avx512(int64_t n, const void *w, size_t w_row, int64_t rows,      \
                               const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy) \
{                                                                                         \
    const uint8_t *wb = w;                                                                \
    for (int64_t t = 0; t < T; t += TC) {                                                 \
        int c = T - t < TC ? (int)(T - t) : TC;                                           \
        int64_t r = 0;                                                                    \
        for (; c > 1 && r + TR <= rows; r += TR)                                        \
            tiles_##SFX(TR, c, n, wb + (size_t)r * w_row, w_row, x + t * ldx, ldx, y + t * ldy + r, ldy); \
        for (; r < rows; r++)                                                             \
            tiles_##SFX(1, c, n, wb + (size_t)r * w_row, w_row, x + t * ldx, ldx, y + t * ldy + r, ldy); \
    }                                                                                     \
}

DEFINE_TILE(f32, ld_f32)
DEFINE_TILE(f16, ld_f16)
DEFINE_TILE(bf16, ld_bf16)
