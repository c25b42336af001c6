/* kernels_llama_ref.c: scalar reference of the kernels that reproduce
 * llama.cpp's arithmetic in the forward pass (mh/kernels.h, "_llama").
 * Layer: engine/kernels. The SIMD twins (kernels_llama_simd.h) give the
 * same bits. The constants are those of ggml's AVX-512 exp (a degree-5
 * polynomial after a two-part ln2 reduction, from Arm's optimized
 * routines): facts about the function being matched, not a choice. */
#include <math.h>
#include "mh/kernels.h"
#include "mh/dtype.h"
#include "quant_kernels.h"   /* the lane trees */

static float exp_llama(float x)
{
    const float r = 0x1.8p23f;
    const float n = fmaf(x, 0x1.715476p+0f, r) - r;
    if (!(fabsf(n) <= 192.0f)) return isnan(x) ? x : n > 0.0f ? INFINITY : 0.0f;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}

double mh_k_softmax_exp_llama_ref(int64_t n, const float *x, float mx, float *y)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i += 16) {
        float c[16];
        for (int l = 0; l < 16; l++) c[l] = i + l < n ? (y[i + l] = exp_llama(x[i + l] - mx)) : 0.0f;
        sum += mh_k_lanes_sum16(c);
    }
    return sum;
}

/* ggml vectorises whole 16-chunks; its scalar tail uses libm's expf */
void mh_k_swiglu_llama_ref(int64_t n, const float *g, const float *u, float *y)
{
    const int64_t nv = n - n % 16;
    for (int64_t i = 0; i < n; i++) {
        const float e = i < nv ? exp_llama(0.0f - g[i]) : expf(-g[i]);
        y[i] = g[i] / (1.0f + e) * u[i];
    }
}

float mh_k_attn_score_llama_ref(int64_t n, const uint16_t *k, const float *q)
{
    float acc[16] = {0};
    for (int64_t i = 0; i < n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] = fmaf(mh_f16_to_f32(k[i + l]), q[i + l], acc[l]);
    return mh_k_lanes_sum16(acc);
}

/* acc (lanes, hd) = 0, then row p % lanes += w[p] * v[p] for p < n, fused */
static void mix_rows(int64_t n, int lanes, int64_t hd, const float *w, const uint16_t *v, int64_t ldv, float *acc)
{
    for (int64_t i = 0; i < lanes * hd; i++) acc[i] = 0.0f;
    for (int64_t p = 0; p < n; p++) {
        float *a = acc + (p % lanes) * hd;
        for (int64_t d = 0; d < hd; d++) a[d] = fmaf(mh_f16_to_f32(v[p * ldv + d]), w[p], a[d]);
    }
}

void mh_k_attn_mix_llama_ref(int64_t n, int64_t hd, const float *w, const uint16_t *v, int64_t ldv,
                             float *acc, float *out)
{
    mix_rows(n, 16, hd, w, v, ldv, acc);
    for (int64_t d = 0; d < hd; d++) {
        float c[16];
        for (int l = 0; l < 16; l++) c[l] = acc[l * hd + d];
        out[d] = mh_k_lanes_sum16(c);
    }
}

float mh_k_attn_score_step_llama_ref(int64_t n, const uint16_t *k, const float *q)
{
    const int64_t np = n - n % 64;
    float acc[64] = {0};
    for (int64_t i = 0; i < np; i += 64)
        for (int l = 0; l < 64; l++) acc[l] = fmaf(mh_f16_to_f32(k[i + l]), q[i + l], acc[l]);
    double s = np ? mh_k_lanes_sum64(acc) : 0.0;
    for (int64_t i = np; i < n; i++) s += (double)(mh_f16_to_f32(k[i]) * q[i]);
    return (float)s;
}

void mh_k_attn_mix_step_llama_ref(int64_t n, int64_t np, int64_t hd, const float *w, const uint16_t *v,
                                  int64_t ldv, float *acc, float *out)
{
    mix_rows(n < np ? n : np, 64, hd, w, v, ldv, acc);
    for (int64_t d = 0; d < hd; d++) {
        float c[64];
        for (int l = 0; l < 64; l++) c[l] = acc[l * hd + d];
        double s = np ? mh_k_lanes_sum64(c) : 0.0;
        for (int64_t p = np; p < n; p++) s += (double)(mh_f16_to_f32(v[p * ldv + d]) * w[p]);
        out[d] = (float)s;
    }
}

void mh_k_attn_scores_step_llama_ref(int64_t npos, int64_t hd, const uint16_t *k, int64_t ldk, const float *q,
                                     float *out)
{
    for (int64_t p = 0; p < npos; p++) out[p] = mh_k_attn_score_step_llama_ref(hd, k + p * ldk, q);
}
