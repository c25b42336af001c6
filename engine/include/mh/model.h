/* model.h: llama-family decoder models (llama, mistral, smollm, tinyllama,
 * qwen2, qwen3, gemma2, gemma3, phi3) loaded from GGUF, their KV cache and the forward pass.
 * Layer: engine/model (pure C11). Weights are zero-copy views into the
 * mmapped file; activations and KV memory belong to the cache/context. */
#ifndef MH_MODEL_H
#define MH_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include "mh/err.h"
#include "mh/dtype.h"

typedef enum mh_arch {
    MH_ARCH_LLAMA = 0, MH_ARCH_QWEN2, MH_ARCH_QWEN3, MH_ARCH_GEMMA2, MH_ARCH_GEMMA3, MH_ARCH_PHI3,
    MH_ARCH_BERT = 64, MH_ARCH_NOMIC_BERT       /* encoders (bert.c): embeddings only */
} mh_arch;

/* How an encoder's token states become one vector (GGUF <arch>.pooling_type,
 * llama.cpp's numbering). NONE (per-token output in llama.cpp) is pooled
 * by mean here, since every surface returns one vector per text. */
typedef enum mh_pooling {
    MH_POOL_NONE = 0, MH_POOL_MEAN = 1, MH_POOL_CLS = 2, MH_POOL_LAST = 3
} mh_pooling;

/* How rope positions are stretched (GGUF <arch>.rope.scaling.type). llama3
 * and longrope divide each frequency by a factor tensor (rope_freqs /
 * rope_factors_long|short); linear divides every angle by the factor; yarn
 * interpolates the low frequencies only, ramping between (Peng et al. 2023). */
typedef enum mh_rope_scaling {
    MH_ROPE_SCALING_NONE = 0, MH_ROPE_SCALING_LINEAR, MH_ROPE_SCALING_LONGROPE, MH_ROPE_SCALING_YARN
} mh_rope_scaling;

typedef struct mh_hparams {
    mh_arch arch;
    char arch_name[32];
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    int64_t n_rot;            /* rotary dims (head_dim unless the file says otherwise) */
    float rope_base;          /* theta */
    float rms_eps;
    bool rope_neox;           /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    bool tied_embeddings;     /* output projection = token embedding */
    /* ---- what the newer architectures add (zero/false: llama behaviour) ---- */
    float attn_scale;         /* scores = q.k * attn_scale (1/sqrt(head_dim) unless told) */
    float attn_softcap;       /* > 0: scores = cap * tanh(scores / cap) (gemma2) */
    float final_softcap;      /* > 0: the same on the logits (gemma2) */
    float embd_scale;         /* token embeddings times this (gemma: sqrt(n_embd)); 0 = 1 */
    int64_t n_swa;            /* > 0: sliding window: a token sees the n_swa newest positions */
    int64_t swa_pattern;      /* layer l slides when l % p < p - 1 (gemma2 2, gemma3 6); 0: all */
    float rope_base_swa;      /* > 0: theta of the sliding layers (gemma3 10000) */
    mh_rope_scaling rope_scaling;
    float rope_freq_scale;    /* linear: 1 / factor (not on sliding layers) */
    float rope_attn_factor;   /* longrope: cos and sin times this; 0 = 1 */
    int64_t rope_orig_ctx;    /* longrope: caches longer than this use the long factors;
                                 yarn: the trained context its ramp is measured in */
    bool qk_norm;             /* per-head rmsnorm of q and k before rope (qwen3, gemma3) */
    bool post_norms;          /* rmsnorm of the attention and FFN outputs (gemma2/3) */
    bool gelu_ffn;            /* gelu(tanh)(gate) * up instead of silu(gate) * up (gemma) */
    /* ---- encoders (bert, nomic-bert; bert.c) ---- */
    bool encoder;             /* bidirectional, no KV cache: embeddings only */
    mh_pooling pooling;       /* <arch>.pooling_type */
    float norm_eps;           /* <arch>.attention.layer_norm_epsilon (LayerNorm with bias) */
    int64_t n_token_types;    /* rows of token_types.weight (row 0 is added) */
    /* ---- mixture of experts (moe.c; n_expert 0: a dense FFN) ---- */
    int64_t n_expert, n_expert_used;   /* <arch>.expert_count, expert_used_count (top-k) */
    int64_t n_ff_exp;         /* rows of one expert's gate/up (qwen2moe: its own key) */
    int64_t n_ff_shexp;       /* > 0: qwen2moe's shared expert, gated by a sigmoid */
    bool expert_norm;         /* top-k weights renormalised to sum 1 (Mixtral, not qwen2moe) */
} mh_hparams;

