/* quant_quantize.c: reference quantizers f32 -> GGUF blocks (no importance
 * matrix). Layer: engine/kernels (pure C11). The k-quants search each
 * group's scale (and min) by weighted least squares over a few candidate
 * grids, as the format's reference quantizer does, then quantize the
 * 6-bit group scales and requantize against the rounded scales. */
#include <math.h>
#include <string.h>
#include "quant_kernels.h"

#define F16(h) mh_f16_to_f32(h)
#define TO_F16(f) mh_f32_to_f16(f)
#define GROUP_MAX_EPS 1e-15f

static inline int nearest_int(float v) { return (int)lrintf(v); }   /* ties to even */
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ===== plain float types ===== */

void mh_k_quant_f32_ref(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void mh_k_quant_f16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = TO_F16(src[i]);
}

void mh_k_quant_bf16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = mh_f32_to_bf16(src[i]);
}

/* ===== 32-element blocks ===== */

void mh_k_quant_q8_0_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / MH_QK; i++, src += MH_QK) {
        float amax = 0.0f;
        for (int j = 0; j < MH_QK; j++) amax = fmaxf(amax, fabsf(src[j]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = TO_F16(d);
        for (int j = 0; j < MH_QK; j++) b[i].qs[j] = (int8_t)roundf(src[j] * id);
    }
}

/* Activations (the vec_dot_type rows of every q8_0-family matmul): scale
 * 127/amax and ties to even, as ggml's x86 quantize_row_q8_0 does. The
 * weight quantizer above (1/d, ties away) is the format's reference, whose
 * bytes `quantize` reproduces; activations must instead land on the same
 * int8 steps as llama.cpp's or a near-tie moves a whole step. */
void mh_k_quant_q8_0_act_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / MH_QK; i++, src += MH_QK) {
        float amax = 0.0f;
        for (int j = 0; j < MH_QK; j++) amax = fmaxf(amax, fabsf(src[j]));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = TO_F16(amax / 127.0f);
        for (int j = 0; j < MH_QK; j++) b[i].qs[j] = (int8_t)nearest_int(src[j] * id);
    }
}

/* value of largest magnitude, sign kept (lets the grid use the full
 * negative range: -8..7 maps the extreme to -8) */
static float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    if (amax_out) *amax_out = amax;
    return max;
}

void mh_k_quant_q4_0_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / MH_QK; i++, src += MH_QK) {
        const float max = signed_absmax(src, MH_QK, NULL);
        const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = TO_F16(d);
        for (int j = 0; j < MH_QK / 2; j++) {
            int q0 = clampi((int)(src[j] * id + 8.5f), 0, 15);
            int q1 = clampi((int)(src[j + MH_QK / 2] * id + 8.5f), 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void mh_k_quant_q4_1_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / MH_QK; i++, src += MH_QK) {
        float mn = src[0], mx = src[0];
        for (int j = 1; j < MH_QK; j++) { mn = fminf(mn, src[j]); mx = fmaxf(mx, src[j]); }
        const float d = (mx - mn) / 15.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = TO_F16(d);
        b[i].m = TO_F16(mn);
        for (int j = 0; j < MH_QK / 2; j++) {
            int q0 = clampi((int)((src[j] - mn) * id + 0.5f), 0, 15);
            int q1 = clampi((int)((src[j + MH_QK / 2] - mn) * id + 0.5f), 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* packs 32 5-bit values: low nibbles in qs, bit 4 of value j in qh bit j */
static void q5_pack(const int q[MH_QK], uint8_t qs[MH_QK / 2], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < MH_QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + MH_QK / 2] & 0xF) << 4);
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + MH_QK / 2] >> 4) & 1) << (j + MH_QK / 2);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

