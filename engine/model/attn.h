/* attn.h: prompt attention over the KV cache, shared by llama.c (the
 * per-query kernels) and attn.c (the tiled path). Layer: engine/model
 * (private). attn_tile_avx512.c holds the tiled path's SIMD kernels. */
#ifndef MH_MODEL_ATTN_H
#define MH_MODEL_ATTN_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include "model_internal.h"

struct mh_runstate;

typedef struct attn_job {
    struct mh_runstate *rs;  /* scratch slots (mh_runstate_slot_take) */
    const mh_hparams *hp;
    const mh_kv_cache *c;
    const float *q;          /* (T, n_head * hd) */
    int64_t T;
    const uint8_t *k, *v;    /* this layer's cache rows: (n_ctx, row_bytes) */
    float *out;              /* (T, n_head * hd) */
    int64_t pos0;
    int64_t win;             /* > 0: a query sees only the win newest positions */
    float scale, cap;        /* score scale; soft cap (0: none) */
} attn_job;

/* The first position a query at pos (0-based) may see. */
static inline int64_t win_lo(int64_t win, int64_t pos)
{
    return win > 0 && pos + 1 > win ? pos + 1 - win : 0;
}

/* gemma2's soft cap on a score: cap * tanh(x / cap). */
static inline float softcap(float x, float cap) { return cap > 0 ? cap * tanhf(x / cap) : x; }

/* llama.c: one scratch slot (slot_len floats) per concurrent attention task. */
float *mh_runstate_slot_take(struct mh_runstate *rs, int *idx);
void mh_runstate_slot_give(struct mh_runstate *rs, int idx);

/* attn.c: whether the tiled path takes this job (f16 caches from 2 query
 * rows, q8_0 from 8; AVX-512, head_dim a multiple of 16), and then runs it.
 * mh_attn_tiled_off (tests) sends every job down the per-query path. */
extern bool mh_attn_tiled_off;
bool mh_attn_tiled_ok(const attn_job *j);
void mh_attn_tiled(const attn_job *j);
/* Floats of slot scratch the tiled path needs for caches of n_ctx positions. */
size_t mh_attn_tiled_scratch(const mh_hparams *hp, int64_t n_ctx);

/* attn_tile_avx512.c (AVX-512 builds of the kernels; see attn.c for the
 * arithmetic each reproduces). kt: blocks of 16 positions, (hd, 16) each. */
void mh_attn_transpose16_avx512(const float *rows /* (16, hd) */, int64_t hd, float *kt /* (hd, 16) */);
void mh_attn_scores_avx512(const float *kt, int64_t nblk, int64_t hd, const float *q, float scale, float *s);
void mh_attn_mix_avx512(float *acc /* (hd, 16) */, const float *vt, int64_t nblk, int64_t hd, const float *w);
float mh_attn_row_max_avx512(const float *s, int64_t n);
void mh_attn_row_scale_avx512(float *s, int64_t n, float k);
void mh_attn_mix_out_avx512(const float *acc /* (hd, 16) */, int64_t hd, float *out /* hd */);

#endif
