/* quant_dot.c: scalar reference vec-dot kernels, one per weight dtype:
 * float weights against f32 x, the 32-blocks against q8_0 x, the k-quants
 * against q8_K x. Layer: engine/kernels (pure C11). Each block is first
 * unpacked to its integer levels in element order, then dotted in integer
 * arithmetic: slow but plainly correct, the yardstick for the SIMD ones. */
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

void mh_k_vec_dot_q8_0_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q8_0 *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK; i++)
        s += idot32(a[i].qs, b[i].qs) * (F16(a[i].d) * F16(b[i].d));
    *out = s;
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

void mh_k_vec_dot_q4_0_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q4_0 *a = w;
    const mh_block_q8_0 *b = x;
    int8_t q[MH_QK];
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK; i++) {
        unpack_nibbles(a[i].qs, 8, q);
        s += idot32(q, b[i].qs) * (F16(a[i].d) * F16(b[i].d));
    }
    *out = s;
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
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK; i++) {
        unpack_q5(a[i].qs, a[i].qh, 16, q);
        s += idot32(q, b[i].qs) * (F16(a[i].d) * F16(b[i].d));
    }
    *out = s;
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

/* q4_K (nbits 4) and q5_K (nbits 5): 8 groups of 32 with 6-bit scale/min */
static float dot_q45_K_block(const uint16_t d, const uint16_t dmin, const uint8_t scales[12],
                             const int8_t *q, const mh_block_q8_K *b)
{
    int isum = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        mh_k_scale_min_k4(j, scales, &sc, &m);
        isum += sc * idot_group(q, b->qs, j, 32);
        summ += m * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
    }
    return b->d * F16(d) * isum - b->d * F16(dmin) * summ;
}

void mh_k_vec_dot_q4_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q4_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                q[64 * j + l] = (int8_t)(a[i].qs[32 * j + l] & 0xF);
                q[64 * j + 32 + l] = (int8_t)(a[i].qs[32 * j + l] >> 4);
            }
        s += dot_q45_K_block(a[i].d, a[i].dmin, a[i].scales, q, &b[i]);
    }
    *out = s;
}

void mh_k_vec_dot_q5_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q5_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float s = 0.0f;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                const uint8_t h = a[i].qh[l];
                q[64 * j + l] = (int8_t)((a[i].qs[32 * j + l] & 0xF) | ((h >> (2 * j)) & 1) << 4);
                q[64 * j + 32 + l] = (int8_t)((a[i].qs[32 * j + l] >> 4) | ((h >> (2 * j + 1)) & 1) << 4);
            }
        s += dot_q45_K_block(a[i].d, a[i].dmin, a[i].scales, q, &b[i]);
    }
    *out = s;
}

void mh_k_vec_dot_q6_K_ref(int64_t n, const void *w, const void *x, float *out)
{
    const mh_block_q6_K *a = w;
    const mh_block_q8_K *b = x;
    int8_t q[MH_QK_K];
    float s = 0.0f;
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
        int isum = 0;
        for (int g = 0; g < 16; g++) isum += a[i].scales[g] * idot_group(q, b[i].qs, g, 16);
        s += b[i].d * F16(a[i].d) * isum;
    }
    *out = s;
}