void mh_k_quant_q5_0_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / MH_QK; i++, src += MH_QK) {
        const float max = signed_absmax(src, MH_QK, NULL);
        const float d = max / -16.0f, id = d ? 1.0f / d : 0.0f;
        int q[MH_QK];
        for (int j = 0; j < MH_QK; j++) q[j] = clampi((int)(src[j] * id + 16.5f), 0, 31);
        b[i].d = TO_F16(d);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

void mh_k_quant_q5_1_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / MH_QK; i++, src += MH_QK) {
        float mn = src[0], mx = src[0];
        for (int j = 1; j < MH_QK; j++) { mn = fminf(mn, src[j]); mx = fmaxf(mx, src[j]); }
        const float d = (mx - mn) / 31.0f, id = d ? 1.0f / d : 0.0f;
        int q[MH_QK];
        for (int j = 0; j < MH_QK; j++) q[j] = clampi((int)((src[j] - mn) * id + 0.5f), 0, 31);
        b[i].d = TO_F16(d);
        b[i].m = TO_F16(mn);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

/* ===== k-quant scale search ===== */

/* Weighted error of x ~ scale * L + min for a given L. */
static float affine_error(int n, const float *x, const float *w, const uint8_t *L,
                          float scale, float min)
{
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        float diff = scale * L[i] + min - x[i];
        err += w[i] * diff * diff;
    }
    return err;
}

/* Fits x (n) ~ scale * L + min with L in 0..nmax, min <= 0: starts from the
 * min/max grid, then tries nstep grids of nmax + rmin + rdelta*k levels over
 * the range and keeps the weighted least-squares fit with the lowest error.
 * Returns scale, stores -min in *neg_min and the levels in L. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0], sum_w = 0.0f, sum_x = 0.0f;
    for (int i = 0; i < n; i++) {
        min = fminf(min, x[i]);
        max = fmaxf(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min), scale = 1.0f / iscale;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
    float best = affine_error(n, x, w, L, scale, min);
    uint8_t Laux[MH_QK_K];
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {   /* mins are stored as positive offsets */
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = affine_error(n, x, w, Laux, this_scale, this_min);
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

