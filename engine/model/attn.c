/* attn.c: tiled prompt attention over an f16 or q8_0 KV cache, bit-identical
 * to the per-query path for f16 (llama.c attn_llama_items). Layer:
 * engine/model; uses the kernel table (softmax), the quant row converters
 * and the AVX-512 kernels of attn_tile_avx512.c. */
#include <string.h>
#include "mh/cpu.h"
#include "mh/kernels.h"
#include "mh/quant.h"
#include "mh/threadpool.h"
#include "attn.h"

/* A task takes one kv head and a block of query tokens (every head of its
 * group: up to ~48 query rows), then walks the cache in tiles of TILE
 * positions, each widened to f32 once for all those rows: pass 1 scores a
 * tile (keys transposed, one position per SIMD lane), an exact softmax per
 * row over the scores kept (rows x visible positions: memory grows with the
 * rows of a block times the context, never T x T), pass 2 mixes the values a
 * tile at a time (positions in lanes again). Per (query, position) the
 * arithmetic is the per-query path's (llama.cpp's f16 matmuls, its exp and
 * double sum, probabilities on the f16 grid); q8_0 rows take the same route
 * after dequantizing. A row's probabilities need its whole score row first
 * (they are rounded to f16 after the division by the sum, as llama.cpp
 * does), which is why this is two passes rather than an online softmax. */

#define TILE 64      /* positions widened at a time: 2 x 16 KiB of f32 at head_dim 64, in L1 */
#define ROWS 48      /* query rows per task (tokens x heads of one group) */

bool mh_attn_tiled_off;

static int64_t block_tokens(const mh_hparams *hp)
{
    int64_t group = hp->n_head / hp->n_head_kv;
    return group >= ROWS ? 1 : ROWS / group;
}

static int64_t score_stride(int64_t n_ctx) { return (n_ctx + 15) / 16 * 16 + 16; }

size_t mh_attn_tiled_scratch(const mh_hparams *hp, int64_t n_ctx)
{
    int64_t R = block_tokens(hp) * (hp->n_head / hp->n_head_kv), hd = hp->head_dim;
    return (size_t)(R * score_stride(n_ctx) + R * hd + R * 16 * hd + 2 * TILE * hd + 16 * hd);
}

bool mh_attn_tiled_ok(const attn_job *j)
{
    if (mh_attn_tiled_off || j->hp->head_dim % 16 || mh_cpu_level_get() < MH_CPU_AVX512) return false;
    if (j->c->type == MH_DTYPE_F16) return j->T >= 2;
    return j->c->type == MH_DTYPE_Q8_0 && j->T >= 8;
}

typedef struct tile_ctx {
    const attn_job *j;
    int64_t hd, group, kvh, head_off, t0, nt, R, NS, Plo, Phi;
    float *S, *qf, *acc, *kt, *vf, *tmp;
} tile_ctx;

static const uint8_t *cache_row(const tile_ctx *x, const uint8_t *base, int64_t p)
{
    return base + (size_t)p * x->j->c->row_bytes + (size_t)(x->kvh * x->head_off);
}

/* Positions [p0, p0 + np) of the keys or values as f32 blocks of 16
 * positions, each transposed to (hd, 16) (positions past np are zeros). */
static void widen(const tile_ctx *x, const uint8_t *base, int64_t p0, int64_t np, float *dst)
{
    for (int64_t b = 0; b * 16 < np; b++) {
        for (int64_t jj = 0; jj < 16; jj++) {
            int64_t p = b * 16 + jj;
            if (p < np) mh_dequantize_row(x->j->c->type, cache_row(x, base, p0 + p), x->tmp + jj * x->hd, x->hd);
            else memset(x->tmp + jj * x->hd, 0, sizeof(float) * (size_t)x->hd);
        }
        mh_attn_transpose16_avx512(x->tmp, x->hd, dst + b * 16 * x->hd);
    }
}

/* Row r: token t0 + r / group, head kvh * group + r % group; it sees [lo, hi). */
static void row_range(const tile_ctx *x, int64_t r, int64_t *lo, int64_t *hi)
{
    int64_t pos = x->j->pos0 + x->t0 + r / x->group;
    *lo = win_lo(x->j->win, pos);
    *hi = pos + 1;
}

static void pass_scores(const tile_ctx *x)
{
    for (int64_t p0 = x->Plo; p0 < x->Phi; p0 += TILE) {
        int64_t np = x->Phi - p0 < TILE ? x->Phi - p0 : TILE, lo, hi;
        widen(x, x->j->k, p0, np, x->kt);
        for (int64_t r = 0; r < x->R; r++) {
            row_range(x, r, &lo, &hi);
            int64_t a = lo > p0 ? lo : p0, e = hi < p0 + np ? hi : p0 + np;
            if (a >= e) continue;
            int64_t b0 = (a - p0) / 16, b1 = (e - p0 + 15) / 16;
            mh_attn_scores_avx512(x->kt + b0 * 16 * x->hd, b1 - b0, x->hd, x->qf + r * x->hd, x->j->scale,
                                  x->S + r * x->NS + (p0 - x->Plo) + b0 * 16);
        }
    }
}

