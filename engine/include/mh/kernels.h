/* kernels.h: the f32 vector kernels behind the tensor fast paths, as one
 * function table per CPU level (ggml's type_traits_cpu idea): a scalar
 * mh_k_<op>_f32_ref is always built, _avx2 and _avx512 variants live in
 * engine/kernels/kernels_avx2.c and kernels_avx512.c. Layer: engine/kernels.
 * All vectors are contiguous; y may alias x (in-place) for elementwise ops. */
#ifndef MH_KERNELS_H
#define MH_KERNELS_H

#include <stdint.h>
#include <stdbool.h>
#include "mh/cpu.h"

typedef void (*mh_k_binary_fn)(int64_t n, const float *a, const float *b, float *y); /* (n) */
typedef void (*mh_k_unary_fn)(int64_t n, const float *x, float *y);                  /* (n) */
typedef float (*mh_k_reduce_fn)(int64_t n, const float *x);                          /* (n) */

typedef struct mh_kernels {
    mh_cpu_level level;
    mh_k_binary_fn add, sub, mul, div;
    void (*scale)(int64_t n, const float *x, float s, float *y);   /* y = s*x */
    mh_k_unary_fn exp, silu, gelu, tanh, sigmoid;                  /* gelu: tanh approximation */
    mh_k_reduce_fn sum, max;                                       /* max of n=0 is -inf */
    float (*dot)(int64_t n, const float *a, const float *b);
    /* y = softmax(x) (or log_softmax when log) over one row of n */
    void (*softmax_row)(int64_t n, const float *x, float *y, bool log);
    /* y = x / sqrt(mean(x^2) + eps) * w (w NULL: no weight) */
    void (*rms_norm_row)(int64_t n, const float *x, const float *w, float eps, float *y);
    void (*f16_to_f32)(int64_t n, const uint16_t *x, float *y);
    void (*f32_to_f16)(int64_t n, const float *x, uint16_t *y);
    void (*bf16_to_f32)(int64_t n, const uint16_t *x, float *y);
    void (*f32_to_bf16)(int64_t n, const float *x, uint16_t *y);
    /* The forward pass in llama.cpp's arithmetic (kernels_llama_*.c): ggml's
     * vectorised exp and its 16-lane summation order, so that logits, and
     * the int8 steps that activations are quantized to, match it bit for
     * bit. Each takes rows of n; lanes beyond n count as zero. */
    /* y = exp(x - mx), returns the sum of each 16-chunk's lane tree in double */
    double (*softmax_exp_llama)(int64_t n, const float *x, float mx, float *y);
    /* y = silu(g) * u */
    void (*swiglu_llama)(int64_t n, const float *g, const float *u, float *y);
    /* f16 k (n, a multiple of 16) . q in 16 fused lanes, then the lane tree */
    float (*attn_score_llama)(int64_t n, const uint16_t *k, const float *q);
    /* out (hd) = sum over p < n of w[p] * v[p * ldv ..] (f16 rows), position p
     * in lane p % 16; acc is (16, hd) scratch */
    void (*attn_mix_llama)(int64_t n, int64_t hd, const float *w, const uint16_t *v, int64_t ldv,
                           float *acc, float *out);
    /* One-token steps take ggml's vec_dot_f16 instead: the first np
     * elements (a multiple of 64) in 4 x 16 fused lanes, the rest in double.
     * For the mix, np counts positions and acc is (64, hd) scratch. */
    float (*attn_score_step_llama)(int64_t n, const uint16_t *k, const float *q);
    void (*attn_mix_step_llama)(int64_t n, int64_t np, int64_t hd, const float *w, const uint16_t *v,
                                int64_t ldv, float *acc, float *out);
    /* out[p] = attn_score_step_llama(hd, k + p * ldk, q) for p < npos, the
     * same bits; heads under 64 (all in double) run several positions'
     * sums side by side instead of one dependent chain at a time */
    void (*attn_scores_step_llama)(int64_t npos, int64_t hd, const uint16_t *k, int64_t ldk, const float *q,
                                   float *out);
} mh_kernels;

/* Table for the level in force (mh_cpu_level_get()). */
const mh_kernels *mh_kernels_get(void);
/* Table for level l, clamped to what this CPU supports (tests). */
const mh_kernels *mh_kernels_for(mh_cpu_level l);

/* ===== per-level definitions (the table entries) ===== */
#define MH_K_DECLARE(sfx) \
    void mh_k_add_f32_##sfx(int64_t n, const float *a, const float *b, float *y); \
    void mh_k_sub_f32_##sfx(int64_t n, const float *a, const float *b, float *y); \
    void mh_k_mul_f32_##sfx(int64_t n, const float *a, const float *b, float *y); \
    void mh_k_div_f32_##sfx(int64_t n, const float *a, const float *b, float *y); \
    void mh_k_scale_f32_##sfx(int64_t n, const float *x, float s, float *y); \
    void mh_k_exp_f32_##sfx(int64_t n, const float *x, float *y); \
    void mh_k_silu_f32_##sfx(int64_t n, const float *x, float *y); \
    void mh_k_gelu_f32_##sfx(int64_t n, const float *x, float *y); \
    void mh_k_tanh_f32_##sfx(int64_t n, const float *x, float *y); \
    void mh_k_sigmoid_f32_##sfx(int64_t n, const float *x, float *y); \
    float mh_k_sum_f32_##sfx(int64_t n, const float *x); \
    float mh_k_max_f32_##sfx(int64_t n, const float *x); \
    float mh_k_dot_f32_##sfx(int64_t n, const float *a, const float *b); \
    void mh_k_softmax_f32_##sfx(int64_t n, const float *x, float *y, bool log); \
    void mh_k_rms_norm_f32_##sfx(int64_t n, const float *x, const float *w, float eps, float *y); \
    void mh_k_f16_to_f32_##sfx(int64_t n, const uint16_t *x, float *y); \
    void mh_k_f32_to_f16_##sfx(int64_t n, const float *x, uint16_t *y); \
    void mh_k_bf16_to_f32_##sfx(int64_t n, const uint16_t *x, float *y); \
    void mh_k_f32_to_bf16_##sfx(int64_t n, const float *x, uint16_t *y); \
    double mh_k_softmax_exp_llama_##sfx(int64_t n, const float *x, float mx, float *y); \
    void mh_k_swiglu_llama_##sfx(int64_t n, const float *g, const float *u, float *y); \
    float mh_k_attn_score_llama_##sfx(int64_t n, const uint16_t *k, const float *q); \
    void mh_k_attn_mix_llama_##sfx(int64_t n, int64_t hd, const float *w, const uint16_t *v, int64_t ldv, \
                                   float *acc, float *out); \
    float mh_k_attn_score_step_llama_##sfx(int64_t n, const uint16_t *k, const float *q); \
    void mh_k_attn_mix_step_llama_##sfx(int64_t n, int64_t np, int64_t hd, const float *w, const uint16_t *v, \
                                        int64_t ldv, float *acc, float *out); \
    void mh_k_attn_scores_step_llama_##sfx(int64_t npos, int64_t hd, const uint16_t *k, int64_t ldk, \
                                           const float *q, float *out);

MH_K_DECLARE(ref)
MH_K_DECLARE(avx2)
MH_K_DECLARE(avx512)

#endif
