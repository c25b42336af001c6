/* quant_dot.c: scalar reference vec-dot kernels, one per weight dtype:
 * float weights against f32 x, the 32-blocks against q8_0 x, the k-quants
 * against q8_K x. Layer: engine/kernels (pure C11). Each block is first
 * unpacked to its integer levels in element order, then dotted in integer
 * arithmetic: slow but plainly correct, the yardstick for the SIMD ones.
 * The types with SIMD twins sum their floats in the canonical lane order of
 * quant_kernels.h, so every level returns the very same bits. */
#include <math.h>
#include <stdbool.h>
#include "quant_kernels.h"

#define F16(h) mh_f16_to_f32(h)

/* ===== float weights ===== */

void mh_k_vec_dot_f32_ref(int64_t n, const void *w, const void *x, float *out)
{
    const float *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    *out = s;
}

void mh_k_vec_dot_f16_ref(int64_t n, const void *w, const void *x, float *out)
{
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += F16(a[i]) * b[i];
    *out = s;
}

void mh_k_vec_dot_bf16_ref(int64_t n, const void *w, const void *x, float *out)
{
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += mh_bf16_to_f32(a[i]) * b[i];
    *out = s;
}

/* ===== 32-element blocks against q8_0 ===== */

static int idot32(const int8_t *a, const int8_t *b)
{
    int s = 0;
    for (int j = 0; j < MH_QK; j++) s += a[j] * b[j];
    return s;
}

static int isum32(const int8_t *b)
{
    int s = 0;
    for (int j = 0; j < MH_QK; j++) s += b[j];
    return s;
}

/* exact sum of q * x over the 4 elements at e */
static int dot4(const int8_t *q, const int8_t *x, int e)
{
    return q[e] * x[e] + q[e + 1] * x[e + 1] + q[e + 2] * x[e + 2] + q[e + 3] * x[e + 3];
}

/* canonical order of the 32-blocks (ggml's): every block feeds 8 lanes in
 * block order, lane l with the partial of elements 4l..4l+3, scaled by
 * d_w * d_x */
static void acc_block32(float acc[8], const int8_t *q, const int8_t *x, float d)
{
    for (int l = 0; l < 8; l++) acc[l] = fmaf((float)dot4(q, x, 4 * l), d, acc[l]);
}

void mh_k_vec_dot_q8_0_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q8_0 *a = w, *b = x;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / MH_QK; i++)
        acc_block32(acc, a[i].qs, b[i].qs, F16(a[i].d) * F16(b[i].d));
    *out = mh_k_lanes_sum8(acc);
}

/* 4-bit levels of a 16-byte nibble array in element order, minus bias */
static void unpack_nibbles(const uint8_t qs[16], int bias, int8_t q[MH_QK])
{
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((qs[j] & 0xF) - bias);
        q[j + 16] = (int8_t)((qs[j] >> 4) - bias);
    }
}

/* 5-bit levels: nibbles plus bit j of qh as bit 4, minus bias */
static void unpack_q5(const uint8_t qs[16], const uint8_t qh[4], int bias, int8_t q[MH_QK])
{
    unpack_nibbles(qs, 0, q);
    for (int j = 0; j < MH_QK; j++)
        q[j] = (int8_t)(q[j] + ((qh[j / 8] >> (j % 8)) & 1) * 16 - bias);
}

/* q4_0 takes the order of llama.cpp's repacked q4_0 matmul, which its x86
 * build runs every q4_0 weight through: each block's whole int32 dot, then
 * one fused multiply-add per block into a single float */
void mh_k_vec_dot_q4_0_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q4_0 *a = w;
    const mh_block_q8_0 *b = x;
    int8_t q[MH_QK];
    float acc = 0.0f;
    for (int64_t i = 0; i < n / MH_QK; i++) {
        unpack_nibbles(a[i].qs, 8, q);
        acc = fmaf((float)idot32(q, b[i].qs), F16(a[i].d) * F16(b[i].d), acc);
    }
    *out = acc;
}

void mh_k_vec_dot_q4_1_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q4_1 *a = w;
    const mh_block_q8_0 *b = x;
    int8_t q[MH_QK];
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK; i++) {
        const float dx = F16(b[i].d);
        unpack_nibbles(a[i].qs, 0, q);
        s += idot32(q, b[i].qs) * (F16(a[i].d) * dx) + F16(a[i].m) * (isum32(b[i].qs) * dx);
    }
    *out = s;
}

void mh_k_vec_dot_q5_0_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q5_0 *a = w;
    const mh_block_q8_0 *b = x;
    int8_t q[MH_QK];
    float acc[8] = {0};
    for (int64_t i = 0; i < n / MH_QK; i++) {
        unpack_q5(a[i].qs, a[i].qh, 16, q);
        acc_block32(acc, q, b[i].qs, F16(a[i].d) * F16(b[i].d));
    }
    *out = mh_k_lanes_sum8(acc);
}

void mh_k_vec_dot_q5_1_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q5_1 *a = w;
    const mh_block_q8_0 *b = x;
    int8_t q[MH_QK];
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK; i++) {
        const float dx = F16(b[i].d);
        unpack_q5(a[i].qs, a[i].qh, 0, q);
        s += idot32(q, b[i].qs) * (F16(a[i].d) * dx) + F16(a[i].m) * (isum32(b[i].qs) * dx);
    }
    *out = s;
}

/* ===== k-quants against q8_K ===== */

/* sum over group g of gsize elements of q * x */
static int idot_group(const int8_t *q, const int8_t *x, int g, int gsize)
{
    int s = 0;
    for (int l = g * gsize; l < (g + 1) * gsize; l++) s += q[l] * x[l];
    return s;
}

