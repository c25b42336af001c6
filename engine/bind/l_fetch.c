/* l_fetch.c: moonhub.core.fetch — HTTP requests (mh/fetch.h) from Lua, the
 * SHA-256 of a file; start/hash_start/unlink_start run downloads, hashes and
 * unlinks on a worker thread (a job and the channel its progress arrives on).
 * File-system calls live in l_fs.c (moonhub.core.fs). Layer: engine/bind. The
 * progress callback of request runs Lua under pcall: an error in it stops the
 * transfer and is re-raised once curl has cleaned up. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bind.h"
#include "mh/fetch.h"

#define MAX_HEADERS 64
#define JOB_MT "moonhub.fetch.job"

/* ===== request ===== */

typedef struct progress_ctx {
    lua_State *L;
    int fn;          /* stack index of the Lua callback */
    int failed;      /* the callback raised; its error is on the stack */
} progress_ctx;

static int call_progress(void *ud, int64_t done, int64_t total)
{
    progress_ctx *p = ud;
    lua_State *L = p->L;
    lua_pushvalue(L, p->fn);
    lua_pushinteger(L, (lua_Integer)done);
    if (total >= 0) lua_pushinteger(L, (lua_Integer)total);
    else lua_pushnil(L);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        p->failed = 1;              /* leave the error value on the stack */
        return 1;
    }
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);   /* returning false stops */
    lua_pop(L, 1);
    return stop;
}

static lua_Integer opt_int_field(lua_State *L, int t, const char *k, lua_Integer dflt,
                                 lua_Integer lo)
{
    int ty = lua_getfield(L, t, k);
    lua_Integer v = dflt;
    if (ty != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < lo)
            luaL_error(L, "fetch.request: option '%s' must be an integer >= %d", k, (int)lo);
    }
    lua_pop(L, 1);
    return v;
}

static const char *opt_str_field(lua_State *L, int t, const char *k)
{
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TNIL) { lua_pop(L, 1); return NULL; }
    if (ty != LUA_TSTRING) luaL_error(L, "fetch.request: option '%s' must be a string", k);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);                  /* still referenced by the options table */
    return s;
}

/* headers = {Name = "value", ...} -> "Name: value" strings pushed on the
 * stack (kept alive there) and pointed to from out[]. */
static int collect_headers(lua_State *L, int t, const char **out)
{
    int n = 0;
    if (lua_getfield(L, t, "headers") == LUA_TNIL) { lua_pop(L, 1); out[0] = NULL; return 0; }
    if (!lua_istable(L, -1)) luaL_error(L, "fetch.request: option 'headers' must be a table");
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "fetch.request: headers must map names to string values");
        const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
        if (strpbrk(k, "\r\n: ") || strpbrk(v, "\r\n") || !*k)
            luaL_error(L, "fetch.request: header '%s' has a bad name or a line break in its value", k);
        if (n >= MAX_HEADERS) luaL_error(L, "fetch.request: more than %d headers", MAX_HEADERS);
        luaL_checkstack(L, 4, "fetch.request: headers");
        lua_pushfstring(L, "%s: %s", k, v);
        lua_insert(L, h);           /* below the table: survives the traversal */
        h++;
        out[n++] = lua_tostring(L, h - 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    out[n] = NULL;
    return n;
}

/* headers of the final response -> {["content-length"] = "12", ...} */
static void push_headers(lua_State *L, const char *raw, size_t len)
{
    lua_newtable(L);
    const char *p = raw, *end = raw + len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        if (colon && colon > p) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *c = p; c < colon; c++) luaL_addchar(&b, (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c));
            luaL_pushresult(&b);
            const char *v = colon + 1, *ve = stop;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            lua_pushlstring(L, v, (size_t)(ve - v));
            lua_settable(L, -3);
        }
        p = eol ? eol + 1 : NULL;
    }
}

static void push_result(lua_State *L, const mh_fetch_res *res)
{
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, res->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)res->written);
    lua_setfield(L, -2, "written");
    lua_pushboolean(L, res->ranged);
    lua_setfield(L, -2, "ranged");
    lua_pushlstring(L, res->body ? res->body : "", res->body_len);
    lua_setfield(L, -2, "body");
    if (res->url) {
        lua_pushstring(L, res->url);
        lua_setfield(L, -2, "url");
    }
    push_headers(L, res->headers ? res->headers : "", res->headers_len);
    lua_setfield(L, -2, "headers");
}

