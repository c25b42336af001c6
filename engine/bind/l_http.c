/* l_http.c: moonhub.core.http — the event loop, HTTP server, timers, sleep
 * and channels for Lua. Each request and timer job runs in its own coroutine;
 * sleep and ch:recv yield it and the loop resumes it (OpenResty's ngx.sleep
 * shape). Outside such a coroutine they wait by running the loop themselves.
 * Layer: engine/bind (lua.h + mh/loop.h + mh/http.h; no HTTP logic here).
 * Servers and requests are in l_http_server.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "l_http.h"

static char HUB_KEY;        /* registry: the hub userdata */
static char LIVE_KEY;       /* registry: thread -> req box or true, while running */
static char WAIT_TOKEN;     /* what our waits yield, to tell them from others */

const char mhl_http_err500[] =
    "{\"error\":{\"message\":\"internal server error\",\"type\":\"server_error\"}}";

double mhl_http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ===== coroutines ===== */

/* Pushes LIVE[co] on L. */
static int live_get(lua_State *L, lua_State *co)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    int t = lua_rawget(L, -2);
    lua_remove(L, -2);
    return t;
}

/* LIVE[co] = value at top of L (popped). */
static void live_set(lua_State *L, lua_State *co)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* After a request coroutine ended: make sure the client got an answer. */
static void settle_request(req_box *b)
{
    if (!b || !b->r) return;
    int st = mh_http_req_state(b->r);
    if (st == 0) {
        static const char *const hdr[] = { "Content-Type", "application/json", NULL };
        mh_http_respond(b->r, 500, hdr, mhl_http_err500, strlen(mhl_http_err500), NULL);
    } else if (st == 1) {
        mh_http_finish(b->r, NULL);
    }
}

/* Resumes co with nargs values on its stack; when it ends (or yields other
 * than through our waits) it is unanchored and its request settled. */
static void resume(hub *h, lua_State *co, int nargs)
{
    lua_State *L = h->from;
    int nres = 0;
    int st = lua_resume(co, L, nargs, &nres);
    if (st == LUA_YIELD && nres == 1 && lua_touserdata(co, -1) == &WAIT_TOKEN) {
        lua_pop(co, 1);
        return;
    }
    if (st == LUA_YIELD) {
        lua_pop(co, nres);
        fprintf(stderr, "moonhub http: a handler yielded outside mh.http waits "
                        "(coroutine.yield in a handler?); it was stopped\n");
    } else if (st != LUA_OK) {
        const char *msg = lua_tostring(co, -1);
        fprintf(stderr, "moonhub http: a request or timer job failed: %s\n", msg ? msg : "(not a string)");
    }
    live_get(L, co);
    settle_request(luaL_testudata(L, -1, REQ_MT));
    lua_pop(L, 1);
    lua_pushnil(L);
    live_set(L, co);
    if (st != LUA_OK) lua_resetthread(co);
}

/* h->from's stack: fn, nargs args, tag (a req box or true: LIVE's value
 * for the coroutine). Runs fn(args) in a new coroutine; pops them all. */
void mhl_http_spawn(hub *h, int nargs)
{
    lua_State *L = h->from;
    lua_State *co = lua_newthread(L);
    lua_insert(L, -2);
    live_set(L, co);                      /* pops the tag */
    lua_pop(L, 1);                        /* the thread: LIVE anchors it */
    lua_xmove(L, co, nargs + 1);
    resume(h, co, nargs);
}

/* The calling coroutine if it is one of ours, else NULL. */
int mhl_http_in_task(lua_State *L)
{
    int t = live_get(L, L);
    lua_pop(L, 1);
    return t != LUA_TNIL;
}

/* Raises unless the loop can be run here for a synchronous wait. */
static void check_sync(lua_State *L, hub *h, const char *fname)
{
    if (mh_loop_running(h->loop))
        luaL_error(L, "%s: cannot wait here: the loop is running and this is not a "
                      "request or timer coroutine (a nested coroutine?)", fname);
}

