/* chan.c: channels and the hub they post to (mh/chan.h); pushes from any
 * thread wake the hub's owner through one eventfd.
 * Layer: engine/base (pure C11 + pthreads; no event library, no lua.h).
 * Why an eventfd: a write() to it is thread-safe by itself and costs one
 * syscall, and any event loop can watch it (engine/net/loop.c does). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "mh/chan.h"

typedef struct msg_node {
    struct msg_node *next;
    mh_chan_msg msg;
} msg_node;

struct mh_chan_hub {
    atomic_int refs;                 /* owner + one per channel */
    int wake_fd;                     /* eventfd: pushes write, the owner reads */
    pthread_mutex_t mu;              /* guards ready and closed */
    mh_chan *ready;                  /* channels with news, each retained */
    int closed;                      /* owner shut it: no more wake-ups */
    void (*on_free)(void *ud);
    void *ud;
};

struct mh_chan {
    atomic_int refs;
    mh_chan_hub *hub;                /* retained */
    pthread_mutex_t mu;              /* guards the queue and closed */
    msg_node *head, *tail;
    int closed;
    int queued;                      /* on hub->ready (guarded by hub->mu) */
    mh_chan *next_ready;
    mh_chan_fn fn;                   /* owner thread only */
    void *ud;
};

/* ===== hubs ===== */

mh_chan_hub *mh_chan_hub_new(void (*on_free)(void *ud), void *ud, mh_err *err)
{
    mh_chan_hub *hub = calloc(1, sizeof *hub);
    if (!hub) { mh_err_set(err, MH_ENOMEM, "channel: out of memory"); return NULL; }
    hub->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (hub->wake_fd < 0) {
        mh_err_set(err, MH_EIO, "channel: cannot create an eventfd: %s", strerror(errno));
        free(hub);
        return NULL;
    }
    atomic_init(&hub->refs, 1);
    pthread_mutex_init(&hub->mu, NULL);
    hub->on_free = on_free;
    hub->ud = ud;
    return hub;
}

void mh_chan_hub_release(mh_chan_hub *hub)
{
    if (!hub || atomic_fetch_sub(&hub->refs, 1) != 1) return;
    close(hub->wake_fd);
    pthread_mutex_destroy(&hub->mu);
    void (*on_free)(void *) = hub->on_free;
    void *ud = hub->ud;
    free(hub);
    if (on_free) on_free(ud);
}

int mh_chan_hub_fd(const mh_chan_hub *hub) { return hub->wake_fd; }

static void chan_notify(mh_chan *ch)
{
    if (ch->fn) ch->fn(ch, ch->ud);
}

void mh_chan_hub_dispatch(mh_chan_hub *hub)
{
    uint64_t n;
    while (read(hub->wake_fd, &n, sizeof n) > 0) {}
    pthread_mutex_lock(&hub->mu);
    mh_chan *list = hub->ready;
    hub->ready = NULL;
    pthread_mutex_unlock(&hub->mu);
    while (list) {
        mh_chan *c = list;
        /* next_ready is read and queued cleared under the lock, one channel
         * at a time: once queued is 0 a push from another thread relinks c
         * into the new ready list, rewriting next_ready */
        pthread_mutex_lock(&hub->mu);
        list = c->next_ready;
        c->queued = 0;
        pthread_mutex_unlock(&hub->mu);
        chan_notify(c);
        mh_chan_release(c);
    }
}

void mh_chan_hub_shut(mh_chan_hub *hub)
{
    pthread_mutex_lock(&hub->mu);
    hub->closed = 1;
    mh_chan *list = hub->ready;
    hub->ready = NULL;
    for (mh_chan *c = list; c; c = c->next_ready) c->queued = 0;
    pthread_mutex_unlock(&hub->mu);
    while (list) {
        mh_chan *c = list;
        list = c->next_ready;
        mh_chan_release(c);
    }
}

/* ===== channels ===== */

mh_chan *mh_chan_open(mh_chan_hub *hub, mh_err *err)
{
    mh_chan *ch = calloc(1, sizeof *ch);
    if (!ch) { mh_err_set(err, MH_ENOMEM, "channel: out of memory"); return NULL; }
    atomic_init(&ch->refs, 1);
    pthread_mutex_init(&ch->mu, NULL);
    atomic_fetch_add(&hub->refs, 1);
    ch->hub = hub;
    return ch;
}

mh_chan *mh_chan_retain(mh_chan *ch)
{
    atomic_fetch_add(&ch->refs, 1);
    return ch;
}

void mh_chan_release(mh_chan *ch)
{
    if (!ch || atomic_fetch_sub(&ch->refs, 1) != 1) return;
    for (msg_node *n = ch->head, *next; n; n = next) {
        next = n->next;
        free(n->msg.data);
        free(n);
    }
    pthread_mutex_destroy(&ch->mu);
    mh_chan_hub *hub = ch->hub;
    free(ch);
    mh_chan_hub_release(hub);
}

/* Puts ch on the hub's ready list (once) and wakes the owner. */
static void chan_post(mh_chan *ch)
{
    mh_chan_hub *hub = ch->hub;
    pthread_mutex_lock(&hub->mu);
    int wake = !hub->closed;
    if (wake && !ch->queued) {
        ch->queued = 1;
        ch->next_ready = hub->ready;
        hub->ready = mh_chan_retain(ch);
    }
    pthread_mutex_unlock(&hub->mu);
    if (wake) {
        uint64_t one = 1;
        /* EAGAIN means the counter is full: the owner is woken anyway */
        while (write(hub->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {}
    }
}

int mh_chan_push(mh_chan *ch, int tag, const void *data, size_t len, mh_err *err)
{
    msg_node *n = malloc(sizeof *n);
    char *copy = n && len < SIZE_MAX ? malloc(len + 1) : NULL;
    if (!copy) {
        free(n);
        return mh_err_set(err, MH_ENOMEM, "channel: out of memory for a %zu-byte message", len);
    }
    if (len) memcpy(copy, data, len);
    copy[len] = 0;
    *n = (msg_node){ NULL, { tag, len, copy } };
    pthread_mutex_lock(&ch->mu);
    int closed = ch->closed;
    if (!closed) {
        if (ch->tail) ch->tail->next = n;
        else ch->head = n;
        ch->tail = n;
    }
    pthread_mutex_unlock(&ch->mu);
    if (closed) {
        free(copy);
        free(n);
        return mh_err_set(err, MH_EINVAL, "channel: push on a closed channel");
    }
    chan_post(ch);
    return MH_OK;
}

void mh_chan_close(mh_chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    int was = ch->closed;
    ch->closed = 1;
    pthread_mutex_unlock(&ch->mu);
    if (!was) chan_post(ch);
}

int mh_chan_pop(mh_chan *ch, mh_chan_msg *out)
{
    pthread_mutex_lock(&ch->mu);
    msg_node *n = ch->head;
    if (n) {
        ch->head = n->next;
        if (!ch->head) ch->tail = NULL;
    }
    pthread_mutex_unlock(&ch->mu);
    if (!n) return 0;
    *out = n->msg;
    free(n);
    return 1;
}

int mh_chan_done(mh_chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    int done = ch->closed && !ch->head;
    pthread_mutex_unlock(&ch->mu);
    return done;
}

void mh_chan_listen(mh_chan *ch, mh_chan_fn fn, void *ud)
{
    ch->fn = fn;
    ch->ud = ud;
}
