/* dtype.h: element types and their traits (block size, bytes per block, name).
 * Layer: engine/base. Quantized block types share the same storage model:
 * a row of n elements takes n / block_size * type_size bytes. */
#ifndef MH_DTYPE_H
#define MH_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum mh_dtype {
    MH_DTYPE_F32 = 0,
    MH_DTYPE_F16,
    MH_DTYPE_BF16,
    MH_DTYPE_I32,
    MH_DTYPE_I64,
    MH_DTYPE_U8,
    MH_DTYPE_I8,
    /* quantized block types (GGUF layouts) */
    MH_DTYPE_Q8_0,
    MH_DTYPE_Q4_0,
    MH_DTYPE_Q4_1,
    MH_DTYPE_Q5_0,
    MH_DTYPE_Q5_1,
    MH_DTYPE_Q2_K,
    MH_DTYPE_Q3_K,
    MH_DTYPE_Q4_K,
    MH_DTYPE_Q5_K,
    MH_DTYPE_Q6_K,
    MH_DTYPE_Q8_K,
    MH_DTYPE_COUNT
} mh_dtype;

typedef struct mh_dtype_traits {
    const char *name;      /* "f32", "q4_0", ... */
    int block_size;        /* elements per block (1 for plain types) */
    size_t type_size;      /* bytes per block */
    bool is_float;         /* f32/f16/bf16 */
    bool is_quant;         /* block-quantized */
} mh_dtype_traits;

/* Traits of t; t must be < MH_DTYPE_COUNT. */
const mh_dtype_traits *mh_dtype_info(mh_dtype t);
/* Parses "f32", "F16", "q8_0"...; returns -1 when unknown. */
int mh_dtype_from_name(const char *name);
/* Bytes taken by n elements of t (n a multiple of the block size). */
size_t mh_dtype_row_size(mh_dtype t, int64_t n);

/* ===== half-precision conversions (exact, round-to-nearest-even) ===== */
float mh_f16_to_f32(uint16_t h);
uint16_t mh_f32_to_f16(float f);
float mh_bf16_to_f32(uint16_t h);
uint16_t mh_f32_to_bf16(float f);

#endif
