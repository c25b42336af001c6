/* l_http_server.c: the server half of moonhub.core.http — server objects,
 * request objects (fields, respond, streaming, abort, on_close) and run/stop with
 * the graceful shutdown. Layer: engine/bind (see l_http.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "l_http.h"

#define LAG_INTERVAL 0.05    /* seconds between loop-lag samples */

#define MAX_HEADERS 128
#define DEFAULT_GRACE 5.0
#define STOP_POLL_S 0.01

/* ===== requests ===== */

static void on_req_close(mh_http_req *r, void *ud)
{
    (void)r;
    req_box *b = ud;
    lua_State *L = b->h->from;
    if (!L || b->close_ref == LUA_NOREF) return;   /* not inside the loop */
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->close_ref);
    lua_pushboolean(L, 1);
    mhl_http_spawn(b->h, 0);
}

static req_box *check_req(lua_State *L)
{
    req_box *b = luaL_checkudata(L, 1, REQ_MT);
    if (!b->r) luaL_error(L, "http request: already released");
    return b;
}

int mhl_http_req_gc(lua_State *L)
{
    req_box *b = luaL_checkudata(L, 1, REQ_MT);
    if (!b->r) return 0;
    mh_http_req_on_close(b->r, NULL, NULL);
    mh_http_req_release(b->r);
    b->r = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, b->close_ref);
    b->close_ref = LUA_NOREF;
    return 0;
}

/* raw:info() -> method, path, query, remote */
static int req_info(lua_State *L)
{
    req_box *b = check_req(L);
    lua_pushstring(L, mh_http_req_method(b->r));
    lua_pushstring(L, mh_http_req_path(b->r));
    lua_pushstring(L, mh_http_req_query(b->r));
    lua_pushstring(L, mh_http_req_remote(b->r));
    return 4;
}

/* raw:headers() -> {lower-case name = value}; repeated names join with ", " */
static int req_headers(lua_State *L)
{
    req_box *b = check_req(L);
    lua_newtable(L);
    const char *name, *value;
    for (int i = 0; mh_http_req_header(b->r, i, &name, &value); i++) {
        luaL_Buffer buf;
        luaL_buffinit(L, &buf);
        for (const char *p = name; *p; p++)
            luaL_addchar(&buf, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
        luaL_pushresult(&buf);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, value);
        }
        lua_rawset(L, -3);
    }
    return 1;
}

static int req_body(lua_State *L)
{
    req_box *b = check_req(L);
    size_t n;
    const char *s = mh_http_req_body(b->r, &n);
    lua_pushlstring(L, s ? s : "", n);
    return 1;
}

/* Reads a {name = value} table at idx into out (name, value, ..., NULL); the
 * strings are anchored in a new table left on the stack. */
static void collect_headers(lua_State *L, int idx, const char *fname, const char **out)
{
    int n = 0;
    lua_newtable(L);
    if (lua_isnoneornil(L, idx)) { out[0] = NULL; return; }
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: header names must be strings", fname);
        if (n >= 2 * MAX_HEADERS) luaL_error(L, "%s: more than %d headers", fname, MAX_HEADERS);
        int t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_error(L, "%s: header '%s' must be a string or number, got %s", fname,
                       lua_tostring(L, -2), lua_typename(L, t));
        lua_pushvalue(L, -2);
        lua_rawseti(L, -4, n + 1);
        luaL_tolstring(L, -1, NULL);
        lua_rawseti(L, -4, n + 2);
        lua_pop(L, 1);
        n += 2;
    }
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        out[i] = lua_tostring(L, -1);     /* anchored by the table */
        lua_pop(L, 1);
    }
    out[n] = NULL;
}

/* Status of a response call: true, or false + msg when the client is gone;
 * misuse raises. */
static int reply_result(lua_State *L, int rc, const char *fname, const mh_err *err)
{
    if (rc == MH_EIO) { lua_pushboolean(L, 0); lua_pushstring(L, err->msg); return 2; }
    if (rc != MH_OK) return luaL_error(L, "req:%s", err->msg);
    (void)fname;
    lua_pushboolean(L, 1);
    return 1;
}

