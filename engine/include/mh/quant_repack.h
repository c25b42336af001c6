/* quant_repack.h: Q4_0 and Q8_0 weights repacked in memory (never on disk)
 * into groups of 16 rows interleaved block by block, so one activation load
 * (and one nibble unpack) serves 16 output rows, and the matvec / gemm on them.
 * Layer: engine/kernels (pure C11; uses the thread pool and mh/quant.h).
 * The results are bit-identical to the plain q4_0 kernels of every level
 * (one canonical float order, quant_kernels.h), so packed and file-layout
 * weights, one token and many, always agree. */
#ifndef MH_QUANT_REPACK_H
#define MH_QUANT_REPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mh/cpu.h"
#include "mh/dtype.h"
#include "mh/quant.h"

/* ===== the layout =====
 * A (rows, n) q4_0 or q8_0 weight packs its first G = rows / 16 groups of 16 rows;
 * the last rows % 16 rows stay in the file layout (the plain kernels read
 * them). Group g is nb = n / 32 blocks of 288 bytes, one after the other
 * (a matvec reads the whole tensor as one forward stream, which the
 * hardware prefetcher follows: a separate scale array per group measured
 * 2.5x slower from memory). Block b: 256 nibble bytes, where byte
 * 64 * k + 4 * r + j is byte 4 * k + j of row 16 g + r's qs (k, j 0..3), so
 * a 64-byte load holds one nibble dword of every row (its low nibbles are
 * elements 4k..4k+3, its high ones 16+4k..); then 16 fp16 scales, word r
 * row 16 g + r's d. Same bytes as the file, moved: the packed copy is
 * exactly as large as the rows it replaces.
 * q8_0: block b is 512 level bytes, where byte 64 * k + 4 * r + j is
 * qs[4 * k + j] of row 16 g + r XOR 0x80 (k 0..7, j 0..3: the level + 128
 * as an unsigned byte, what vpdpbusd multiplies), then the 16 fp16 scales
 * as for q4_0: 544 bytes, again the size of the rows it replaces. A 64-byte
 * load holds level dword k of every row, whose dot with x's dword k is
 * lane k's partial of q8_0's canonical order: the 8 lanes of 16 rows are
 * 8 registers, and each int -> float conversion and fma serves 16 rows. */
#define MH_REPACK_ROWS 16

/* Bytes of the packed copy of a (rows, n) weight of type t; 0 when t has
 * no packed layout (q4_0 and q8_0 have one) or the shape cannot be packed
 * (n not a multiple of 32, fewer than 16 rows). */
size_t mh_repack_bytes(mh_dtype t, int64_t rows, int64_t n);
/* Whether a loader should pack such a weight at the level in force: the
 * SIMD levels gain from it; the ref level reads the file layout as fast. */
bool mh_repack_wanted(mh_dtype t, int64_t rows, int64_t n);
/* src (rows, n) in the file layout -> dst (mh_repack_bytes(t, rows, n)
 * bytes, caller-owned). MH_EINVAL when the shape cannot be packed. Runs on
 * the thread pool (page faults of a mapped src included). */
int mh_repack_pack(mh_dtype t, const void *src, int64_t rows, int64_t n, void *dst);

/* ===== kernels ===== */

/* What the packed kernels read of one activation block (q8_0): -8 times
 * the sum of its int8 levels (the q4_0 levels are stored + 8) and its f32
 * scale. Exact: the int32 block dots come out as those of the plain code. */
typedef struct mh_repack_xsum { int32_t corr; float d; } mh_repack_xsum;
/* The same for packed q8_0 weights (levels stored + 128): -128 times the
 * sum of each of the block's 8 level dwords (kernels that multiply signed
 * levels ignore them) and the f32 scale. */
typedef struct mh_repack_xsum8 { int32_t corr[8]; float d; } mh_repack_xsum8;

/* y[c * ldy + 16 g + r] = dot(row 16 g + r, x row c) for g < G groups
 * starting at wp, c < C tokens; x: (C, x_row) q8_0 rows, xs: (C, n / 32)
 * their block summaries (mh_repack_xsum_row). */
typedef void (*mh_repack_gemm_fn)(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x,
                                  size_t x_row, const mh_repack_xsum *xs, int64_t C, float *y,
                                  int64_t ldy);
/* The same for packed q8_0 groups. */
typedef void (*mh_repack_gemm8_fn)(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x,
                                   size_t x_row, const mh_repack_xsum8 *xs, int64_t C, float *y,
                                   int64_t ldy);

/* One level's packed kernels; the tail rows and the activation quantizer
 * take the same level's plain traits (mh_quant_traits_for). */
typedef struct mh_repack_kernels {
    const char *name;               /* "ref", "avx2", "avx512", "avx512-vnni" */
    mh_repack_gemm_fn gemm;         /* q4_0 */
    mh_repack_gemm8_fn gemm_q8_0;
    mh_cpu_level level;
    bool vnni;
} mh_repack_kernels;

/* The kernels of a level (clamped to this CPU; vnni only counts at
 * AVX-512 on a CPU that has it). Static storage. */
const mh_repack_kernels *mh_repack_kernels_for(mh_cpu_level level, bool vnni);
/* Those of the level in force (VNNI when the CPU has it). */
const mh_repack_kernels *mh_repack_kernels_get(void);

/* xs (n / 32) for one q8_0 row x (n elements): for q4_0, for q8_0 weights. */
void mh_repack_xsum_row(const void *x, int64_t n, mh_repack_xsum *xs);
void mh_repack_xsum8_row(const void *x, int64_t n, mh_repack_xsum8 *xs);

/* y (T, rows) = x (T, n) . W^T for a q4_0 or q8_0 (t) W whose packed
 * groups are at packed and whose file-layout bytes (all rows; the tail
 * ones are read) are at data. Quantizes x once (in parallel for T > 1), then runs groups
 * of rows on the thread pool. MH_EINVAL for shapes mh_repack_bytes rejects,
 * MH_ENOMEM when the activation scratch cannot be had. */
int mh_repack_linear(const mh_repack_kernels *k, mh_dtype t, const void *packed, const void *data,
                     int64_t rows, int64_t n, const float *x, int64_t T, float *y);

#endif
