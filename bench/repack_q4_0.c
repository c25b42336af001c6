/* repack_q4_0.c: benchmark (prints figures, never a test) of q4_0 matmuls
 * on weights repacked into 16-row groups (mh/quant_repack.h) against the
 * file layout, through mh_linear, at SmolLM2-135M's shapes; with a MODEL,
 * the resident set after loading it instead. Layer: bench; engine's public
 * API. Usage: build/bench/repack_q4_0 [T...]   (default T = 1 512)
 *             build/bench/repack_q4_0 --rss MODEL   (MOONHUB_CPU=ref: unpacked)
 * Threads: MOONHUB_THREADS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mh/model.h"
#include "mh/quant.h"
#include "mh/quant_repack.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_status(const char *what)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    printf("%s:", what);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS", 5) || !strncmp(line, "VmHWM", 5) || !strncmp(line, "RssAnon", 7) ||
            !strncmp(line, "RssFile", 7))
            printf("  %.*s", (int)strcspn(line, "\n"), line);
    printf("\n");
    if (f) fclose(f);
}

static int rss(const char *path)
{
    mh_model *m = NULL;
    mh_err err = {0};
    double t0 = now_s();
    if (mh_model_load(path, &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    printf("load %.3f s, cpu path %s, layer 0 attn_q %s\n", now_s() - t0,
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

/* best seconds per call of mh_linear over ~0.3 s */
static double time_linear(const mh_weight *w, const float *x, int64_t T, float *y)
{
    double best = 1e30, end = now_s() + 0.3;
    mh_err err = {0};
    do {
        double t0 = now_s();
        mh_linear(w, x, T, y, &err);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    } while (now_s() < end);
    return best;
}

static void shape(int64_t rows, int64_t n, int64_t T)
{
    size_t bytes = mh_dtype_row_size(MH_DTYPE_Q4_0, n) * (size_t)rows;
    uint8_t *wd = malloc(bytes);
    void *pk = malloc(mh_repack_bytes(MH_DTYPE_Q4_0, rows, n));
    float *x = malloc(sizeof(float) * (size_t)(T * n)), *y = malloc(sizeof(float) * (size_t)(T * rows));
    mh_block_q4_0 *b = (mh_block_q4_0 *)wd;
    for (size_t i = 0; i < bytes / sizeof *b; i++) {
        b[i].d = mh_f32_to_f16(0.01f + (float)(i % 7) * 0.001f);
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(i * 31 + j * 7);
    }
    for (int64_t i = 0; i < T * n; i++) x[i] = (float)((i * 13) % 17) - 8.0f;
    mh_repack_pack(MH_DTYPE_Q4_0, wd, rows, n, pk);
    mh_weight plain = {MH_DTYPE_Q4_0, wd, rows, n, NULL}, packed = {MH_DTYPE_Q4_0, wd, rows, n, pk};
    double tp = time_linear(&plain, x, T, y), tk = time_linear(&packed, x, T, y);
    double gop = 2.0 * (double)rows * (double)n * (double)T / 1e9;
    printf("(%5lld x %5lld) T=%-4lld  file layout %8.1f GOPS   packed %8.1f GOPS   x%.2f\n", (long long)rows,
           (long long)n, (long long)T, gop / tp, gop / tk, tp / tk);
    free(wd); free(pk); free(x); free(y);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--rss")) return rss(argv[2]);
    int64_t toks[8] = {1, 512}, nt = 2;
    if (argc > 1) {
        nt = 0;
        for (int i = 1; i < argc && nt < 8; i++) toks[nt++] = atoll(argv[i]);
    }
    printf("q4_0 mh_linear, kernels %s, best of ~0.3 s each\n", mh_repack_kernels_get()->name);
    for (int64_t i = 0; i < nt; i++) {
        shape(576, 576, toks[i]);
        shape(192, 576, toks[i]);
        shape(1536, 576, toks[i]);
        shape(576, 1536, toks[i]);
    }
    return 0;
}
