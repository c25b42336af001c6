/* threadpool.h: the one thread pool kernels use. Layer: engine/base.
 * Size from MOONHUB_THREADS (default: number of cores). OpenBLAS is set to
 * the same count; the pool never calls BLAS from its workers, so the two do
 * not oversubscribe the cores. */
#ifndef MH_THREADPOOL_H
#define MH_THREADPOOL_H

#include <stdint.h>

/* fn(ctx, begin, end) is called on disjoint chunks covering [0, n).
 * Runs inline when n is small or the pool has one thread. */
typedef void (*mh_range_fn)(void *ctx, int64_t begin, int64_t end);

void mh_parallel_for(int64_t n, int64_t min_chunk, mh_range_fn fn, void *ctx);
int mh_threads_get(void);
void mh_threads_set(int n);    /* also sets OpenBLAS threads */

#endif
