/* kernels_llama_ref.c: scalar reference of the kernels that reproduce
 * llama.cpp's arithmetic in the forward pass (mh/kernels.h, "_llama").
 * Layer: engine/kernels. The SIMD twins (kernels_llama_simd.h) give the
 * same bits. The constants are those of ggml's AVX-512 exp (a degree-5
 * polynomial after a two-part ln2 reduction, from Arm's optimized
 * routines): facts about the function being matched, not a choice. */
#include <math.h>
#include "mh/kernels.h"
#include "mh/dtype.h"

/* the 16 lanes in ggml's tree: halves, quarters, pairs, one */
static float lanes16_sum(const float a[16])
{
    float t[8];
    for (int l = 0; l < 8; l++) t[l] = a[l] + a[l + 8];
    const float s0 = t[0] + t[4], s1 = t[1] + t[5], s2 = t[2] + t[6], s3 = t[3] + t[7];
    return (s0 + s2) + (s1 + s3);
}

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
        sum += lanes16_sum(c);
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
    return lanes16_sum(acc);
}

void mh_k_attn_mix_llama_ref(int64_t n, int64_t hd, const float *w, const uint16_t *v, int64_t ldv,
                             float *acc, float *out)
{
    for (int64_t i = 0; i < 16 * hd; i++) acc[i] = 0.0f;
    for (int64_t p = 0; p < n; p++) {
        float *a = acc + (p % 16) * hd;
        for (int64_t d = 0; d < hd; d++) a[d] = fmaf(mh_f16_to_f32(v[p * ldv + d]), w[p], a[d]);
    }
    for (int64_t d = 0; d < hd; d++) {
        float c[16];
        for (int l = 0; l < 16; l++) c[l] = acc[l * hd + d];
        out[d] = lanes16_sum(c);
    }
}

/* ggml's final reduction of its 4 x 16 accumulators: 0+2, 1+3, then 0+1 */
static float lanes64_sum(const float *a /* (64) */)
{
    float c[16];
    for (int l = 0; l < 16; l++) c[l] = (a[l] + a[32 + l]) + (a[16 + l] + a[48 + l]);
    return lanes16_sum(c);
}

float mh_k_attn_score_step_llama_ref(int64_t n, const uint16_t *k, const float *q)
{
    const int64_t np = n - n % 64;
    float acc[64] = {0};
    for (int64_t i = 0; i < np; i += 64)
        for (int l = 0; l < 64; l++) acc[l] = fmaf(mh_f16_to_f32(k[i + l]), q[i + l], acc[l]);
    double s = np ? lanes64_sum(acc) : 0.0;
    for (int64_t i = np; i < n; i++) s += (double)(mh_f16_to_f32(k[i]) * q[i]);
    return (float)s;
}

void mh_k_attn_mix_step_llama_ref(int64_t n, int64_t np, int64_t hd, const float *w, const uint16_t *v,
                                  int64_t ldv, float *acc, float *out)
{
    const int64_t nf = n < np ? n : np;
    for (int64_t i = 0; i < 64 * hd; i++) acc[i] = 0.0f;
    for (int64_t p = 0; p < nf; p++) {
        float *a = acc + (p % 64) * hd;
        for (int64_t d = 0; d < hd; d++) a[d] = fmaf(mh_f16_to_f32(v[p * ldv + d]), w[p], a[d]);
    }
    for (int64_t d = 0; d < hd; d++) {
        float c[64];
        for (int l = 0; l < 64; l++) c[l] = acc[l * hd + d];
        double s = np ? lanes64_sum(c) : 0.0;
        for (int64_t p = np; p < n; p++) s += (double)(mh_f16_to_f32(v[p * ldv + d]) * w[p]);
        out[d] = (float)s;
    }
}
