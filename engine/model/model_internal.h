/* model_internal.h: the model and cache structs shared by the files of
 * engine/model (not part of the public API). */
#ifndef MH_MODEL_INTERNAL_H
#define MH_MODEL_INTERNAL_H

#include "mh/model.h"

struct mh_gguf;

#define MH_MAX_LORAS 8          /* adapters a model applies at once */
struct mh_safetensors;
struct mh_tensor;

struct mh_runstate;

struct mh_model {
    mh_hparams hp;
    struct mh_gguf *gguf;       /* owns the mapping */
    mh_model_globals g;         /* embedding, output norm and projection, rope factors */
    mh_layer *layers;           /* (n_layer) */
    void **owned;               /* f32 copies of non-f32 vectors, aligned copies */
    int n_owned, cap_owned;
    struct mh_runstate *rs;     /* forward scratch, made on first use (llama.c) */
    struct mh_safetensors *st;  /* HF checkpoint: owns the mappings (NULL for GGUF) */
    struct mh_tensor **held;    /* views taken from st, one reference each */
    const struct mh_hf_config *hf;   /* config.json, during an HF load only (hf_config.h) */
    int n_held;
    struct mh_moe_layer *moe;   /* (n_layer) expert weights, NULL for a dense FFN (moe.c) */
    const struct mh_lora *lora[MH_MAX_LORAS];   /* borrowed adapters, summed */
    int n_lora;
    int64_t n_params;
    size_t weight_bytes;
    struct mh_bert *bert;       /* encoder weights (bert_load.c) or NULL */
};

/* LoRA (lora.c): targets in mh_proj order */
#define MH_LORA_TARGETS MH_PROJ_COUNT
typedef struct mh_lora_pair {
    float *a;                   /* (rank, cols) or NULL: this projection is not adapted */
    float *b;                   /* (rows, rank), rows in the base model's order */
    int64_t rank;
    int64_t rows, cols;         /* the base projection's, checked before use on a model */
} mh_lora_pair;
/* y (T, rows) += scale (x Aᵀ) Bᵀ for each of the model's adapters on (l, k),
 * then each sequence's own adapters on its rows (seqs in batch order, T
 * rows in all); xa: the caller's scratch of mh_lora_scratch_len floats (the
 * forward's RunState holds it, so no call allocates and slots never share). */
int mh_lora_apply(const mh_model *m, int64_t l, int k, const float *x, int64_t T, float *y, float *xa,
                  const struct mh_batch_seq *seqs, int n_seqs, mh_err *err);
int64_t mh_lora_scratch_len(const mh_model *m, int64_t T, const struct mh_batch_seq *seqs, int n_seqs);
/* The update itself: a (r, cols), b (rows, r), x (T, cols), y (T, rows), xa
 * (T, r) scratch. Two OpenBLAS sgemm calls, as the base's f32 path. */
void mh_lora_addmm(const float *a, const float *b, int64_t r, int64_t rows, int64_t cols, float scale,
                   const float *x, int64_t T, float *y, float *xa);

struct mh_kv_cache {
    int64_t n_ctx, n_past, kv_dim, n_layer;
    mh_dtype type;              /* f32, f16 or q8_0 rows */
    size_t row_bytes;           /* bytes of one position's kv_dim values */
    uint8_t *k, *v;             /* (n_layer, n_ctx, kv_dim) each, in type */
};

/* weight_repack.c: packs the q4_0 projections for the level in force
 * (mh/quant_repack.h) and drops the mapped pages they were read from. */
int mh_model_repack(mh_model *m, mh_err *err);

/* llama.c: the forward pass's RunState, freed with the model. */
void mh_runstate_free(struct mh_runstate *rs);

/* llama_names.c: the tensor name table and the binder both loaders use.
 * A getter finds tensor `name` in its format, checks it is (rows, cols)
 * (ndim 1: (cols), rows 1) and points w at its bytes; a missing optional
 * tensor leaves w zeroed. */
typedef int (*mh_tensor_getter)(mh_model *m, const char *name, int ndim, int64_t rows,
                                int64_t cols, bool required, mh_weight *w, mh_err *err);
