/* l_sched.c: moonhub.core.sched — the request scheduler for Lua. new() takes
 * the model handle over (its box reads as closed, so model:forward cannot
 * race the compute thread) and gives it back on close; submit() returns the
 * request id and a channel (mh_lua_push_chan) whose messages decode() turns
 * into event tables. Layer: engine/bind (mh/sched.h, mh/loop.h; no math). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bind.h"
#include "mh/grammar.h"
#include "mh/sched.h"
#include "mh/tensor.h"

#define SCHED_MT "moonhub.sched"
#define MODEL_MT "moonhub.model"          /* l_model.c's box: mh_model ** */

typedef struct sched_box {
    mh_sched *s;                          /* NULL once closed */
    mh_model **mbox;                      /* the model's box, emptied while we run */
    mh_model *m;
    int64_t n_ctx, n_vocab;
} sched_box;

static sched_box *check_sched(lua_State *L, const char *fname)
{
    sched_box *b = luaL_checkudata(L, 1, SCHED_MT);
    if (!b->s) luaL_error(L, "%s: the scheduler is closed", fname);
    return b;
}

/* opts[k] as an integer in [lo, hi], or dflt when absent. */
static lua_Integer opt_int(lua_State *L, int t, const char *fname, const char *k,
                           lua_Integer dflt, lua_Integer lo, lua_Integer hi)
{
    int ty = lua_getfield(L, t, k);
    lua_Integer v = dflt;
    if (ty != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < lo || v > hi)
            luaL_error(L, "%s: %s must be an integer in %I..%I, got %s", fname, k, lo, hi,
                       luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    return v;
}

static float opt_float(lua_State *L, int t, const char *fname, const char *k, float dflt)
{
    int ty = lua_getfield(L, t, k);
    float v = dflt;
    if (ty != LUA_TNIL) {
        if (ty != LUA_TNUMBER) luaL_error(L, "%s: %s must be a number, got %s", fname, k, luaL_typename(L, -1));
        v = (float)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* ===== new / close ===== */

static void read_params(lua_State *L, int t, mh_sched_params *p)
{
    const char *fn = "sched.new";
    mh_sched_params_init(p);
    if (lua_isnoneornil(L, t)) return;
    luaL_checktype(L, t, LUA_TTABLE);
    p->n_parallel = (int)opt_int(L, t, fn, "parallel", p->n_parallel, 1, MH_SCHED_MAX_PARALLEL);
    p->n_ctx = opt_int(L, t, fn, "ctx", p->n_ctx, 2, 1 << 24);
    p->prefill_chunk = opt_int(L, t, fn, "prefill_chunk", p->prefill_chunk, 1, 1 << 20);
    p->mem_limit = (size_t)opt_int(L, t, fn, "mem_limit", 0, 0, LUA_MAXINTEGER);
    p->cache_bytes = (size_t)opt_int(L, t, fn, "cache_bytes", 0, 0, LUA_MAXINTEGER);
    lua_getfield(L, t, "prefix_cache");
    if (!lua_isnil(L, -1)) p->prefix_cache = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "kv_type");
    const char *kv = lua_isnil(L, -1) ? "f16" : lua_tostring(L, -1);
    int ty = kv ? mh_dtype_from_name(kv) : -1;
    if (ty != MH_DTYPE_F16 && ty != MH_DTYPE_Q8_0 && ty != MH_DTYPE_F32)
        luaL_error(L, "sched.new: kv_type must be f16, q8_0 or f32, got %s", luaL_tolstring(L, -1, NULL));
    p->kv_type = (mh_dtype)ty;
    lua_pop(L, 1);
}

/* new(model_handle, {parallel=, ctx=, kv_type=, prefill_chunk=, prefix_cache=,
 * mem_limit=, cache_bytes=}) -> sched | nil, msg */
static int l_new(lua_State *L)
{
    mh_model **mbox = luaL_checkudata(L, 1, MODEL_MT);
    if (!*mbox) return luaL_error(L, "sched.new: the model is closed or another scheduler owns it");
    mh_sched_params p;
    read_params(L, 2, &p);
    sched_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    *b = (sched_box){ NULL, mbox, *mbox, p.n_ctx, mh_model_hparams(*mbox)->n_vocab };
    luaL_setmetatable(L, SCHED_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);          /* the scheduler keeps its model alive */
    mh_err err = { 0 };
    b->s = mh_sched_new(b->m, &p, &err);
    if (!b->s) return mh_lua_fail(L, &err);
    *mbox = NULL;                         /* the compute thread owns it now */
    return 1;
}

static int s_close(lua_State *L)
{
    sched_box *b = luaL_checkudata(L, 1, SCHED_MT);
    if (!b->s) return 0;
    mh_sched_free(b->s);                  /* joins the thread: the model is idle */
    b->s = NULL;
    if (!*b->mbox) *b->mbox = b->m;
    return 0;
}

/* ===== submit ===== */

/* t[k], a list of token ids, into a new userdata (GC-owned) on the stack. */
static int32_t *read_ids(lua_State *L, int t, const char *k, int64_t n_vocab, int64_t *n, int required)
{
    int ty = lua_getfield(L, t, k);
    *n = 0;
    if (ty == LUA_TNIL && !required) { lua_pop(L, 1); return lua_newuserdatauv(L, 1, 0); }
    if (ty != LUA_TTABLE) luaL_error(L, "sched:submit: %s must be a table of token ids, got %s", k, luaL_typename(L, -1));
    lua_Integer len = luaL_len(L, -1);
    int32_t *ids = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(len > 0 ? len : 1), 0);
    for (lua_Integer i = 1; i <= len; i++) {
        int ok;
        lua_geti(L, -2, i);
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v >= n_vocab)
            luaL_error(L, "sched:submit: %s[%I] must be a token id in 0..%I, got %s", k, i,
                       (lua_Integer)n_vocab - 1, luaL_tolstring(L, -1, NULL));
        ids[i - 1] = (int32_t)v;
        lua_pop(L, 1);
    }
    lua_remove(L, -2);
    *n = len;
    return ids;
}

