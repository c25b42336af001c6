/* train_internal.h: the trainer's structs, shared by the files of engine/train
 * (not public). Layer: engine/train. Reaches the model's weights through
 * mh/model.h only (mh_model_layer, mh_model_globals_get); projections are
 * named by mh_proj, as the forward pass and LoRA adapters name them. */
#ifndef MH_TRAIN_INTERNAL_H
#define MH_TRAIN_INTERNAL_H

#include "mh/train.h"
#include "mh/model.h"


/* One linear map y = x W^T (+ LoRA). */
typedef struct tr_lin {
    const mh_weight *base;    /* as loaded (frozen in LoRA mode) */
    mh_train_param *w;        /* full: f32 master (out, in) */
    mh_train_param *a, *b;    /* LoRA: A (r, in), B (out, r) */
    int64_t in, out;
    int id;                   /* layer * MH_PROJ_COUNT + target: dropout stream */
} tr_lin;

typedef struct tr_layer {
    const float *attn_norm, *ffn_norm, *bq, *bk, *bv;   /* values in use */
    mh_train_param *attn_norm_p, *ffn_norm_p, *bq_p, *bk_p, *bv_p;   /* full only */
    tr_lin lin[MH_PROJ_COUNT];
} tr_layer;

/* Saved activations of one layer for rows BT (see docs/training.md). */
typedef struct tr_acts {
    float *xn1, *rstd1, *q, *k, *v, *att, *lse, *x1, *rstd2, *xn2, *g, *u, *h;
    float *lora_u[MH_PROJ_COUNT];   /* (BT, r): dropout(x) A^T */
} tr_acts;

struct mh_trainer {
    mh_model *m;
    const mh_hparams *hp;                          /* the model's */
    mh_train_config cfg;
    mh_train_param *params;
    int n_params;
    tr_layer *layers;
    const float *out_norm;
    mh_train_param *embd_p, *out_norm_p, *out_p;   /* full only (out_p = embd_p when tied) */
    mh_weight embd_w, out_w;                       /* what forward reads */
    float lora_scale;
    int64_t step;                                  /* optimizer steps taken */
    float *rope_cs;                                /* (rope_T, n_rot/2, 2) */
    int64_t rope_T;
};

/* train_model.c: forward (+ backward when training) of rows (B, T) with
 * targets/weights, adding gscale-weighted gradients. Returns the weighted
 * loss sum in *loss. key >= 0 enables dropout with that stream key. */
int mh_tr_run(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
              bool backward, float gscale, int64_t key, double *loss, mh_err *err);
int64_t mh_tr_count(const uint8_t *mask, int64_t B, int64_t T);

/* train_lin.c: y = x W^T (+ s dropout(x) A^T B^T), u = dropout(x) A^T saved;
 * backward writes dx (adds when acc) and adds the trainable grads. */
int mh_tr_lin_fwd(const mh_trainer *t, const tr_lin *L, const float *x, int64_t BT, float *y,
                  float *u, int64_t key, mh_err *err);
int mh_tr_lin_bwd(const mh_trainer *t, const tr_lin *L, const float *dy, const float *x,
                  const float *u, int64_t BT, float *dx, bool acc, int64_t key, mh_err *err);
/* The dropout mask bit of element idx of stream (key, id). */
bool mh_tr_keep(uint64_t seed, int64_t key, int id, int64_t idx, float p);

#endif
