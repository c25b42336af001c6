/* quant_kernels.h: private declarations of the quantization kernels that
 * the trait table in quant_traits.c wires together. Layer: engine/kernels.
 * Names: mh_k_<op>_<dtype>_<isa>; the _ref ones are always built, the
 * _avx2 / _avx512 ones live in files compiled for that ISA only. */
#ifndef MH_QUANT_KERNELS_H
#define MH_QUANT_KERNELS_H

#include <string.h>
#include "mh/quant.h"

/* ===== dequantize (quant_blocks.c): src (n) -> dst (n) f32 ===== */
void mh_k_dequant_f32_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_f16_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_bf16_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q8_0_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q4_0_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q4_1_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q5_0_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q5_1_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q2_K_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q3_K_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q4_K_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q5_K_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q6_K_ref(const void *src, float *dst, int64_t n);
void mh_k_dequant_q8_K_ref(const void *src, float *dst, int64_t n);

/* 6-bit scale and min j (0..7) of a q4_K / q5_K scales[12] array */
static inline void mh_k_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* All 8 scales (out[0..7]) and mins (out[8..15]) at once, by 32-bit
 * word operations: same result as mh_k_scale_min_k4, for the SIMD loops. */
static inline void mh_k_scales_mins_k4(const uint8_t q[12], uint8_t out[16])
{
    const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
    uint32_t u[3], r[4];
    memcpy(u, q, 12);
    r[0] = u[0] & km1;
    r[1] = (u[2] & km2) | (((u[0] >> 6) & km3) << 4);
    r[2] = u[1] & km1;
    r[3] = ((u[2] >> 4) & km2) | (((u[1] >> 6) & km3) << 4);
    memcpy(out, r, 16);
}

/* ===== the canonical float order of the integer-quant dots =====
 * Every level (ref, avx2, avx512, avx512-vnni) gives bit-identical dots for
 * q8_0, q4_0, q5_0, q4_K, q5_K and q6_K (docs/quantization.md, section
 * "Determinism"), and these are the bits of llama.cpp's x86 CPU backend
 * (ggml's AVX2 kernels, which its AVX-512 builds run too), so prompts match
 * its logits bit for bit up to attention. Exact int32 partials go to float
 * and into 8 float lanes with one fused multiply-add each,
 * fmaf(partial, scale, acc[lane]), in block order; the lanes end in ggml's
 * hsum_float_8 tree (mh_k_lanes_sum8).
 * - q8_0, q5_0: lane l gets the partial of elements 4l..4l+3 of each
 *   block, scale d_w * d_x, one fmaf per block.
 * - q4_0: llama.cpp runs it through its repacked q4_0_8x8 matmul instead:
 *   each block's whole int32 dot, then one fmaf per block into one float
 *   (no lanes, no tree).
 * - k-quants: lane l gets, exact in int32, the sum over the super-block of
 *   sc(e) * q(e) * x(e) for the elements e with (e / 4) % 8 == l (q6_K with
 *   its signed levels q - 32), scale d_x * d_w, one fmaf per super-block.
 *   q4_K's mins take 4 lanes of their own: lane k gets m_2k (bsums 4k +
 *   4k+1) + m_2k+1 (bsums 4k+2 + 4k+3), scale -(d_x * dmin), summed as
 *   (k0 + k2) + (k1 + k3) and added to the lane sum last. q5_K's mins are
 *   one float: fmaf(sum_j m_j (bsums 2j + 2j+1), -(d_x * dmin), s), added
 *   last. */
/* 8 lanes in ggml's hsum_float_8 tree: halves, pairs, one */
static inline float mh_k_lanes_sum8(const float a[8])
{
    const float t0 = a[0] + a[4], t1 = a[1] + a[5], t2 = a[2] + a[6], t3 = a[3] + a[7];
    return (t0 + t2) + (t1 + t3);
}

/* 16 lanes in ggml's _mm512_reduce_add_ps tree: l + (l + 8), then the 8-lane
 * tree (the f16/f32 attention sums of kernels_llama_*) */
static inline float mh_k_lanes_sum16(const float a[16])
{
    float t[8];
    for (int l = 0; l < 8; l++) t[l] = a[l] + a[l + 8];
    return mh_k_lanes_sum8(t);
}

/* ggml vec_dot_f16's 4 x 16 accumulators: (0 + 2) + (1 + 3) per lane, then
 * the 16-lane tree */
static inline float mh_k_lanes_sum64(const float a[64])
{
    float c[16];
    for (int l = 0; l < 16; l++) c[l] = (a[l] + a[32 + l]) + (a[16 + l] + a[48 + l]);
    return mh_k_lanes_sum16(c);
}

/* q4_K's 4 min lanes: (k0 + k2) + (k1 + k3), as ggml's 128-bit tail */
static inline float mh_k_lanes_sum4(const float m[4]) { return (m[0] + m[2]) + (m[1] + m[3]); }

/* ===== quantize (quant_quantize.c): src (n) f32 -> blocks ===== */
void mh_k_quant_f32_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_f16_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_bf16_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q8_0_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q4_0_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q4_1_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q5_0_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q5_1_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q4_K_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q5_K_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q6_K_ref(const float *src, void *dst, int64_t n);
void mh_k_quant_q8_K_ref(const float *src, void *dst, int64_t n);
/* q8_0 for activations: ggml's x86 rounding (127/amax, ties to even) */
void mh_k_quant_q8_0_act_ref(const float *src, void *dst, int64_t n);
/* bit-identical SIMD twins of the activation quantizers (quant_gemm_avx512.c) */
void mh_k_quant_q8_0_act_avx512(const float *src, void *dst, int64_t n);
void mh_k_quant_q8_K_avx512(const float *src, void *dst, int64_t n);

