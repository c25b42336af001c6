/* l_sched.c: moonhub.core.sched — the request scheduler for Lua, the one
 * generation loop. new() borrows the model (mh_lua_model_lend: model calls
 * raise while the compute thread owns it) and gives it back on close;
 * submit() returns the request id and a channel (mh_lua_push_chan) whose
 * messages decode() turns into event tables. new_sync() is the same loop
 * stepped on the caller's thread over the caller's cache (model:generate):
 * its next() runs steps until an event, and a Lua logits_processor may run
 * there. Layer: engine/bind (mh/sched.h, mh/loop.h; no math). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bind.h"
#include "l_sched.h"
#include "mh/sched.h"
#include "mh/loop.h"
#include "mh/tensor.h"

#define SCHED_MT "moonhub.sched"

/* A Lua logits_processor handed down as an mh_logits_hook (synchronous use:
 * it runs inside s:next(), on the thread that called it). */
typedef struct lua_hook {
    lua_State *L;                         /* the caller of the current next() */
    lua_State *main;                      /* where the refs are dropped */
    int fn_ref, tensor_ref, tokens_ref;   /* registry */
    mh_tensor *logits;                    /* (1, n_vocab), kept by tensor_ref */
    int64_t n_pushed;                     /* ids already in the tokens table */
} lua_hook;

typedef struct sched_box {
    mh_sched *s;                          /* NULL once closed */
    mh_lua_model_box *lent;               /* threaded: the model we borrowed */
    mh_lua_model_box *dlent;              /* threaded: the draft model, if any */
    mh_model *m;
    int64_t n_ctx, n_vocab;
    bool sync;
    mh_chan *ch;                          /* sync: the current request's events */
    bool with_lp;                         /* sync: it asked for logprobs */
    lua_hook *hook;                       /* sync: its processor, until it ends */
} sched_box;

static sched_box *check_sched(lua_State *L, const char *fname)
{
    sched_box *b = luaL_checkudata(L, 1, SCHED_MT);
    if (!b->s) luaL_error(L, "%s: the scheduler is closed", fname);
    return b;
}

