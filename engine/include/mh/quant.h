/* quant.h: GGUF quantized block layouts, row (de)quantization and the
 * per-dtype kernel trait table (to_float, from_float, vec_dot).
 * Layer: engine/kernels (pure C11). Kernels are chosen once per dtype and
 * CPU level through mh_quant_traits_get(), ggml's type_traits_cpu idea. */
#ifndef MH_QUANT_H
#define MH_QUANT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include "mh/cpu.h"
#include "mh/dtype.h"

#define MH_QK 32     /* elements per block of the legacy types */
#define MH_QK_K 256  /* elements per super-block of the k-quants */
#define MH_K_SCALE_SIZE 12

/* ===== block layouts (byte-exact GGUF; fp16 fields stored as raw bits) ===== */

typedef struct { uint16_t d; int8_t qs[MH_QK]; } mh_block_q8_0;              /* 8.5 bpw */
typedef struct { uint16_t d; uint8_t qs[MH_QK / 2]; } mh_block_q4_0;         /* 4.5 bpw */
typedef struct { uint16_t d, m; uint8_t qs[MH_QK / 2]; } mh_block_q4_1;      /* 5.0 bpw */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[MH_QK / 2]; } mh_block_q5_0;   /* 5.5 */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[MH_QK / 2]; } mh_block_q5_1; /* 6.0 */

/* 16 groups of 16: 2-bit quants, 4-bit scale (low) and min (high) per group */
typedef struct {
    uint8_t scales[MH_QK_K / 16];
    uint8_t qs[MH_QK_K / 4];
    uint16_t d, dmin;
} mh_block_q2_K;                                                          /* 2.625 bpw */

/* 16 groups of 16: 2 low bits in qs, high bit in hmask, 6-bit signed scales */
typedef struct {
    uint8_t hmask[MH_QK_K / 8];
    uint8_t qs[MH_QK_K / 4];
    uint8_t scales[MH_K_SCALE_SIZE];
    uint16_t d;
} mh_block_q3_K;                                                          /* 3.4375 bpw */

/* 8 groups of 32: 4-bit quants, 6-bit scale and min per group */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[MH_K_SCALE_SIZE];
    uint8_t qs[MH_QK_K / 2];
} mh_block_q4_K;                                                          /* 4.5 bpw */

/* as q4_K plus a fifth bit per weight in qh */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[MH_K_SCALE_SIZE];
    uint8_t qh[MH_QK_K / 8];
    uint8_t qs[MH_QK_K / 2];
} mh_block_q5_K;                                                          /* 5.5 bpw */

/* 16 groups of 16: 4 low bits in ql, 2 high bits in qh, int8 scales */
typedef struct {
    uint8_t ql[MH_QK_K / 2];
    uint8_t qh[MH_QK_K / 4];
    int8_t scales[MH_QK_K / 16];
    uint16_t d;
} mh_block_q6_K;                                                          /* 6.5625 bpw */

/* activation type for the k-quant dot products: f32 scale, int8 quants and
 * the sum of each group of 16 (lets kernels fold the mins in cheaply) */
typedef struct {
    float d;
    int8_t qs[MH_QK_K];
    int16_t bsums[MH_QK_K / 16];
} mh_block_q8_K;

static_assert(sizeof(mh_block_q8_0) == 34, "q8_0 block size");
static_assert(sizeof(mh_block_q4_0) == 18, "q4_0 block size");
static_assert(sizeof(mh_block_q4_1) == 20, "q4_1 block size");
static_assert(sizeof(mh_block_q5_0) == 22, "q5_0 block size");
static_assert(sizeof(mh_block_q5_1) == 24, "q5_1 block size");
static_assert(sizeof(mh_block_q2_K) == 84, "q2_K block size");
static_assert(sizeof(mh_block_q3_K) == 110, "q3_K block size");
static_assert(sizeof(mh_block_q4_K) == 144, "q4_K block size");
static_assert(sizeof(mh_block_q5_K) == 176, "q5_K block size");
static_assert(sizeof(mh_block_q6_K) == 210, "q6_K block size");
static_assert(sizeof(mh_block_q8_K) == 292, "q8_K block size");

/* ===== kernel trait table ===== */

/* src: (n) elements of the dtype -> dst: (n) f32 */
typedef void (*mh_to_float_fn)(const void *src, float *dst, int64_t n);
/* src: (n) f32 -> dst: n / block_size blocks */
typedef void (*mh_from_float_fn)(const float *src, void *dst, int64_t n);
/* *out = dot(w, x) over n elements; w: one row of the weight dtype,
 * x: the activation already converted to the trait's vec_dot_type */
