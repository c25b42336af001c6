/* loop.h: the event loop (libevent) with timers, SIGINT/SIGTERM, and the
 * channels (mh/chan.h, engine/base) whose pushes wake it.
 * Layer: engine/net (pure C11, no lua.h). One loop belongs to one thread (the
 * Lua state's); only mh_chan_push/close/retain/release may be called from
 * other threads. */
#ifndef MH_LOOP_H
#define MH_LOOP_H

#include <stddef.h>
#include "mh/chan.h"
#include "mh/err.h"

typedef struct mh_loop mh_loop;
typedef struct mh_timer mh_timer;

typedef void (*mh_timer_fn)(mh_timer *t, void *ud);
typedef void (*mh_signal_fn)(int signo, void *ud);

/* ===== the loop (owner thread only) ===== */

/* A new loop; returns its owner's reference or NULL (err set). */
mh_loop *mh_loop_new(mh_err *err);
/* Drops the owner's reference: stops timers and signal watching at once;
 * the memory goes when the last channel made on it is released too. */
void mh_loop_release(mh_loop *loop);
/* Runs until mh_loop_stop (once = 0) or until at least one event was handled
 * (once = 1). A loop already running is MH_EINVAL (no re-entry). */
int mh_loop_run(mh_loop *loop, int once, mh_err *err);
/* Makes mh_loop_run return after the current callback. */
void mh_loop_stop(mh_loop *loop);
int mh_loop_running(const mh_loop *loop);
/* The libevent base (struct event_base *), for the HTTP server. Borrowed. */
struct event_base *mh_loop_base(mh_loop *loop);
/* Calls fn(signo, ud) on the loop thread for SIGINT and SIGTERM while set;
 * fn = NULL gives the previous handlers back. */
int mh_loop_on_signals(mh_loop *loop, mh_signal_fn fn, void *ud, mh_err *err);

/* ===== timers (owner thread only) ===== */

/* Calls fn after seconds, then every seconds when repeat. The caller owns the
 * timer; mh_timer_free cancels it (allowed inside fn). */
mh_timer *mh_timer_new(mh_loop *loop, double seconds, int repeat, mh_timer_fn fn,
                       void *ud, mh_err *err);
void mh_timer_free(mh_timer *t);

/* ===== lag probe (owner thread only) ===== */

/* How late the loop runs its timers: a one-shot timer every interval
 * seconds whose lateness (run time - due time) lands in a histogram. A
 * callback that blocks the loop for 13 s shows up as one 13 s sample. */
#define MH_LOOP_LAG_BUCKETS 13
typedef struct mh_loop_lag {
    double le[MH_LOOP_LAG_BUCKETS];         /* upper bounds (s), ascending */
    long long counts[MH_LOOP_LAG_BUCKETS];  /* samples <= le[i] (cumulative) */
    long long n;                            /* samples */
    double sum, max;                        /* seconds */
} mh_loop_lag;

/* Starts the probe (idempotent: a running probe keeps its interval). */
int mh_loop_lag_enable(mh_loop *loop, double interval, mh_err *err);
/* The histogram so far; 0 when the probe never ran, else 1. */
int mh_loop_lag_read(mh_loop *loop, mh_loop_lag *out);

/* ===== channels (the rest of their API is in mh/chan.h) ===== */

/* A new channel whose pushes wake this loop; returns one reference (it
 * keeps the loop's memory alive, not the loop running). */
mh_chan *mh_chan_new(mh_loop *loop, mh_err *err);

#endif
