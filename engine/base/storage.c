/* storage.c: refcounted byte buffers (see mh/storage.h). Layer: engine/base.
 * Refcounts are atomic so a model's weights can be shared across threads.
 * Large blocks (>= 1 MiB) go through a small cache of freed blocks: glibc
 * serves such sizes with fresh mmaps, and page-faulting a new 64 MB result
 * in on every call cost more than the arithmetic (see docs/performance.md). */
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <pthread.h>
#include "mh/storage.h"

/* ===== large-block cache ===== */

#define BIG_MIN ((size_t)1 << 20)
#define CACHE_SLOTS 8
#define CACHE_MAX_BYTES ((size_t)1 << 30)
#define HDR 64                   /* keeps data 64-byte aligned; holds the capacity */

static struct { void *base[CACHE_SLOTS]; size_t cap[CACHE_SLOTS]; size_t total; } g_cache;
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns 64-aligned memory of at least n bytes (capacity stored before it). */
static void *mem_alloc(size_t n)
{
    size_t cap = (n + 63) & ~(size_t)63;
    if (cap == 0) cap = 64;
    if (cap >= BIG_MIN) {
        int best = -1;
        pthread_mutex_lock(&g_cache_lock);
        for (int i = 0; i < CACHE_SLOTS; i++)   /* smallest block that fits, wasting < 50 % */
            if (g_cache.base[i] && g_cache.cap[i] >= cap && g_cache.cap[i] <= cap + cap / 2 &&
                (best < 0 || g_cache.cap[i] < g_cache.cap[best]))
                best = i;
        void *b = NULL;
        if (best >= 0) {
            b = g_cache.base[best];
            g_cache.total -= g_cache.cap[best];
            g_cache.base[best] = NULL;
        }
        pthread_mutex_unlock(&g_cache_lock);
        if (b) return (char *)b + HDR;
    }
    char *b = aligned_alloc(64, cap + HDR);
    if (!b) return NULL;
    memcpy(b, &cap, sizeof cap);
    return b + HDR;
}

static void mem_free(void *p)
{
    if (!p) return;
    char *b = (char *)p - HDR;
    size_t cap;
    memcpy(&cap, b, sizeof cap);
    if (cap >= BIG_MIN && cap <= CACHE_MAX_BYTES / 2) {
        pthread_mutex_lock(&g_cache_lock);
        int slot = -1;
        for (int i = 0; i < CACHE_SLOTS && slot < 0; i++) if (!g_cache.base[i]) slot = i;
        while (slot < 0 || g_cache.total + cap > CACHE_MAX_BYTES) {   /* evict the largest */
            int big = -1;
            for (int i = 0; i < CACHE_SLOTS; i++)
                if (g_cache.base[i] && (big < 0 || g_cache.cap[i] > g_cache.cap[big])) big = i;
            if (big < 0) break;
            free(g_cache.base[big]);
            g_cache.total -= g_cache.cap[big];
            g_cache.base[big] = NULL;
            slot = big;
        }
        if (slot >= 0) {
            g_cache.base[slot] = b;
            g_cache.cap[slot] = cap;
            g_cache.total += cap;
            b = NULL;
        }
        pthread_mutex_unlock(&g_cache_lock);
    }
    free(b);
}

static void free_block(void *data, size_t nbytes, void *ud)
{
    (void)nbytes; (void)ud;
    mem_free(data);
}

/* ===== storage ===== */

mh_storage *mh_storage_new_uninit(size_t nbytes, mh_err *err)
{
    void *data = mem_alloc(nbytes);
    if (!data) {
        mh_err_set(err, MH_ENOMEM, "out of memory allocating %zu bytes", nbytes);
        return NULL;
    }
    mh_storage *s = mh_storage_wrap(data, nbytes, free_block, NULL, err);
    if (!s) mem_free(data);
    return s;
}

mh_storage *mh_storage_new(size_t nbytes, mh_err *err)
{
    mh_storage *s = mh_storage_new_uninit(nbytes, err);
    if (s) memset(s->data, 0, nbytes);
    return s;
}

mh_storage *mh_storage_wrap(void *data, size_t nbytes, mh_free_fn free_fn, void *ud, mh_err *err)
{
    mh_storage *s = malloc(sizeof *s);
    if (!s) {
        mh_err_set(err, MH_ENOMEM, "out of memory allocating a storage header");
        return NULL;
    }
    s->refs = 1;
    s->data = data;
    s->nbytes = nbytes;
    s->free_fn = free_fn;
    s->ud = ud;
    return s;
}

void mh_storage_retain(mh_storage *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void mh_storage_release(mh_storage *s)
{
    if (!s) return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    if (s->free_fn) s->free_fn(s->data, s->nbytes, s->ud);
    free(s);
}
