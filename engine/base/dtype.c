/* dtype.c: element type traits and exact half-precision conversions.
 * Layer: engine/base (pure C11, no dependencies). Quantized block sizes and
 * byte counts follow the GGUF/ggml layouts; their (de)quantization lives in
 * engine/kernels/quant*.c. */
#include <string.h>
#include <strings.h>
#include "mh/dtype.h"

static const mh_dtype_traits g_traits[MH_DTYPE_COUNT] = {
    [MH_DTYPE_F32]  = {"f32", 1, 4, true, false},
    [MH_DTYPE_F16]  = {"f16", 1, 2, true, false},
    [MH_DTYPE_BF16] = {"bf16", 1, 2, true, false},
    [MH_DTYPE_I32]  = {"i32", 1, 4, false, false},
    [MH_DTYPE_I64]  = {"i64", 1, 8, false, false},
    [MH_DTYPE_U8]   = {"u8", 1, 1, false, false},
    [MH_DTYPE_I8]   = {"i8", 1, 1, false, false},
    [MH_DTYPE_Q8_0] = {"q8_0", 32, 34, false, true},
    [MH_DTYPE_Q4_0] = {"q4_0", 32, 18, false, true},
    [MH_DTYPE_Q4_1] = {"q4_1", 32, 20, false, true},
    [MH_DTYPE_Q5_0] = {"q5_0", 32, 22, false, true},
    [MH_DTYPE_Q5_1] = {"q5_1", 32, 24, false, true},
    [MH_DTYPE_Q2_K] = {"q2_k", 256, 84, false, true},
    [MH_DTYPE_Q3_K] = {"q3_k", 256, 110, false, true},
    [MH_DTYPE_Q4_K] = {"q4_k", 256, 144, false, true},
    [MH_DTYPE_Q5_K] = {"q5_k", 256, 176, false, true},
    [MH_DTYPE_Q6_K] = {"q6_k", 256, 210, false, true},
    [MH_DTYPE_Q8_K] = {"q8_k", 256, 292, false, true},
};

const mh_dtype_traits *mh_dtype_info(mh_dtype t)
{
    /* out-of-range input gets f32's traits rather than a wild read */
    return (unsigned)t < MH_DTYPE_COUNT ? &g_traits[t] : &g_traits[MH_DTYPE_F32];
}

int mh_dtype_from_name(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < MH_DTYPE_COUNT; i++)
        if (!strcasecmp(name, g_traits[i].name)) return i;
    /* common aliases */
    if (!strcasecmp(name, "float") || !strcasecmp(name, "float32")) return MH_DTYPE_F32;
    if (!strcasecmp(name, "half") || !strcasecmp(name, "float16")) return MH_DTYPE_F16;
    if (!strcasecmp(name, "bfloat16")) return MH_DTYPE_BF16;
    if (!strcasecmp(name, "int32")) return MH_DTYPE_I32;
    if (!strcasecmp(name, "int64") || !strcasecmp(name, "long")) return MH_DTYPE_I64;
    if (!strcasecmp(name, "uint8") || !strcasecmp(name, "bool")) return MH_DTYPE_U8;
    if (!strcasecmp(name, "int8")) return MH_DTYPE_I8;
    return -1;
}

size_t mh_dtype_row_size(mh_dtype t, int64_t n)
{
    const mh_dtype_traits *tr = mh_dtype_info(t);
    if (n <= 0) return 0;
    return (size_t)(n / tr->block_size) * tr->type_size;
}

/* ===== half-precision conversions ===== */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float mh_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)                       /* inf / nan (quiet, payload kept, as F16C) */
        return u2f(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        /* subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * u2f(0x33800000u);   /* 2^-24 */
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t mh_f32_to_f16(float f)
{
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)                  /* inf or nan (nan stays quiet) */
        return sign | (a > 0x7f800000u ? (uint16_t)(0x7e00 | ((a >> 13) & 0x3ff)) : 0x7c00);
    if (a >= 0x477ff000u) return sign | 0x7c00;   /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                 /* below 2^-14: f16 subnormal or zero */
        if (a < 0x33000000u) return sign;  /* < 2^-25 rounds to zero */
        uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
        int shift = 126 - (int)e;          /* man bits dropped: 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = ((a >> 13) - (112u << 10));   /* rebias exponent, keep 10 bits */
    uint32_t rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;  /* carry may bump exp: fine */
    return sign | (uint16_t)r;
}

float mh_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t mh_f32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)   /* nan: truncate and force quiet */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);        /* round to nearest even */
    return (uint16_t)(u >> 16);
}
