/* membw.c: the memory-bandwidth probe (mh/membw.h). Layer: engine/base;
 * uses the thread pool and the monotonic clock only.
 * Each thread sums 64-bit words of its own slice, in 4 independent lanes so
 * the loop is load-bound rather than add-latency-bound (the compiler turns
 * it into vector loads); the sum is returned, so the reads cannot be elided
 * and a test can check that every word was read.
 * Best of rounds: a figure taken while anything else runs is low, never high. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mh/membw.h"
#include "mh/threadpool.h"

#define SLICE_WORDS (1 << 16)   /* 512 KiB per parallel_for chunk */

typedef struct probe {
    const uint64_t *w;
    _Atomic uint64_t sink;
} probe;

static void read_slice(void *ctx, int64_t begin, int64_t end)
{
    probe *p = ctx;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (int64_t i = begin * SLICE_WORDS; i < end * SLICE_WORDS; i += 4) {
        a += p->w[i];
        b += p->w[i + 1];
        c += p->w[i + 2];
        d += p->w[i + 3];
    }
    p->sink += a + b + c + d;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Twice the LLC the OS reports (some VMs report more than the CPU has),
 * at least 256 MiB, at most 1 GiB. */
static size_t default_bytes(void)
{
    size_t b = (size_t)256 << 20;
#ifdef _SC_LEVEL3_CACHE_SIZE
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc > 0 && 2 * (size_t)llc > b) b = 2 * (size_t)llc;
#endif
    return b > ((size_t)1 << 30) ? (size_t)1 << 30 : b;
}

int mh_membw_probe(size_t bytes, int rounds, mh_membw_result *out, mh_err *err)
{
    if (!bytes) bytes = default_bytes();
    if (rounds <= 0) rounds = 5;
    if (bytes < ((size_t)1 << 20)) return mh_err_set(err, MH_EINVAL, "membw: buffer must be at least 1 MiB");
    int64_t slices = (int64_t)(bytes / (SLICE_WORDS * sizeof(uint64_t)));
    size_t n = (size_t)slices * SLICE_WORDS * sizeof(uint64_t);
    uint64_t *w = malloc(n);
    if (!w) return mh_err_set(err, MH_ENOMEM, "membw: cannot allocate %zu bytes", n);
    memset(w, 1, n);                                   /* touch every page first */
    probe p = {.w = w};
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        mh_parallel_for(slices, 1, read_slice, &p);
        double dt = now_s() - t0;
        if (dt > 0 && (double)n / dt > best) best = (double)n / dt;
    }
    free(w);
    *out = (mh_membw_result){.bytes_per_s = best, .buffer_bytes = n, .threads = mh_threads_get(),
                             .rounds = rounds, .checksum = p.sink};
    return MH_OK;
}
