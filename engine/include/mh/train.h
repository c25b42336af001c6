/* train.h: training loops for llama-family models: an f32 training graph
 * (forward that keeps activations, backward for every op), LoRA/QLoRA and
 * full fine-tuning, AdamW with schedules, clipping and accumulation.
 * Layer: engine/train (pure C11; uses engine/model, OpenBLAS, the pool).
 * Activation policy and numerics: docs/training.md. */
#ifndef MH_TRAIN_H
#define MH_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include "mh/err.h"
#include "mh/model.h"

/* ===== configuration ===== */

typedef enum mh_train_method { MH_TRAIN_LORA = 0, MH_TRAIN_FULL } mh_train_method;
typedef enum mh_train_decay { MH_DECAY_CONSTANT = 0, MH_DECAY_LINEAR, MH_DECAY_COSINE } mh_train_decay;

/* LoRA target bits: which projections of each layer get adapters */
enum {
    MH_LORA_Q = 1, MH_LORA_K = 2, MH_LORA_V = 4, MH_LORA_O = 8,
    MH_LORA_GATE = 16, MH_LORA_UP = 32, MH_LORA_DOWN = 64,
};

typedef struct mh_train_config {
    mh_train_method method;
    int lora_rank;            /* r >= 1 */
    float lora_alpha;         /* scale = alpha / r */
    float lora_dropout;       /* on the adapter's input, 0 <= p < 1 */
    unsigned lora_targets;    /* MH_LORA_* bits, nonzero */
    float lr, weight_decay, beta1, beta2, adam_eps;
    int64_t warmup;           /* linear ramp 0 -> lr over these steps */
    mh_train_decay decay;
    int64_t total_steps;      /* decay horizon (linear/cosine) */
    float min_lr;
    float grad_clip;          /* global L2 norm; <= 0: off */
    int accumulate;           /* micro-batches per optimizer step (>= 1) */
    uint64_t seed;            /* LoRA init and dropout masks */
    bool checkpoint;          /* recompute layer internals in backward */
} mh_train_config;

/* Defaults: LoRA r=8 alpha=16 no dropout on q,k,v,o; AdamW lr 2e-4,
 * wd 0.01, betas (0.9, 0.999), eps 1e-8; constant; clip 1; accumulate 1. */
void mh_train_config_init(mh_train_config *c);

typedef struct mh_trainer mh_trainer;

/* A trainer over m (borrowed: m must outlive it). Full: every weight is
 * copied to f32 and trained; LoRA: the base stays as loaded (quantized
 * bases are dequantized block by block inside each matmul: QLoRA) and
 * only the adapters train. MH_EINVAL naming a bad field. */
mh_trainer *mh_trainer_new(mh_model *m, const mh_train_config *cfg, mh_err *err);
void mh_trainer_free(mh_trainer *t);                   /* NULL is a no-op */
const mh_train_config *mh_trainer_config(const mh_trainer *t);

/* ===== steps =====
 * A batch is B rows of T tokens (row-major). Position i predicts token
 * i+1; mask[b*T + i+1] != 0 counts that prediction (mask NULL: all do).
 * The loss is the mean cross-entropy over counted predictions. */
typedef struct mh_train_result {
    double loss, grad_norm;   /* norm before clipping */
    float lr;                 /* the rate used by this step */
    int64_t n_tokens;         /* counted predictions */
    double seconds, tokens_per_s;
    bool nan;                 /* loss or norm not finite: step skipped */
    int64_t step;             /* optimizer steps taken so far */
} mh_train_result;

/* One optimizer step: the B rows are split into cfg.accumulate
 * micro-batches (gradients summed, weighted so the result equals one big
 * batch), clipped, AdamW. A non-finite loss or norm leaves every weight
 * and optimizer moment untouched and sets r->nan. */
int mh_trainer_step(mh_trainer *t, const int32_t *tokens /* (B, T) */, const uint8_t *mask /* (B, T) */,
                    int64_t B, int64_t T, mh_train_result *r, mh_err *err);
/* Loss and gradients for one batch without updating (dropout keyed to the
 * current step). Gradients are left in the params' grad buffers. */
int mh_trainer_grad(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
                    double *loss, int64_t *n_tokens, mh_err *err);
/* Sum of token losses and their count, no dropout, no gradients. */
int mh_trainer_eval(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
                    double *loss_sum, int64_t *n_tokens, mh_err *err);
/* Learning rate the schedule gives at optimizer step `step` (0-based). */
float mh_train_lr_at(const mh_train_config *c, int64_t step);
int64_t mh_trainer_steps(const mh_trainer *t);