static int check_status(lua_State *L, int idx, const char *fname)
{
    lua_Integer s = luaL_checkinteger(L, idx);
    if (s < 100 || s > 599) luaL_error(L, "req:%s: status %d is not in 100..599", fname, (int)s);
    return (int)s;
}

/* raw:respond(status, headers, body) */
static int req_respond(lua_State *L)
{
    req_box *b = check_req(L);
    int status = check_status(L, 2, "respond");
    size_t n = 0;
    const char *body = luaL_optlstring(L, 4, "", &n);
    const char *hdr[2 * MAX_HEADERS + 1];
    collect_headers(L, 3, "req:respond", hdr);
    mh_err err = { 0 };
    int rc = mh_http_respond(b->r, status, hdr, body, n, &err);
    return reply_result(L, rc, "respond", &err);
}

static int req_start(lua_State *L)
{
    req_box *b = check_req(L);
    int status = check_status(L, 2, "start");
    const char *hdr[2 * MAX_HEADERS + 1];
    collect_headers(L, 3, "req:start", hdr);
    mh_err err = { 0 };
    return reply_result(L, mh_http_start(b->r, status, hdr, &err), "start", &err);
}

static int req_write(lua_State *L)
{
    req_box *b = check_req(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    mh_err err = { 0 };
    return reply_result(L, mh_http_write(b->r, s, n, &err), "write", &err);
}

static int req_finish(lua_State *L)
{
    req_box *b = check_req(L);
    mh_err err = { 0 };
    return reply_result(L, mh_http_finish(b->r, &err), "finish", &err);
}

/* raw:abort() -> true | false, msg (client already gone) */
static int req_abort(lua_State *L)
{
    req_box *b = check_req(L);
    mh_err err = { 0 };
    return reply_result(L, mh_http_abort(b->r, &err), "abort", &err);
}

static int req_closed(lua_State *L)
{
    lua_pushboolean(L, mh_http_req_closed(check_req(L)->r));
    return 1;
}

/* raw:state() -> "new" | "streaming" | "done" */
static int req_state(lua_State *L)
{
    static const char *const names[] = { "new", "streaming", "done" };
    lua_pushstring(L, names[mh_http_req_state(check_req(L)->r)]);
    return 1;
}

static int req_on_close(lua_State *L)
{
    req_box *b = check_req(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, b->close_ref);
    lua_pushvalue(L, 2);
    b->close_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* ===== servers ===== */

static void on_request(mh_http_req *r, void *ud)
{
    srv_box *s = ud;
    lua_State *L = s->h->from;
    if (!L || s->handler_ref == LUA_NOREF) {   /* no loop user: answer anyway */
        static const char *const hdr[] = { "Content-Type", "application/json", NULL };
        mh_http_respond(r, 500, hdr, mhl_http_err500, strlen(mhl_http_err500), NULL);
        mh_http_req_release(r);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
    req_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (req_box){ s->h, r, LUA_NOREF };
    luaL_setmetatable(L, REQ_MT);
    mh_http_req_on_close(r, on_req_close, b);
    lua_pushvalue(L, -1);
    mhl_http_spawn(s->h, 1);
}

static void srv_unlink(srv_box *s)
{
    for (srv_box **p = &s->h->servers; *p; p = &(*p)->next)
        if (*p == s) { *p = s->next; break; }
}

void mhl_http_srv_close(lua_State *L, srv_box *s)
{
    if (!s->srv) return;
    srv_unlink(s);
    mh_http_server_free(s->srv);
    s->srv = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->self_ref = LUA_NOREF;
}

/* Arguments 5 and 6 of server(): the connection cap and the deadline for a
 * request to arrive (0 or nil: the defaults of mh/http.h). */
static void guard_opts(lua_State *L, mh_http_opts *o)
{
    lua_Integer max_conn = luaL_optinteger(L, 5, 0);
    lua_Integer header_s = luaL_optinteger(L, 6, 0);
    luaL_argcheck(L, max_conn >= 0 && max_conn <= 1000000, 5,
                  "http.server: max_connections must be in 0..1000000");
    luaL_argcheck(L, header_s >= 0 && header_s <= 86400, 6,
                  "http.server: header_timeout in 0..86400 s");
    o->max_connections = (int)max_conn;
    o->header_timeout_s = (int)header_s;
}

/* srv:connections() -> open connections, their cap */
static int srv_connections(lua_State *L)
{
    srv_box *s = luaL_checkudata(L, 1, SRV_MT);
    lua_pushinteger(L, s->srv ? mh_http_server_connections(s->srv) : 0);
    lua_pushinteger(L, s->srv ? mh_http_server_max_connections(s->srv) : 0);
    return 2;
}

/* server(host, port, max_body, timeout, max_connections, header_timeout)
 * -> server | nil, msg */
int mhl_http_server(lua_State *L)
{
    hub *h = get_hub(L);
    mh_http_opts o = { 0 };
    o.host = luaL_optstring(L, 1, "127.0.0.1");
    lua_Integer port = luaL_optinteger(L, 2, 0);
    lua_Integer max_body = luaL_optinteger(L, 3, 0);
    lua_Integer timeout = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, port >= 0 && port <= 65535, 2, "http.server: port must be in 0..65535");
    luaL_argcheck(L, max_body >= 0, 3, "http.server: max_body must be >= 0");
    luaL_argcheck(L, timeout >= 0 && timeout <= 86400, 4, "http.server: timeout in 0..86400 s");
    o.port = (int)port;
    o.max_body = (size_t)max_body;
    o.timeout_s = (int)timeout;
    guard_opts(L, &o);
    srv_box *s = lua_newuserdatauv(L, sizeof *s, 0);
    *s = (srv_box){ h, NULL, 0, LUA_NOREF, LUA_NOREF, NULL };
    luaL_setmetatable(L, SRV_MT);
    mh_err err = { 0 };
    s->srv = mh_http_server_new(h->loop, &o, on_request, s, &err);
    if (!s->srv) return mh_lua_fail(L, &err);
    s->port = mh_http_server_port(s->srv);
    lua_pushvalue(L, -1);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->next = h->servers;
    h->servers = s;
    mh_loop_lag_enable(h->loop, LAG_INTERVAL, NULL);   /* a serving loop is measured (no probe: still serves) */
    return 1;
}

/* loop_lag() -> {le = {...}, counts = {...} (cumulative), n, sum, max} |
 * nil before a server was created (the probe starts with the first one) */
int mhl_http_loop_lag(lua_State *L)
{
    mh_loop_lag g;
    if (!mh_loop_lag_read(get_hub(L)->loop, &g)) return 0;
    lua_createtable(L, 0, 5);
    lua_createtable(L, MH_LOOP_LAG_BUCKETS, 0);
    lua_createtable(L, MH_LOOP_LAG_BUCKETS, 0);
    for (int i = 0; i < MH_LOOP_LAG_BUCKETS; i++) {
        lua_pushnumber(L, g.le[i]);
        lua_rawseti(L, -3, i + 1);
        lua_pushinteger(L, (lua_Integer)g.counts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -3, "counts");
    lua_setfield(L, -2, "le");
    lua_pushinteger(L, (lua_Integer)g.n);
    lua_setfield(L, -2, "n");
    lua_pushnumber(L, g.sum);
    lua_setfield(L, -2, "sum");
    lua_pushnumber(L, g.max);
    lua_setfield(L, -2, "max");
    return 1;
}

static int srv_port(lua_State *L)
{
    lua_pushinteger(L, ((srv_box *)luaL_checkudata(L, 1, SRV_MT))->port);
    return 1;
}

static int srv_handle(lua_State *L)
{
    srv_box *s = luaL_checkudata(L, 1, SRV_MT);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
    lua_pushvalue(L, 2);
    s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int srv_inflight(lua_State *L)
{
    srv_box *s = luaL_checkudata(L, 1, SRV_MT);
    lua_pushinteger(L, s->srv ? mh_http_server_inflight(s->srv) : 0);
    return 1;
}

static int srv_close(lua_State *L)
{
    srv_box *s = luaL_checkudata(L, 1, SRV_MT);
    hub *h = s->h;
    lua_State *prev = h->from;
    if (!mh_loop_running(h->loop)) h->from = NULL;   /* no close callbacks now */
    mhl_http_srv_close(L, s);
    h->from = prev;
    return 0;
}

int mhl_http_srv_gc(lua_State *L)
{
    srv_box *s = luaL_checkudata(L, 1, SRV_MT);
    hub *h = s->h;
    lua_State *prev = h->from;
    h->from = NULL;                       /* no Lua callbacks from a finalizer */
    mhl_http_srv_close(L, s);
    h->from = prev;
    luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
    s->handler_ref = LUA_NOREF;
    return 0;
}

/* ===== run / stop ===== */

static int total_inflight(hub *h)
{
    int n = 0;
    for (srv_box *s = h->servers; s; s = s->next) n += mh_http_server_inflight(s->srv);
    return n;
}

static void on_stop_poll(mh_timer *t, void *ud)
{
    (void)t;
    hub *h = ud;
    if (total_inflight(h) > 0 && mhl_http_now() < h->deadline) return;
    mh_timer_free(h->stop_timer);
    h->stop_timer = NULL;
    mh_loop_stop(h->loop);
}

/* Stop accepting, let requests in flight finish within grace seconds; a
 * second stop (or signal) while stopping ends the loop at once. */
static void begin_stop(hub *h, double grace)
{
    if (h->stopping) {
        mh_loop_stop(h->loop);
        return;
    }
    h->stopping = 1;
    for (srv_box *s = h->servers; s; s = s->next) mh_http_server_stop_accepting(s->srv);
    h->deadline = mhl_http_now() + grace;
    h->stop_timer = mh_timer_new(h->loop, STOP_POLL_S, 1, on_stop_poll, h, NULL);
    if (!h->stop_timer) mh_loop_stop(h->loop);
}

static void on_signal(int signo, void *ud)
{
    hub *h = ud;
    fprintf(stderr, "moonhub http: %s, stopping\n", signo == SIGINT ? "SIGINT" : "SIGTERM");
    begin_stop(h, DEFAULT_GRACE);
}

int mhl_http_run(lua_State *L)
{
    hub *h = get_hub(L);
    if (mh_loop_running(h->loop)) return luaL_error(L, "http.run: the loop is already running");
    mh_err err = { 0 };
    if (mh_loop_on_signals(h->loop, on_signal, h, &err) != MH_OK)
        return mh_lua_raise(L, "http.run", &err);
    h->from = L;
    h->stopping = 0;
    int rc = mh_loop_run(h->loop, 0, &err);
    mh_loop_on_signals(h->loop, NULL, NULL, NULL);
    if (h->stop_timer) { mh_timer_free(h->stop_timer); h->stop_timer = NULL; }
    if (h->stopping)                      /* graceful stop: servers are done */
        while (h->servers) mhl_http_srv_close(L, h->servers);
    h->stopping = 0;
    h->from = NULL;
    if (rc != MH_OK) return mh_lua_raise(L, "http.run", &err);
    return 0;
}

/* stop([grace]) -> true when a running loop was asked to stop */
int mhl_http_stop(lua_State *L)
{
    hub *h = get_hub(L);
    double grace = luaL_optnumber(L, 1, DEFAULT_GRACE);
    luaL_argcheck(L, grace >= 0, 1, "http.stop: grace must be >= 0");
    if (!mh_loop_running(h->loop)) { lua_pushboolean(L, 0); return 1; }
    begin_stop(h, grace);
    lua_pushboolean(L, 1);
    return 1;
}

const luaL_Reg mhl_http_srv_methods[] = {
    { "port", srv_port }, { "handle", srv_handle }, { "close", srv_close },
    { "inflight", srv_inflight }, { "connections", srv_connections }, { NULL, NULL },
};

const luaL_Reg mhl_http_req_methods[] = {
    { "info", req_info }, { "headers", req_headers }, { "body", req_body },
    { "respond", req_respond }, { "start", req_start }, { "write", req_write },
    { "finish", req_finish }, { "closed", req_closed }, { "state", req_state },
    { "on_close", req_on_close }, { "abort", req_abort }, { NULL, NULL },
};
