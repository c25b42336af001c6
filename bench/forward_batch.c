/* forward_batch.c: benchmark (prints figures, never a test) of the raw
 * decode step mh_model_forward_batch with P sequences of 1 token each (the
 * step continuous batching runs), then of the matmuls alone by token count.
 * Layer: bench; uses the engine's public API. Usage:
 * build/bench/forward_batch MODEL [steps [P]] (threads: MOONHUB_THREADS). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "clock.h"
#include "mh/model.h"

static double now_ms(void) { return wall_s() * 1e3; }

/* the process's CPU ms: with MOONHUB_THREADS=1 the figure a loaded
 * machine disturbs least (time-sliced out, a wall-clock step only grows) */
static double cpu_ms(void) { return process_cpu_s() * 1e3; }

/* best-of-3 ms per step (wall, CPU) of P one-token sequences, each on its
 * own cache */
static int run(mh_model *m, int P, int steps, double *best, double *best_cpu)
{
    mh_err err = {0};
    mh_kv_cache *c[16];
    mh_batch_seq q[16];
    int32_t tok[16];
    int64_t V = mh_model_hparams(m)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)(P * V));
    *best = *best_cpu = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < P; i++) {
            if (!(c[i] = mh_kv_cache_new(m, steps + 8, &err))) return fprintf(stderr, "%s\n", err.msg), 1;
            tok[i] = 100 + i;
            q[i] = (mh_batch_seq){ .cache = c[i], .tokens = &tok[i], .n = 1, .logits = logits + (size_t)i * V };
        }
        if (mh_model_forward_batch(m, q, P, &err)) return fprintf(stderr, "%s\n", err.msg), 1;   /* warm */
        double t0 = now_ms(), c0 = cpu_ms();
        for (int s = 0; s < steps; s++)
            if (mh_model_forward_batch(m, q, P, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        double ms = (now_ms() - t0) / steps, cms = (cpu_ms() - c0) / steps;
        if (ms < *best) *best = ms;
        if (cms < *best_cpu) *best_cpu = cms;
        for (int i = 0; i < P; i++) mh_kv_cache_free(c[i]);
    }
    free(logits);
    return 0;
}

/* every layer projection, then the output, through mh_linear with T rows:
 * best of 5, ms */
static void matmuls(mh_model *m)
{
    const mh_hparams *hp = mh_model_hparams(m);
    int64_t wide = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    int64_t out = wide > hp->n_vocab ? wide : hp->n_vocab;   /* a projection's rows can pass a small vocab's */
    float *x = malloc(sizeof(float) * (size_t)(wide * 8)), *y = malloc(sizeof(float) * (size_t)(out * 8));
    mh_err err = {0};
    for (int64_t i = 0; i < wide * 8; i++) x[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
    for (int T = 1; T <= 8; T = T < 4 ? T + 1 : T * 2) {
        double best_l = 1e30, best_o = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_ms();
            for (int64_t l = 0; l < hp->n_layer; l++)
                for (int k = 0; k < MH_PROJ_COUNT; k++) {
                    const mh_weight *w = mh_layer_proj(mh_model_layer(m, l), (mh_proj)k);
                    if (w && w->data) mh_linear(w, x, T, y, &err);
                }
            double t1 = now_ms();
            mh_linear(&mh_model_globals_get(m)->output, x, T, y, &err);
            double t2 = now_ms();
            if (t1 - t0 < best_l) best_l = t1 - t0;
            if (t2 - t1 < best_o) best_o = t2 - t1;
        }
        printf("matmuls T=%d  layers %.1f ms  output %.1f ms  total %.1f ms\n", T, best_l, best_o, best_l + best_o);
    }
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    if (argc < 2) return fprintf(stderr, "usage: %s MODEL [steps]\n", argv[0]), 2;
    int steps = argc > 2 ? atoi(argv[2]) : 16;
    mh_err err = {0};
    mh_model *m;
    if (mh_model_load(argv[1], &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    int Ps[] = { 1, 2, 4, 8 }, nP = 4;
    if (argc > 3) Ps[0] = atoi(argv[3]), nP = 1;   /* one batch size only */
    for (int k = 0; k < nP; k++) {
        double ms, cms;
        if (run(m, Ps[k], steps, &ms, &cms)) return 1;
        printf("P=%d  %.1f ms/step  %.2f ms/row  %.0f tok/s   CPU %.1f ms/step  %.0f tok/CPU s\n", Ps[k], ms,
               ms / Ps[k], Ps[k] * 1e3 / ms, cms, Ps[k] * 1e3 / cms);
        fflush(stdout);
    }
    if (nP > 1) matmuls(m);
    mh_model_free(m);
    return 0;
}