/* Whether layer l attends through the sliding window. */
bool mh_hparams_layer_swa(const mh_hparams *hp, int64_t l);

/* A 2-D weight (rows, cols), row-major, rows = output features. */
typedef struct mh_weight {
    mh_dtype dtype;
    const void *data;         /* in the mapping, or owned by the model */
    int64_t rows, cols;
    /* NULL, or rows 0..16*(rows/16)-1 again in the interleaved layout of
     * mh/quant_repack.h (owned by the model; data stays the file layout,
     * which every other reader uses) */
    const void *packed;
} mh_weight;

typedef struct mh_layer {
    const float *attn_norm;                 /* (n_embd) */
    mh_weight wq, wk, wv, wo;               /* (n_head*hd, n_embd) ... (n_embd, n_head*hd) */
    const float *bq, *bk, *bv;              /* qwen2 biases or NULL */
    const float *ffn_norm;                  /* (n_embd) */
    mh_weight w_gate, w_up, w_down;         /* (n_ff, n_embd) (n_ff, n_embd) (n_embd, n_ff) */
    const float *q_norm, *k_norm;           /* (head_dim) per-head norms (qwen3, gemma3) or NULL */
    const float *attn_post_norm, *ffn_post_norm;   /* (n_embd) gemma2/3 or NULL */
} mh_layer;

/* The seven projections of a layer, named once for every user (forward,
 * LoRA adapters, training, export); mh_proj_name gives each layout's name. */
typedef enum mh_proj {
    MH_PROJ_Q, MH_PROJ_K, MH_PROJ_V, MH_PROJ_O, MH_PROJ_GATE, MH_PROJ_UP, MH_PROJ_DOWN,
    MH_PROJ_COUNT
} mh_proj;

/* Tensor name layouts: GGUF ("blk.N.attn_q.weight") and Hugging Face
 * ("model.layers.N.self_attn.q_proj.weight", as PEFT adapters name them). */
typedef enum mh_layout { MH_LAYOUT_GGUF, MH_LAYOUT_HF } mh_layout;

/* "attn_q" (GGUF) or "self_attn.q_proj" (HF) for projection k. */
const char *mh_proj_name(mh_proj k, mh_layout layout);
const mh_weight *mh_layer_proj(const mh_layer *L, mh_proj k);   /* borrowed */
const float *mh_layer_bias(const mh_layer *L, mh_proj k);       /* q/k/v bias or NULL */

/* The weights outside the layers (borrowed from the model). */
typedef struct mh_model_globals {
    mh_weight tok_embd;         /* (n_vocab, n_embd) */
    const float *output_norm;   /* (n_embd) */
    mh_weight output;           /* (n_vocab, n_embd); = tok_embd when tied */
    const float *rope_freqs;    /* (n_rot/2) llama3 frequency factors or NULL */
    const float *rope_long, *rope_short;   /* (n_rot/2) phi3 longrope factors or NULL */
} mh_model_globals;

typedef struct mh_model mh_model;

/* Loads a GGUF model; *out owns the mapping. Unknown architecture, missing
 * or mis-shaped tensors -> MH_EFORMAT naming them. */
int mh_model_load(const char *path, mh_model **out, mh_err *err);
void mh_model_free(mh_model *m);               /* NULL is a no-op */
/* MH_OK while the model's files hold every mapped byte; MH_EIO naming the
 * file once one was truncated on disk (then for good: reads past its new
 * end gave zeros instead of SIGBUS, see mh/mapguard.h). The forward pass
 * checks before and after it runs. */