void mh_k_vec_dot_q2_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q2_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        int k = 0;   /* element order: 2 halves x 4 shifts x 32 bytes */
        for (int half = 0; half < 2; half++)
            for (int shift = 0; shift < 8; shift += 2)
                for (int l = 0; l < 32; l++) q[k++] = (int8_t)((a[i].qs[32 * half + l] >> shift) & 3);
        int isum = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            isum += (a[i].scales[g] & 0xF) * idot_group(q, b[i].qs, g, 16);
            summ += (a[i].scales[g] >> 4) * b[i].bsums[g];
        }
        s += b[i].d * F16(a[i].d) * isum - b[i].d * F16(a[i].dmin) * summ;
    }
    *out = s;
}

void mh_k_vec_dot_q3_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q3_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        int k = 0, bit = 0;
        for (int half = 0; half < 2; half++)
            for (int shift = 0; shift < 8; shift += 2, bit++)
                for (int l = 0; l < 32; l++)
                    q[k++] = (int8_t)(((a[i].qs[32 * half + l] >> shift) & 3) -
                                      ((a[i].hmask[l] >> bit) & 1 ? 0 : 4));
        int isum = 0;
        for (int g = 0; g < 16; g++) {   /* 6-bit scales, biased by 32 */
            int low = g < 8 ? (a[i].scales[g] & 0xF) : (a[i].scales[g - 8] >> 4);
            int high = (a[i].scales[8 + (g & 3)] >> (2 * (g >> 2))) & 3;
            isum += ((low | high << 4) - 32) * idot_group(q, b[i].qs, g, 16);
        }
        s += b[i].d * F16(a[i].d) * isum;
    }
    *out = s;
}

/* q4_K (nbits 4) and q5_K (nbits 5): 8 groups of 32 with 6-bit scale/min,
 * in the canonical order of quant_kernels.h: 8 lanes of scaled 4-element
 * partials, exact in int32, one fmaf per lane and super-block; the mins
 * m_2k (bsums 4k, 4k+1) + m_2k+1 (bsums 4k+2, 4k+3) in 4 lanes of their own
 * (q4_K), or summed into mins[0] (q5_K, one_min), scaled by -(d_x * dmin) */
static void acc_q45_K_block(float acc[8], float mins[4], bool one_min, const uint8_t scales[12],
                            uint16_t d, uint16_t dmin, const int8_t *q, const mh_block_q8_K *b)
{
    uint8_t sc[16];
    int lane[8] = {0}, mm[4];
    mh_k_scales_mins_k4(scales, sc);
    for (int g = 0; g < 8; g++)
        for (int l = 0; l < 8; l++) lane[l] += sc[g] * dot4(q, b->qs, 32 * g + 4 * l);
    const float dd = b->d * F16(d), dm = -(b->d * F16(dmin));
    for (int l = 0; l < 8; l++) acc[l] = fmaf((float)lane[l], dd, acc[l]);
    const int16_t *bs = b->bsums;
    for (int k = 0; k < 4; k++)
        mm[k] = sc[8 + 2 * k] * (bs[4 * k] + bs[4 * k + 1]) + sc[9 + 2 * k] * (bs[4 * k + 2] + bs[4 * k + 3]);
    if (one_min) {
        mins[0] = fmaf((float)(mm[0] + mm[1] + mm[2] + mm[3]), dm, mins[0]);
        return;
    }
    for (int k = 0; k < 4; k++) mins[k] = fmaf((float)mm[k], dm, mins[k]);
}

void mh_k_vec_dot_q4_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q4_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float acc[8] = {0}, mins[4] = {0};
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                q[64 * j + l] = (int8_t)(a[i].qs[32 * j + l] & 0xF);
                q[64 * j + 32 + l] = (int8_t)(a[i].qs[32 * j + l] >> 4);
            }
        acc_q45_K_block(acc, mins, false, a[i].scales, a[i].d, a[i].dmin, q, &b[i]);
    }
    *out = mh_k_lanes_sum8(acc) + mh_k_lanes_sum4(mins);
}

void mh_k_vec_dot_q5_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q5_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float acc[8] = {0}, mins[4] = {0};
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                const uint8_t h = a[i].qh[l];
                q[64 * j + l] = (int8_t)((a[i].qs[32 * j + l] & 0xF) | ((h >> (2 * j)) & 1) << 4);
                q[64 * j + 32 + l] = (int8_t)((a[i].qs[32 * j + l] >> 4) | ((h >> (2 * j + 1)) & 1) << 4);
            }
        acc_q45_K_block(acc, mins, true, a[i].scales, a[i].d, a[i].dmin, q, &b[i]);
    }
    *out = mh_k_lanes_sum8(acc) + mins[0];
}

/* q6_K canonical order: signed levels q - 32 (-32..31); lane l sums sc_g *
 * partial(e) over the elements e with (e / 4) % 8 == l, exact in int32;
 * one fmaf per lane and super-block with d_x * d_w */
void mh_k_vec_dot_q6_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q6_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float acc[8] = {0};
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = a[i].ql + 64 * half, *qh = a[i].qh + 32 * half;
            int8_t *o = q + 128 * half;
            for (int l = 0; l < 32; l++) {
                o[l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32);
                o[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32);
                o[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
                o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
            }
        }
        int lane[8] = {0};
        for (int e = 0; e < MH_QK_K; e += 4) lane[(e / 4) % 8] += a[i].scales[e / 16] * dot4(q, b[i].qs, e);
        const float d = b[i].d * F16(a[i].d);
        for (int l = 0; l < 8; l++) acc[l] = fmaf((float)lane[l], d, acc[l]);
    }
    *out = mh_k_lanes_sum8(acc);
}
