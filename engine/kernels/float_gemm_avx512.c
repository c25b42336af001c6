/* float_gemm_avx512.c: AVX-512 float-weight gemm (mh/float_gemm.h), one zmm
 * per (row, token) dot holding its 16 canonical lanes. Layer: engine/kernels,
 * built with the AVX-512 flags, chosen by float_gemm.c; uses libc (malloc)
 * for long bf16 activations packed once per call. Tails: masked loads
 * (zeros), the canonical 0 * 0. */
#include <immintrin.h>
#include <stdlib.h>
#include "mh/float_gemm.h"

#define INLINE static inline __attribute__((always_inline))
/* Tiles of R rows x C tokens keep R * C accumulators in registers (each
 * weight vector converted once, used for C tokens). One token walks one row
 * at a time, a single stream through memory that the hardware prefetcher
 * follows (measured 3-5x faster from DRAM than interleaved rows without
 * help). Few tokens (a speculative check, batched decode) take every token
 * in one tile, so the weights are read once, and several rows a tile with
 * the next tile's bytes prefetched into L2 a step at a time: the rows of a
 * tile are contiguous, so that is one sequential stream again (measured at
 * 2 threads from DRAM, f32 2048 columns: 2 tokens 1.0x one token's time,
 * 6 tokens 1.2-1.3x; 1.5-1.7x without the prefetch). */
#define TR 4     /* rows per tile, many tokens */
#define TC 6     /* tokens per tile, many tokens */
#define TFEW 8   /* up to this many tokens: one tile column, C = T */
#define MAXR 4
#define MAXC 8

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
#define U8 _Pragma("GCC unroll 8")

/* one 16-element step (left: elements from i to n): R weight vectors, each
 * used for C tokens of f32 x */
#define STEP_F(LD, left) do {                                                             \
        __m512 wv[MAXR];                                                                  \
        U8 for (int r = 0; r < R; r++) wv[r] = LD(w + (size_t)r * w_row, i, MASK16(left)); \
        U8 for (int c = 0; c < C; c++) {                                                  \
            const __m512 xv = _mm512_maskz_loadu_ps(MASK16(left), (const float *)x + c * ldx + i); \
            U8 for (int r = 0; r < R; r++) acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]); \
        }                                                                                 \
    } while (0)
#define STEP_F32(left) STEP_F(ld_f32, left)
#define STEP_F16(left) STEP_F(ld_f16, left)

#define LD_BF16(r, left) _mm512_maskz_loadu_epi16(MASK32(left), (const uint16_t *)(w + (size_t)(r) * w_row) + i)

/* bf16, one 32-element step with vdpbf16ps, x f32 (on the bf16 grid, so
 * the conversion is exact) */
#define STEP_BF16_HW(left) do {                                                           \
        __m512bh wv[MAXR];                                                                \
        U8 for (int r = 0; r < R; r++) wv[r] = (__m512bh)LD_BF16(r, left);                \
        U8 for (int c = 0; c < C; c++) {                                                  \
            const float *xc = (const float *)x + c * ldx + i;                             \
            const __m512bh xv = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(MASK16((left) - 16), xc + 16), \
                                                    _mm512_maskz_loadu_ps(MASK16(left), xc)); \
            U8 for (int r = 0; r < R; r++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], wv[r], xv); \
        }                                                                                 \
    } while (0)

/* the same with x packed as bf16 once per call (pack_bf16): rows of ldx
 * elements, zero past n, so the tail loads x whole */
#define STEP_BF16_PK(left) do {                                                           \
        __m512bh wv[MAXR];                                                                \
        U8 for (int r = 0; r < R; r++) wv[r] = (__m512bh)LD_BF16(r, left);                \
        U8 for (int c = 0; c < C; c++) {                                                  \
            const __m512bh xv = (__m512bh)_mm512_loadu_si512((const uint16_t *)x + c * ldx + i); \
            U8 for (int r = 0; r < R; r++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], wv[r], xv); \
        }                                                                                 \
    } while (0)

INLINE __m512i odd_idx(void)
{
    return _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
}

/* the same arithmetic without the instruction: odd and even elements of
 * each pair as f32, two fmas (the caller sets MXCSR to DAZ/FTZ) */
