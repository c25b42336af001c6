/* quant_simd_x86.h: the x86 helpers every SIMD quant kernel shares (AVX2
 * and AVX-512 files alike): f16 scales, ggml's horizontal sums and the
 * gemm tiling loop. Layer: engine/kernels, private; included through
 * quant_simd_avx2.h / quant_simd_avx512.h. hsum8 is the canonical lane sum
 * (mh_k_lanes_sum8 in quant_kernels.h, ggml's hsum_float_8): every level
 * must add the 8 lanes in this one tree to stay bit-identical. */
#ifndef MH_QUANT_SIMD_X86_H
#define MH_QUANT_SIMD_X86_H

#include <immintrin.h>
#include <stdint.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 8 lanes: halves, pairs, one */
INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 4 lanes: (0 + 2) + (1 + 3), mh_k_lanes_sum4 (q4_K's min lanes) */
INLINE float hsum4(__m128 v)
{
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* Up to GEMM_FEW_MAX tokens (decode steps of a few slots, speculative
 * verification): one weight row at a time, in memory order as the matvec
 * walks it, dotted with CN tokens per pass (1 x CN tiles, then 1 x 1..3);
 * later passes find the row in L1. RM-row tiles at these token counts
 * measured 1.2-2.5x slower on a model's mapped weights (their short
 * interleaved row streams; docs/performance.md, "Batched decode"). Per
 * pair the arithmetic is every tile's, so the bits are the same. q4_0
 * keeps its RM-row tiles (FEW 0): its block sums come out of one 4-row
 * tree, which a 1-row tile wastes (measured 2x slower). */
#define GEMM_FEW_MAX 16
#define GEMM_FEW_TILE(TILE, TC, c, ...)                                                       \
    TILE(__VA_ARGS__, 1, TC, n, wt, w_row, xb + (size_t)(c) * x_row, x_row, y + (c) * ldy + r, \
         ldy, 1)
#define GEMM_FEW(TILE, CN, ...)                                                               \
    for (int64_t r = 0; r < R; r++) {                                                         \
        const uint8_t *wt = wb + (size_t)r * w_row;                                           \
        int64_t c = 0;                                                                        \
        for (; c + CN <= C; c += CN) GEMM_FEW_TILE(TILE, CN, c, __VA_ARGS__);                 \
        if (C - c == 1) GEMM_FEW_TILE(TILE, 1, c, __VA_ARGS__);                               \
        else if (C - c == 2) GEMM_FEW_TILE(TILE, CN > 2 ? 2 : 1, c, __VA_ARGS__);             \
        else if (C - c == 3) GEMM_FEW_TILE(TILE, CN > 3 ? 3 : 1, c, __VA_ARGS__);             \
    }

/* The tiling loop of every tiled gemm: up to FEW tokens row by row
 * (GEMM_FEW), else full RM x CN tiles, then the last tokens one at a
 * time; rows past R repeat the last row inside the tile (TILE clamps
 * them) and are not stored. */
#define GEMM_TILED(name, TILE, RM, CN, FEW, ...)                                              \
    void name(int64_t n, const void *w, size_t w_row, int64_t R, const void *x, size_t x_row, \
              int64_t C, float *y, int64_t ldy)                                               \
    {                                                                                         \
        const uint8_t *wb = w, *xb = x;                                                       \
        if (C <= (FEW)) {                                                                     \
            GEMM_FEW(TILE, CN, __VA_ARGS__);                                                  \
            return;                                                                           \
        }                                                                                     \
        for (int64_t r = 0; r < R; r += RM) {                                                 \
            const int rm = R - r < RM ? (int)(R - r) : RM;                                    \
            const uint8_t *wt = wb + (size_t)r * w_row;                                       \
            int64_t c = 0;                                                                    \
            for (; c + CN <= C; c += CN)                                                      \
                TILE(__VA_ARGS__, RM, CN, n, wt, w_row, xb + (size_t)c * x_row, x_row,        \
                     y + c * ldy + r, ldy, rm);                                               \
            for (; c < C; c++)                                                                \
                TILE(__VA_ARGS__, RM, 1, n, wt, w_row, xb + (size_t)c * x_row, x_row,         \
                     y + c * ldy + r, ldy, rm);                                               \
        }                                                                                     \
    }

#endif