/* ===== parameters (for checks, saving, custom loops) ===== */
typedef struct mh_train_param {
    char name[96];            /* GGUF tensor name; LoRA: "<base>.lora_a" / ".lora_b" */
    float *data, *grad;       /* (rows, cols) f32, owned by the trainer */
    float *m, *v;             /* AdamW moments */
    int64_t rows, cols;
    bool decay;               /* weight decay applies (matrices, not norms) */
} mh_train_param;
int mh_trainer_n_params(const mh_trainer *t);
mh_train_param *mh_trainer_param(mh_trainer *t, int i);      /* borrowed; NULL out of range */
int64_t mh_trainer_n_trainable(const mh_trainer *t);         /* elements */

/* ===== files (train_io.c) ===== */
/* LoRA adapters as safetensors with PEFT names
 * (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight) and
 * metadata r / lora_alpha / target_modules. MH_EINVAL for full training. */
int mh_trainer_save_adapter(const mh_trainer *t, const char *path, mh_err *err);
/* The same adapter as a GGUF LoRA in llama.cpp's format (llama-cli --lora). */
int mh_trainer_save_adapter_gguf(const mh_trainer *t, const char *path, mh_err *err);
/* Everything needed to continue bit for bit: trainable weights, moments,
 * step and config, in dir/trainer.safetensors (dir must exist). */
int mh_trainer_checkpoint(const mh_trainer *t, const char *dir, mh_err *err);
/* Restores a checkpoint into a trainer built with the same config and base. */
int mh_trainer_restore(mh_trainer *t, const char *dir, mh_err *err);
/* Writes the trained model (LoRA merged into the base) as GGUF: metadata
 * copied from the base file, matrices in `type` (f32, f16, bf16, q8_0...). */
int mh_trainer_export(const mh_trainer *t, const char *path, mh_dtype type, mh_err *err);

/* ===== op kernels: forward and backward (train_ops.c) =====
 * Exposed for the gradient checks. Backward functions ADD into parameter
 * gradients (dw) and WRITE input gradients (dx) unless noted. */

/* y = x * rstd * w per row; rstd (T) saved. x, y: (T, n) */
void mh_tr_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t T, int64_t n, float eps);
/* dx (T, n) written; dw (n) added (NULL: frozen) */
void mh_tr_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                       const float *w, int64_t T, int64_t n);

/* Rotary tables for positions 0..T-1: cs (T, n_rot/2, 2) cos, sin. */
int mh_tr_rope_table(float *cs, int64_t T, int64_t n_rot, float base, const float *freq_factors);
/* In place on x: (B*T, n_heads*hd); inverse = true rotates back (backward). */
void mh_tr_rope(float *x, const float *cs, int64_t B, int64_t T, int64_t n_heads, int64_t hd,
                int64_t n_rot, bool neox, bool inverse);

/* Causal GQA attention per batch row. q: (B*T, H*hd), k, v: (B*T, Hkv*hd),
 * out: (B*T, H*hd), lse: (B, H, T) log-sum-exp of the scaled scores.
 * Both return MH_ENOMEM (outputs not to be used) when a task's T-float
 * scratch cannot be allocated. */
int mh_tr_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                    int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t hd);
/* dq, dk, dv written (same shapes as q, k, v). */
int mh_tr_attn_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out,
                    const float *lse, const float *q, const float *k, const float *v,
                    int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t hd);

/* h = silu(g) * u; dg, du written. all (n) */
void mh_tr_swiglu_fwd(float *h, const float *g, const float *u, int64_t n);
void mh_tr_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n);

/* Cross-entropy of logits (T, V) against targets (T) with weights wt (T):
 * returns sum of wt[t] * CE_t; dlogits (T, V) = wt[t] * (softmax - onehot) * gscale
 * when non-NULL (may alias logits). */
double mh_tr_xent(float *dlogits, const float *logits, const int32_t *targets, const float *wt,
                  int64_t T, int64_t V, float gscale);

/* Parallel grain: items per chunk for items of per_item element-ops. */
int64_t mh_tr_grain(int64_t per_item);

/* Row-major C (M, N) = alpha op(A) op(B) + beta C (op: transpose when
 * ta/tb), through OpenBLAS: the one place the trainer calls it. */
void mh_tr_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* Dense f32 linear: y (T, out) = x (T, in) @ w^T (out, in) (+ y when accumulate). */
void mh_tr_matmul(float *y, const float *x, const float *w, int64_t T, int64_t in, int64_t out, bool accumulate);
/* dx (T, in) = dy (T, out) @ w (+ dx when accumulate); dw (out, in) += dy^T x when non-NULL. */
void mh_tr_matmul_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      int64_t T, int64_t in, int64_t out, bool accumulate);

#endif
