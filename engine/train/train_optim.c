/* train_optim.c: optimizer steps: gradient accumulation over micro-batches,
 * global-norm clipping, AdamW (bias-corrected, decoupled weight decay),
 * learning-rate schedules and the NaN guard. Layer: engine/train. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mh/threadpool.h"
#include "train_internal.h"

float mh_train_lr_at(const mh_train_config *c, int64_t step)
{
    if (c->warmup > 0 && step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    if (c->decay == MH_DECAY_CONSTANT) return c->lr;
    double span = (double)(c->total_steps - c->warmup), p = (double)(step - c->warmup) / span;
    if (p > 1) p = 1;
    double f = c->decay == MH_DECAY_LINEAR ? 1 - p : 0.5 * (1 + cos(M_PI * p));
    return (float)(c->min_lr + (c->lr - c->min_lr) * f);
}

static void zero_grads(mh_trainer *t)
{
    for (int i = 0; i < t->n_params; i++) {
        mh_train_param *p = &t->params[i];
        memset(p->grad, 0, sizeof(float) * (size_t)(p->rows * p->cols));
    }
}

/* dropout stream of micro-batch `micro` of optimizer step `step` */
static int64_t drop_key(const mh_trainer *t, int64_t step, int micro)
{
    return t->cfg.method == MH_TRAIN_LORA && t->cfg.lora_dropout > 0 ? step * 4096 + micro : -1;
}

/* Sums gradients over cfg.accumulate micro-batches of the B rows. */
static int accumulate(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
                      double *loss, int64_t *n_tokens, mh_err *err)
{
    int64_t N = mh_tr_count(mask, B, T);
    *n_tokens = N;
    if (N <= 0) return mh_err_set(err, MH_EINVAL, "train: the batch has no unmasked target tokens");
    int acc = t->cfg.accumulate < B ? t->cfg.accumulate : (int)B;
    double sum = 0;
    zero_grads(t);
    for (int k = 0; k < acc; k++) {
        int64_t b0 = B * k / acc, b1 = B * (k + 1) / acc;
        double part = 0;
        int st = mh_tr_run(t, tokens + b0 * T, mask ? mask + b0 * T : NULL, b1 - b0, T, true,
                           1.0f / (float)N, drop_key(t, t->step, k), &part, err);
        if (st) return st;
        sum += part;
    }
    *loss = sum / (double)N;
    return MH_OK;
}

int mh_trainer_grad(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
                    double *loss, int64_t *n_tokens, mh_err *err)
{
    int64_t n;
    int st = accumulate(t, tokens, mask, B, T, loss, &n, err);
    if (n_tokens) *n_tokens = n;
    return st;
}

int mh_trainer_eval(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
                    double *loss_sum, int64_t *n_tokens, mh_err *err)
{
    *n_tokens = mh_tr_count(mask, B, T);
    return mh_tr_run(t, tokens, mask, B, T, false, 0, -1, loss_sum, err);
}

/* ===== AdamW ===== */

typedef struct adam_job {
    mh_train_param *p;
    float lr, b1, b2, eps, wd, clip, c1, c2;
} adam_job;

static void adam_chunk(void *ctx, int64_t i0, int64_t i1)
{
    const adam_job *j = ctx;
    mh_train_param *p = j->p;
    for (int64_t i = i0; i < i1; i++) {
        float g = p->grad[i] * j->clip;
        p->m[i] = j->b1 * p->m[i] + (1 - j->b1) * g;
        p->v[i] = j->b2 * p->v[i] + (1 - j->b2) * g * g;
        float mh = p->m[i] / j->c1, vh = p->v[i] / j->c2;
        p->data[i] -= j->lr * (mh / (sqrtf(vh) + j->eps) + j->wd * p->data[i]);
    }
}

static double grad_norm(const mh_trainer *t)
{
    double s = 0;    /* serial, in parameter order: the same sum every run */
    for (int i = 0; i < t->n_params; i++) {
        const mh_train_param *p = &t->params[i];
        for (int64_t k = 0; k < p->rows * p->cols; k++) s += (double)p->grad[k] * p->grad[k];
    }
    return sqrt(s);
}

static void adamw(mh_trainer *t, float lr, float clip)
{
    const mh_train_config *c = &t->cfg;
    double n = (double)(t->step + 1);
    for (int i = 0; i < t->n_params; i++) {
        adam_job j = { &t->params[i], lr, c->beta1, c->beta2, c->adam_eps,
                       t->params[i].decay ? c->weight_decay : 0.0f, clip,
                       (float)(1 - pow(c->beta1, n)), (float)(1 - pow(c->beta2, n)) };
        mh_parallel_for(t->params[i].rows * t->params[i].cols, mh_tr_grain(4), adam_chunk, &j);
    }
}

int mh_trainer_step(mh_trainer *t, const int32_t *tokens, const uint8_t *mask, int64_t B, int64_t T,
                    mh_train_result *r, mh_err *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(r, 0, sizeof *r);
    int st = accumulate(t, tokens, mask, B, T, &r->loss, &r->n_tokens, err);
    if (st) return st;
    r->grad_norm = grad_norm(t);
    r->lr = mh_train_lr_at(&t->cfg, t->step);
    if (!isfinite(r->loss) || !isfinite(r->grad_norm)) {
        r->nan = true;     /* nothing was written to weights or moments yet */
        zero_grads(t);
    } else {
        float clip = t->cfg.grad_clip > 0 && r->grad_norm > t->cfg.grad_clip
                   ? (float)(t->cfg.grad_clip / r->grad_norm) : 1.0f;
        adamw(t, r->lr, clip);
        t->step++;
    }
    r->step = t->step;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    r->tokens_per_s = r->seconds > 0 ? (double)(B * T) / r->seconds : 0;
    return MH_OK;
}