/* t.logit_bias = {[id] = bias} into a userdata (GC-owned) on the stack. */
static void read_bias(lua_State *L, int t, int64_t n_vocab, mh_sampler_params *sp)
{
    int ty = lua_getfield(L, t, "logit_bias");
    if (ty == LUA_TNIL) { lua_pop(L, 1); lua_newuserdatauv(L, 1, 0); return; }
    if (ty != LUA_TTABLE) luaL_error(L, "sched:submit: logit_bias must be a table {[id] = bias}");
    int n = 0;
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) n++;
    mh_logit_bias *lb = lua_newuserdatauv(L, sizeof *lb * (size_t)(n ? n : 1), 0);
    n = 0;
    for (lua_pushnil(L); lua_next(L, -3); lua_pop(L, 1)) {
        int ok;
        lua_Integer id = lua_tointegerx(L, -2, &ok);
        if (!ok || id < 0 || id >= n_vocab || !lua_isnumber(L, -1))
            luaL_error(L, "sched:submit: logit_bias keys must be token ids in 0..%I with number values",
                       (lua_Integer)n_vocab - 1);
        lb[n++] = (mh_logit_bias){ (int32_t)id, (float)lua_tonumber(L, -1) };
    }
    lua_remove(L, -2);
    sp->bias = lb;
    sp->n_bias = n;
}

static void read_sampler(lua_State *L, int t, mh_sampler_params *sp)
{
    const char *fn = "sched:submit";
    mh_sampler_params_init(sp);
    sp->temperature = opt_float(L, t, fn, "temperature", 0.8f);
    sp->top_k = (int32_t)opt_int(L, t, fn, "top_k", 40, -1, INT32_MAX);
    sp->top_p = opt_float(L, t, fn, "top_p", 0.95f);
    sp->min_p = opt_float(L, t, fn, "min_p", 0.05f);
    sp->repeat_penalty = opt_float(L, t, fn, "repeat_penalty", 1.0f);
    sp->repeat_last_n = (int32_t)opt_int(L, t, fn, "repeat_last_n", 64, -1, INT32_MAX);
    sp->presence_penalty = opt_float(L, t, fn, "presence_penalty", 0);
    sp->frequency_penalty = opt_float(L, t, fn, "frequency_penalty", 0);
    lua_getfield(L, t, "seed");
    sp->seed = lua_isnil(L, -1) ? MH_SAMPLER_SEED_RANDOM : (uint64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
}

/* logprobs = true | n (0..20) | nil; top_logprobs = n overrides the count */
static void read_logprobs(lua_State *L, int t, mh_sched_request *r)
{
    int ty = lua_getfield(L, t, "logprobs");
    if (ty == LUA_TBOOLEAN) r->logprobs = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL) {
        r->n_top = (int)opt_int(L, t, "sched:submit", "logprobs", 0, 0, MH_SCHED_MAX_TOP);
        r->logprobs = true;
    }
    lua_pop(L, 1);
    r->n_top = (int)opt_int(L, t, "sched:submit", "top_logprobs", r->n_top, 0, MH_SCHED_MAX_TOP);
    if (r->n_top > 0) r->logprobs = true;
}

