/* model_internal.h: the model and cache structs shared by the files of
 * engine/model (not part of the public API). */
#ifndef MH_MODEL_INTERNAL_H
#define MH_MODEL_INTERNAL_H

#include "mh/model.h"

struct mh_gguf;

#define MH_MAX_LORAS 8          /* adapters a model applies at once */
struct mh_safetensors;
struct mh_tensor;

struct mh_model {
    mh_hparams hp;
    struct mh_gguf *gguf;       /* owns the mapping */
    mh_weight tok_embd;         /* (n_vocab, n_embd) */
    const float *output_norm;   /* (n_embd) */
    mh_weight output;           /* (n_vocab, n_embd); = tok_embd when tied */
    const float *rope_freqs;    /* (n_rot/2) llama3 frequency factors or NULL */
    mh_layer *layers;           /* (n_layer) */
    void **owned;               /* f32 copies of non-f32 vectors */
    int n_owned;
    struct mh_safetensors *st;  /* HF checkpoint: owns the mappings (NULL for GGUF) */
    struct mh_tensor **held;    /* views taken from st, one reference each */
    int n_held;
    const struct mh_lora *lora[MH_MAX_LORAS];   /* borrowed adapters, summed */
    int n_lora;
    int64_t n_params;
    size_t weight_bytes;
};

/* LoRA (lora.c): targets in layer order q k v o gate up down */
#define MH_LORA_TARGETS 7
typedef struct mh_lora_pair {
    float *a;                   /* (rank, cols) or NULL: this projection is not adapted */
    float *b;                   /* (rows, rank), rows in the base model's order */
    int64_t rank;
} mh_lora_pair;
/* y (T, rows) += scale (x Aᵀ) Bᵀ when the model has an adapter on (l, k). */
int mh_lora_apply(const mh_model *m, int64_t l, int k, const float *x, int64_t T, float *y, mh_err *err);

struct mh_kv_cache {
    int64_t n_ctx, n_past, kv_dim, n_layer;
    mh_dtype type;              /* f32, f16 or q8_0 rows */
    size_t row_bytes;           /* bytes of one position's kv_dim values */
    uint8_t *k, *v;             /* (n_layer, n_ctx, kv_dim) each, in type */
};

/* llama_hf.c: Hugging Face checkpoint directories (config.json + safetensors). */
bool mh_model_is_hf_path(const char *path);     /* a directory or a config.json */
int mh_model_load_hf(const char *path, mh_model **out, mh_err *err);
void mh_model_hf_release(mh_model *m);          /* held views and st; from mh_model_free */

#endif
