/* forward_batch.c: benchmark (prints figures, never a test) of the raw
 * decode step mh_model_forward_batch with P sequences of 1 token each, the
 * step continuous batching runs. Layer: bench; uses the engine's public API.
 * Usage: build/bench/forward_batch MODEL [steps [P]] (threads: MOONHUB_THREADS). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mh/model.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* best-of-3 ms per step of P one-token sequences, each on its own cache */
static int run(mh_model *m, int P, int steps, double *best)
{
    mh_err err = {0};
    mh_kv_cache *c[16];
    mh_batch_seq q[16];
    int32_t tok[16];
    int64_t V = mh_model_hparams(m)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)(P * V));
    *best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < P; i++) {
            if (!(c[i] = mh_kv_cache_new(m, steps + 8, &err))) return fprintf(stderr, "%s\n", err.msg), 1;
            tok[i] = 100 + i;
            q[i] = (mh_batch_seq){ c[i], &tok[i], 1, logits + (size_t)i * V, false, NULL };
        }
        if (mh_model_forward_batch(m, q, P, &err)) return fprintf(stderr, "%s\n", err.msg), 1;   /* warm */
        double t0 = now_ms();
        for (int s = 0; s < steps; s++)
            if (mh_model_forward_batch(m, q, P, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        double ms = (now_ms() - t0) / steps;
        if (ms < *best) *best = ms;
        for (int i = 0; i < P; i++) mh_kv_cache_free(c[i]);
    }
    free(logits);
    return 0;
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
        double ms;
        if (run(m, Ps[k], steps, &ms)) return 1;
        printf("P=%d  %.1f ms/step  %.2f ms/row  %.0f tok/s\n", Ps[k], ms, ms / Ps[k], Ps[k] * 1e3 / ms);
        fflush(stdout);
    }
    mh_model_free(m);
    return 0;
}
