/* float_gemm.c: benchmark (prints figures, never a test) of float-weight
 * matmuls through mh_linear at few tokens, weights streamed from memory as
 * in decoding and speculative checks: ms per layer and the cost of T rows
 * over one row (or prompt-sized T). Layer: bench; uses the engine's public
 * model API. Usage: build/bench/float_gemm [f32|f16|bf16] [s135|tl] [reps]
 * [T...] (default f32 tl 5 1 2 3 4 5 6 7 8). Threads: MOONHUB_THREADS; at
 * one thread the times are CPU seconds (steadier on a shared machine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "mh/model.h"
#include "mh/threadpool.h"

enum { MAXL = 64, NM = 7, MAXT = 16, MAXTOK = 512 };   /* layers of copies: 256 MB, past any LLC */

static mh_dtype parse_type(const char *s)
{
    if (!strcmp(s, "f16")) return MH_DTYPE_F16;
    if (!strcmp(s, "bf16")) return MH_DTYPE_BF16;
    return MH_DTYPE_F32;
}

int main(int argc, char **argv)
{
    mh_dtype t = argc > 1 ? parse_type(argv[1]) : MH_DTYPE_F32;
    int small = argc > 2 && !strcmp(argv[2], "s135");
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    int64_t toks[MAXT] = {1, 2, 3, 4, 5, 6, 7, 8}, nt = 8;
    if (argc > 4) {
        nt = 0;
        for (int i = 4; i < argc && nt < MAXT; i++) toks[nt++] = atoll(argv[i]);
    }
    /* (rows, cols) of q, k, v, o, gate, up, down */
    const int64_t e = small ? 576 : 2048, kv = small ? 192 : 256, f = small ? 1536 : 5632;
    const int64_t shp[NM][2] = {{e, e}, {kv, e}, {kv, e}, {e, e}, {f, e}, {f, e}, {e, f}};
    size_t layer = 0;
    for (int m = 0; m < NM; m++) layer += mh_dtype_row_size(t, shp[m][1]) * (size_t)shp[m][0];
    const int NL = (int)((256u << 20) / layer + 1) < MAXL ? (int)((256u << 20) / layer + 1) : MAXL;
    static mh_weight w[MAXL][NM];
    size_t bytes = 0;
    for (int l = 0; l < NL; l++)
        for (int m = 0; m < NM; m++) {
            size_t sz = mh_dtype_row_size(t, shp[m][1]) * (size_t)shp[m][0];
            uint16_t *d = malloc(sz);
            if (!d) return 1;
            for (size_t i = 0; i < sz / 2; i++) d[i] = (uint16_t)(0x3c00 + (i * 7 + (size_t)l) % 512);
            w[l][m] = (mh_weight){.dtype = t, .data = d, .rows = shp[m][0], .cols = shp[m][1]};
            bytes += sz;
        }
    int64_t tmax = 1;
    for (int i = 0; i < nt; i++) {
        if (toks[i] < 1 || toks[i] > MAXTOK) return fprintf(stderr, "float_gemm: T in 1..%d\n", MAXTOK), 1;
        if (toks[i] > tmax) tmax = toks[i];
    }
    float *x = malloc(sizeof(float) * (size_t)(tmax * f)), *y = malloc(sizeof(float) * (size_t)(tmax * f));
    if (!x || !y) return 1;
    for (int64_t i = 0; i < tmax * f; i++) x[i] = (float)((i * 13) % 17 - 8) / 8.0f;
    double (*clk)(void) = mh_threads_get() == 1 ? process_cpu_s : wall_s;
    double best[MAXT];
    for (int i = 0; i < nt; i++) best[i] = 1e30;
    mh_err err = {0};
    for (int r = 0; r < reps; r++)   /* interleaved: every T once per round */
        for (int i = 0; i < nt; i++) {
            double t0 = clk();
            for (int l = 0; l < NL; l++)
                for (int m = 0; m < NM; m++)
                    if (mh_linear(&w[l][m], x, toks[i], y, &err)) return 1;
            double dt = (clk() - t0) / NL;
            if (dt < best[i]) best[i] = dt;
        }
    printf("%s %s layer (%.1f MB), %d threads, best of %d\n", mh_dtype_info(t)->name, small ? "s135" : "tinyllama",
           bytes / NL / 1e6, mh_threads_get(), reps);
    for (int i = 0; i < nt; i++)
        printf("T=%-3lld %8.3f ms/layer  %6.1f GB/s  x%.2f of T=%lld  %7.1f tokens/s\n", (long long)toks[i], best[i] * 1e3,
               bytes / NL / best[i] / 1e9, best[i] / best[0], (long long)toks[0], toks[i] / best[i]);
    for (int l = 0; l < NL; l++)
        for (int m = 0; m < NM; m++) free((void *)w[l][m].data);
    free(x); free(y);
    return 0;
}