enum { MH_G_EMBD, MH_G_OUTPUT_NORM, MH_G_OUTPUT, MH_G_ROPE_FREQS, MH_G_ROPE_LONG, MH_G_ROPE_SHORT,
       MH_G_COUNT };
/* The name of a global tensor in a layout; NULL where the layout has none. */
const char *mh_global_name(int which, mh_layout layout);
/* Takes ownership of p (freed with the model); frees p on failure. */
int mh_model_own(mh_model *m, void *p, mh_err *err);
/* get, then an aligned owned copy when the bytes sit at an address the
 * kernels cannot read floats from (general.alignment = 1 files). */
int mh_model_get_weight(mh_model *m, mh_tensor_getter get, const char *name, int64_t rows,
                        int64_t cols, bool required, mh_weight *w, mh_err *err);
/* A 1-D tensor of n values as f32 (an owned copy when stored otherwise). */
int mh_model_get_vec(mh_model *m, mh_tensor_getter get, const char *name, int64_t n,
                     bool required, const float **out, mh_err *err);
/* Points every layer's norms, projections and biases at their tensors. */
int mh_model_bind_layers(mh_model *m, mh_layout layout, mh_tensor_getter get, mh_err *err);

/* moe.c: a mixture-of-experts FFN layer. The stacked 3-D expert tensors
 * (GGUF ne = [cols, rows, n_expert]) are seen as n_expert row ranges of a
 * 2-D weight, one mh_weight view each, so linear.c runs every quant type. */
typedef struct mh_moe_layer {
    mh_weight router;              /* ffn_gate_inp (n_expert, n_embd) */
    mh_weight *gate, *up, *down;   /* (n_expert) views: (n_ff_exp, n_embd) x2, (n_embd, n_ff_exp) */
    const float *shexp_gate;       /* ffn_gate_inp_shexp (n_embd), or NULL */
    mh_weight sh_gate, sh_up, sh_down;   /* the shared expert (qwen2moe), data NULL when none */
} mh_moe_layer;
/* Binds layer l's router, experts and shared expert (GGUF layout only). */
int mh_moe_bind_layer(mh_model *m, mh_layout layout, mh_tensor_getter get, int64_t l, mh_err *err);
/* Floats of scratch mh_moe_ffn needs for T rows. */
size_t mh_moe_scratch_len(const mh_model *m, int64_t T);
/* y (T, n_embd) = the MoE FFN of layer l on normed rows x (T, n_embd):
 * T == 1 runs the chosen experts directly; larger batches group rows by
 * expert and run one multi-row linear per (expert, matrix). */
int mh_moe_ffn(const mh_model *m, int64_t l, const float *x, int64_t T, float *y, float *scratch,
               mh_err *err);
/* llama_names.c: rows [r0, r0 + rows) of w as a view (an owned aligned copy
 * where the view would start at an address floats cannot be read from). */
int mh_model_slice_rows(mh_model *m, const mh_weight *w, int64_t r0, int64_t rows, mh_weight *out,
                        mh_err *err);

/* arch.c: the architecture table and the keys the newer architectures add. */
extern const char *mh_arch_supported;
bool mh_arch_from_name(const char *name, mh_arch *out);
/* After the common keys (head_dim, n_embd... set): attention scale, soft
 * caps, sliding window, rope scaling, per-arch switches. */
int mh_arch_read_hparams(const struct mh_gguf *g, mh_hparams *hp, mh_err *err);

/* bert_load.c: an encoder's tensors (bert, nomic-bert), bound after its
 * hyperparameters; mh_model.layers stays zeroed for them. */
struct mh_bert;
int mh_bert_bind(mh_model *m, mh_tensor_getter get, mh_err *err);
void mh_bert_free(struct mh_bert *b);     /* NULL is a no-op */

/* llama_hf.c: Hugging Face checkpoint directories (config.json + safetensors). */
bool mh_model_is_hf_path(const char *path);     /* a directory or a config.json */
int mh_model_load_hf(const char *path, mh_model **out, mh_err *err);
void mh_model_hf_release(mh_model *m);          /* held views and st; from mh_model_free */

#endif
