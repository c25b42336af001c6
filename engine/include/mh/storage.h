/* storage.h: a refcounted byte buffer with a free callback, so malloc'd
 * memory and mmapped files look alike to tensors. Layer: engine/base. */
#ifndef MH_STORAGE_H
#define MH_STORAGE_H

#include <stddef.h>
#include <stdatomic.h>
#include "mh/err.h"

typedef void (*mh_free_fn)(void *data, size_t nbytes, void *ud);

typedef struct mh_storage {
    _Atomic int refs;
    void *data;
    size_t nbytes;
    mh_free_fn free_fn;  /* NULL: the memory is borrowed and never freed */
    void *ud;
} mh_storage;

/* New zeroed, 64-byte aligned storage of nbytes; returns a new reference. */
mh_storage *mh_storage_new(size_t nbytes, mh_err *err);
/* Wraps existing memory; free_fn(data, nbytes, ud) runs on last release.
 * Returns a new reference. */
mh_storage *mh_storage_wrap(void *data, size_t nbytes, mh_free_fn free_fn,
                            void *ud, mh_err *err);
/* A new storage over UNINITIALIZED memory (for results about to be written
 * whole). Returns a new reference. */
mh_storage *mh_storage_new_uninit(size_t nbytes, mh_err *err);
void mh_storage_retain(mh_storage *s);
void mh_storage_release(mh_storage *s);   /* NULL is a no-op */

#endif
