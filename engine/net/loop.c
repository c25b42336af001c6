/* loop.c: the event loop over libevent — timers, SIGINT/SIGTERM, and the
 * wake-ups of channels (mh/chan.h, engine/base): the loop owns a channel
 * hub and watches its eventfd (event_active() from other threads would need
 * libevent's locking, another library to link). Layer: engine/net (pure
 * C11 + libevent + pthreads; no lua.h). */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "mh/loop.h"

struct mh_loop {
    mh_chan_hub *hub;                /* the loop's memory goes with the hub's last reference */
    struct event_base *base;
    struct event *wake_ev;           /* the hub's eventfd */
    struct event *sig_ev[2];         /* SIGINT, SIGTERM while watched */
    mh_signal_fn sig_fn;
    void *sig_ud;
    int running;
    struct lag_probe *lag;           /* mh_loop_lag_enable; NULL until then */
};

struct mh_timer {
    struct event *ev;
    mh_timer_fn fn;
    void *ud;
};

/* ===== loop ===== */

/* The hub's last reference went (owner and every channel): the loop goes. */
static void loop_free(void *ud)
{
    mh_loop *loop = ud;
    event_base_free(loop->base);
    free(loop);
}

/* The loop thread: the hub's eventfd is readable. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    mh_chan_hub_dispatch(((mh_loop *)arg)->hub);
}

mh_loop *mh_loop_new(mh_err *err)
{
    mh_loop *loop = calloc(1, sizeof *loop);
    if (!loop) { mh_err_set(err, MH_ENOMEM, "loop: out of memory"); return NULL; }
    loop->base = event_base_new();
    if (!loop->base) {
        mh_err_set(err, MH_EIO, "loop: cannot create the event loop: %s", strerror(errno));
        free(loop);
        return NULL;
    }
    loop->hub = mh_chan_hub_new(loop_free, loop, err);
    if (!loop->hub) {
        loop_free(loop);
        return NULL;
    }
    loop->wake_ev = event_new(loop->base, mh_chan_hub_fd(loop->hub), EV_READ | EV_PERSIST, on_wake, loop);
    if (!loop->wake_ev || event_add(loop->wake_ev, NULL) != 0) {
        mh_err_set(err, MH_EIO, "loop: cannot create the event loop: %s", strerror(errno));
        if (loop->wake_ev) event_free(loop->wake_ev);
        mh_chan_hub_release(loop->hub);      /* frees the loop */
        return NULL;
    }
    return loop;
}

static void lag_free(mh_loop *loop);

void mh_loop_release(mh_loop *loop)
{
    if (!loop) return;
    lag_free(loop);
    mh_loop_on_signals(loop, NULL, NULL, NULL);
    mh_chan_hub_shut(loop->hub);
    event_free(loop->wake_ev);
    loop->wake_ev = NULL;
    mh_chan_hub_release(loop->hub);
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

mh_chan *mh_chan_new(mh_loop *loop, mh_err *err) { return mh_chan_open(loop->hub, err); }

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