typedef void (*mh_vec_dot_fn)(int64_t n, const void *w, const void *x, float *out);
/* Tiled product of R weight rows and C activation rows (prompt processing):
 * y[c * ldy + r] = dot(w row r, x row c) for r < R, c < C, equal to the
 * level's vec_dot per pair (same per-block order). w: (R, n) in the weight
 * dtype, rows w_row bytes apart; x: (C, n) in vec_dot_type, rows x_row bytes
 * apart; y: (C, ldy) f32, ldy >= R. Any R, C >= 0 (edge tiles inside). */
typedef void (*mh_gemm_fn)(int64_t n, const void *w, size_t w_row, int64_t R,
                           const void *x, size_t x_row, int64_t C, float *y, int64_t ldy);
/* One activation against R weight rows (the matvec of token generation):
 * y[r] = dot(w row r, x) for r < R, bit for bit the level's vec_dot per row.
 * w: (R, n) rows w_row bytes apart; x: (n) in vec_dot_type; y: (R). Rows go
 * several at a time, sharing the activation loads. */
typedef void (*mh_vec_dot_rows_fn)(int64_t n, const void *w, size_t w_row, int64_t R,
                                   const void *x, float *y);

typedef struct mh_quant_traits {
    mh_to_float_fn to_float;      /* NULL: not a float-convertible type */
    mh_from_float_fn from_float;  /* NULL: no quantizer for this type */
    mh_vec_dot_fn vec_dot;        /* NULL: not usable as a matvec weight */
    mh_dtype vec_dot_type;        /* what x must be converted to for vec_dot */
    mh_gemm_fn gemm;              /* NULL: multi-token callers loop vec_dot */
    mh_vec_dot_rows_fn vec_dot_rows;   /* NULL: the matvec loops vec_dot */
} mh_quant_traits;

/* Kernels for t at the level in force (mh_cpu_level_get()); never NULL
 * (types without kernels get a record of NULLs). Static storage. */
const mh_quant_traits *mh_quant_traits_get(mh_dtype t);
/* Kernels for t at a given level (clamped to what this CPU runs); tests
 * use it to compare paths. At MH_CPU_AVX512 the VNNI variants are used
 * when mh_cpu_has_avx512_vnni(). */
const mh_quant_traits *mh_quant_traits_for(mh_dtype t, mh_cpu_level level);
/* Like mh_quant_traits_for(t, MH_CPU_AVX512) with VNNI forced off; the
 * plain AVX-512 table when the CPU has no VNNI anyway. For tests. */
const mh_quant_traits *mh_quant_traits_avx512_novnni(mh_dtype t);

/* ===== row conversions ===== */

/* src: (n) elements of t -> dst: (n) f32. Bit-exact to the GGUF format
 * definitions. MH_EINVAL when n is negative or not a multiple of the block
 * size, MH_ETYPE when t has no dequantizer. Borrows both buffers. */
int mh_dequantize_row(mh_dtype t, const void *src, float *dst, int64_t n);
/* src: (n) f32 -> dst: mh_dtype_row_size(t, n) bytes. Supported: f32, f16,
 * bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K, q8_K (reference
 * quantizers, no importance matrix). Same statuses as above. */
int mh_quantize_row(mh_dtype t, const float *src, void *dst, int64_t n);

/* y: (rows) = w: (rows, n) of dtype t  @  x: (n) f32. Quantizes x once to
 * the trait's vec_dot_type and runs the rows on the thread pool.
 * MH_EINVAL for bad sizes, MH_ETYPE when t has no vec_dot, MH_ENOMEM. */
int mh_quant_matvec(mh_dtype t, const void *w, int64_t rows, int64_t n,
                    const float *x, float *y);

/* One x against several weights of n columns (a layer's q, k and v; its
 * gate and up): y of part i (rows) = its w (rows, n) @ x (n), x quantized
 * once and every part's rows in one pool job, bit for bit what
 * mh_quant_matvec gives each part. The parts' types must share a
 * vec_dot_type (MH_EINVAL otherwise); same statuses as above. */
#define MH_MATVEC_PARTS_MAX 4
typedef struct mh_matvec_part {
    mh_dtype type;
    const void *w;      /* (rows, n), borrowed */
    int64_t rows;
    float *y;           /* (rows), written */
} mh_matvec_part;
int mh_quant_matvec_multi(const mh_matvec_part *parts, int n_parts, int64_t n, const float *x);

#endif
