/* storage.c: refcounted byte buffers (see mh/storage.h). Layer: engine/core.
 * Refcounts are atomic so a model's weights can be shared across threads. */
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include "mh/storage.h"

static void free_aligned(void *data, size_t nbytes, void *ud)
{
    (void)nbytes; (void)ud;
    free(data);
}

mh_storage *mh_storage_new(size_t nbytes, mh_err *err)
{
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    void *data = aligned_alloc(64, rounded ? rounded : 64);
    if (!data) {
        mh_err_set(err, MH_ENOMEM, "out of memory allocating %zu bytes", nbytes);
        return NULL;
    }
    memset(data, 0, rounded ? rounded : 64);
    mh_storage *s = mh_storage_wrap(data, nbytes, free_aligned, NULL, err);
    if (!s) free(data);
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