#define STEP_BF16_EM(left) do {                                                           \
        __m512 wo[MAXR], we[MAXR];                                                        \
        const __m512i hi16 = _mm512_set1_epi32((int)0xFFFF0000u);                         \
        U8 for (int r = 0; r < R; r++) {                                                  \
            const __m512i u = LD_BF16(r, left);                                           \
            wo[r] = _mm512_castsi512_ps(_mm512_and_si512(u, hi16));                       \
            we[r] = _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));                        \
        }                                                                                 \
        U8 for (int c = 0; c < C; c++) {                                                  \
            const float *xc = (const float *)x + c * ldx + i;                             \
            const __m512 lo = _mm512_maskz_loadu_ps(MASK16(left), xc);                    \
            const __m512 hi = _mm512_maskz_loadu_ps(MASK16((left) - 16), xc + 16);        \
            const __m512 xo = _mm512_permutex2var_ps(lo, odd_idx(), hi);                  \
            const __m512 xe = _mm512_permutex2var_ps(lo, _mm512_sub_epi32(odd_idx(), _mm512_set1_epi32(1)), hi); \
            U8 for (int r = 0; r < R; r++) {                                              \
                acc[r][c] = _mm512_fmadd_ps(wo[r], xo, acc[r][c]);                        \
                acc[r][c] = _mm512_fmadd_ps(we[r], xe, acc[r][c]);                        \
            }                                                                             \
        }                                                                                 \
    } while (0)

/* MXCSR with DAZ (bit 6) and FTZ (bit 15), rounding to nearest */
#define CSR_DAZ_FTZ(old) ((((old) & ~0x6000u)) | 0x8040u)

/* the part of the next tile (nxt: R rows, contiguous) that matches this
 * step of this one, into L2: the tile ahead streams in as this one runs */
#define PREFETCH_NEXT(WSZ, BS) do {                                                       \
        if (R * C > 1 && nxt) {   /* constant 0 for one token on one row: no test a step */ \
            const char *p_ = (const char *)nxt + i * (int64_t)R * (WSZ);                  \
            U8 for (int p = 0; p < (R * (BS) * (WSZ) + 63) / 64; p++)                     \
                _mm_prefetch(p_ + 64 * p, _MM_HINT_T1);                                   \
        }                                                                                 \
    } while (0)

/* the row tile for C tokens: 4 rows while the tile's loads stay few
 * against its fmas; 3 rows past 3 tokens on long rows, where 4 measured
 * up to 1.4x slower from DRAM (and 4 x 8 would not fit the registers) */
static int rows_for(int C, int64_t n, int rt)
{
    int r = C == 1 ? 1 : C <= 3 || (C <= 6 && n <= 1024) ? 4 : 3;
    return r < rt ? r : rt;
}

#define TILE_CASE(NAME, R, C) case (R) * 16 + (C): tile_##NAME(R, C, n, w, w_row, x, ldx, y, ldy, nxt); break;
#define TILE_CASES_R(NAME, R) TILE_CASE(NAME, R, 1) TILE_CASE(NAME, R, 2) TILE_CASE(NAME, R, 3) \
    TILE_CASE(NAME, R, 4) TILE_CASE(NAME, R, 5) TILE_CASE(NAME, R, 6)
#define TILE_CASES(NAME) TILE_CASES_R(NAME, 1) TILE_CASES_R(NAME, 2) TILE_CASES_R(NAME, 3) \
    TILE_CASES_R(NAME, 4) TILE_CASE(NAME, 1, 7) TILE_CASE(NAME, 1, 8) TILE_CASE(NAME, 2, 7) \
    TILE_CASE(NAME, 2, 8) TILE_CASE(NAME, 3, 7) TILE_CASE(NAME, 3, 8)

/* NAME: tiles of R x C (constants after inlining), BS elements of WSZ
 * bytes a step; PRE/POST wrap the sums (not the lane tree, which runs in
 * the default modes as with the instruction). x: C rows ldx apart, f32 or
 * (STEP_BF16_PK) packed bf16. nxt: the next tile's rows, or NULL. */
