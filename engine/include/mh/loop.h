/* loop.h: the event loop (libevent) with timers, SIGINT/SIGTERM and channels,
 * the thread-safe queues by which compute threads hand results to the loop.
 * Layer: engine/net (pure C11, no lua.h). One loop belongs to one thread (the
 * Lua state's); only mh_chan_push/close/retain/release may be called from
 * other threads. */
#ifndef MH_LOOP_H
#define MH_LOOP_H

#include <stddef.h>
#include "mh/err.h"

typedef struct mh_loop mh_loop;
typedef struct mh_timer mh_timer;
typedef struct mh_chan mh_chan;

typedef void (*mh_timer_fn)(mh_timer *t, void *ud);
typedef void (*mh_chan_fn)(mh_chan *ch, void *ud);
typedef void (*mh_signal_fn)(int signo, void *ud);

/* A message taken from a channel: data is malloc'd, NUL-terminated after
 * len bytes, and owned by the caller (free()). */
typedef struct mh_chan_msg {
    int tag;
    size_t len;
    char *data;
} mh_chan_msg;

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

/* ===== channels ===== */

/* A new channel on loop; returns one reference (it retains the loop). */
mh_chan *mh_chan_new(mh_loop *loop, mh_err *err);
mh_chan *mh_chan_retain(mh_chan *ch);          /* any thread */
void mh_chan_release(mh_chan *ch);             /* any thread */
/* Any thread: queues a copy of data[0..len) with tag and wakes the loop.
 * MH_EINVAL once the channel is closed, MH_ENOMEM when out of memory. */
int mh_chan_push(mh_chan *ch, int tag, const void *data, size_t len, mh_err *err);
/* Any thread: no more pushes; queued messages can still be popped. */
void mh_chan_close(mh_chan *ch);
/* Owner thread: takes the oldest message into *out; 1 when one was taken,
 * 0 when the queue is empty. */
int mh_chan_pop(mh_chan *ch, mh_chan_msg *out);
/* 1 when closed and empty: nothing will ever arrive. */
int mh_chan_done(mh_chan *ch);
/* Owner thread: fn(ch, ud) runs on the loop thread after pushes and close
 * (perhaps once for several, perhaps with nothing left to pop). NULL stops. */
void mh_chan_listen(mh_chan *ch, mh_chan_fn fn, void *ud);

#endif
