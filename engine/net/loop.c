/* loop.c: the event loop over libevent — timers, SIGINT/SIGTERM, and channels
 * whose pushes from any thread wake the loop through one eventfd.
 * Layer: engine/net (pure C11 + libevent + pthreads; no lua.h).
 * Why an eventfd and not event_active() from other threads: the latter needs
 * libevent's locking (evthread_use_pthreads, another library to link); a
 * write() to an eventfd is thread-safe by itself and costs one syscall. */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <event2/event.h>
#include "mh/loop.h"

typedef struct msg_node {
    struct msg_node *next;
    mh_chan_msg msg;
} msg_node;

struct mh_loop {
    atomic_int refs;                 /* owner + one per channel */
    struct event_base *base;
    int wake_fd;                     /* eventfd: pushes write, the loop reads */
    struct event *wake_ev;
    struct event *sig_ev[2];         /* SIGINT, SIGTERM while watched */
    mh_signal_fn sig_fn;
    void *sig_ud;
    int running;
    pthread_mutex_t mu;              /* guards ready and closed */
    mh_chan *ready;                  /* channels with news, each retained */
    int closed;                      /* owner released: no more wake-ups */
    struct lag_probe *lag;           /* mh_loop_lag_enable; NULL until then */
};

struct mh_chan {
    atomic_int refs;
    mh_loop *loop;                   /* retained */
    pthread_mutex_t mu;              /* guards the queue and closed */
    msg_node *head, *tail;
    int closed;
    int queued;                      /* on loop->ready (guarded by loop->mu) */
    mh_chan *next_ready;
    mh_chan_fn fn;                   /* owner thread only */
    void *ud;
};

struct mh_timer {
    struct event *ev;
    mh_timer_fn fn;
    void *ud;
};

/* ===== loop ===== */

static void loop_unref(mh_loop *loop)
{
    if (atomic_fetch_sub(&loop->refs, 1) != 1) return;
    event_base_free(loop->base);
    close(loop->wake_fd);
    pthread_mutex_destroy(&loop->mu);
    free(loop);
}

static void chan_notify(mh_chan *ch);

/* The loop thread: take the ready list and tell each channel's listener. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    mh_loop *loop = arg;
    uint64_t n;
    while (read(fd, &n, sizeof n) > 0) {}
    pthread_mutex_lock(&loop->mu);
    mh_chan *list = loop->ready;
    loop->ready = NULL;
    pthread_mutex_unlock(&loop->mu);
    while (list) {
        mh_chan *c = list;
        /* next_ready is read and queued cleared under the lock, one channel
         * at a time: once queued is 0 a push from another thread relinks c
         * into the new ready list, rewriting next_ready */
        pthread_mutex_lock(&loop->mu);
        list = c->next_ready;
        c->queued = 0;
        pthread_mutex_unlock(&loop->mu);
        chan_notify(c);
        mh_chan_release(c);
    }
}

mh_loop *mh_loop_new(mh_err *err)
{
    mh_loop *loop = calloc(1, sizeof *loop);
    if (!loop) { mh_err_set(err, MH_ENOMEM, "loop: out of memory"); return NULL; }
    atomic_init(&loop->refs, 1);
    loop->wake_fd = -1;
    loop->base = event_base_new();
    if (loop->base) loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd >= 0)
        loop->wake_ev = event_new(loop->base, loop->wake_fd, EV_READ | EV_PERSIST, on_wake, loop);
    if (!loop->wake_ev || event_add(loop->wake_ev, NULL) != 0) {
        mh_err_set(err, MH_EIO, "loop: cannot create the event loop: %s", strerror(errno));
        if (loop->wake_ev) event_free(loop->wake_ev);
        if (loop->wake_fd >= 0) close(loop->wake_fd);
        if (loop->base) event_base_free(loop->base);
        free(loop);
        return NULL;
    }
    pthread_mutex_init(&loop->mu, NULL);
    return loop;
}

static void lag_free(mh_loop *loop);

void mh_loop_release(mh_loop *loop)
{
    if (!loop) return;
    lag_free(loop);
    mh_loop_on_signals(loop, NULL, NULL, NULL);
    pthread_mutex_lock(&loop->mu);
    loop->closed = 1;
    mh_chan *list = loop->ready;
    loop->ready = NULL;
    for (mh_chan *c = list; c; c = c->next_ready) c->queued = 0;
    pthread_mutex_unlock(&loop->mu);
    event_free(loop->wake_ev);
    loop->wake_ev = NULL;
    while (list) {
        mh_chan *c = list;
        list = c->next_ready;
        mh_chan_release(c);
    }
    loop_unref(loop);
}

int mh_loop_run(mh_loop *loop, int once, mh_err *err)
{
    if (loop->running)
        return mh_err_set(err, MH_EINVAL, "loop: already running (no nested runs)");
    loop->running = 1;
    int rc = event_base_loop(loop->base, once ? EVLOOP_ONCE : 0);
    loop->running = 0;
    if (rc < 0) return mh_err_set(err, MH_EIO, "loop: event_base_loop failed");
    return MH_OK;
}

void mh_loop_stop(mh_loop *loop) { event_base_loopbreak(loop->base); }
int mh_loop_running(const mh_loop *loop) { return loop->running; }
struct event_base *mh_loop_base(mh_loop *loop) { return loop->base; }

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    mh_loop *loop = arg;
    if (loop->sig_fn) loop->sig_fn((int)sig, loop->sig_ud);
}

