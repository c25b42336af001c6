/* quant_blocks.c: scalar dequantization of every GGUF block type to f32.
 * Layer: engine/kernels (pure C11). The arithmetic follows the format
 * definitions operation by operation (scale products first, then the
 * quant) so the results are bit-exact with other GGUF readers. */
#include <string.h>
#include "quant_kernels.h"

#define F16(h) mh_f16_to_f32(h)

/* ===== plain float types ===== */

void mh_k_dequant_f32_ref(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void mh_k_dequant_f16_ref(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = F16(h[i]);
}

void mh_k_dequant_bf16_ref(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = mh_bf16_to_f32(h[i]);
}

/* ===== 32-element blocks ===== */

void mh_k_dequant_q8_0_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / MH_QK; i++, dst += MH_QK) {
        const float d = F16(b[i].d);
        for (int j = 0; j < MH_QK; j++) dst[j] = b[i].qs[j] * d;
    }
}

void mh_k_dequant_q4_0_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / MH_QK; i++, dst += MH_QK) {
        const float d = F16(b[i].d);
        for (int j = 0; j < MH_QK / 2; j++) {   /* low nibbles first half */
            dst[j] = ((b[i].qs[j] & 0xF) - 8) * d;
            dst[j + MH_QK / 2] = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void mh_k_dequant_q4_1_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / MH_QK; i++, dst += MH_QK) {
        const float d = F16(b[i].d), m = F16(b[i].m);
        for (int j = 0; j < MH_QK / 2; j++) {
            dst[j] = (b[i].qs[j] & 0xF) * d + m;
            dst[j + MH_QK / 2] = (b[i].qs[j] >> 4) * d + m;
        }
    }
}

/* 5th bits of a q5 block: bit j of the little-endian 32-bit qh */
static inline uint32_t q5_high_bits(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

void mh_k_dequant_q5_0_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q5_0 *b = src;
    for (int64_t i = 0; i < n / MH_QK; i++, dst += MH_QK) {
        const float d = F16(b[i].d);
        const uint32_t qh = q5_high_bits(b[i].qh);
        for (int j = 0; j < MH_QK / 2; j++) {
            int x0 = (b[i].qs[j] & 0xF) | (int)(((qh >> j) << 4) & 0x10);
            int x1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            dst[j] = (x0 - 16) * d;
            dst[j + MH_QK / 2] = (x1 - 16) * d;
        }
    }
}

void mh_k_dequant_q5_1_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q5_1 *b = src;
    for (int64_t i = 0; i < n / MH_QK; i++, dst += MH_QK) {
        const float d = F16(b[i].d), m = F16(b[i].m);
        const uint32_t qh = q5_high_bits(b[i].qh);
        for (int j = 0; j < MH_QK / 2; j++) {
            int x0 = (b[i].qs[j] & 0xF) | (int)(((qh >> j) << 4) & 0x10);
            int x1 = (b[i].qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
            dst[j] = x0 * d + m;
            dst[j + MH_QK / 2] = x1 * d + m;
        }
    }
}

/* ===== k-quants (256-element super-blocks) ===== */

void mh_k_dequant_q2_K_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q2_K *b = src;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        const float d = F16(b[i].d), min = F16(b[i].dmin);
        const uint8_t *q = b[i].qs;
        int is = 0;
        for (int half = 0; half < 2; half++, q += 32) {   /* 128 values per 32 bytes */
            for (int shift = 0; shift < 8; shift += 2) {
                for (int k = 0; k < 2; k++) {              /* two groups of 16 */
                    uint8_t sc = b[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *dst++ = dl * ((q[l + 16 * k] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* Unpacks the 16 6-bit q3_K scales (stored biased by 32) from 12 bytes. */
static void q3_K_scales(const uint8_t packed[12], int8_t out[16])
{
    for (int j = 0; j < 16; j++) {
        int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
        int high = (packed[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        out[j] = (int8_t)((low | high << 4) - 32);
    }
}

void mh_k_dequant_q3_K_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q3_K *b = src;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        const float d_all = F16(b[i].d);
        int8_t sc[16];
        q3_K_scales(b[i].scales, sc);
        const uint8_t *q = b[i].qs, *hm = b[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int k = 0; k < 2; k++) {
                    const float dl = d_all * sc[is++];
                    for (int l = 16 * k; l < 16 * k + 16; l++)
                        *dst++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
            }
        }
    }
}

void mh_k_dequant_q4_K_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q4_K *b = src;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        const float d = F16(b[i].d), min = F16(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0; j < 8; j += 2, q += 32) {   /* 64 values per 32 bytes */
            uint8_t sc, m;
            mh_k_scale_min_k4(j, b[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            mh_k_scale_min_k4(j + 1, b[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void mh_k_dequant_q5_K_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q5_K *b = src;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        const float d = F16(b[i].d), min = F16(b[i].dmin);
        const uint8_t *ql = b[i].qs, *qh = b[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            mh_k_scale_min_k4(j, b[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            mh_k_scale_min_k4(j + 1, b[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *dst++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *dst++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void mh_k_dequant_q6_K_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q6_K *b = src;
    for (int64_t i = 0; i < n / MH_QK_K; i++) {
        const float d = F16(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int half = 0; half < 2; half++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = (int)((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = (int)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = (int)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = (int)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                dst[l] = d * sc[is + 0] * q1;
                dst[l + 32] = d * sc[is + 2] * q2;
                dst[l + 64] = d * sc[is + 4] * q3;
                dst[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

void mh_k_dequant_q8_K_ref(const void *src, float *dst, int64_t n)
{
    const mh_block_q8_K *b = src;
    for (int64_t i = 0; i < n / MH_QK_K; i++, dst += MH_QK_K)
        for (int j = 0; j < MH_QK_K; j++) dst[j] = b[i].d * b[i].qs[j];
}
