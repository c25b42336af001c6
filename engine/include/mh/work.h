/* work.h: one function run on a worker thread, its end reported through a
 * channel (mh/loop.h), so the event loop never waits on a long call (model
 * loads, tokenizer parsing). Layer: engine/net (pure C11; no lua.h). */
#ifndef MH_WORK_H
#define MH_WORK_H

#include "mh/err.h"
#include "mh/loop.h"

typedef struct mh_work mh_work;

/* Runs on the worker thread: pure C, no Lua. Returns a status, err set. */
typedef int (*mh_work_fn)(void *arg, mh_err *err);
/* Frees arg and whatever the result still owns (any thread, once). */
typedef void (*mh_work_free_fn)(void *arg);

/* Runs fn(arg) on a new thread and closes ch (borrowed, retained) when it
 * returns. Returns the caller's reference, or NULL (err set) when no thread
 * can start; arg is then freed with free_arg. */
mh_work *mh_work_start(mh_work_fn fn, void *arg, mh_work_free_fn free_arg, mh_chan *ch, mh_err *err);
/* 1 once fn has returned. */
int mh_work_done(mh_work *w);
/* After done: fn's status (err filled when nonzero); MH_EINVAL before. */
int mh_work_status(mh_work *w, mh_err *err);
/* The arg, for the caller to take the result from once done. */
void *mh_work_arg(mh_work *w);
/* Drops the caller's reference; arg is freed once the thread has ended too
 * (a job nobody waits for any more finishes and cleans up by itself). */
void mh_work_release(mh_work *w);

#endif
