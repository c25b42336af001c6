/* chan.h: channels, the thread-safe queues by which compute threads hand
 * results to the thread owning their hub. Layer: engine/base (pure C11 +
 * pthreads; no event library). A hub is a ready list and an eventfd its
 * owner watches (the event loop of mh/loop.h does). Only push, close,
 * retain and release may be called from other threads than the owner. */
#ifndef MH_CHAN_H
#define MH_CHAN_H

#include <stddef.h>
#include "mh/err.h"

typedef struct mh_chan mh_chan;
typedef struct mh_chan_hub mh_chan_hub;

typedef void (*mh_chan_fn)(mh_chan *ch, void *ud);

/* A message taken from a channel: data is malloc'd, NUL-terminated after
 * len bytes, and owned by the caller (free()). */
typedef struct mh_chan_msg {
    int tag;
    size_t len;
    char *data;
} mh_chan_msg;

/* ===== hubs (owner thread) ===== */

/* A new hub holding one reference (its owner's); on_free(ud) runs when the
 * last reference goes (owner and every channel made on it). */
mh_chan_hub *mh_chan_hub_new(void (*on_free)(void *ud), void *ud, mh_err *err);
void mh_chan_hub_release(mh_chan_hub *hub);
/* The eventfd that becomes readable when a channel has news. */
int mh_chan_hub_fd(const mh_chan_hub *hub);
/* Owner thread, when the fd is readable: drains it and calls each ready
 * channel's listener. */
void mh_chan_hub_dispatch(mh_chan_hub *hub);
/* Owner thread: no more wake-ups (pushes still queue); drops the ready list. */
void mh_chan_hub_shut(mh_chan_hub *hub);

/* ===== channels ===== */

/* A new channel posting to hub; returns one reference (it retains the hub). */
mh_chan *mh_chan_open(mh_chan_hub *hub, mh_err *err);
mh_chan *mh_chan_retain(mh_chan *ch);          /* any thread */
void mh_chan_release(mh_chan *ch);             /* any thread */
/* Any thread: queues a copy of data[0..len) with tag and wakes the hub.
 * MH_EINVAL once the channel is closed, MH_ENOMEM when out of memory. */
int mh_chan_push(mh_chan *ch, int tag, const void *data, size_t len, mh_err *err);
/* Any thread: no more pushes; queued messages can still be popped. */
void mh_chan_close(mh_chan *ch);
/* Owner thread: takes the oldest message into *out; 1 when one was taken,
 * 0 when the queue is empty. */
int mh_chan_pop(mh_chan *ch, mh_chan_msg *out);
/* 1 when closed and empty: nothing will ever arrive. */
int mh_chan_done(mh_chan *ch);
/* Owner thread: fn(ch, ud) runs on the owner thread after pushes and close
 * (perhaps once for several, perhaps with nothing left to pop). NULL stops. */
void mh_chan_listen(mh_chan *ch, mh_chan_fn fn, void *ud);

#endif
