/* rope.h: rotary position embeddings of the llama-family forward (rope.c).
 * Layer: engine/model (private to llama.c). The angles of a step are made
 * once into a cos/sin table that q, k and every layer with the same rope
 * read, so a token pays one cosf/sinf per pair, not one per pair per head
 * kind per layer. */
#ifndef MH_MODEL_ROPE_H
#define MH_MODEL_ROPE_H

#include <stdbool.h>
#include <stdint.h>
#include "model_internal.h"

/* The rope of one layer: theta, the angle scale, per-frequency divisors
 * and the cos/sin factor (see rope.c's rope_for). */
typedef struct mh_rope_params {
    float base, scale, mscale;
    const float *ff;
    bool yarn;
    float corr[2];           /* yarn: pairs below corr[0] keep their angle, above corr[1] scale */
} mh_rope_params;

mh_rope_params mh_rope_for(const mh_model *m, int64_t l, int64_t n_ctx);
bool mh_rope_same(const mh_rope_params *a, const mh_rope_params *b);
/* cs (T, n_rot / 2, 2): cos and sin of positions pos0.. */
void mh_rope_table(const mh_model *m, const mh_rope_params *rp, int64_t T, int64_t pos0, float *cs);
/* Rotates each head of v (T, n_heads * head_dim) in place by the table. */
void mh_rope_apply(const mh_model *m, const float *cs, float *v, int64_t T, int64_t n_heads);

#endif