int mh_loop_on_signals(mh_loop *loop, mh_signal_fn fn, void *ud, mh_err *err)
{
    static const int sigs[2] = { SIGINT, SIGTERM };
    loop->sig_fn = fn;
    loop->sig_ud = ud;
    for (int i = 0; i < 2; i++) {
        if (!fn && loop->sig_ev[i]) {
            event_free(loop->sig_ev[i]);         /* restores the old handler */
            loop->sig_ev[i] = NULL;
        } else if (fn && !loop->sig_ev[i]) {
            loop->sig_ev[i] = evsignal_new(loop->base, sigs[i], on_signal, loop);
            if (!loop->sig_ev[i] || event_add(loop->sig_ev[i], NULL) != 0) {
                mh_loop_on_signals(loop, NULL, NULL, NULL);
                return mh_err_set(err, MH_EIO, "loop: cannot watch signals");
            }
        }
    }
    return MH_OK;
}

/* ===== timers ===== */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    mh_timer *t = arg;
    t->fn(t, t->ud);                 /* may free t */
}

mh_timer *mh_timer_new(mh_loop *loop, double seconds, int repeat, mh_timer_fn fn,
                       void *ud, mh_err *err)
{
    if (!(seconds >= 0 && seconds < 1e9) || !fn) {
        mh_err_set(err, MH_EINVAL, "timer: seconds must be in [0, 1e9) and fn set");
        return NULL;
    }
    mh_timer *t = calloc(1, sizeof *t);
    if (!t) { mh_err_set(err, MH_ENOMEM, "timer: out of memory"); return NULL; }
    t->fn = fn;
    t->ud = ud;
    t->ev = event_new(loop->base, -1, repeat ? EV_PERSIST : 0, on_timer, t);
    struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6) };
    if (!t->ev || event_add(t->ev, &tv) != 0) {
        if (t->ev) event_free(t->ev);
        free(t);
        mh_err_set(err, MH_EIO, "timer: cannot add the timer");
        return NULL;
    }
    return t;
}

void mh_timer_free(mh_timer *t)
{
    if (!t) return;
    event_free(t->ev);
    free(t);
}

/* ===== channels ===== */

mh_chan *mh_chan_new(mh_loop *loop, mh_err *err)
{
    mh_chan *ch = calloc(1, sizeof *ch);
    if (!ch) { mh_err_set(err, MH_ENOMEM, "channel: out of memory"); return NULL; }
    atomic_init(&ch->refs, 1);
    pthread_mutex_init(&ch->mu, NULL);
    atomic_fetch_add(&loop->refs, 1);
    ch->loop = loop;
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
    mh_loop *loop = ch->loop;
    free(ch);
    loop_unref(loop);
}

/* Puts ch on the loop's ready list (once) and wakes the loop. */
static void chan_post(mh_chan *ch)
{
    mh_loop *loop = ch->loop;
    pthread_mutex_lock(&loop->mu);
    int wake = !loop->closed;
    if (wake && !ch->queued) {
        ch->queued = 1;
        ch->next_ready = loop->ready;
        loop->ready = mh_chan_retain(ch);
    }
    pthread_mutex_unlock(&loop->mu);
    if (wake) {
        uint64_t one = 1;
        /* EAGAIN means the counter is full: the loop is woken anyway */
        while (write(loop->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {}
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

static void chan_notify(mh_chan *ch)
{
    if (ch->fn) ch->fn(ch, ch->ud);
}

/* ===== lag probe ===== */

static const double LAG_LE[MH_LOOP_LAG_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

typedef struct lag_probe {
    mh_loop *loop;
    mh_timer *t;
    double interval, due;            /* due: monotonic s the timer should run at */
    mh_loop_lag h;
} lag_probe;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One-shot timers re-armed from the run: a persistent one would be
 * rescheduled by libevent from its own notion of when it ran. */
static void on_lag(mh_timer *t, void *ud)
{
    lag_probe *p = ud;
    double now = mono_now(), lag = now - p->due;
    if (lag < 0) lag = 0;            /* libevent may run a timer a hair early */
    for (int i = 0; i < MH_LOOP_LAG_BUCKETS; i++)
        if (lag <= p->h.le[i]) p->h.counts[i]++;
    p->h.n++;
    p->h.sum += lag;
    if (lag > p->h.max) p->h.max = lag;
    mh_timer_free(t);
    /* libevent counts a new timeout from the time it cached when this round
     * began: refresh it, or callbacks run before this one would shift the
     * due time we measure against */
    event_base_update_cache_time(p->loop->base);
    p->due = mono_now() + p->interval;
    p->t = mh_timer_new(p->loop, p->interval, 0, on_lag, p, NULL);   /* NULL: out of memory, probe stops */
}

int mh_loop_lag_enable(mh_loop *loop, double interval, mh_err *err)
{
    if (!(interval >= 0.001 && interval <= 60))
        return mh_err_set(err, MH_EINVAL, "loop lag: interval must be in [0.001, 60] s");
    if (loop->lag) return MH_OK;
    lag_probe *p = calloc(1, sizeof *p);
    if (!p) return mh_err_set(err, MH_ENOMEM, "loop lag: out of memory");
    p->loop = loop;
    p->interval = interval;
    memcpy(p->h.le, LAG_LE, sizeof LAG_LE);
    event_base_update_cache_time(loop->base);
    p->due = mono_now() + interval;
    p->t = mh_timer_new(loop, interval, 0, on_lag, p, err);
    if (!p->t) { free(p); return err ? err->code : MH_EIO; }
    loop->lag = p;
    return MH_OK;
}

int mh_loop_lag_read(mh_loop *loop, mh_loop_lag *out)
{
    if (!loop->lag) return 0;
    *out = loop->lag->h;
    return 1;
}

static void lag_free(mh_loop *loop)
{
    if (!loop->lag) return;
    mh_timer_free(loop->lag->t);
    free(loop->lag);
    loop->lag = NULL;
}