/* Runs the loop one round at a time until *flag (a synchronous wait). */
static void run_until(lua_State *L, hub *h, int (*done)(void *), void *arg, const char *fname)
{
    lua_State *prev = h->from;
    h->from = L;
    mh_err err = { 0 };
    int rc = MH_OK;
    while (!done(arg) && rc == MH_OK) rc = mh_loop_run(h->loop, 1, &err);
    h->from = prev;
    if (rc != MH_OK) mh_lua_raise(L, fname, &err);
}

/* ===== sleep ===== */

static void wait_unlink(wait *w)
{
    if (w->prev) w->prev->next = w->next;
    else w->h->waits = w->next;
    if (w->next) w->next->prev = w->prev;
}

static void on_sleep(mh_timer *t, void *ud)
{
    wait *w = ud;
    mh_timer_free(t);
    w->t = NULL;
    w->fired = 1;
    if (w->co_ref == LUA_NOREF) return;   /* synchronous: run_until sees fired */
    hub *h = w->h;
    lua_State *L = h->from;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->co_ref);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);                        /* LIVE still anchors co */
    luaL_unref(L, LUA_REGISTRYINDEX, w->co_ref);
    wait_unlink(w);
    free(w);
    resume(h, co, 0);
}

static int wait_fired(void *arg) { return ((wait *)arg)->fired; }

static int l_sleep(lua_State *L)
{
    hub *h = get_hub(L);
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s < 1e9, 1, "http.sleep: seconds must be in [0, 1e9)");
    int task = mhl_http_in_task(L);
    if (!task) check_sync(L, h, "http.sleep");
    wait *w = calloc(1, sizeof *w);
    if (!w) return luaL_error(L, "http.sleep: out of memory");
    mh_err err = { 0 };
    w->h = h;
    w->co_ref = LUA_NOREF;
    w->t = mh_timer_new(h->loop, s, 0, on_sleep, w, &err);
    if (!w->t) { free(w); return mh_lua_raise(L, "http.sleep", &err); }
    if (!task) {
        run_until(L, h, wait_fired, w, "http.sleep");
        free(w);
        return 0;
    }
    lua_pushthread(L);
    w->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    w->next = h->waits;
    if (h->waits) h->waits->prev = w;
    h->waits = w;
    lua_pushlightuserdata(L, &WAIT_TOKEN);
    return lua_yield(L, 1);
}

/* ===== channels ===== */

static int push_msg(lua_State *L, mh_chan_msg *m)
{
    lua_pushlstring(L, m->data, m->len);
    lua_pushinteger(L, m->tag);
    free(m->data);
    return 2;
}

/* The loop thread: news on a channel a coroutine may be waiting on. */
static void on_chan(mh_chan *ch, void *ud)
{
    chan_box *b = ud;
    if (b->waiter_ref == LUA_NOREF) return;
    mh_chan_msg m;
    int got = mh_chan_pop(ch, &m);
    if (!got && !mh_chan_done(ch)) return;
    lua_State *L = b->h->from;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->waiter_ref);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, b->waiter_ref);
    b->waiter_ref = LUA_NOREF;
    int n = got ? push_msg(co, &m) : (lua_pushnil(co), 1);
    resume(b->h, co, n);
}

static chan_box *check_chan(lua_State *L, const char *fname)
{
    chan_box *b = luaL_checkudata(L, 1, CHAN_MT);
    if (!b->ch) luaL_error(L, "%s: the channel is freed", fname);
    return b;
}

/* Pushes a channel box that takes over the reference ch. */
static void push_chan(lua_State *L, hub *h, mh_chan *ch)
{
    chan_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (chan_box){ h, NULL, LUA_NOREF };
    luaL_setmetatable(L, CHAN_MT);
    b->ch = ch;
    mh_chan_listen(ch, on_chan, b);
}

static int l_channel(lua_State *L)
{
    hub *h = get_hub(L);
    mh_err err = { 0 };
    mh_chan *ch = mh_chan_new(h->loop, &err);
    if (!ch) return mh_lua_raise(L, "http.channel", &err);
    push_chan(L, h, ch);
    return 1;
}

static int chan_gc(lua_State *L)
{
    chan_box *b = luaL_checkudata(L, 1, CHAN_MT);
    if (!b->ch) return 0;
    mh_chan_listen(b->ch, NULL, NULL);
    mh_chan_release(b->ch);
    b->ch = NULL;
    return 0;
}

