/* kernels_ref.c: scalar reference f32 kernels (mh/kernels.h), always built;
 * the SIMD paths are tested against these. Layer: engine/kernels.
 * Uses libm for the transcendental functions; sums accumulate in double. */
#include <math.h>
#include "mh/kernels.h"
#include "mh/dtype.h"

void mh_k_add_f32_ref(int64_t n, const float *a, const float *b, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i]; }
void mh_k_sub_f32_ref(int64_t n, const float *a, const float *b, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = a[i] - b[i]; }
void mh_k_mul_f32_ref(int64_t n, const float *a, const float *b, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i]; }
void mh_k_div_f32_ref(int64_t n, const float *a, const float *b, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = a[i] / b[i]; }
void mh_k_scale_f32_ref(int64_t n, const float *x, float s, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = s * x[i]; }

void mh_k_exp_f32_ref(int64_t n, const float *x, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]); }
void mh_k_tanh_f32_ref(int64_t n, const float *x, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]); }
void mh_k_sigmoid_f32_ref(int64_t n, const float *x, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i])); }
void mh_k_silu_f32_ref(int64_t n, const float *x, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i])); }

void mh_k_gelu_f32_ref(int64_t n, const float *x, float *y)
{
    const float c = 0.7978845608028654f;   /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
    }
}

float mh_k_sum_f32_ref(int64_t n, const float *x)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return (float)s;
}

float mh_k_max_f32_ref(int64_t n, const float *x)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

float mh_k_dot_f32_ref(int64_t n, const float *a, const float *b)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return (float)s;
}

void mh_k_softmax_f32_ref(int64_t n, const float *x, float *y, bool log)
{
    if (n <= 0) return;
    float m = mh_k_max_f32_ref(n, x);
    double s = 0;
    if (log) {
        for (int64_t i = 0; i < n; i++) s += expf(x[i] - m);
        float ls = (float)logl(s);
        for (int64_t i = 0; i < n; i++) y[i] = x[i] - m - ls;
        return;
    }
    for (int64_t i = 0; i < n; i++) { y[i] = expf(x[i] - m); s += y[i]; }
    float inv = (float)(1.0 / s);
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

void mh_k_rms_norm_f32_ref(int64_t n, const float *x, const float *w, float eps, float *y)
{
    if (n <= 0) return;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}

void mh_k_f16_to_f32_ref(int64_t n, const uint16_t *x, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = mh_f16_to_f32(x[i]); }
void mh_k_f32_to_f16_ref(int64_t n, const float *x, uint16_t *y)
{ for (int64_t i = 0; i < n; i++) y[i] = mh_f32_to_f16(x[i]); }
void mh_k_bf16_to_f32_ref(int64_t n, const uint16_t *x, float *y)
{ for (int64_t i = 0; i < n; i++) y[i] = mh_bf16_to_f32(x[i]); }
void mh_k_f32_to_bf16_ref(int64_t n, const float *x, uint16_t *y)
{ for (int64_t i = 0; i < n; i++) y[i] = mh_f32_to_bf16(x[i]); }