/* The options table at 1 -> req; header strings stay on the stack. */
static void parse_req(lua_State *L, mh_fetch_req *req, const char **hdrs)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(req, 0, sizeof *req);
    req->url = opt_str_field(L, 1, "url");
    if (!req->url) luaL_error(L, "fetch.request: option 'url' (a string) is required");
    const char *method = opt_str_field(L, 1, "method");
    if (method && strcmp(method, "GET") && strcmp(method, "HEAD"))
        luaL_error(L, "fetch.request: method must be \"GET\" or \"HEAD\", got \"%s\"", method);
    req->head = method && !strcmp(method, "HEAD");
    req->path = opt_str_field(L, 1, "path");
    req->resume_from = opt_int_field(L, 1, "resume_from", 0, 0);
    req->connect_timeout_s = (long)opt_int_field(L, 1, "connect_timeout", 0, 0);
    req->stall_timeout_s = (long)opt_int_field(L, 1, "stall_timeout", 0, 0);
    req->timeout_s = (long)opt_int_field(L, 1, "timeout", 0, 0);
    req->max_body = (size_t)opt_int_field(L, 1, "max_body", 0, 0);
    lua_getfield(L, 1, "sha256");
    req->sha256 = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (req->sha256 && !req->path) luaL_error(L, "fetch.request: option 'sha256' hashes the file: it needs 'path'");
    collect_headers(L, 1, hdrs);
    req->headers = hdrs;
}

/* status of mh_fetch_perform -> Lua results (the table, or nil, msg, code) */
static int push_outcome(lua_State *L, int st, const mh_fetch_res *res, const mh_err *err)
{
    if (st == MH_EINVAL) return mh_lua_raise(L, "fetch.request", err);
    if (st) {
        lua_pushnil(L);
        lua_pushstring(L, err->msg);
        lua_pushstring(L, mh_status_name(st));
        return 3;
    }
    push_result(L, res);
    if (res->sha256[0]) {
        lua_pushstring(L, res->sha256);
        lua_setfield(L, -2, "sha256");
    }
    return 1;
}

/* request{url=, method="GET"|"HEAD", headers={}, path=, resume_from=,
 * connect_timeout=, stall_timeout=, timeout=, max_body=, sha256=bool,
 * progress=fn} -> {status, headers, body, written, ranged, url, sha256} | nil, msg, code */
static int l_request(lua_State *L)
{
    mh_fetch_req req;
    const char *hdrs[MAX_HEADERS + 1];
    parse_req(L, &req, hdrs);
    progress_ctx pc = { L, 0, 0 };
    int ty = lua_getfield(L, 1, "progress");
    if (ty != LUA_TNIL) {
        if (ty != LUA_TFUNCTION) return luaL_error(L, "fetch.request: option 'progress' must be a function");
        pc.fn = lua_gettop(L);
        req.progress = call_progress;
        req.ud = &pc;
    }
    mh_fetch_res res;
    mh_err err = {0};
    int st = mh_fetch_perform(&req, &res, &err);
    if (pc.failed) {                /* the callback's error is on top of the stack */
        mh_fetch_res_free(&res);
        return lua_error(L);
    }
    int n = st == MH_EINVAL ? 0 : push_outcome(L, st, &res, &err);
    mh_fetch_res_free(&res);
    if (st == MH_EINVAL) return mh_lua_raise(L, "fetch.request", &err);
    return n;
}

/* ===== jobs on worker threads ===== */

typedef struct job_box { mh_fetch_job *j; int kind; } job_box;
enum { KIND_FETCH, KIND_HASH, KIND_UNLINK };

static job_box *check_job(lua_State *L)
{
    job_box *b = luaL_checkudata(L, 1, JOB_MT);
    if (!b->j) luaL_error(L, "fetch job: already released");
    return b;
}

