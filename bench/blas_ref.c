/* blas_ref.c: the C reference figures for bench/run.sh — OpenBLAS
 * cblas_sgemm called directly, and plain C loops for add and softmax split
 * over pthreads (c = a + b into a warm buffer, and a += b). Layer: bench (a standalone program, not part of the engine).
 * Usage: blas_ref THREADS. Prints "case unit value" lines, the same cases and
 * format as bench/tensor.lua; each value is the best of a few repetitions. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "clock.h"

#define MAX_THREADS 64


static float *rand_buf(size_t n, uint32_t seed)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
    if (!p) { fprintf(stderr, "blas_ref: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;   /* [-1, 1) */
    }
    return p;
}

/* ===== matmul ===== */
static void bench_matmul(int m, int k, int n, int reps)
{
    float *a = rand_buf((size_t)m * k, 1), *b = rand_buf((size_t)k * n, 2), *c = rand_buf((size_t)m * n, 3);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {   /* the first run warms up */
        double t0 = wall_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        double dt = wall_s() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    printf("matmul_%dx%dx%d GFLOP/s %.2f\n", m, k, n, 2.0 * m * k * n / best * 1e-9);
    free(a); free(b); free(c);
}

/* ===== elementwise add and softmax over rows, split across threads ===== */
typedef struct job {
    const float *a, *b;
    float *out;
    size_t begin, end;     /* elements (add) or rows (softmax) */
    size_t cols;
} job;

static void *add_part(void *p)
{
    job *j = p;   /* restrict: lets the compiler vectorize, as any tuned C loop would */
    const float *restrict a = j->a, *restrict b = j->b;
    float *restrict c = j->out;
    for (size_t i = j->begin; i < j->end; i++) c[i] = a[i] + b[i];
    return NULL;
}

static void *add_inplace_part(void *p)
{
    job *j = p;
    float *restrict a = j->out;
    const float *restrict b = j->b;
    for (size_t i = j->begin; i < j->end; i++) a[i] += b[i];
    return NULL;
}

static void *softmax_part(void *p)
{
    job *j = p;
    for (size_t r = j->begin; r < j->end; r++) {
        const float *x = j->a + r * j->cols;
        float *y = j->out + r * j->cols, mx = x[0], sum = 0;
        for (size_t i = 1; i < j->cols; i++) mx = x[i] > mx ? x[i] : mx;
        for (size_t i = 0; i < j->cols; i++) sum += y[i] = expf(x[i] - mx);
        float inv = 1.0f / sum;
        for (size_t i = 0; i < j->cols; i++) y[i] *= inv;
    }
    return NULL;
}

static double run_parallel(void *(*fn)(void *), job base, size_t n, int threads)
{
    pthread_t th[MAX_THREADS];
    job jobs[MAX_THREADS];
    double t0 = wall_s();
    for (int i = 0; i < threads; i++) {
        jobs[i] = base;
        jobs[i].begin = n * (size_t)i / (size_t)threads;
        jobs[i].end = n * (size_t)(i + 1) / (size_t)threads;
        if (i > 0) pthread_create(&th[i], NULL, fn, &jobs[i]);
    }
    fn(&jobs[0]);
    for (int i = 1; i < threads; i++) pthread_join(th[i], NULL);
    return wall_s() - t0;
}

static void bench_add(size_t n, int threads, int reps)
{
    float *a = rand_buf(n, 4), *b = rand_buf(n, 5), *c = rand_buf(n, 6);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double dt = run_parallel(add_part, (job){ a, b, c, 0, 0, 0 }, n, threads);
        if (r > 0 && dt < best) best = dt;
    }
    printf("add_%zuM GB/s %.2f\n", n >> 20, 3.0 * 4 * (double)n / best * 1e-9);  /* 2 reads + 1 write */
    best = 1e30;    /* a += b: the same bytes counted, but no third buffer to fetch */
    for (int r = 0; r < reps + 1; r++) {
        double dt = run_parallel(add_inplace_part, (job){ NULL, b, a, 0, 0, 0 }, n, threads);
        if (r > 0 && dt < best) best = dt;
    }
    printf("add_%zuM_inplace GB/s %.2f\n", n >> 20, 3.0 * 4 * (double)n / best * 1e-9);
    free(a); free(b); free(c);
}

static void bench_softmax(size_t rows, size_t cols, int threads, int reps)
{
    float *x = rand_buf(rows * cols, 7), *y = rand_buf(rows * cols, 8);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double dt = run_parallel(softmax_part, (job){ x, NULL, y, 0, 0, cols }, rows, threads);
        if (r > 0 && dt < best) best = dt;
    }
    printf("softmax_%zux%zu GB/s %.2f\n", rows, cols, 2.0 * 4 * (double)(rows * cols) / best * 1e-9);
    free(x); free(y);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "usage: blas_ref THREADS (1..%d)\n", MAX_THREADS);
        return 2;
    }
    openblas_set_num_threads(threads);
    bench_matmul(1024, 1024, 1024, 5);
    bench_matmul(4096, 512, 4096, 3);
    bench_add((size_t)16 << 20, threads, 5);
    bench_softmax(4096, 4096, threads, 5);
    return 0;
}