int mh_model_check(const mh_model *m, mh_err *err);
const mh_hparams *mh_model_hparams(const mh_model *m);
const mh_layer *mh_model_layer(const mh_model *m, int64_t i);
const mh_model_globals *mh_model_globals_get(const mh_model *m);   /* borrowed */
struct mh_gguf *mh_model_gguf(const mh_model *m);   /* borrowed */
int64_t mh_model_n_params(const mh_model *m);
size_t mh_model_weight_bytes(const mh_model *m);
/* Expert weight bytes one generated token leaves unread: n_expert -
 * n_expert_used of every layer's n_expert routed experts (the router and a
 * shared expert are always read); 0 for a dense model. moe.c. */
size_t mh_model_moe_idle_bytes(const mh_model *m);
/* Bytes a cache of n_ctx positions takes (K and V in f16). */
size_t mh_model_kv_bytes(const mh_model *m, int64_t n_ctx);
/* The same for a cache of the given type (f32, f16 or q8_0). */
size_t mh_model_kv_bytes_type(const mh_model *m, int64_t n_ctx, mh_dtype type);

/* ===== KV cache: one sequence, positions 0..n_past-1 =====
 * Rows are stored in f16 by default (as llama.cpp does); q8_0 halves that
 * again where head_dim is a multiple of 32; f32 is exact. */
typedef struct mh_kv_cache mh_kv_cache;
mh_kv_cache *mh_kv_cache_new(const mh_model *m, int64_t n_ctx, mh_err *err);   /* f16 */
mh_kv_cache *mh_kv_cache_new_type(const mh_model *m, int64_t n_ctx, mh_dtype type, mh_err *err);
mh_dtype mh_kv_cache_type(const mh_kv_cache *c);
void mh_kv_cache_free(mh_kv_cache *c);
int64_t mh_kv_cache_n_past(const mh_kv_cache *c);
int64_t mh_kv_cache_n_ctx(const mh_kv_cache *c);
/* Forgets positions >= n (n <= n_past): rewinds for a new suffix. */
void mh_kv_cache_truncate(mh_kv_cache *c, int64_t n);

/* kv_copy.c: prefix reuse across caches. Rows move bitwise in the cache's
 * type. A snapshot is a plain buffer: K rows then V rows, layer-major,
 * (n_layer, n, kv_dim) each; it fits caches of the same model and type. */
size_t mh_kv_cache_snapshot_bytes(const mh_kv_cache *c, int64_t n);   /* 0 for n <= 0 */
/* Positions 0..n-1 of src into dst (same model and type); dst's n_past
 * becomes n. MH_EINVAL for other shapes, MH_ERANGE for n past either. */
int mh_kv_cache_copy_prefix(mh_kv_cache *dst, const mh_kv_cache *src, int64_t n, mh_err *err);
/* Positions 0..n-1 of c into buf (size >= mh_kv_cache_snapshot_bytes). */
int mh_kv_cache_save(const mh_kv_cache *c, int64_t n, void *buf, size_t size, mh_err *err);
/* The first n_use positions of a snapshot of n_saved (size bytes exactly)
 * into c; c's n_past becomes n_use. */
int mh_kv_cache_load(mh_kv_cache *c, const void *buf, size_t size, int64_t n_saved, int64_t n_use,
                     mh_err *err);

/* Runs tokens[0..n-1] at positions n_past.. and appends them to the cache.
 * logits: (n, n_vocab) when all_logits, else (1, n_vocab) for the last
 * token; NULL skips the output projection. Fails with MH_ERANGE when the
 * cache would overflow and MH_EINVAL for a token id outside the vocab,
 * leaving the cache unchanged. */
int mh_model_forward(mh_model *m, mh_kv_cache *c, const int32_t *tokens, int64_t n,
                     float *logits, bool all_logits, mh_err *err);

/* One step over several sequences at once (continuous batching): sequence
 * i appends tokens[0..n-1] to its own cache; the matmuls run over all rows
 * together, so the weights are read once per step. logits (when non-NULL):
 * (n, n_vocab) when all_logits, else (1, n_vocab). Checks every sequence
 * before touching any cache; on failure no cache advances. */
/* A LoRA adapter one sequence applies on top of the model's own (per-request
 * adapters sharing one base: each row of a batch its own A/B, rows without
 * any skip the update): scale multiplies the adapter's alpha / r. */
typedef struct mh_lora_use {
    struct mh_lora *lora;         /* borrowed for the call */
    float scale;
} mh_lora_use;

