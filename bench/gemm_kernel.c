/* gemm_kernel.c: benchmark (prints figures, never a test) of the tiled
 * quantized gemm kernels alone: one thread, random blocks, the shapes of a
 * SmolLM2-135M layer, GOPS = 2 R n T / thread CPU second (CPU time, so a
 * shared machine's load moves it less than wall time). Layer: bench; uses
 * the engine's public quant API. Usage: build/bench/gemm_kernel [T [reps [rows]]]
 * (rows: rows per gemm call, as mh_linear's work items; default all) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernel_util.h"
#include "mh/quant.h"

static int64_t g_chunk;   /* rows per gemm call, 0: all */

static void gemm_rows(const mh_quant_traits *tr, int64_t n, const uint8_t *w, size_t w_row, int64_t R,
                      const void *x, size_t x_row, int64_t T, float *y)
{
    int64_t step = g_chunk > 0 ? g_chunk : R;
    for (int64_t r = 0; r < R; r += step)
        tr->gemm(n, w + (size_t)r * w_row, w_row, R - r < step ? R - r : step, x, x_row, T, y + r, R);
}

static double bench_case(const mh_quant_traits *tr, mh_dtype t, int64_t R, int64_t n, int64_t T, int reps)
{
    mh_dtype vt = tr->vec_dot_type;
    void *w = weights(t, R, n), *x = weights(vt, T, n);
    float *y = malloc(sizeof(float) * (size_t)(R * T));
    size_t w_row = mh_dtype_row_size(t, n), x_row = mh_dtype_row_size(vt, n);
    double best = 1e30;
    gemm_rows(tr, n, w, w_row, R, x, x_row, T, y);   /* warm-up */
    for (int i = 0; i < reps; i++) {
        double t0 = thread_cpu_s();
        gemm_rows(tr, n, w, w_row, R, x, x_row, T, y);
        double dt = thread_cpu_s() - t0;
        if (dt < best) best = dt;
    }
    free(w); free(x); free(y);
    return 2.0 * (double)R * (double)n * (double)T / best / 1e9;
}

int main(int argc, char **argv)
{
    int64_t T = argc > 1 ? atoll(argv[1]) : 64;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    g_chunk = argc > 3 ? atoll(argv[3]) : 0;
    static const mh_dtype types[] = {MH_DTYPE_Q8_0, MH_DTYPE_Q5_0, MH_DTYPE_Q4_K, MH_DTYPE_Q6_K};
    /* (rows, cols): attention q / o, ffn gate / up, ffn down */
    static const int64_t shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}};
    printf("%-6s %-6s %11s %4s %8s\n", "type", "level", "R x n", "T", "GOPS");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            mh_dtype t = types[ti];
            int64_t R = shapes[si][0], n = shapes[si][1];
            if (n % mh_dtype_info(t)->block_size) continue;
            const mh_quant_traits *tr = mh_quant_traits_get(t);
            if (!tr->gemm) continue;
            printf("%-6s %-6s %5lld x %-4lld %4lld %8.1f\n", mh_dtype_info(t)->name,
                   mh_cpu_level_name(mh_cpu_level_get()), (long long)R, (long long)n, (long long)T,
                   bench_case(tr, t, R, n, T, reps));
        }
    return 0;
}
