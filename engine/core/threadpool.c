/* threadpool.c: placeholder serial pool; replaced by the real pool. */
#include "mh/threadpool.h"

static int g_threads = 1;

void mh_parallel_for(int64_t n, int64_t min_chunk, mh_range_fn fn, void *ctx)
{
    (void)min_chunk;
    if (n > 0) fn(ctx, 0, n);
}

int mh_threads_get(void) { return g_threads; }
void mh_threads_set(int n) { g_threads = n; }