/* ===== vec dot (quant_dot*.c): *out = w (n) . x (n) ===== */
#define MH_K_DOT(name) void name(int64_t n, const void *w, const void *x, float *out)
MH_K_DOT(mh_k_vec_dot_f32_ref);
MH_K_DOT(mh_k_vec_dot_f16_ref);
MH_K_DOT(mh_k_vec_dot_bf16_ref);
MH_K_DOT(mh_k_vec_dot_q8_0_ref);
MH_K_DOT(mh_k_vec_dot_q4_0_ref);
MH_K_DOT(mh_k_vec_dot_q4_1_ref);
MH_K_DOT(mh_k_vec_dot_q5_0_ref);
MH_K_DOT(mh_k_vec_dot_q5_1_ref);
MH_K_DOT(mh_k_vec_dot_q2_K_ref);
MH_K_DOT(mh_k_vec_dot_q3_K_ref);
MH_K_DOT(mh_k_vec_dot_q4_K_ref);
MH_K_DOT(mh_k_vec_dot_q5_K_ref);
MH_K_DOT(mh_k_vec_dot_q6_K_ref);

MH_K_DOT(mh_k_vec_dot_f32_avx2);
MH_K_DOT(mh_k_vec_dot_f16_avx2);
MH_K_DOT(mh_k_vec_dot_bf16_avx2);
MH_K_DOT(mh_k_vec_dot_q8_0_avx2);
MH_K_DOT(mh_k_vec_dot_q4_0_avx2);
MH_K_DOT(mh_k_vec_dot_q4_K_avx2);
MH_K_DOT(mh_k_vec_dot_q5_K_avx2);
MH_K_DOT(mh_k_vec_dot_q6_K_avx2);

MH_K_DOT(mh_k_vec_dot_f32_avx512);
MH_K_DOT(mh_k_vec_dot_f16_avx512);
MH_K_DOT(mh_k_vec_dot_bf16_avx512);
MH_K_DOT(mh_k_vec_dot_q8_0_avx512);
MH_K_DOT(mh_k_vec_dot_q8_0_avx512vnni);
MH_K_DOT(mh_k_vec_dot_q4_0_avx512);
MH_K_DOT(mh_k_vec_dot_q4_0_avx512vnni);
MH_K_DOT(mh_k_vec_dot_q4_K_avx512);
MH_K_DOT(mh_k_vec_dot_q4_K_avx512vnni);
MH_K_DOT(mh_k_vec_dot_q6_K_avx512);
MH_K_DOT(mh_k_vec_dot_q6_K_avx512vnni);
/* q5_0 SIMD vec dots: the 1 x 1 tile of its gemm (quant_gemm_avx*.c) */
MH_K_DOT(mh_k_vec_dot_q5_0_avx2);
MH_K_DOT(mh_k_vec_dot_q5_0_avx512);
MH_K_DOT(mh_k_vec_dot_q5_0_avx512vnni);

/* ===== one activation, several rows (quant_dot_rows_*.c): y[r] = w row r . x =====
 * Bit-identical per row to the level's vec_dot (mh_vec_dot_rows_fn). */
#define MH_K_DOT_ROWS(name) void name(int64_t n, const void *w, size_t w_row, int64_t R, const void *x, float *y)
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q4_K_avx2);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q6_K_avx2);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q5_0_avx2);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q4_K_avx512);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q4_K_avx512vnni);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q6_K_avx512);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q6_K_avx512vnni);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q5_0_avx512);
MH_K_DOT_ROWS(mh_k_vec_dot_rows_q5_0_avx512vnni);

/* ===== tiled gemm (quant_gemm*.c): y (C, ldy) = x (C, n) . w (R, n)^T =====
 * The _ref ones loop the _ref vec_dot; SIMD ones match their level's
 * vec_dot bit for bit (see mh_gemm_fn in mh/quant.h). */
#define MH_K_GEMM(name) void name(int64_t n, const void *w, size_t w_row, int64_t R, \
                                  const void *x, size_t x_row, int64_t C, float *y, int64_t ldy)
MH_K_GEMM(mh_k_gemm_q8_0_ref);
MH_K_GEMM(mh_k_gemm_q4_0_ref);
MH_K_GEMM(mh_k_gemm_q5_0_ref);
MH_K_GEMM(mh_k_gemm_q4_K_ref);
MH_K_GEMM(mh_k_gemm_q6_K_ref);

MH_K_GEMM(mh_k_gemm_q8_0_avx2);
MH_K_GEMM(mh_k_gemm_q4_0_avx2);
MH_K_GEMM(mh_k_gemm_q5_0_avx2);
MH_K_GEMM(mh_k_gemm_q4_K_avx2);
MH_K_GEMM(mh_k_gemm_q6_K_avx2);

MH_K_GEMM(mh_k_gemm_q8_0_avx512);
MH_K_GEMM(mh_k_gemm_q8_0_avx512vnni);
MH_K_GEMM(mh_k_gemm_q4_0_avx512);
MH_K_GEMM(mh_k_gemm_q4_0_avx512vnni);
MH_K_GEMM(mh_k_gemm_q5_0_avx512);
MH_K_GEMM(mh_k_gemm_q5_0_avx512vnni);
MH_K_GEMM(mh_k_gemm_q4_K_avx512);
MH_K_GEMM(mh_k_gemm_q4_K_avx512vnni);
MH_K_GEMM(mh_k_gemm_q6_K_avx512);
MH_K_GEMM(mh_k_gemm_q6_K_avx512vnni);

#endif