/* grammar = a grammar from mh.grammar (or its core userdata): the scheduler
 * takes it over as the request's constraint, so it cannot be reused. */
static void take_grammar(lua_State *L, int t, mh_sched_request *r, mh_chan *ch)
{
    if (lua_getfield(L, t, "grammar") == LUA_TNIL) { lua_pop(L, 1); return; }
    if (lua_istable(L, -1)) lua_getfield(L, -1, "_g");
    else lua_pushvalue(L, -1);
    mh_grammar **gb = luaL_testudata(L, -1, "moonhub.grammar");
    if (!gb || !*gb) {
        mh_chan_release(ch);
        luaL_error(L, "sched:submit: grammar must be an unused grammar from mh.grammar");
    }
    mh_grammar_as_constraint(*gb, &r->constraint);
    *gb = NULL;                            /* owned by the request from here */
    lua_pop(L, 2);
}

/* s:embed(ids) -> f32 tensor (n_embd), computed between two scheduler steps */
static int s_embed(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:embed");
    int64_t n;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_createtable(L, 0, 1);              /* read_ids reads a field: {tokens = ids} */
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "tokens");
    const int32_t *ids = read_ids(L, lua_gettop(L), "tokens", b->n_vocab, &n, 1);
    if (n < 1) return luaL_error(L, "sched:embed: no token ids");
    int64_t shape[1] = { mh_model_hparams(b->m)->n_embd };
    mh_err err = { 0 };
    mh_tensor *t = mh_tensor_new(MH_DTYPE_F32, 1, shape, &err);
    if (!t) return mh_lua_raise(L, "sched:embed", &err);
    if (mh_sched_embed(b->s, ids, n, mh_tensor_data(t), &err)) {
        mh_tensor_release(t);
        return mh_lua_raise(L, "sched:embed", &err);
    }
    mh_lua_push_tensor(L, t, "sched:embed", &err);
    return 1;
}

/* s:submit{tokens=, max_tokens=, sampler fields..., logit_bias=, logprobs=,
 * eog_ids=} -> id, channel | nil, msg */
static int s_submit(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:submit");
    luaL_checktype(L, 2, LUA_TTABLE);
    mh_sched_request r = { 0 };
    r.tokens = read_ids(L, 2, "tokens", b->n_vocab, &r.n_tokens, 1);
    if (r.n_tokens < 1) return luaL_error(L, "sched:submit: tokens is empty");
    int64_t n_eog;
    r.eog = read_ids(L, 2, "eog_ids", b->n_vocab, &n_eog, 0);
    r.n_eog = (int)n_eog;
    int64_t room = b->n_ctx - r.n_tokens;
    r.max_tokens = opt_int(L, 2, "sched:submit", "max_tokens", room > 0 ? room : 1, 1, 1 << 24);
    read_sampler(L, 2, &r.sampler);
    read_bias(L, 2, b->n_vocab, &r.sampler);
    read_logprobs(L, 2, &r);
    mh_err err = { 0 };
    mh_chan *ch = mh_chan_new(mh_lua_loop(L), &err);
    if (!ch) return mh_lua_raise(L, "sched:submit", &err);
    take_grammar(L, 2, &r, ch);
    int64_t id = mh_sched_submit(b->s, &r, ch, &err);
    if (id < 0) {
        if (r.constraint.free) r.constraint.free(r.constraint.ud);
        mh_chan_release(ch);
        return mh_lua_fail(L, &err);
    }
    lua_pushinteger(L, id);
    mh_lua_push_chan(L, ch);
    return 2;
}

/* ===== cancel / stats ===== */

static int s_cancel(lua_State *L)
{
    sched_box *b = luaL_checkudata(L, 1, SCHED_MT);
    lua_Integer id = luaL_checkinteger(L, 2);
    lua_pushboolean(L, b->s && mh_sched_cancel(b->s, id));   /* closed: nothing is live */
    return 1;
}

