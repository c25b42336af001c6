/* work.c: one function on a detached worker thread (see mh/work.h); the end
 * is a close of the caller's channel, which wakes the loop.
 * Layer: engine/net (pure C11 + pthreads; no lua.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "mh/work.h"

struct mh_work {
    atomic_int refs;                 /* the caller + the thread */
    atomic_int done;
    mh_work_fn fn;
    mh_work_free_fn free_arg;
    void *arg;
    mh_chan *ch;                     /* retained */
    int status;
    mh_err err;
};

static void work_unref(mh_work *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1) return;
    if (w->free_arg) w->free_arg(w->arg);
    mh_chan_release(w->ch);
    free(w);
}

static void *work_main(void *p)
{
    mh_work *w = p;
    w->status = w->fn(w->arg, &w->err);
    atomic_store(&w->done, 1);
    mh_chan_close(w->ch);            /* after done: whoever wakes sees the status */
    work_unref(w);
    return NULL;
}

mh_work *mh_work_start(mh_work_fn fn, void *arg, mh_work_free_fn free_arg, mh_chan *ch, mh_err *err)
{
    mh_work *w = fn && ch ? calloc(1, sizeof *w) : NULL;
    if (!w) {
        if (free_arg) free_arg(arg);
        mh_err_set(err, fn && ch ? MH_ENOMEM : MH_EINVAL, "work: %s",
                   fn && ch ? "out of memory" : "a function and a channel are needed");
        return NULL;
    }
    atomic_init(&w->refs, 2);
    w->fn = fn;
    w->arg = arg;
    w->free_arg = free_arg;
    w->ch = mh_chan_retain(ch);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, work_main, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_store(&w->refs, 1);
        work_unref(w);
        mh_err_set(err, MH_EIO, "work: cannot start a worker thread: %s", strerror(rc));
        return NULL;
    }
    return w;
}

int mh_work_done(mh_work *w) { return atomic_load(&w->done); }

int mh_work_status(mh_work *w, mh_err *err)
{
    if (!atomic_load(&w->done)) return mh_err_set(err, MH_EINVAL, "work: still running");
    if (w->status && err) *err = w->err;
    return w->status;
}

void *mh_work_arg(mh_work *w) { return w->arg; }

void mh_work_release(mh_work *w)
{
    if (w) work_unref(w);
}
