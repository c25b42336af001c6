/* kernel_util.h: what the kernel benchmarks (gemm_kernel, matvec_kernel)
 * share: thread CPU time (clock.h), a fixed-seed generator and random quantized
 * weights. Header-only (static): each benchmark is one program. Layer:
 * bench; uses the engine's public quant API. */
#ifndef MH_BENCH_KERNEL_UTIL_H
#define MH_BENCH_KERNEL_UTIL_H
#include <stdint.h>
#include <stdlib.h>
#include "clock.h"
#include "mh/quant.h"

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

/* R rows of n: quantized random floats (valid scales by construction) */
static uint8_t *weights(mh_dtype t, int64_t R, int64_t n)
{
    size_t row = mh_dtype_row_size(t, n);
    uint8_t *w = malloc(row * (size_t)R);
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!w || !f) exit(1);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t i = 0; i < n; i++) f[i] = ((int)(rnd() % 2001) - 1000) / 1000.0f;
        mh_quantize_row(t, f, w + (size_t)r * row, n);
    }
    free(f);
    return w;
}

#endif