static void set_int(lua_State *L, const char *k, int64_t v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }
static void set_num(lua_State *L, const char *k, double v) { lua_pushnumber(L, v); lua_setfield(L, -2, k); }

static int s_stats(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:stats");
    mh_sched_stats st;
    mh_sched_stats_get(b->s, &st);
    lua_createtable(L, 0, 18);
    set_int(L, "running", st.running);
    set_int(L, "waiting", st.waiting);
    set_int(L, "parallel", st.n_parallel);
    set_int(L, "kv_used", st.kv_used);
    set_int(L, "kv_total", st.kv_total);
    set_int(L, "prefix_hits", st.prefix_hits);
    set_int(L, "prefix_tokens", st.prefix_tokens);
    set_int(L, "prompt_tokens", st.prompt_tokens);
    set_int(L, "generated_tokens", st.generated_tokens);
    set_int(L, "requests_done", st.requests_done);
    set_int(L, "steps", st.steps);
    set_int(L, "store_hits", st.store_hits);
    set_int(L, "store_tokens", st.store_tokens);
    set_int(L, "store_entries", st.store_entries);
    set_int(L, "store_bytes", st.store_bytes);
    set_int(L, "store_budget", st.store_budget);
    set_int(L, "store_evictions", st.store_evictions);
    return 1;
}

/* ===== events ===== */

static void push_token(lua_State *L, const mh_sched_token_ev *ev, int with_lp)
{
    lua_createtable(L, 0, 3);
    set_int(L, "token", ev->id);
    if (!with_lp) return;
    set_num(L, "logprob", ev->logprob);
    int n = ev->n_top < 0 ? 0 : ev->n_top > MH_SCHED_MAX_TOP ? MH_SCHED_MAX_TOP : ev->n_top;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 2, 0);
        lua_pushinteger(L, ev->top_ids[i]);
        lua_rawseti(L, -2, 1);
        lua_pushnumber(L, ev->top_logprobs[i]);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "top");
}

static void push_done(lua_State *L, const mh_sched_done_ev *ev)
{
    lua_createtable(L, 0, 5);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "done");
    lua_pushstring(L, mh_sched_reason_name(ev->reason));
    lua_setfield(L, -2, "reason");
    if (ev->reason == MH_SCHED_ERROR) {
        lua_pushstring(L, ev->message);
        lua_setfield(L, -2, "error");
    }
    lua_createtable(L, 0, 4);
    set_int(L, "prompt_tokens", ev->prompt_tokens);
    set_int(L, "cached_tokens", ev->cached_tokens);
    set_int(L, "completion_tokens", ev->completion_tokens);
    set_int(L, "total_tokens", ev->prompt_tokens + ev->completion_tokens);
    lua_setfield(L, -2, "usage");
    lua_createtable(L, 0, 4);
    set_num(L, "queue_ms", ev->queue_ms);
    set_num(L, "prefill_ms", ev->prefill_ms);
    set_num(L, "ttft_ms", ev->ttft_ms);
    set_num(L, "decode_tps", ev->decode_tps);
    lua_setfield(L, -2, "timings");
}

/* decode(data, tag, with_logprobs) -> event table */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    lua_Integer tag = luaL_checkinteger(L, 2);
    if (tag == MH_SCHED_EV_TOKEN && len == sizeof(mh_sched_token_ev)) {
        mh_sched_token_ev ev;
        memcpy(&ev, data, sizeof ev);
        push_token(L, &ev, lua_toboolean(L, 3));
    } else if (tag == MH_SCHED_EV_DONE && len == sizeof(mh_sched_done_ev)) {
        mh_sched_done_ev ev;
        memcpy(&ev, data, sizeof ev);
        ev.message[sizeof ev.message - 1] = 0;
        push_done(L, &ev);
    } else {
        return luaL_error(L, "sched.decode: not a scheduler event (tag %I, %d bytes)", tag, (int)len);
    }
    return 1;
}

/* default_cache_bytes() -> the prefix store budget when none is asked for */
static int l_default_cache_bytes(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mh_sched_store_default_budget());
    return 1;
}

int luaopen_moonhub_core_sched(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "submit", s_submit }, { "cancel", s_cancel }, { "stats", s_stats }, { "embed", s_embed },
        { "close", s_close }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = { { "new", l_new }, { "decode", l_decode },
                                    { "default_cache_bytes", l_default_cache_bytes }, { NULL, NULL } };
    luaL_newmetatable(L, SCHED_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, s_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, s_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