#define DEFINE_TILES(NAME, STEP, BS, WSZ, PRE, POST)                                      \
INLINE void tile_##NAME(int R, int C, int64_t n, const uint8_t *w, size_t w_row,         \
                        const void *x, int64_t ldx, float *y, int64_t ldy, const uint8_t *nxt) \
{                                                                                         \
    __m512 acc[MAXR][MAXC];                                                               \
    U8 for (int r = 0; r < R; r++) U8 for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps(); \
    int64_t i = 0;                                                                        \
    PRE;                                                                                  \
    for (; i + BS <= n; i += BS) {                                                        \
        PREFETCH_NEXT(WSZ, BS);                                                           \
        STEP(BS);                                                                         \
    }                                                                                     \
    if (i < n) STEP(n - i);                                                               \
    POST;                                                                                 \
    U8 for (int r = 0; r < R; r++) U8 for (int c = 0; c < C; c++) y[c * ldy + r] = hsum16(acc[r][c]); \
}                                                                                         \
static void tiles_##NAME(int R, int C, int64_t n, const uint8_t *w, size_t w_row,         \
                         const void *x, int64_t ldx, float *y, int64_t ldy, const uint8_t *nxt) \
{                                                                                         \
    switch (R * 16 + C) {                                                                 \
    TILE_CASES(NAME)                                                                      \
    default: break;   /* rows_for and the callers never ask for others */                \
    }                                                                                     \
}                                                                                         \
/* tokens [0, T) of x (f32 or packed, xs bytes an element), every row */                  \
static void cols_##NAME(int64_t n, const uint8_t *w, size_t w_row, int64_t rows, const void *x, \
                        size_t xs, int64_t ldx, int64_t T, float *y, int64_t ldy, int rt) \
{                                                                                         \
    const int64_t tc = T <= TFEW ? T : TC;                                                \
    for (int64_t t = 0; t < T; t += tc) {                                                 \
        const int c = (int)(T - t < tc ? T - t : tc);                                     \
        const int R = T <= TFEW ? rows_for(c, n, rt) : c == 1 ? 1 : rt;                   \
        const uint8_t *xt = (const uint8_t *)x + (size_t)(t * ldx) * xs;                  \
        if (c == 1) {   /* one token: the row loop itself, no call or switch a row */     \
            for (int64_t r = 0; r < rows; r++)                                            \
                tile_##NAME(1, 1, n, w + (size_t)r * w_row, w_row, xt, ldx, y + t * ldy + r, ldy, NULL); \
            continue;                                                                     \
        }                                                                                 \
        for (int64_t r = 0, rr; r < rows; r += rr) {                                      \
            rr = rows - r < R ? rows - r : R;                                             \
            const uint8_t *nxt = c > 1 && r + 2 * rr <= rows ? w + (size_t)(r + rr) * w_row : NULL; \
            tiles_##NAME((int)rr, c, n, w + (size_t)r * w_row, w_row, xt, ldx, y + t * ldy + r, ldy, nxt); \
        }                                                                                 \
    }                                                                                     \
}

DEFINE_TILES(f32, STEP_F32, 16, 4, (void)0, (void)0)
DEFINE_TILES(f16, STEP_F16, 16, 2, (void)0, (void)0)
DEFINE_TILES(bf16hw, STEP_BF16_HW, 32, 2, (void)0, (void)0)
DEFINE_TILES(bf16pk, STEP_BF16_PK, 32, 2, (void)0, (void)0)
DEFINE_TILES(bf16em, STEP_BF16_EM, 32, 2,
             const unsigned csr = _mm_getcsr(); _mm_setcsr(CSR_DAZ_FTZ(csr)), _mm_setcsr(csr))

void mh_k_fgemm_f32_avx512(int64_t n, const void *w, size_t w_row, int64_t rows,
                           const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{ cols_f32(n, w, w_row, rows, x, sizeof(float), ldx, T, y, ldy, TR); }

void mh_k_fgemm_f16_avx512(int64_t n, const void *w, size_t w_row, int64_t rows,
                           const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{ cols_f16(n, w, w_row, rows, x, sizeof(float), ldx, T, y, ldy, TR); }

void mh_k_fgemm_bf16_avx512(int64_t n, const void *w, size_t w_row, int64_t rows,
                            const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{ cols_bf16em(n, w, w_row, rows, x, sizeof(float), ldx, T, y, ldy, 2); }

/* x (T rows ldx apart, on the bf16 grid) as bf16 rows of np elements
 * (n rounded up to 32), zeros past n: exact, and done once per call rather
 * than once per tile (s135 shapes, one thread: prompts' matmuls 1.3x, a
 * decode step's 1.1x) */
static void pack_bf16(int64_t n, const float *x, int64_t ldx, int64_t T, uint16_t *xb, int64_t np)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < np; i += 32) {
            const float *xc = x + t * ldx + i;
            const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(MASK16(n - i - 16), xc + 16),
                                                   _mm512_maskz_loadu_ps(MASK16(n - i), xc));
            _mm512_storeu_si512(xb + t * np + i, (__m512i)v);
        }
}

#define PACK_STACK 4096   /* bf16 elements packed on the stack (8 KiB): a decode step needs no malloc */

void mh_k_fgemm_bf16_avx512bf16(int64_t n, const void *w, size_t w_row, int64_t rows,
                                const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy)
{
    const int64_t np = (n + 31) & ~(int64_t)31;
    uint16_t small[PACK_STACK];
    uint16_t *xb = T * np <= PACK_STACK ? small : malloc(sizeof(uint16_t) * (size_t)(T * np));
    if (!xb) {   /* no memory: convert x in the tiles */
        cols_bf16hw(n, w, w_row, rows, x, sizeof(float), ldx, T, y, ldy, TR);
        return;
    }
    pack_bf16(n, x, ldx, T, xb, np);
    cols_bf16pk(n, w, w_row, rows, xb, sizeof(uint16_t), np, T, y, ldy, TR);
    if (xb != small) free(xb);
}
