/* matvec_kernel.c: benchmark (prints figures, never a test) of the one-token
 * matvec kernels alone: one thread, quantized random rows, GB/s of weights
 * per thread CPU second, the level's vec_dot row by row against its rows
 * kernel (vec_dot_rows), from L2 (a 256-row slab) and streamed from DRAM
 * (16 copies of a 1B-class ffn matrix). Layer: bench; uses the public quant
 * API. Usage: build/bench/matvec_kernel [reps] (MOONHUB_CPU picks the level) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kernel_util.h"
#include "mh/quant.h"

/* one pass over the R rows: the rows kernel, or vec_dot row by row */
static void pass(const mh_quant_traits *tr, bool rows, int64_t n, const uint8_t *w, size_t w_row, int64_t R,
                 const void *x, float *y)
{
    if (rows) {
        tr->vec_dot_rows(n, w, w_row, R, x, y);
        return;
    }
    for (int64_t r = 0; r < R; r++) tr->vec_dot(n, w + (size_t)r * w_row, x, &y[r]);
}

/* best GB/s over reps passes; copies > 1: the rows repeated copies times
 * (a buffer past the LLC), each pass reading all of it */
static double bench_case(const mh_quant_traits *tr, bool rows, mh_dtype t, int64_t R, int64_t n, int copies, int reps)
{
    size_t w_row = mh_dtype_row_size(t, n), bytes = w_row * (size_t)R;
    uint8_t *w0 = weights(t, R, n), *w = malloc(bytes * (size_t)copies);
    uint8_t *x = weights(tr->vec_dot_type, 1, n);
    float *y = malloc(sizeof(float) * (size_t)(R * copies));
    if (!w || !y) exit(1);
    for (int c = 0; c < copies; c++) memcpy(w + bytes * (size_t)c, w0, bytes);
    double best = 1e30;
    for (int i = 0; i <= reps; i++) {   /* the first pass warms up */
        double t0 = thread_cpu_s();
        pass(tr, rows, n, w, w_row, R * copies, x, y);
        double dt = thread_cpu_s() - t0;
        if (i && dt < best) best = dt;
    }
    free(w0); free(w); free(x); free(y);
    return (double)bytes * copies / best / 1e9;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    static const mh_dtype types[] = {MH_DTYPE_Q4_K, MH_DTYPE_Q6_K, MH_DTYPE_Q5_0, MH_DTYPE_Q8_0};
    printf("level %s; GB/s of weights per thread CPU second (best of %d)\n",
           mh_cpu_level_name(mh_cpu_level_get()), reps);
    printf("%-6s %-14s %10s %10s\n", "type", "case", "vec_dot", "rows");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        mh_dtype t = types[ti];
        const mh_quant_traits *tr = mh_quant_traits_get(t);
        /* (R, n, copies): L2-resident slab; 16 copies of the ffn up and
         * down matrices of a 1B-class model (short and long rows) */
        static const int64_t cases[][3] = {{256, 2048, 1}, {5632, 2048, 16}, {2048, 5632, 16}};
        static const char *names[] = {"L2 256x2048", "DRAM 5632x2048", "DRAM 2048x5632"};
        for (int k = 0; k < 3; k++) {
            const int64_t R = cases[k][0], n = cases[k][1];
            double a = bench_case(tr, false, t, R, n, (int)cases[k][2], reps);
            double b = tr->vec_dot_rows ? bench_case(tr, true, t, R, n, (int)cases[k][2], reps) : 0.0;
            printf("%-6s %-14s %10.2f %10.2f\n", mh_dtype_info(t)->name, names[k], a, b);
        }
    }
    return 0;
}
