/* hf_config.h: a Hugging Face config.json read once into this engine's
 * hyperparameters, plus what a GGUF writer needs that mh_hparams does not
 * hold. Shared by the HF folder loader (llama_hf.c) and convert (convert.c)
 * so both read config.json the same way. Layer: engine/model (private). */
#ifndef MH_HF_CONFIG_H
#define MH_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mh/model.h"

struct cJSON;

typedef struct mh_hf_config {
    mh_hparams hp;              /* as the engine runs the HF rows (rope_neox: HF's rotate-half) */
    char cls[64];               /* architectures[0] or model_type, as written */
    bool tied;                  /* output = token embedding */
    bool tie_explicit;          /* tie_word_embeddings given (else: tied when lm_head is absent) */
    bool has_rope_theta;        /* rope_theta given (llama.cpp writes rope.freq_base only then) */
    bool has_head_dim;          /* head_dim given (llama.cpp writes key/value_length then) */
    bool qkv_bias;              /* q/k/v biases (qwen2) */
    char rope_type[16];         /* rope_scaling type: "", linear, yarn, llama3, longrope */
    double rope_factor;
    int64_t rope_orig_ctx;      /* original_max_position_embeddings (yarn, llama3, longrope) */
    float *rope_freqs;          /* (n_rot/2) llama3 frequency factors, or NULL; owned */
    float *rope_long, *rope_short;   /* (n_rot/2) phi3 longrope factors, or NULL; owned */
    int64_t bos, eos, pad, unk; /* config.json *_token_id, -1 when absent */
    /* ---- encoders (BertModel, NomicBertModel: read_encoder, convert_bert.c) ---- */
    bool pooling_given;         /* sentence-transformers' 1_Pooling named a mode (else no key) */
    int64_t n_token_types;      /* type_vocab_size (token_types.weight rows) */
    char st_prefix[8];          /* "" or "bert." before every checkpoint name (mh_hf_bert_resolve) */
    bool st_gamma;              /* LayerNorm weights stored as gamma / beta (old BERT checkpoints) */
} mh_hf_config;

/* The supported classes, for messages. */
extern const char *mh_hf_supported;

/* Reads dir/config.json into c (zeroed first). MH_EIO when it cannot be
 * opened, MH_EFORMAT naming the key for anything wrong or unsupported.
 * Free with mh_hf_config_free even after a failure. */
int mh_hf_config_read(const char *dir, mh_hf_config *c, mh_err *err);
int mh_hf_config_parse(const struct cJSON *json, mh_hf_config *c, mh_err *err);
void mh_hf_config_free(mh_hf_config *c);

/* The Hugging Face name of GGUF tensor `gguf` ("blk.3.ffn_norm.weight")
 * for c's architecture, into out; false when there is none. */
bool mh_hf_tensor_name(const mh_hf_config *c, const char *gguf, char *out, size_t n);
/* Mixtral and Qwen2-MoE keep one tensor per expert where GGUF stacks them:
 * "blk.N.ffn_gate_exps.E.weight" (also ffn_up_exps, ffn_down_exps) names
 * expert E's slice, and has an HF name; the stack itself has none. */
/* Qwen2-MoE's shared_expert_gate is an nn.Linear(n_embd, 1): HF stores a
 * (1, n_embd) matrix where GGUF (and this engine) hold a vector. */
bool mh_hf_is_row_matrix(const char *gguf);
/* Gemma stores RMSNorm weights as w with the norm scaling by (1 + w);
 * GGUF (and this engine) hold 1 + w. True for tensors that need it. */
bool mh_hf_norm_plus_one(const mh_hf_config *c, const char *gguf);

/* ===== convert_bert.c: encoders (bert, nomic-bert), for convert and the
 * folder loader alike ===== */
/* sentence-transformers' modules.json + <Pooling>/config.json -> c->hp.pooling
 * (mean or CLS) and c->pooling_given; no modules.json leaves the default. */
int mh_hf_bert_pooling(const char *dir, mh_hf_config *c, mh_err *err);
/* The checkpoint name of a bert / nomic-bert GGUF tensor (false: none). */
bool mh_hf_bert_tensor_name(const mh_hf_config *c, const char *gguf, char *out, size_t n);
/* After the checkpoint is open: how it spells names ("bert." prefix,
 * LayerNorm gamma/beta), so mh_hf_tensor_name gives names it holds. */
struct mh_safetensors;
void mh_hf_bert_resolve(mh_hf_config *c, const struct mh_safetensors *st);
/* add(ud, gguf, rows, cols) plans one checkpoint tensor (rows 0: a vector). */
struct mh_gguf_writer;
typedef int (*mh_hf_plan_fn)(void *ud, const char *gguf, int64_t rows, int64_t cols, mh_err *err);
int mh_convert_bert_plan(const mh_hf_config *c, mh_hf_plan_fn add, void *ud, mh_err *err);
/* The architecture's keys after general.name, as llama.cpp's BertModel /
 * NomicBertModel classes write them (general.file_type included). */
int mh_convert_bert_keys(const mh_hf_config *c, int ftype, struct mh_gguf_writer *w, mh_err *err);
/* Checkpoint tensors llama.cpp drops for encoders (pooler, MLM heads, position_ids). */
bool mh_convert_bert_ignored(const mh_hf_config *c, const char *hf_name);

/* convert_vocab.c: the tokenizer.* keys of dir (tokenizer.json and
 * tokenizer_config.json) as llama.cpp's converter writes them, padded to
 * cfg's vocab_size. */
struct mh_gguf_writer;
int mh_hf_write_vocab(const char *dir, const mh_hf_config *cfg, struct mh_gguf_writer *w,
                      mh_err *err);

/* Reads a whole file (at most max bytes) as JSON; NULL with err set. */
struct cJSON *mh_hf_read_json(const char *path, size_t max, mh_err *err);

#endif
