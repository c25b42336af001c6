/* train_lin.c: the linear maps of the training graph: frozen bases of any
 * dtype (dequantized block by block into f32 for sgemm: QLoRA), f32
 * masters (full training) and LoRA adapters with deterministic dropout.
 * Layer: engine/train; uses quant row conversions, OpenBLAS, the pool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mh/quant.h"
#include "mh/threadpool.h"
#include "train_internal.h"

/* ===== frozen base: y = x W^T and dx = dy W with W dequantized in blocks ===== */

typedef struct deq_job { const mh_weight *w; int64_t r0; float *buf; size_t row; } deq_job;

static void deq_rows(void *ctx, int64_t i0, int64_t i1)
{
    const deq_job *j = ctx;
    for (int64_t i = i0; i < i1; i++)
        mh_dequantize_row(j->w->dtype, (const uint8_t *)j->w->data + (size_t)(j->r0 + i) * j->row,
                          j->buf + i * j->w->cols, j->w->cols);
}

/* rows per block: ~1 MiB of f32, so a block stays in L2/L3 while sgemm
 * streams the activations past it */
static int64_t block_rows(const mh_weight *w)
{
    int64_t rb = ((int64_t)1 << 18) / w->cols;
    return rb < 1 ? 1 : rb > w->rows ? w->rows : rb;
}

static int base_mul(const mh_weight *w, const float *x /* (T, cols) */, const float *dy /* (T, rows) */,
                    int64_t T, float *out, bool acc, mh_err *err)
{
    int64_t in = w->cols, rows = w->rows;
    if (w->dtype == MH_DTYPE_F32) {
        if (x) mh_tr_matmul(out, x, w->data, T, in, rows, acc);
        else mh_tr_matmul_bwd(out, NULL, dy, NULL, w->data, T, in, rows, acc);
        return MH_OK;
    }
    int64_t rb = block_rows(w);
    float *buf = malloc(sizeof(float) * (size_t)(rb * in));
    if (!buf) return mh_err_set(err, MH_ENOMEM, "train: out of memory dequantizing a weight");
    for (int64_t r0 = 0; r0 < rows; r0 += rb) {
        int64_t n = rows - r0 < rb ? rows - r0 : rb;
        deq_job dj = { w, r0, buf, mh_dtype_row_size(w->dtype, in) };
        mh_parallel_for(n, mh_tr_grain(in), deq_rows, &dj);
        if (x)      /* out (T, rows)[:, r0:r0+n] = x @ buf^T */
            mh_tr_sgemm(false, true, T, n, in, 1.0f, x, in, buf, in, acc ? 1.0f : 0.0f, out + r0, rows);
        else        /* out (T, in) += dy[:, r0:r0+n] @ buf */
            mh_tr_sgemm(false, false, T, in, n, 1.0f, dy + r0, rows, buf, in, (acc || r0 > 0) ? 1.0f : 0.0f, out, in);
    }
    free(buf);
    return MH_OK;
}

/* ===== dropout: a counter-based hash, so backward regenerates the mask ===== */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

bool mh_tr_keep(uint64_t seed, int64_t key, int id, int64_t idx, float p)
{
    uint64_t h = mix64(seed ^ mix64((uint64_t)key * 0x9e3779b97f4a7c15ULL + (uint64_t)id)
                       ^ ((uint64_t)idx * 0xd1b54a32d192ed03ULL));
    return (float)(h >> 40) * (1.0f / 16777216.0f) >= p;
}

typedef struct drop_job {
    const float *x; float *y; int64_t n; uint64_t seed; int64_t key; int id; float p, inv;
} drop_job;

static void drop_chunk(void *ctx, int64_t i0, int64_t i1)
{
    const drop_job *j = ctx;
    for (int64_t i = i0; i < i1; i++)
        j->y[i] = mh_tr_keep(j->seed, j->key, j->id, i, j->p) ? j->x[i] * j->inv : 0.0f;
}

/* y = dropout(x) over n elements (y may equal x); a copy when p == 0 or key < 0 */
static void dropout(const mh_trainer *t, const tr_lin *L, const float *x, float *y, int64_t n, int64_t key)
{
    float p = t->cfg.lora_dropout;
    if (p <= 0 || key < 0) {
        if (y != x) memcpy(y, x, sizeof(float) * (size_t)n);
        return;
    }
    drop_job j = { x, y, n, t->cfg.seed, key, L->id, p, 1.0f / (1.0f - p) };
    mh_parallel_for(n, mh_tr_grain(4), drop_chunk, &j);
}

/* ===== the linear map ===== */

int mh_tr_lin_fwd(const mh_trainer *t, const tr_lin *L, const float *x /* (BT, in) */, int64_t BT,
                  float *y /* (BT, out) */, float *u /* (BT, r) */, int64_t key, mh_err *err)
{
    int st;
    if (L->w) mh_tr_matmul(y, x, L->w->data, BT, L->in, L->out, false);
    else if ((st = base_mul(L->base, x, NULL, BT, y, false, err))) return st;
    if (!L->a) return MH_OK;
    int64_t r = L->a->rows;
    float *xd = malloc(sizeof(float) * (size_t)(BT * L->in));
    if (!xd) return mh_err_set(err, MH_ENOMEM, "train: out of memory in a LoRA forward");
    dropout(t, L, x, xd, BT * L->in, key);
    mh_tr_matmul(u, xd, L->a->data, BT, L->in, r, false);             /* u = xd A^T */
    mh_tr_sgemm(false, true, BT, L->out, r, t->lora_scale, u, r, L->b->data, r, 1.0f, y, L->out);  /* y += s u B^T */
    free(xd);
    return MH_OK;
}

int mh_tr_lin_bwd(const mh_trainer *t, const tr_lin *L, const float *dy /* (BT, out) */,
                  const float *x /* (BT, in) */, const float *u /* (BT, r) */, int64_t BT,
                  float *dx /* (BT, in) */, bool acc, int64_t key, mh_err *err)
{
    int st;
    if (L->w) mh_tr_matmul_bwd(dx, L->w->grad, dy, x, L->w->data, BT, L->in, L->out, acc);
    else if ((st = base_mul(L->base, NULL, dy, BT, dx, acc, err))) return st;
    if (!L->a) return MH_OK;
    int64_t r = L->a->rows;
    float s = t->lora_scale;
    float *xd = malloc(sizeof(float) * (size_t)(BT * (L->in + r)));
    if (!xd) return mh_err_set(err, MH_ENOMEM, "train: out of memory in a LoRA backward");
    float *du = xd + BT * L->in;
    /* gB += s dy^T u ; du = s dy B */
    mh_tr_sgemm(true, false, L->out, r, BT, s, dy, L->out, u, r, 1.0f, L->b->grad, r);
    mh_tr_sgemm(false, false, BT, r, L->out, s, dy, L->out, L->b->data, r, 0.0f, du, r);
    dropout(t, L, x, xd, BT * L->in, key);
    mh_tr_matmul_bwd(NULL, L->a->grad, du, xd, NULL, BT, L->in, r, false);   /* gA += du^T xd */
    /* dx += dropout'(du A): the same mask and scale as forward */
    mh_tr_matmul_bwd(xd, NULL, du, NULL, L->a->data, BT, L->in, r, false);
    dropout(t, L, xd, xd, BT * L->in, key);
    for (int64_t i = 0; i < BT * L->in; i++) dx[i] += xd[i];
    free(xd);
    return MH_OK;
}
