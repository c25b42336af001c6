/* create.h: writes a randomly initialized decoder model as GGUF, with
 * the tokenizer metadata of a chosen vocabulary, for tests and benchmarks.
 * Layer: engine/model (pure C11). Weights come from a counter-based RNG
 * (same seed, same bytes) and stream to disk tensor by tensor. */
#ifndef MH_CREATE_H
#define MH_CREATE_H

#include <stdbool.h>
#include <stdint.h>
#include "mh/dtype.h"
#include "mh/err.h"
#include "mh/quantize.h"

typedef struct mh_create_config {
    char arch[16];             /* llama, qwen2, qwen3, gemma2, gemma3, phi3, qwen2moe */
    char name[64];             /* general.name */
    int64_t n_layer, n_embd, n_ff, n_head, n_head_kv;
    int64_t n_vocab;           /* wanted; the tokenizer's own size wins (see stats) */
    int64_t n_ctx;             /* context_length */
    double rope_base, rms_eps;
    bool tied;                 /* no output.weight: token_embd is the output */
    bool qkv_bias;             /* attn_q/k/v biases (qwen2) */
    double rope_factor;        /* > 0: llama3 rope scaling, written as rope_freqs */
    double rope_low_freq, rope_high_freq;
    int64_t rope_orig_ctx;
    double std;                /* matrices ~ N(0, std); 0 means 0.02 */
    /* ---- qwen3, gemma2/3, phi3, sliding windows (zero: off) ---- */
    int64_t head_dim;          /* attention.key_length; 0: n_embd / n_head */
    int64_t n_swa;             /* attention.sliding_window */
    double attn_softcap, final_softcap;   /* gemma2 soft caps */
    double rope_base_swa;      /* gemma3 rope.freq_base_swa */
    double rope_scale_linear;  /* rope.scaling.type linear with this factor */
    double rope_scale_yarn;    /* rope.scaling.type yarn with this factor (over rope_orig_ctx) */
    bool longrope;             /* phi3: rope_factors_long/short from rope_orig_ctx */
    double norm_std;           /* norm weights 1 + N(0, norm_std): so a lost norm shows */
    /* ---- encoders (bert, nomic-bert; create_bert.c): rms_eps is their
     * LayerNorm epsilon, rope_base nomic-bert's theta ---- */
    int64_t pooling;           /* <arch>.pooling_type: 1 mean, 2 cls, 3 last (0: mean) */
    /* ---- mixture of experts (n_expert 0: a dense FFN) ---- */
    int64_t n_expert, n_expert_used;   /* expert_count, expert_used_count (top-k) */
    int64_t n_ff_exp;          /* qwen2moe: one expert's width (0: n_ff / n_expert_used); llama: n_ff */
    int64_t n_ff_shexp;        /* qwen2moe: the shared expert's width (0: n_ff) */
} mh_create_config;

typedef struct mh_create_opts {
    mh_ftype ftype;            /* type of the 2-D weights, with llama.cpp's mixes */
    uint64_t seed;
    /* vocab GGUF (its tokenizer.* keys are copied), tokenizer.json (byte-level
     * BPE only), or NULL for a built-in 259-token byte vocabulary */
    const char *tokenizer;
    mh_progress_fn progress;   /* optional: tensor bytes written of the total */
    void *progress_ud;
} mh_create_opts;

typedef struct mh_create_stats {
    int64_t n_params, n_tensors, n_vocab;
    bool vocab_changed;        /* n_vocab taken from the tokenizer, not the config */
    int64_t n_by_type[MH_DTYPE_COUNT];
    uint64_t file_bytes;
    double seconds;
} mh_create_stats;

/* Checks cfg (positive sizes, heads dividing the width, known arch...);
 * MH_EINVAL with a message naming the field. */
int mh_create_check(const mh_create_config *cfg, mh_err *err);
/* Writes the model to out_path (atomically). stats may be NULL. */
int mh_create_model(const mh_create_config *cfg, const mh_create_opts *opts,
                    const char *out_path, mh_create_stats *stats, mh_err *err);

/* create_bert.c: encoders. Whether arch is one (bert, nomic-bert); the
 * keys llama.cpp's converter writes for one; a built-in WordPiece
 * vocabulary (specials, ASCII characters as word starts and
 * continuations, a few English words) used when no tokenizer is given. */
struct mh_gguf_writer;
bool mh_create_is_encoder(const char *arch);
int mh_create_encoder_hparams(const mh_create_config *c, struct mh_gguf_writer *w, mh_err *err);
int mh_create_wordpiece_vocab(struct mh_gguf_writer *w, int64_t *n_vocab, mh_err *err);

/* The counter-based normal generator: element i of stream `stream` for seed,
 * N(0, 1). dst[k] = value of element first + k. */
void mh_create_randn(uint64_t seed, uint64_t stream, uint64_t first, float *dst, int64_t n);

#endif