mh_sched *mh_lua_check_sched(lua_State *L, int idx, const char *fname)
{
    sched_box *b = luaL_testudata(L, idx, SCHED_MT);
    if (!b) luaL_error(L, "%s: argument %d must be a scheduler, got %s", fname, idx, luaL_typename(L, idx));
    if (!b->s) luaL_error(L, "%s: the scheduler is closed", fname);
    return b->s;
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
    p->cache_dir_bytes = (size_t)opt_int(L, t, fn, "cache_dir_bytes", 1 << 30, 0, LUA_MAXINTEGER);
    if (lua_getfield(L, t, "cache_dir") != LUA_TNIL && !(p->cache_dir = lua_tostring(L, -1)))
        luaL_error(L, "sched.new: cache_dir must be a string, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);                        /* still in opts: alive until new() copies it */
    p->draft_max = (int)opt_int(L, t, fn, "draft_max", 0, 0, MH_SCHED_MAX_DRAFT);
    p->ngram = (int)opt_int(L, t, fn, "ngram", 0, 0, 8);
    p->draft_p_min = opt_float(L, t, fn, "draft_p_min", 0);
    mhl_sched_read_costs(L, t, fn, &p->spec_costs);
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

/* opts.tok: a tokenizer handle (kept alive as user value 2): events carry
 * text and requests may have stop strings. */
static void read_tok(lua_State *L, int t, mh_sched_params *p)
{
    if (lua_isnoneornil(L, t)) { lua_pushnil(L); return; }
    if (lua_getfield(L, t, "tok") == LUA_TNIL) return;    /* that nil is the placeholder */
    p->tok = mh_lua_check_tokenizer(L, lua_gettop(L), "sched.new");
}

/* opts.draft: a draft model handle (kept alive as user value 3), for
 * speculative decoding; pushes it or nil. */
static void read_draft(lua_State *L, int t, mh_sched_params *p, const char *fname)
{
    if (lua_isnoneornil(L, t)) { lua_pushnil(L); return; }
    if (lua_getfield(L, t, "draft") == LUA_TNIL) return;
    p->draft = mh_lua_check_model(L, lua_gettop(L), fname);
    if (lua_rawequal(L, -1, 1)) luaL_error(L, "%s: the draft must be another model than the target", fname);
}

/* The stack ends with the tokenizer and the draft (or nils): both become
 * user values, with the model, and stay on the stack below the box. */
static sched_box *new_box(lua_State *L, mh_model *m, int64_t n_ctx)
{
    int top = lua_gettop(L);
    sched_box *b = lua_newuserdatauv(L, sizeof *b, 3);
    *b = (sched_box){ .m = m, .n_ctx = n_ctx, .n_vocab = mh_model_hparams(m)->n_vocab };
    luaL_setmetatable(L, SCHED_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);          /* the scheduler keeps its model alive */
    lua_pushvalue(L, top - 1);
    lua_setiuservalue(L, -2, 2);          /* ... its tokenizer */
    lua_pushvalue(L, top);
    lua_setiuservalue(L, -2, 3);          /* ... and its draft */
    return b;
}

/* new(model_handle, {parallel=, ctx=, kv_type=, prefill_chunk=, prefix_cache=,
 * mem_limit=, cache_bytes=, tok=}) -> sched | nil, msg */
static int l_new(lua_State *L)
{
    mh_model *m = mh_lua_check_model(L, 1, "sched.new");
    mh_sched_params p;
    read_params(L, 2, &p);
    read_tok(L, 2, &p);
    read_draft(L, 2, &p, "sched.new");
    int draft_at = lua_gettop(L);
    sched_box *b = new_box(L, m, p.n_ctx);
    mh_err err = { 0 };
    b->s = mh_sched_new(b->m, &p, &err);
    if (!b->s) return mh_lua_fail(L, &err);
    b->lent = mh_lua_model_lend(L, 1, "sched.new", &m);   /* the compute thread owns it now */
    if (p.draft) b->dlent = mh_lua_model_lend(L, draft_at, "sched.new", &p.draft);
    return 1;
}

/* new_sync(model_handle, cache, {ids the cache holds}, {tok=, prefill_chunk=})
 * -> sched: one slot stepped by next() on this thread */
static int l_new_sync(lua_State *L)
{
    mh_model *m = mh_lua_check_model(L, 1, "sched.new_sync");
    mh_kv_cache *c = mh_lua_check_cache(L, 2, m, "sched.new_sync");
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 3);
    int32_t *hist = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(n > 0 ? n : 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 3, i);
        hist[i - 1] = (int32_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    mh_sched_params p;
    mh_sched_params_init(&p);
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        p.prefill_chunk = opt_int(L, 4, "sched.new_sync", "prefill_chunk", p.prefill_chunk, 1, 1 << 20);
        p.draft_max = (int)opt_int(L, 4, "sched.new_sync", "draft_max", 0, 0, MH_SCHED_MAX_DRAFT);
        p.ngram = (int)opt_int(L, 4, "sched.new_sync", "ngram", 0, 0, 8);
        p.draft_p_min = opt_float(L, 4, "sched.new_sync", "draft_p_min", 0);
        mhl_sched_read_costs(L, 4, "sched.new_sync", &p.spec_costs);
    }
    read_tok(L, 4, &p);
    read_draft(L, 4, &p, "sched.new_sync");
    sched_box *b = new_box(L, m, mh_kv_cache_n_ctx(c));
    b->sync = true;
    lua_pushvalue(L, 2);                  /* the cache outlives us: kept with the model's */
    lua_setiuservalue(L, -2, 1);
    mh_err err = { 0 };
    b->s = mh_sched_new_sync(m, &p, c, hist, n, &err);
    if (!b->s) return mh_lua_raise(L, "sched.new_sync", &err);
    return 1;
}

static int s_close(lua_State *L)
{
    sched_box *b = luaL_checkudata(L, 1, SCHED_MT);
    if (!b->s) return 0;
    mh_sched_free(b->s);                  /* joins the thread: the model is idle */
    b->s = NULL;
    mh_lua_model_unlend(b->lent);
    mh_lua_model_unlend(b->dlent);
    b->lent = b->dlent = NULL;
    if (b->ch) { mh_chan_release(b->ch); b->ch = NULL; }
    b->hook = NULL;                       /* freed with its request */
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

/* The sampler fields of t over the shared defaults (mh_sched_request_init). */
static void read_sampler(lua_State *L, int t, mh_sampler_params *sp)
{
    const char *fn = "sched:submit";
    sp->temperature = opt_float(L, t, fn, "temperature", sp->temperature);
    sp->top_k = (int32_t)opt_int(L, t, fn, "top_k", sp->top_k, -1, INT32_MAX);
    sp->top_p = opt_float(L, t, fn, "top_p", sp->top_p);
    sp->min_p = opt_float(L, t, fn, "min_p", sp->min_p);
    sp->repeat_penalty = opt_float(L, t, fn, "repeat_penalty", sp->repeat_penalty);
    sp->repeat_last_n = (int32_t)opt_int(L, t, fn, "repeat_last_n", sp->repeat_last_n, -1, INT32_MAX);
    sp->presence_penalty = opt_float(L, t, fn, "presence_penalty", sp->presence_penalty);
    sp->frequency_penalty = opt_float(L, t, fn, "frequency_penalty", sp->frequency_penalty);
    lua_getfield(L, t, "seed");
    if (!lua_isnil(L, -1)) {
        int ok;
        lua_Integer seed = lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: seed must be an integer, got %s", fn, luaL_tolstring(L, -1, NULL));
        sp->seed = (uint64_t)seed;
    }
    lua_pop(L, 1);
}

/* t.stop = "text" | {"text", ...} into a userdata of pointers (GC-owned) on
 * the stack; the strings stay alive in t until submit copies them. */
static void read_stops(lua_State *L, int t, mh_sched_request *r)
{
    int ty = lua_getfield(L, t, "stop");
    int n = ty == LUA_TSTRING ? 1 : ty == LUA_TTABLE ? (int)luaL_len(L, -1) : 0;
    if (ty != LUA_TNIL && ty != LUA_TSTRING && ty != LUA_TTABLE)
        luaL_error(L, "sched:submit: stop must be a string or a list of strings, got %s", luaL_typename(L, -1));
    if (n > MH_SCHED_MAX_STOPS) luaL_error(L, "sched:submit: at most %d stop strings, got %d", MH_SCHED_MAX_STOPS, n);
    const char **v = lua_newuserdatauv(L, sizeof *v * (size_t)(n ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        if (ty == LUA_TTABLE) lua_geti(L, -2, i + 1);
        else lua_pushvalue(L, -2);
        size_t len;
        v[i] = lua_tolstring(L, -1, &len);
        if (lua_type(L, -1) != LUA_TSTRING || len == 0)
            luaL_error(L, "sched:submit: stop[%d] must be a non-empty string", i + 1);
        lua_pop(L, 1);
    }
    lua_remove(L, -2);
    r->stops = v;
    r->n_stops = n;
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
 * takes it over as the request's constraint, so it cannot be reused. Call
 * last (after everything that may raise): from here the request owns it. */
static void take_grammar(lua_State *L, int t, mh_sched_request *r)
{
    if (lua_getfield(L, t, "grammar") == LUA_TNIL) { lua_pop(L, 1); return; }
    if (lua_istable(L, -1)) lua_getfield(L, -1, "_g");
    else lua_pushvalue(L, -1);
    mh_lua_take_grammar(L, lua_gettop(L), "sched:submit", &r->constraint);
    lua_pop(L, 2);
}

/* ===== a Lua logits_processor (synchronous use only) ===== */

static int hook_fn(void *ud, float *logits, int64_t n_vocab, const int32_t *tokens, int64_t n, mh_err *err)
{
    lua_hook *h = ud;
    lua_State *L = h->L;
    if (!lua_checkstack(L, 4)) return mh_err_set(err, MH_ENOMEM, "logits_processor: Lua stack overflow");
    float *data = mh_tensor_data(h->logits);
    memcpy(data, logits, sizeof(float) * (size_t)n_vocab);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->tensor_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->tokens_ref);
    for (int64_t i = h->n_pushed; i < n; i++) {   /* the same table grows, as before */
        lua_pushinteger(L, tokens[i]);
        lua_rawseti(L, -2, i + 1);
    }
    h->n_pushed = n;
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        mh_err_set(err, MH_EINVAL, "logits_processor: %s", luaL_tolstring(L, -1, NULL));
        lua_pop(L, 2);
        return MH_EINVAL;
    }
    memcpy(logits, data, sizeof(float) * (size_t)n_vocab);
    return MH_OK;
}

static void hook_free(void *ud)
{
    lua_hook *h = ud;
    luaL_unref(h->main, LUA_REGISTRYINDEX, h->fn_ref);
    luaL_unref(h->main, LUA_REGISTRYINDEX, h->tensor_ref);
    luaL_unref(h->main, LUA_REGISTRYINDEX, h->tokens_ref);
    free(h);
}

/* t.logits_processor = function(logits (1, n_vocab) tensor, tokens) into
 * r->hook; s_submit has checked it is a function and b is synchronous (a
 * compute thread cannot call Lua). */
static lua_hook *read_hook(lua_State *L, int t, sched_box *b, mh_sched_request *r)
{
    if (lua_getfield(L, t, "logits_processor") == LUA_TNIL) { lua_pop(L, 1); return NULL; }
    int64_t shape[2] = { 1, b->n_vocab };
    mh_err err = { 0 };
    mh_tensor *tn = mh_tensor_new(MH_DTYPE_F32, 2, shape, &err);
    mh_lua_push_tensor(L, tn, "sched:submit", &err);
    lua_hook *h = malloc(sizeof *h);
    if (!h) luaL_error(L, "sched:submit: out of memory");
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    h->main = lua_tothread(L, -1);        /* refs are dropped there, whoever ends us */
    h->L = L;
    lua_pop(L, 1);
    h->logits = tn;
    h->n_pushed = 0;
    h->tensor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    h->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    h->tokens_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->hook = (mh_logits_hook){ h, hook_fn, hook_free };
    return h;
}

/* s:embed(ids) -> f32 tensor (n_embd); s:embed({ids, ...}) -> {tensor, ...} (l_sched_extra.c) */
static int s_embed(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:embed");
    if (mhl_sched_embed_list(L, b->s, b->n_vocab, b->m)) return 1;   /* a list of id lists */
    int64_t n;
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

/* speculative = false | "off" | "draft" | "ngram" | {n_max =, ngram = true | n,
 * draft = true}: the request's speculation (nil: the scheduler's). */
static void read_spec(lua_State *L, int t, mh_sched_request *r)
{
    const char *fn = "sched:submit";
    int ty = lua_getfield(L, t, "speculative");
    if (ty == LUA_TBOOLEAN) r->spec_mode = lua_toboolean(L, -1) ? MH_SPEC_DEFAULT : MH_SPEC_OFF;
    else if (ty == LUA_TSTRING) {
        static const char *const modes[] = { "off", "draft", "ngram", NULL };
        const char *v = lua_tostring(L, -1);
        int i = 0;
        while (modes[i] && strcmp(modes[i], v) != 0) i++;
        if (!modes[i]) luaL_error(L, "%s: speculative must be \"off\", \"draft\", \"ngram\" or a table, got \"%s\"", fn, v);
        r->spec_mode = MH_SPEC_OFF + i;
    } else if (ty == LUA_TTABLE) {
        int st = lua_gettop(L);
        r->spec_n_max = (int)opt_int(L, st, fn, "n_max", -1, 0, MH_SCHED_MAX_DRAFT);
        if (r->spec_n_max == 0) r->spec_mode = MH_SPEC_OFF;
        if (r->spec_n_max < 0) r->spec_n_max = 0;
        lua_getfield(L, st, "draft");
        if (lua_toboolean(L, -1) && r->spec_mode != MH_SPEC_OFF) r->spec_mode = MH_SPEC_DRAFT;
        lua_pop(L, 1);
        int gt = lua_getfield(L, st, "ngram"), ok = 1;
        bool want = gt == LUA_TBOOLEAN && lua_toboolean(L, -1);   /* true: the default n */
        if (gt != LUA_TNIL && gt != LUA_TBOOLEAN) {
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < 1 || v > 8)
                luaL_error(L, "%s: speculative.ngram must be true or an integer in 1..8, got %s", fn,
                           luaL_tolstring(L, -1, NULL));
            r->spec_ngram = (int)v;
            want = true;
        }
        lua_pop(L, 1);
        if (want && r->spec_mode != MH_SPEC_OFF) r->spec_mode = MH_SPEC_NGRAM;
    } else if (ty != LUA_TNIL)
        luaL_error(L, "%s: speculative must be a boolean, a string or a table, got %s", fn, luaL_typename(L, -1));
    lua_pop(L, 1);
}

/* s:submit{tokens=, max_tokens=, sampler fields..., logit_bias=, logprobs=,
 * eog_ids=, stop=, grammar=, lora=, logits_processor= (sync only),
 * processors = true (threaded only)} -> id, channel, logits tensor | nil,
 * msg. A synchronous scheduler runs one request at a time and keeps
 * its channel: it returns the id alone, and s:next() gives the events. */
static int s_submit(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:submit");
    luaL_checktype(L, 2, LUA_TTABLE);
    if (b->sync && b->ch && !mh_chan_done(b->ch))
        return luaL_error(L, "sched:submit: a generation is still running on this scheduler");
    mh_sched_request r;
    mh_sched_request_init(&r);
    r.tokens = read_ids(L, 2, "tokens", b->n_vocab, &r.n_tokens, 1);
    if (r.n_tokens < 1) return luaL_error(L, "sched:submit: tokens is empty");
    int64_t n_eog;
    r.eog = read_ids(L, 2, "eog_ids", b->n_vocab, &n_eog, 0);
    r.n_eog = (int)n_eog;
    int64_t room = b->n_ctx - r.n_tokens;
    int64_t dflt = r.max_tokens < room ? r.max_tokens : room > 0 ? room : 0;
    r.max_tokens = opt_int(L, 2, "sched:submit", "max_tokens", dflt, 0, 1 << 24);
    read_sampler(L, 2, &r.sampler);
    read_bias(L, 2, b->n_vocab, &r.sampler);
    read_logprobs(L, 2, &r);
    read_stops(L, 2, &r);
    read_spec(L, 2, &r);
    mhl_sched_read_loras(L, 2, &r);
    mhl_sched_read_park(L, 2, b->sync, b->n_vocab, &r);
    int park_at = lua_gettop(L);
    lua_getfield(L, 2, "logits_processor");   /* checked before the grammar is taken */
    if (!lua_isnil(L, -1) && !b->sync)
        return luaL_error(L, "sched:submit: logits_processor (a Lua function) needs synchronous use "
                          "(model:generate / model:stream), not the server's scheduler");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        return luaL_error(L, "sched:submit: logits_processor must be a function, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);
    take_grammar(L, 2, &r);
    lua_hook *h = read_hook(L, 2, b, &r);
    mh_err err = { 0 };
    mh_chan *ch = mh_chan_new(mh_lua_loop(L), &err);
    int64_t id = ch ? mh_sched_submit(b->s, &r, ch, &err) : -1;
    if (id < 0) {
        if (r.constraint.free) r.constraint.free(r.constraint.ud);
        if (r.hook.free) r.hook.free(r.hook.ud);
        if (ch) mh_chan_release(ch);
        return mh_lua_fail(L, &err);
    }
    lua_pushinteger(L, id);
    if (!b->sync) {
        mh_lua_push_chan(L, ch);
        lua_pushvalue(L, park_at);        /* the logits tensor, or nil */
        return 3;
    }
    if (b->ch) mh_chan_release(b->ch);
    b->ch = ch;
    b->with_lp = r.logprobs || r.n_top > 0;
    b->hook = h;
    return 1;
}

/* ===== cancel / resume / stats ===== */

/* s:resume(id[, error]) -> true when id was waiting on its logits: the loop
 * samples from them (changed in place), or ends the request with error. */
static int s_resume(lua_State *L)
{
    sched_box *b = luaL_checkudata(L, 1, SCHED_MT);
    lua_Integer id = luaL_checkinteger(L, 2);
    const char *msg = luaL_optstring(L, 3, NULL);
    lua_pushboolean(L, b->s && mh_sched_resume(b->s, id, msg));
    return 1;
}

/* s:hold(on): see mh_sched_hold */
static int s_hold(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:hold");
    mh_sched_hold(b->s, lua_toboolean(L, 2));
    return 0;
}

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
    mhl_sched_push_stats(L, &st);
    return 1;
}

/* ===== events ===== */

static void push_text(lua_State *L, const char *text, int32_t n)
{
    lua_pushlstring(L, text, n > 0 ? (size_t)n : 0);
    lua_setfield(L, -2, "text");
}

static void push_token(lua_State *L, const mh_sched_token_ev *ev, const char *text, int with_lp)
{
    lua_createtable(L, 0, 4);
    set_int(L, "token", ev->id);
    push_text(L, text, ev->n_text);
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

static void set_bool(lua_State *L, const char *k, bool v) { lua_pushboolean(L, v); lua_setfield(L, -2, k); }

/* The settings a request ran with: what a caller can check end to end. */
static void push_settings(lua_State *L, const mh_sched_done_ev *ev)
{
    const mh_sampler_params *sp = &ev->sampler;
    lua_createtable(L, 0, 20);
    set_num(L, "temperature", sp->temperature);
    set_int(L, "top_k", sp->top_k);
    set_num(L, "top_p", sp->top_p);
    set_num(L, "min_p", sp->min_p);
    set_num(L, "repeat_penalty", sp->repeat_penalty);
    set_int(L, "repeat_last_n", sp->repeat_last_n);
    set_num(L, "presence_penalty", sp->presence_penalty);
    set_num(L, "frequency_penalty", sp->frequency_penalty);
    set_int(L, "seed", (int64_t)sp->seed);
    set_int(L, "n_logit_bias", sp->n_bias);
    set_int(L, "max_tokens", ev->max_tokens);
    set_int(L, "n_stop", ev->n_stops);
    set_int(L, "n_eog", ev->n_eog);
    set_bool(L, "logprobs", ev->logprobs);
    set_int(L, "top_logprobs", ev->n_top);
    set_bool(L, "grammar", ev->constrained);
    set_bool(L, "logits_processor", ev->processed);
    if (ev->n_loras) set_int(L, "lora", ev->n_loras);
    if (ev->spec_mode > MH_SPEC_OFF) {
        lua_pushstring(L, ev->spec_mode == MH_SPEC_DRAFT ? "draft" : "ngram");
        lua_setfield(L, -2, "speculative");
        set_int(L, "draft_max", ev->spec_n_max);
    }
    lua_setfield(L, -2, "settings");
}

static void push_done(lua_State *L, const mh_sched_done_ev *ev, const char *text)
{
    lua_createtable(L, 0, 8);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "done");
    lua_pushstring(L, mh_sched_reason_name(ev->reason));
    lua_setfield(L, -2, "reason");
    if (ev->reason == MH_SCHED_ERROR) {
        lua_pushstring(L, ev->message);
        lua_setfield(L, -2, "error");
    }
    push_text(L, text, ev->n_text);
    if (ev->stop_index >= 0) set_int(L, "stop_index", ev->stop_index + 1);
    lua_createtable(L, 0, 4);
    set_int(L, "prompt_tokens", ev->prompt_tokens);
    set_int(L, "cached_tokens", ev->cached_tokens);
    set_int(L, "completion_tokens", ev->completion_tokens);
    set_int(L, "total_tokens", ev->prompt_tokens + ev->completion_tokens);
    if (ev->spec_mode > MH_SPEC_OFF) {    /* speculation: how well the drafts did */
        set_int(L, "draft_tokens", ev->draft_tokens);
        set_int(L, "accepted_tokens", ev->accepted_tokens);
        set_num(L, "acceptance_rate", ev->draft_tokens ? (double)ev->accepted_tokens / (double)ev->draft_tokens : 0);
        set_int(L, "target_steps", ev->target_steps);
        set_num(L, "tokens_per_step", ev->target_steps ? (double)ev->completion_tokens / (double)ev->target_steps : 0);
    }
    lua_setfield(L, -2, "usage");
    lua_createtable(L, 0, 4);
    set_num(L, "queue_ms", ev->queue_ms);
    set_num(L, "prefill_ms", ev->prefill_ms);
    set_num(L, "ttft_ms", ev->ttft_ms);
    set_num(L, "decode_tps", ev->decode_tps);
    lua_setfield(L, -2, "timings");
    push_settings(L, ev);
}

/* Pushes the event table of one channel message; 0 when it is not one. */
static int push_event(lua_State *L, const char *data, size_t len, int tag, int with_lp)
{
    if (tag == MH_SCHED_EV_TOKEN && len >= sizeof(mh_sched_token_ev)) {
        mh_sched_token_ev ev;
        memcpy(&ev, data, sizeof ev);
        if (ev.n_text < 0 || (size_t)ev.n_text != len - sizeof ev) return 0;
        push_token(L, &ev, data + sizeof ev, with_lp);
    } else if (tag == MH_SCHED_EV_DONE && len >= sizeof(mh_sched_done_ev)) {
        mh_sched_done_ev ev;
        memcpy(&ev, data, sizeof ev);
        if (ev.n_text < 0 || (size_t)ev.n_text != len - sizeof ev) return 0;
        ev.message[sizeof ev.message - 1] = 0;
        push_done(L, &ev, data + sizeof ev);
    } else if (tag == MH_SCHED_EV_LOGITS && len == sizeof(mh_sched_logits_ev)) {
        mh_sched_logits_ev ev;
        memcpy(&ev, data, sizeof ev);
        lua_createtable(L, 0, 2);
        set_bool(L, "logits", true);
        set_int(L, "n_gen", ev.n_gen);
    } else {
        return 0;
    }
    return 1;
}

/* decode(data, tag, with_logprobs) -> event table */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    lua_Integer tag = luaL_checkinteger(L, 2);
    if (!push_event(L, data, len, (int)tag, lua_toboolean(L, 3)))
        return luaL_error(L, "sched.decode: not a scheduler event (tag %I, %d bytes)", tag, (int)len);
    return 1;
}

/* ===== synchronous use ===== */

/* s:next() -> the next event of the current request (as decode's), running
 * steps on this thread until one comes | nil after the final one. A Lua
 * error inside the logits_processor ends the request: its final event has
 * reason "error" and the message. */
static int s_next(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:next");
    if (!b->sync) return luaL_error(L, "sched:next: only a synchronous scheduler (new_sync) is stepped by next()");
    if (!b->ch) return 0;
    for (;;) {
        mh_chan_msg m;
        if (mh_chan_pop(b->ch, &m)) {
            int ok = push_event(L, m.data, m.len, m.tag, b->with_lp);
            if (m.tag == MH_SCHED_EV_DONE) b->hook = NULL;     /* the request freed it */
            free(m.data);
            if (!ok) return luaL_error(L, "sched:next: a malformed event");
            return 1;
        }
        if (mh_chan_done(b->ch)) return 0;
        if (b->hook) b->hook->L = L;      /* the processor runs on this thread */
        if (!mh_sched_step(b->s)) return luaL_error(L, "sched:next: the scheduler stalled with a live request");
    }
}

/* s:tokens() -> the ids the (synchronous) scheduler's cache holds */
static int s_tokens(lua_State *L)
{
    sched_box *b = check_sched(L, "sched:tokens");
    const int32_t *ids;
    int64_t n = mh_sched_slot_tokens(b->s, 0, &ids);
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* defaults() -> the request defaults every path shares (mh_sched_request_init) */
static int l_defaults(lua_State *L)
{
    mh_sched_request r;
    mh_sched_request_init(&r);
    mh_sched_done_ev ev = { .sampler = r.sampler, .max_tokens = r.max_tokens };
    lua_newtable(L);
    push_settings(L, &ev);
    lua_getfield(L, -1, "settings");
    lua_pushnil(L);
    lua_setfield(L, -2, "seed");          /* from the clock unless given */
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
        { "submit", s_submit }, { "cancel", s_cancel }, { "resume", s_resume }, { "hold", s_hold }, { "stats", s_stats }, { "embed", s_embed },
        { "next", s_next }, { "tokens", s_tokens }, { "close", s_close }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "new", l_new }, { "new_sync", l_new_sync }, { "decode", l_decode }, { "defaults", l_defaults },
        { "default_cache_bytes", l_default_cache_bytes }, { NULL, NULL },
    };
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