typedef struct mh_batch_seq {
    mh_kv_cache *cache;
    const int32_t *tokens;
    int64_t n;
    float *logits;
    bool all_logits;
    float *hidden;            /* (n, n_embd) final normed hidden states, or NULL */
    const mh_lora_use *loras; /* (n_loras) this sequence's own adapters, or NULL */
    int n_loras;
} mh_batch_seq;
int mh_model_forward_batch(mh_model *m, mh_batch_seq *seqs, int n_seqs, mh_err *err);

/* Sentence embedding of tokens[0..n-1] (decoder models): the final normed
 * hidden states, mean-pooled over positions and L2-normalized into out
 * (n_embd). Runs on a private cache; MH_EINVAL for bad ids or n <= 0. */
int mh_model_embed(mh_model *m, const int32_t *tokens, int64_t n, float *out, mh_err *err);

/* ===== encoders (bert.c) =====
 * Whether m is an encoder (bert, nomic-bert): it has no KV cache and no
 * logits; mh_model_forward* refuse it and mh_model_embed runs bert.c. */
bool mh_model_is_encoder(const mh_model *m);
/* Sentence embeddings of n_seqs texts in one forward: text i is
 * tokens[i][0..n[i]-1] (each attends to itself only), pooled as the file
 * says (CLS, mean, last) and L2-normalized into out (n_seqs, n_embd).
 * Decoder models run mh_model_embed per text. MH_EINVAL for bad ids, empty
 * texts or a text longer than the model's context (n_ctx_train). */
int mh_model_embed_batch(mh_model *m, const int32_t *const *tokens, const int64_t *n, int n_seqs,
                         float *out, mh_err *err);
/* The encoder's final token states (before pooling) of one text: hidden
 * (n, n_embd). For tests and llama.cpp comparisons; encoders only. */
int mh_model_encode(mh_model *m, const int32_t *tokens, int64_t n, float *hidden, mh_err *err);

/* ===== LoRA adapters at inference =====
 * A PEFT-style safetensors adapter (as mh_trainer_save_adapter writes) or a
 * GGUF LoRA in llama.cpp's format (told apart by the GGUF magic; its
 * general.architecture must match the model's): scale = lora_alpha / r
 * (times scale_mult); shapes are checked at load.
 * The model borrows the adapters it is given (up to 8, their effects add
 * up): keep them alive while set; n = 0 removes them. Each adapted
 * projection costs ~2·r·(in+out) flops a token through OpenBLAS, with no
 * allocation (its scratch lives with the forward's other buffers). */
typedef struct mh_lora mh_lora;
/* *out: a new adapter with one reference. */
int mh_lora_load(const mh_model *m, const char *path, float scale_mult, mh_lora **out, mh_err *err);
/* Adapters are refcounted (a request in flight keeps its adapters, whoever
 * drops them meanwhile): retain adds a reference (returns lo), free drops
 * one and frees at zero. Any thread. NULL is a no-op. */
mh_lora *mh_lora_retain(mh_lora *lo);
void mh_lora_free(mh_lora *lo);
/* MH_OK when lo's shapes are m's (loaded for m or for a model of the same
 * shape), else MH_EINVAL naming the first mismatch. */
int mh_lora_check(const mh_model *m, const mh_lora *lo, mh_err *err);
/* Per-sequence adapters at most (mh_batch_seq.n_loras, a request's list). */
#define MH_MAX_SEQ_LORAS 8
int mh_model_set_loras(mh_model *m, const mh_lora *const *list, int n, mh_err *err);

/* Rounds x (n) in place to the values dtype t can hold (f16, bf16). */
void mh_round_to(mh_dtype t, float *x, int64_t n);

/* y: (T, w->rows) = x: (T, w->cols) @ w^T, any weight dtype with kernels. */
int mh_linear(const mh_weight *w, const float *x, int64_t T, float *y, mh_err *err);
/* y[i]: (T, w[i]->rows) = x @ w[i]^T for nw weights of the same cols: at
 * T = 1, quantized weights sharing a vec_dot_type go as one matvec job (x
 * quantized once); the same bits as nw mh_linear calls. */
int mh_linear_multi(const mh_weight *const *w, int nw, const float *x, int64_t T, float *const *y, mh_err *err);

#endif
