/* repack_q4_0.c: benchmark (prints figures, never a test) of q4_0 (or
 * q8_0) matmuls on weights repacked into 16-row groups (mh/quant_repack.h)
 * against the file layout, through mh_linear, at SmolLM2-135M's shapes;
 * with a MODEL, the resident set after loading it instead. Layer: bench;
 * engine's public API. Usage: build/bench/repack_q4_0 [--q8_0] [T...]
 *                 (default T = 1 512)
 *             build/bench/repack_q4_0 --rss MODEL   (MOONHUB_CPU=ref: unpacked)
 *             build/bench/repack_q4_0 --stream [T]   (T-token matmuls from memory)
 *             build/bench/repack_q4_0 --ab MODEL [P [D]]   (packed vs file layout,
 *                 prompt of P tokens and D decode steps, alternating)
 * Threads: MOONHUB_THREADS. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include "clock.h"
#include "mh/model.h"
#include "mh/quant.h"
#include "mh/quant_repack.h"
#include "mh/threadpool.h"

static void print_status(const char *what)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    printf("%s:", what);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS", 5) || !strncmp(line, "VmHWM", 5) || !strncmp(line, "RssAnon", 7) ||
            !strncmp(line, "RssFile", 7))
            printf("  %.*s", (int)strcspn(line, "\n"), line);
    if (f) fclose(f);
    f = fopen("/proc/self/smaps_rollup", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "AnonHugePages", 13)) printf("  %.*s", (int)strcspn(line, "\n"), line);
    printf("\n");
    if (f) fclose(f);
}

/* user + system CPU seconds of the process so far */
static double proc_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int rss(const char *path)
{
    mh_model *m = NULL;
    mh_err err = {0};
    double t0 = wall_s(), c0 = proc_cpu_s();
    if (mh_model_load(path, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    printf("load %.3f s (%.3f CPU s), cpu path %s, layer 0 attn_q %s\n", wall_s() - t0, proc_cpu_s() - c0,
           mh_cpu_level_name(mh_cpu_level_get()), mh_model_layer(m, 0)->wq.packed ? "packed" : "file layout");
    print_status("after load");
    mh_kv_cache *c = mh_kv_cache_new(m, 64, &err);
    int32_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float *logits = malloc(sizeof(float) * (size_t)mh_model_hparams(m)->n_vocab);
    if (!c || !logits || mh_model_forward(m, c, tok, 8, logits, false, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    print_status("after an 8-token forward");
    mh_kv_cache_free(c);
    free(logits);
    mh_model_free(m);
    return 0;
}

static mh_model *load_at(const char *path, mh_cpu_level level)
{
    mh_cpu_level was = mh_cpu_level_get();
    mh_cpu_level_set(level);
    mh_model *m = NULL;
    mh_err err = {0};
    if (mh_model_load(path, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    mh_cpu_level_set(was);
    return m;
}

/* seconds for a prompt of P tokens then D one-token steps on a new cache */
static int run_ab(mh_model *m, int P, int D, double *tp, double *td)
{
    mh_err err = {0};
    int64_t V = mh_model_hparams(m)->n_vocab;
    mh_kv_cache *c = mh_kv_cache_new(m, P + D + 8, &err);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)P);
    float *logits = malloc(sizeof(float) * (size_t)V);
    for (int i = 0; i < P; i++) tok[i] = (int32_t)(1 + (i * 7919) % (V - 1));
    double t0 = wall_s();
    int st = !c || !tok || !logits || mh_model_forward(m, c, tok, P, logits, false, &err);
    double t1 = wall_s();
    for (int i = 0; i < D && !st; i++) st = mh_model_forward(m, c, &tok[i % P], 1, logits, false, &err);
    *tp = t1 - t0;
    *td = wall_s() - t1;
    if (st) fprintf(stderr, "%s\n", err.msg);
    mh_kv_cache_free(c);
    free(tok);
    free(logits);
    return st;
}

/* packed (loaded at the level in force) against the file layout (loaded
 * at the ref level, run at the level in force), alternating, best of 5 */
static int ab(const char *path, int P, int D)
{
    mh_model *pm = load_at(path, mh_cpu_level_get()), *um = load_at(path, MH_CPU_REF);
    if (!pm || !um) return 1;
    double bp[2] = {1e30, 1e30}, bd[2] = {1e30, 1e30};
    for (int rep = 0; rep < 5; rep++)
        for (int k = 0; k < 2; k++) {
            double tp, td;
            if (run_ab(k ? um : pm, P, D, &tp, &td)) return 1;
            if (tp < bp[k]) bp[k] = tp;
            if (td < bd[k]) bd[k] = td;
        }
    printf("pp%d: packed %.1f tok/s, file layout %.1f tok/s, x%.2f\n", P, P / bp[0], P / bp[1], bp[1] / bp[0]);
    printf("tg%d: packed %.1f tok/s, file layout %.1f tok/s, x%.2f\n", D, D / bd[0], D / bd[1], bd[1] / bd[0]);
    mh_model_free(pm);
    mh_model_free(um);
    return 0;
}

/* best seconds per call of mh_linear over ~0.3 s (CPU seconds at one
 * thread, wall-clock ones otherwise) */
static double time_linear(const mh_weight *w, const float *x, int64_t T, float *y)
{
    double (*clk)(void) = mh_threads_get() == 1 ? thread_cpu_s : wall_s;
    double best = 1e30, end = wall_s() + 0.3;
    mh_err err = {0};
    do {
        double t0 = clk();
        mh_linear(w, x, T, y, &err);
        double dt = clk() - t0;
        if (dt > 0 && dt < best) best = dt;   /* 0: below the CPU clock's tick */
    } while (wall_s() < end);
    return best;
}

static void shape(mh_dtype t, int64_t rows, int64_t n, int64_t T)
{
    size_t bytes = mh_dtype_row_size(t, n) * (size_t)rows, bs = mh_dtype_info(t)->type_size;
    uint8_t *wd = malloc(bytes);
    void *pk = malloc(mh_repack_bytes(t, rows, n));
    float *x = malloc(sizeof(float) * (size_t)(T * n)), *y = malloc(sizeof(float) * (size_t)(T * rows));
    for (size_t i = 0; i < bytes / bs; i++) {   /* both types: fp16 d, then level bytes */
        const uint16_t d = mh_f32_to_f16(0.01f + (float)(i % 7) * 0.001f);
        memcpy(wd + i * bs, &d, 2);
        for (size_t j = 2; j < bs; j++) wd[i * bs + j] = (uint8_t)(i * 31 + j * 7);
    }
    for (int64_t i = 0; i < T * n; i++) x[i] = (float)((i * 13) % 17) - 8.0f;
    mh_repack_pack(t, wd, rows, n, pk);
    mh_weight plain = {t, wd, rows, n, NULL}, packed = {t, wd, rows, n, pk};
    double tp = time_linear(&plain, x, T, y), tk = time_linear(&packed, x, T, y);
    tp = fmin(tp, time_linear(&plain, x, T, y));   /* interleaved: A B A B */
    tk = fmin(tk, time_linear(&packed, x, T, y));
    double gop = 2.0 * (double)rows * (double)n * (double)T / 1e9;
    printf("(%5lld x %5lld) T=%-4lld  file layout %8.1f GOPS   packed %8.1f GOPS   x%.2f\n", (long long)rows,
           (long long)n, (long long)T, gop / tp, gop / tk, tp / tk);
    free(wd); free(pk); free(x); free(y);
}

/* one-token matvecs over NW weights of (rows, n), ~100 MB in all: weights
 * from memory, as in decoding; GB/s of weight bytes */
static void stream(mh_dtype t, bool pack, int64_t rows, int64_t n, int64_t T)
{
    enum { NW = 64 };
    size_t bytes = mh_dtype_row_size(t, n) * (size_t)rows;
    mh_weight w[NW];
    float *x = malloc(sizeof(float) * (size_t)(n * T)), *y = malloc(sizeof(float) * (size_t)(rows * T));
    for (int64_t i = 0; i < n * T; i++) x[i] = (float)((i * 13) % 17) - 8.0f;
    for (int k = 0; k < NW; k++) {
        uint8_t *d = malloc(bytes);
        for (size_t i = 0; i < bytes; i++) d[i] = (uint8_t)(i * 7 + k);
        for (size_t i = 0; i < bytes; i += mh_dtype_info(t)->type_size) {
            uint16_t h = mh_f32_to_f16(0.01f);
            memcpy(d + i, &h, 2);
        }
        void *p = NULL;
        if (pack) {
            p = malloc(mh_repack_bytes(t, rows, n));
            mh_repack_pack(t, d, rows, n, p);
        }
        w[k] = (mh_weight){t, d, rows, n, p};
    }
    mh_err err = {0};
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = thread_cpu_s();
        for (int k = 0; k < NW; k++) mh_linear(&w[k], x, T, y, &err);
        double dt = thread_cpu_s() - t0;
        if (dt < best) best = dt;
    }
    printf("stream %s%s (%lld x %lld) x %d, T=%lld: %.1f GB per CPU second\n", mh_dtype_info(t)->name,
           pack ? " packed" : "", (long long)rows, (long long)n, NW, (long long)T, (double)bytes * NW / best / 1e9);
    for (int k = 0; k < NW; k++) { free((void *)w[k].data); free((void *)w[k].packed); }
    free(x); free(y);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--rss")) return rss(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "--ab"))
        return ab(argv[2], argc > 3 ? atoi(argv[3]) : 512, argc > 4 ? atoi(argv[4]) : 64);
    if (argc >= 2 && !strcmp(argv[1], "--stream")) {   /* [T]: tokens per matmul, 1 by default */
        const int64_t T = argc > 2 ? atoll(argv[2]) : 1;
        stream(MH_DTYPE_Q8_0, false, 1536, 576, T);
        stream(MH_DTYPE_Q8_0, true, 1536, 576, T);
        stream(MH_DTYPE_Q4_0, false, 1536, 576, T);
        stream(MH_DTYPE_Q4_0, true, 1536, 576, T);
        stream(MH_DTYPE_Q4_0, true, 576, 1536, T);
        return 0;
    }
    mh_dtype t = MH_DTYPE_Q4_0;
    int a = 1;
    if (argc > 1 && !strcmp(argv[1], "--q8_0")) t = MH_DTYPE_Q8_0, a = 2;
    int64_t toks[8] = {1, 512}, nt = 2;
    if (argc > a) {
        nt = 0;
        for (int i = a; i < argc && nt < 8; i++) toks[nt++] = atoll(argv[i]);
    }
    printf("%s mh_linear, kernels %s, best of ~0.3 s each\n", mh_dtype_info(t)->name, mh_repack_kernels_get()->name);
    for (int64_t i = 0; i < nt; i++) {
        shape(t, 576, 576, toks[i]);
        shape(t, 192, 576, toks[i]);
        shape(t, 1536, 576, toks[i]);
        shape(t, 576, 1536, toks[i]);
    }
    return 0;
}