/* Soft cap, max, llama.cpp's exp and sum, probabilities on the f16 grid. */
static void row_softmax(const tile_ctx *x, const mh_kernels *kn)
{
    for (int64_t r = 0, lo, hi; r < x->R; r++) {
        row_range(x, r, &lo, &hi);
        float *s = x->S + r * x->NS + (lo - x->Plo);
        const int64_t n = hi - lo;
        if (x->j->cap > 0)
            for (int64_t p = 0; p < n; p++) s[p] = softcap(s[p], x->j->cap);
        const float mx = mh_attn_row_max_avx512(s, n);
        mh_attn_row_scale_avx512(s, n, (float)(1.0 / kn->softmax_exp_llama(n, s, mx, s)));
        mh_round_to(MH_DTYPE_F16, s, n);
        /* weight 0 for the positions of its blocks it does not see (pass_mix) */
        memset(x->S + r * x->NS, 0, sizeof(float) * (size_t)(lo - x->Plo));
        memset(s + n, 0, sizeof(float) * (size_t)((x->Phi - x->Plo + 15) / 16 * 16 - (hi - x->Plo)));
    }
}

static void pass_mix(const tile_ctx *x)
{
    const int64_t hd = x->hd, qd = x->j->hp->n_head * hd;
    memset(x->acc, 0, sizeof(float) * (size_t)(x->R * 16 * hd));
    for (int64_t p0 = x->Plo; p0 < x->Phi; p0 += TILE) {
        int64_t np = x->Phi - p0 < TILE ? x->Phi - p0 : TILE, lo, hi;
        widen(x, x->j->v, p0, np, x->vf);
        for (int64_t r = 0; r < x->R; r++) {
            row_range(x, r, &lo, &hi);
            int64_t a = lo > p0 ? lo : p0, e = hi < p0 + np ? hi : p0 + np;
            if (a >= e) continue;
            int64_t b0 = (a - p0) / 16, b1 = (e - p0 + 15) / 16;
            mh_attn_mix_avx512(x->acc + r * hd * 16, x->vf + b0 * 16 * hd, b1 - b0, hd,
                               x->S + r * x->NS + (p0 - x->Plo) + b0 * 16);
        }
    }
    for (int64_t r = 0; r < x->R; r++) {
        int64_t t = x->t0 + r / x->group, h = x->kvh * x->group + r % x->group;
        mh_attn_mix_out_avx512(x->acc + r * hd * 16, hd, x->j->out + t * qd + h * hd);
    }
}

/* Task i: block b of query tokens for kv head i % n_head_kv; blocks are
 * dealt heavy, light, heavy ... so the causal triangle spreads evenly. */
static void tiled_items(void *ctx, int64_t i0, int64_t i1)
{
    const attn_job *j = ctx;
    const mh_hparams *hp = j->hp;
    const mh_kernels *kn = mh_kernels_get();
    const int64_t TB = block_tokens(hp), nb = (j->T + TB - 1) / TB, hd = hp->head_dim;
    int slot;
    float *mem = mh_runstate_slot_take(j->rs, &slot);
    tile_ctx x = { .j = j, .hd = hd, .group = hp->n_head / hp->n_head_kv,
                   .head_off = (int64_t)mh_dtype_row_size(j->c->type, hd), .NS = score_stride(j->c->n_ctx) };
    const int64_t Rmax = TB * x.group;
    x.S = mem;
    x.qf = x.S + Rmax * x.NS;
    x.acc = x.qf + Rmax * hd;
    x.kt = x.acc + Rmax * 16 * hd;
    x.vf = x.kt + TILE * hd;
    x.tmp = x.vf + TILE * hd;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t bi = i / hp->n_head_kv, b = bi % 2 ? nb - 1 - bi / 2 : bi / 2;
        x.kvh = i % hp->n_head_kv;
        x.t0 = b * TB;
        x.nt = j->T - x.t0 < TB ? j->T - x.t0 : TB;
        x.R = x.nt * x.group;
        x.Plo = win_lo(j->win, j->pos0 + x.t0);
        x.Phi = j->pos0 + x.t0 + x.nt;
        for (int64_t r = 0; r < x.R; r++) {   /* q on the f16 grid, as llama.cpp's matmul takes it */
            int64_t t = x.t0 + r / x.group, h = x.kvh * x.group + r % x.group;
            memcpy(x.qf + r * hd, j->q + (t * hp->n_head + h) * hd, sizeof(float) * (size_t)hd);
            mh_round_to(MH_DTYPE_F16, x.qf + r * hd, hd);
        }
        pass_scores(&x);
        row_softmax(&x, kn);
        pass_mix(&x);
    }
    mh_runstate_slot_give(j->rs, slot);
}

void mh_attn_tiled(const attn_job *j)
{
    const int64_t TB = block_tokens(j->hp), nb = (j->T + TB - 1) / TB;
    mh_parallel_for(nb * j->hp->n_head_kv, 1, tiled_items, (void *)j);
}
