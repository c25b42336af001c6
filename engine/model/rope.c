/* rope.c: rotary position embeddings in llama.cpp's arithmetic (rope.h).
 * Layer: engine/model; uses libm only. The table holds exactly the cos and
 * sin the rotation used to compute inline, so the bits are unchanged: a
 * position's angle pos * base^(-2/n_rot) multiplied up one pair at a time
 * in float, over its frequency factor, times the linear scale. */
#include <math.h>
#include "rope.h"

/* ggml's yarn correction dimension: the pair index whose wavelength fits
 * n_rot (here: beta) turns in the original context. */
static float yarn_corr_dim(int64_t n_dims, int64_t n_ctx_orig, float beta, float base)
{
    return (float)n_dims * logf((float)n_ctx_orig / (beta * 2 * 3.14159265358979f)) / (2 * logf(base));
}

/* Sliding layers of gemma3 use their own base and no linear scaling
 * (llama.cpp and HF alike); phi3's longrope takes the long factors once the
 * cache outgrows the trained context (llama.cpp: n_ctx_per_seq > n_ctx_orig). */
mh_rope_params mh_rope_for(const mh_model *m, int64_t l, int64_t n_ctx)
{
    const mh_hparams *hp = &m->hp;
    bool swa = mh_hparams_layer_swa(hp, l);
    mh_rope_params r = { .base = hp->rope_base, .scale = hp->rope_freq_scale > 0 ? hp->rope_freq_scale : 1.0f,
                         .mscale = hp->rope_attn_factor > 0 ? hp->rope_attn_factor : 1.0f, .ff = m->g.rope_freqs };
    if (swa && hp->rope_base_swa > 0) {
        r.base = hp->rope_base_swa;
        r.scale = 1.0f;
    }
    if (m->g.rope_long) r.ff = n_ctx > hp->rope_orig_ctx ? m->g.rope_long : m->g.rope_short;
    if (hp->rope_scaling == MH_ROPE_SCALING_YARN && r.scale != 1.0f) {
        r.yarn = true;
        r.corr[0] = fmaxf(0.0f, floorf(yarn_corr_dim(hp->n_rot, hp->rope_orig_ctx, 32.0f, r.base)));
        r.corr[1] = fminf((float)(hp->n_rot - 1), ceilf(yarn_corr_dim(hp->n_rot, hp->rope_orig_ctx, 1.0f, r.base)));
        r.mscale *= 1.0f + 0.1f * logf(1.0f / r.scale);   /* attention temperature */
    }
    return r;
}

bool mh_rope_same(const mh_rope_params *a, const mh_rope_params *b)
{
    return a->base == b->base && a->scale == b->scale && a->mscale == b->mscale && a->ff == b->ff &&
           a->yarn == b->yarn && (!a->yarn || (a->corr[0] == b->corr[0] && a->corr[1] == b->corr[1]));
}

void mh_rope_table(const mh_model *m, const mh_rope_params *rp, int64_t T, int64_t pos0, float *cs)
{
    const int64_t half = m->hp.n_rot / 2;
    const float step = powf(rp->base, -2.0f / (float)m->hp.n_rot);
    for (int64_t t = 0; t < T; t++) {
        float theta = (float)(pos0 + t);
        for (int64_t i = 0; i < half; i++, theta *= step, cs += 2) {
            float th = rp->ff ? theta / rp->ff[i] : theta;
            if (rp->yarn) {   /* fast pairs keep their angle, slow ones stretch, a ramp between */
                float y = ((float)i - rp->corr[0]) / fmaxf(0.001f, rp->corr[1] - rp->corr[0]);
                float mix = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
                th = th * rp->scale * (1.0f - mix) + th * mix;
            } else if (rp->scale != 1.0f) {
                th *= rp->scale;
            }
            float c = cosf(th), s = sinf(th);
            if (rp->mscale != 1.0f) { c *= rp->mscale; s *= rp->mscale; }
            cs[0] = c;
            cs[1] = s;
        }
    }
}

/* The rotation fused as ggml's build compiles it. */
void mh_rope_apply(const mh_model *m, const float *cs, float *v, int64_t T, int64_t n_heads)
{
    const mh_hparams *hp = &m->hp;
    const int64_t hd = hp->head_dim, half = hp->n_rot / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            const float c = cs[(t * half + i) * 2], s = cs[(t * half + i) * 2 + 1];
            const int64_t a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + half : 2 * i + 1;
            for (int64_t h = 0; h < n_heads; h++) {
                float *x = v + t * n_heads * hd + h * hd;
                const float x0 = x[a], x1 = x[b];
                x[a] = fmaf(x0, c, -(x1 * s));
                x[b] = fmaf(x0, s, x1 * c);
            }
        }
}