static int chan_push(lua_State *L)
{
    chan_box *b = check_chan(L, "channel:push");
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    lua_Integer tag = luaL_optinteger(L, 3, 0);
    mh_err err = { 0 };
    if (mh_chan_push(b->ch, (int)tag, s, n, &err) != MH_OK) return mh_lua_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int chan_close(lua_State *L)
{
    mh_chan_close(check_chan(L, "channel:close")->ch);
    return 0;
}

static int chan_ready(void *arg)
{
    chan_box *b = arg;
    mh_chan_msg m;
    if (!mh_chan_pop(b->ch, &m)) return mh_chan_done(b->ch);
    push_msg(b->h->from, &m);             /* b->h->from is the waiting thread */
    return 2;
}

/* ch:recv() -> data, tag | nil once closed and drained */
static int chan_recv(lua_State *L)
{
    chan_box *b = check_chan(L, "channel:recv");
    hub *h = b->h;
    mh_chan_msg m;
    if (mh_chan_pop(b->ch, &m)) return push_msg(L, &m);
    if (mh_chan_done(b->ch)) return 0;
    if (!mhl_http_in_task(L)) {
        check_sync(L, h, "channel:recv");
        int top = lua_gettop(L);
        run_until(L, h, chan_ready, b, "channel:recv");
        return lua_gettop(L) - top;       /* 2 values, or none when closed */
    }
    if (b->waiter_ref != LUA_NOREF)
        return luaL_error(L, "channel:recv: another coroutine is already waiting on this channel");
    lua_pushthread(L);
    b->waiter_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);                  /* keep the box alive while waiting */
    lua_pushlightuserdata(L, &WAIT_TOKEN);
    return lua_yield(L, 1);
}

typedef struct later { mh_chan *ch; int ms, tag; size_t len; char data[]; } later;

static void *later_main(void *arg)
{
    later *l = arg;
    struct timespec ts = { l->ms / 1000, (long)(l->ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    mh_chan_push(l->ch, l->tag, l->data, l->len, NULL);
    mh_chan_release(l->ch);
    free(l);
    return NULL;
}

/* Test helper: ch:push_later_from_thread(msg, ms, tag) pushes from a new
 * pthread after ms milliseconds, to prove cross-thread wake-ups. */
static int chan_push_later(lua_State *L)
{
    chan_box *b = check_chan(L, "channel:push_later_from_thread");
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    lua_Integer ms = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, ms >= 0 && ms <= 600000, 3, "channel:push_later_from_thread: ms in 0..600000");
    later *l = malloc(sizeof *l + n);
    if (!l) return luaL_error(L, "channel:push_later_from_thread: out of memory");
    *l = (later){ mh_chan_retain(b->ch), (int)ms, (int)luaL_optinteger(L, 4, 0), n };
    memcpy(l->data, s, n);
    pthread_t th;
    if (pthread_create(&th, NULL, later_main, l) != 0) {
        mh_chan_release(l->ch);
        free(l);
        return luaL_error(L, "channel:push_later_from_thread: cannot start a thread");
    }
    pthread_detach(th);
    return 0;
}

/* ===== timers ===== */

static void timer_cancel_box(lua_State *L, timer_box *b)
{
    if (!b->t) return;
    mh_timer_free(b->t);
    b->t = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, b->self_ref);
    b->self_ref = LUA_NOREF;
}

static void on_timer(mh_timer *t, void *ud)
{
    (void)t;
    timer_box *b = ud;
    lua_State *L = b->h->from;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->self_ref);
    if (b->once) timer_cancel_box(L, b);   /* the stack keeps the box alive */
    lua_pushboolean(L, 1);
    mhl_http_spawn(b->h, 1);
}

