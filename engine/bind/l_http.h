/* l_http.h: private interface between the two files of moonhub.core.http:
 * l_http.c (loop, coroutines, sleep, timers, channels, the module) and
 * l_http_server.c (servers, requests, run/stop). Layer: engine/bind. */
#ifndef MH_L_HTTP_H
#define MH_L_HTTP_H

#include "bind.h"
#include "mh/http.h"
#include "mh/loop.h"

#define HUB_MT   "moonhub.http.hub"
#define SRV_MT   "moonhub.http.server"
#define REQ_MT   "moonhub.http.request"
#define CHAN_MT  "moonhub.http.channel"
#define TIMER_MT "moonhub.http.timer"

typedef struct srv_box srv_box;
typedef struct wait wait;

typedef struct hub {
    mh_loop *loop;
    lua_State *from;        /* the thread running the loop now, else NULL */
    int stopping;
    double deadline;        /* of the graceful stop (CLOCK_MONOTONIC s) */
    mh_timer *stop_timer;
    srv_box *servers;
    wait *waits;            /* pending sleeps, freed with the hub */
} hub;

struct srv_box {
    hub *h;
    mh_http_server *srv;    /* NULL once closed */
    int port;
    int handler_ref;
    int self_ref;           /* an open server stays alive unreferenced */
    srv_box *next;
};

typedef struct req_box {
    hub *h;
    mh_http_req *r;         /* the handler-side reference */
    int close_ref;          /* Lua function for on_close */
} req_box;

typedef struct chan_box {
    hub *h;
    mh_chan *ch;
    int waiter_ref;         /* coroutine waiting in recv */
} chan_box;

typedef struct timer_box {
    hub *h;
    mh_timer *t;            /* NULL once cancelled or fired (once) */
    int once, fn_ref, self_ref;
} timer_box;

struct wait {               /* one sleep */
    hub *h;
    mh_timer *t;
    int co_ref;             /* LUA_NOREF: a synchronous sleep */
    int fired;
    wait *prev, *next;
};

/* Every function of the module has the hub as upvalue 1. */
static inline hub *get_hub(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* ===== l_http.c ===== */
extern const char mhl_http_err500[];   /* the fallback 500 body (JSON) */
double mhl_http_now(void);             /* monotonic seconds */
/* h->from's stack: fn, nargs args, tag (a req box or true). Runs fn(args) in
 * a new coroutine; pops them all. */
void mhl_http_spawn(hub *h, int nargs);
/* 1 when L is a coroutine started by mhl_http_spawn. */
int mhl_http_in_task(lua_State *L);

/* ===== l_http_server.c ===== */
extern const luaL_Reg mhl_http_srv_methods[];
extern const luaL_Reg mhl_http_req_methods[];
int mhl_http_server(lua_State *L);
int mhl_http_run(lua_State *L);
int mhl_http_stop(lua_State *L);
int mhl_http_loop_lag(lua_State *L);
int mhl_http_srv_gc(lua_State *L);
int mhl_http_req_gc(lua_State *L);
void mhl_http_srv_close(lua_State *L, srv_box *s);

#endif