/* Symmetric fit x (n) ~ scale * (L - nmax), L in 0..2*nmax-1, trying 19 grids
 * around the absmax one and weighting by x^2 (the large values matter most). */
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *L)
{
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float best = 0.0f, scale = 0.0f;
    memset(L, nmax, (size_t)n);   /* level nmax is 0: kept if every grid degenerates */
    for (int k = 0; k <= 19; k++) {
        const int is = k == 0 ? 0 : k <= 9 ? k - 10 : k - 9;   /* 0, -9..-1, 1..9 */
        const float iscale = -(nmax + 0.1f * is) / max;
        float sumlx = 0.0f, suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 <= 0) continue;
        if (k == 0 || sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (uint8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ===== q4_K / q5_K ===== */

/* Fits the 8 groups of one super-block, stores d, dmin and the packed
 * 6-bit scales/mins, and writes the final levels L (256) against them. */
static void q45_K_block(const float *x, int nmax, float rmin, float rdelta, int nstep,
                        uint16_t *d_out, uint16_t *dmin_out, uint8_t scales[12], uint8_t *L)
{
    float sc[8], mins[8], w[32], max_sc = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) sum_x2 += xj[l] * xj[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xj[l]);
        sc[j] = fit_scale_min(32, nmax, xj, w, L + 32 * j, &mins[j], rmin, rdelta, nstep);
        max_sc = fmaxf(max_sc, sc[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    const float inv_sc = max_sc > 0 ? 63.0f / max_sc : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = clampi(nearest_int(inv_sc * sc[j]), 0, 63);
        int lm = clampi(nearest_int(inv_min * mins[j]), 0, 63);
        if (j < 4) {
            scales[j] = (uint8_t)ls;
            scales[j + 4] = (uint8_t)lm;
        } else {   /* low 4 bits in bytes 8..11, high 2 bits on top of bytes 0..7 */
            scales[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = TO_F16(max_sc / 63.0f);
    *dmin_out = TO_F16(max_min / 63.0f);
    /* requantize against the scales as the reader will see them */
    const float d = F16(*d_out), dmin = F16(*dmin_out);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        mh_k_scale_min_k4(j, scales, &s, &m);
        const float dj = d * s, dm = dmin * m;
        if (dj == 0.0f) continue;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi(nearest_int((x[32 * j + l] + dm) / dj), 0, nmax);
    }
}

void mh_k_quant_q4_K_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q4_K *b = dst;
    uint8_t L[MH_QK_K];
    for (int64_t i = 0; i < n / MH_QK_K; i++, src += MH_QK_K) {
        q45_K_block(src, 15, -1.0f, 0.1f, 20, &b[i].d, &b[i].dmin, b[i].scales, L);
        uint8_t *q = b[i].qs;
        for (int j = 0; j < MH_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

void mh_k_quant_q5_K_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q5_K *b = dst;
    uint8_t L[MH_QK_K];
    for (int64_t i = 0; i < n / MH_QK_K; i++, src += MH_QK_K) {
        q45_K_block(src, 31, -0.5f, 0.1f, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        uint8_t *ql = b[i].qs, m1 = 1, m2 = 2;
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int j = 0; j < MH_QK_K; j += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) { l1 -= 16; b[i].qh[l] |= m1; }
                if (l2 > 15) { l2 -= 16; b[i].qh[l] |= m2; }
                ql[l] = (uint8_t)(l1 | l2 << 4);
            }
        }
    }
}

/* ===== q6_K ===== */

static void q6_K_pack(const uint8_t L[MH_QK_K], mh_block_q6_K *b)
{
    uint8_t *ql = b->ql, *qh = b->qh;
    for (int j = 0; j < MH_QK_K; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            const uint8_t a = L[j + l], c = L[j + l + 32], e = L[j + l + 64], g = L[j + l + 96];
            ql[l] = (uint8_t)((a & 0xF) | (e & 0xF) << 4);
            ql[l + 32] = (uint8_t)((c & 0xF) | (g & 0xF) << 4);
            qh[l] = (uint8_t)((a >> 4) | (c >> 4) << 2 | (e >> 4) << 4 | (g >> 4) << 6);
        }
    }
}

void mh_k_quant_q6_K_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q6_K *b = dst;
    uint8_t L[MH_QK_K];
    for (int64_t i = 0; i < n / MH_QK_K; i++, src += MH_QK_K) {
        float sc[16], max_sc = 0.0f, amax = 0.0f;
        for (int g = 0; g < 16; g++) {
            sc[g] = fit_scale_sym(16, 32, src + 16 * g, L + 16 * g);
            if (fabsf(sc[g]) > amax) { amax = fabsf(sc[g]); max_sc = sc[g]; }
        }
        if (amax < GROUP_MAX_EPS) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -128.0f / max_sc;
        b[i].d = TO_F16(1.0f / iscale);
        for (int g = 0; g < 16; g++) b[i].scales[g] = (int8_t)clampi(nearest_int(iscale * sc[g]), -128, 127);
        const float d = F16(b[i].d);
        for (int g = 0; g < 16; g++) {
            const float dg = d * b[i].scales[g];
            if (dg == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (uint8_t)(32 + clampi(nearest_int(src[16 * g + l] / dg), -32, 31));
        }
        q6_K_pack(L, &b[i]);
    }
}

/* ===== q8_K (activations of the k-quant dot products) ===== */

void mh_k_quant_q8_K_ref(const float *src, void *dst, int64_t n)
{
    mh_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / MH_QK_K; i++, src += MH_QK_K) {
        float amax;
        const float max = signed_absmax(src, MH_QK_K, &amax);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.0f / max;   /* maps the extreme to -127 */
        for (int j = 0; j < MH_QK_K; j++) b[i].qs[j] = (int8_t)clampi(nearest_int(iscale * src[j]), -128, 127);
        for (int g = 0; g < MH_QK_K / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += b[i].qs[16 * g + l];
            b[i].bsums[g] = (int16_t)s;
        }
        b[i].d = 1.0f / iscale;
    }
}