/* timer(seconds, fn, once) -> timer; fn(timer) runs in its own coroutine */
static int l_timer(lua_State *L)
{
    hub *h = get_hub(L);
    double s = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int once = lua_toboolean(L, 3);
    luaL_argcheck(L, s >= 0 && s < 1e9, 1, "http.timer: seconds must be in [0, 1e9)");
    luaL_argcheck(L, once || s >= 0.001, 1, "http.timer: a repeating timer needs >= 0.001 s");
    timer_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (timer_box){ h, NULL, once, LUA_NOREF, LUA_NOREF };
    luaL_setmetatable(L, TIMER_MT);
    mh_err err = { 0 };
    b->t = mh_timer_new(h->loop, s, !once, on_timer, b, &err);
    if (!b->t) return mh_lua_raise(L, "http.timer", &err);
    lua_pushvalue(L, 2);
    b->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    b->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* active timers stay alive */
    return 1;
}

static int timer_cancel(lua_State *L)
{
    timer_cancel_box(L, luaL_checkudata(L, 1, TIMER_MT));
    return 0;
}

static int timer_gc(lua_State *L)
{
    timer_box *b = luaL_checkudata(L, 1, TIMER_MT);
    if (b->t) mh_timer_free(b->t);
    b->t = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, b->fn_ref);
    b->fn_ref = LUA_NOREF;
    return 0;
}

static int timer_active(lua_State *L)
{
    lua_pushboolean(L, ((timer_box *)luaL_checkudata(L, 1, TIMER_MT))->t != NULL);
    return 1;
}

static int l_running(lua_State *L)
{
    lua_pushboolean(L, mh_loop_running(get_hub(L)->loop));
    return 1;
}

static int l_in_task(lua_State *L)
{
    lua_pushboolean(L, mhl_http_in_task(L));
    return 1;
}

static int hub_gc(lua_State *L)
{
    hub *h = luaL_checkudata(L, 1, HUB_MT);
    if (!h->loop) return 0;
    h->from = NULL;
    while (h->servers) mhl_http_srv_close(L, h->servers);
    while (h->waits) {
        wait *w = h->waits;
        wait_unlink(w);
        mh_timer_free(w->t);
        free(w);
    }
    if (h->stop_timer) mh_timer_free(h->stop_timer);
    mh_loop_release(h->loop);
    h->loop = NULL;
    return 0;
}

/* ===== other bindings ===== */

int luaopen_moonhub_core_http(lua_State *L);

mh_loop *mh_lua_loop(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HUB_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        luaL_requiref(L, "moonhub.core.http", luaopen_moonhub_core_http, 0);
        lua_pop(L, 1);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &HUB_KEY);
    }
    hub *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h->loop;
}

void mh_lua_push_chan(lua_State *L, mh_chan *ch)
{
    mh_lua_loop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &HUB_KEY);
    hub *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    push_chan(L, h, ch);
}

/* ===== module ===== */

static void new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, mt);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    lua_pushvalue(L, -3);                 /* the hub as upvalue */
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_moonhub_core_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "server", mhl_http_server }, { "run", mhl_http_run }, { "stop", mhl_http_stop },
        { "running", l_running }, { "in_task", l_in_task }, { "sleep", l_sleep },
        { "timer", l_timer }, { "channel", l_channel },
        { "loop_lag", mhl_http_loop_lag }, { NULL, NULL },
    };
    static const luaL_Reg chan_m[] = {
        { "push", chan_push }, { "recv", chan_recv }, { "close", chan_close },
        { "push_later_from_thread", chan_push_later }, { NULL, NULL },
    };
    static const luaL_Reg timer_m[] = {
        { "cancel", timer_cancel }, { "active", timer_active }, { NULL, NULL },
    };
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &HUB_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        hub *h = lua_newuserdatauv(L, sizeof *h, 0);
        memset(h, 0, sizeof *h);
        mh_err err = { 0 };
        h->loop = mh_loop_new(&err);
        if (!h->loop) return mh_lua_raise(L, "moonhub.core.http", &err);
        luaL_newmetatable(L, HUB_MT);
        lua_pushcfunction(L, hub_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &HUB_KEY);
        lua_newtable(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
    }
    new_class(L, SRV_MT, mhl_http_srv_methods, mhl_http_srv_gc);
    new_class(L, REQ_MT, mhl_http_req_methods, mhl_http_req_gc);
    new_class(L, CHAN_MT, chan_m, chan_gc);
    new_class(L, TIMER_MT, timer_m, timer_gc);
    lua_newtable(L);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, funcs, 1);
    return 1;
}