/* Pushes the job box and the channel; start(ch) makes the job. */
static int push_job(lua_State *L, int kind, mh_fetch_job *(*start)(lua_State *, mh_chan *, mh_err *))
{
    mh_err err = {0};
    job_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (job_box){ NULL, kind };
    luaL_setmetatable(L, JOB_MT);
    mh_chan *ch = mh_chan_new(mh_lua_loop(L), &err);
    if (!ch) return mh_lua_fail(L, &err);
    mh_lua_push_chan(L, ch);        /* the box takes our reference; the job retains its own */
    int top = lua_gettop(L);
    b->j = start(L, ch, &err);      /* copies what it needs: the header strings it pushed can go */
    lua_settop(L, top);
    if (!b->j) {
        mh_chan_close(ch);
        return err.code == MH_EINVAL ? mh_lua_raise(L, "fetch.start", &err) : mh_lua_fail(L, &err);
    }
    return 2;
}

static mh_fetch_job *start_fetch(lua_State *L, mh_chan *ch, mh_err *err)
{
    mh_fetch_req req;
    const char *hdrs[MAX_HEADERS + 1];
    parse_req(L, &req, hdrs);
    if (lua_getfield(L, 1, "progress") != LUA_TNIL)
        luaL_error(L, "fetch.start: progress arrives on the channel; drop the 'progress' option");
    lua_pop(L, 1);
    return mh_fetch_start(&req, ch, err);
}

static mh_fetch_job *start_hash(lua_State *L, mh_chan *ch, mh_err *err)
{
    return mh_fetch_hash_start(luaL_checkstring(L, 1), ch, err);
}

static mh_fetch_job *start_unlink(lua_State *L, mh_chan *ch, mh_err *err)
{
    return mh_fetch_unlink_start(luaL_checkstring(L, 1), ch, err);
}

/* start{as request, no progress} -> job, channel: the transfer runs on a
 * worker thread; the channel carries "DONE TOTAL" progress messages (tag 1)
 * and is closed at the end; then job:result() answers as request would. */
static int l_start(lua_State *L) { return push_job(L, KIND_FETCH, start_fetch); }
/* hash_start(path) -> job, channel; job:result() -> {sha256 =} | nil, msg, code */
static int l_hash_start(lua_State *L) { return push_job(L, KIND_HASH, start_hash); }
/* unlink_start(path) -> job, channel; job:result() -> {} | nil, msg, code */
static int l_unlink_start(lua_State *L) { return push_job(L, KIND_UNLINK, start_unlink); }

static int job_result(lua_State *L)
{
    job_box *b = check_job(L);
    const mh_fetch_res *res = NULL;
    mh_err err = {0};
    if (!mh_fetch_job_done(b->j)) return luaL_error(L, "job:result: the job is still running (wait for its channel to close)");
    int st = mh_fetch_job_result(b->j, &res, &err);
    if (b->kind == KIND_FETCH) return push_outcome(L, st, res, &err);
    if (st) return push_outcome(L, st == MH_EINVAL ? MH_EIO : st, res, &err);
    lua_newtable(L);
    if (res->sha256[0]) {
        lua_pushstring(L, res->sha256);
        lua_setfield(L, -2, "sha256");
    }
    return 1;
}

static int job_cancel(lua_State *L)
{
    mh_fetch_job_cancel(check_job(L)->j);
    return 0;
}

static int job_done(lua_State *L)
{
    lua_pushboolean(L, mh_fetch_job_done(check_job(L)->j));
    return 1;
}

static int job_gc(lua_State *L)
{
    job_box *b = luaL_checkudata(L, 1, JOB_MT);
    mh_fetch_job_release(b->j);     /* cancels a job still running */
    b->j = NULL;
    return 0;
}

/* ===== files ===== */

static int l_sha256_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char hex[65];
    mh_err err = {0};
    if (mh_fetch_sha256_file(path, hex, &err)) return mh_lua_fail(L, &err);
    lua_pushstring(L, hex);
    return 1;
}

int luaopen_moonhub_core_fetch(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "request", l_request },
        { "start", l_start },
        { "hash_start", l_hash_start },
        { "unlink_start", l_unlink_start },
        { "sha256_file", l_sha256_file },
        { NULL, NULL },
    };
    static const luaL_Reg job_m[] = {
        { "result", job_result }, { "cancel", job_cancel }, { "done", job_done }, { NULL, NULL },
    };
    mh_lua_new_class(L, JOB_MT, job_m, job_gc);
    luaL_newlib(L, fns);
    return 1;
}
