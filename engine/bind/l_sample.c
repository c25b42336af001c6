/* l_sample.c: moonhub.core.sample — samplers, logprobs and stop-string
 * matchers over f32 logits tensors. Layer: engine/bind (calls mh/sample.h).
 * Token ids are the tokenizer's own 0-based ids. */
#include <math.h>
#include <string.h>
#include "bind.h"
#include "mh/sample.h"
#include "mh/tensor.h"

#define SAMPLER_MT "moonhub.sampler"
#define STOP_MT "moonhub.stop_matcher"

/* The logits row of t: a contiguous f32 tensor of shape (V) or (R, V), row
 * `row` (0-based, negative from the end) of the latter. */
static float *logits_row(lua_State *L, int idx, int row_arg, int64_t *n)
{
    mh_tensor *t = mh_lua_check_tensor(L, idx);
    if (t->dtype != MH_DTYPE_F32 || !mh_tensor_is_contiguous(t) || t->ndim < 1 || t->ndim > 2)
        luaL_argerror(L, idx, "logits must be a contiguous f32 tensor of 1 or 2 dims");
    int64_t V = t->shape[t->ndim - 1], rows = t->ndim == 2 ? t->shape[0] : 1;
    lua_Integer r = luaL_optinteger(L, row_arg, -1);
    if (r < 0) r += rows;
    if (r < 0 || r >= rows) luaL_argerror(L, row_arg, "row out of range");
    *n = V;
    return (float *)mh_tensor_data(t) + r * V;
}

static float opt_num(lua_State *L, int t, const char *k, float dflt)
{
    lua_getfield(L, t, k);
    float v = lua_isnil(L, -1) ? dflt : (float)luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* sampler(n_vocab, {temperature=, top_k=, ..., seed=, logit_bias={[id]=bias}}) */
static int l_sampler(lua_State *L)
{
    lua_Integer V = luaL_checkinteger(L, 1);
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    int n_bias = 0;
    mh_logit_bias *bias = NULL;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        p.temperature = opt_num(L, 2, "temperature", p.temperature);
        p.top_k = (int32_t)opt_num(L, 2, "top_k", (float)p.top_k);
        p.top_p = opt_num(L, 2, "top_p", p.top_p);
        p.min_p = opt_num(L, 2, "min_p", p.min_p);
        p.repeat_penalty = opt_num(L, 2, "repeat_penalty", p.repeat_penalty);
        p.repeat_last_n = (int32_t)opt_num(L, 2, "repeat_last_n", (float)p.repeat_last_n);
        p.presence_penalty = opt_num(L, 2, "presence_penalty", p.presence_penalty);
        p.frequency_penalty = opt_num(L, 2, "frequency_penalty", p.frequency_penalty);
        lua_getfield(L, 2, "seed");
        if (!lua_isnil(L, -1)) p.seed = (uint64_t)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 2, "logit_bias");
        if (lua_istable(L, -1)) {
            lua_pushnil(L);
            while (lua_next(L, -2)) { n_bias++; lua_pop(L, 1); }
            bias = lua_newuserdatauv(L, sizeof *bias * (size_t)(n_bias ? n_bias : 1), 0);
            int i = 0;
            lua_pushnil(L);
            while (lua_next(L, -3)) {
                int ok1, ok2;
                lua_Integer id = lua_tointegerx(L, -2, &ok1);
                lua_Number b = lua_tonumberx(L, -1, &ok2);
                if (!ok1 || !ok2) return luaL_error(L, "sample.sampler: logit_bias wants integer ids and number biases");
                bias[i].id = (int32_t)id;
                bias[i].bias = (float)b;
                i++;
                lua_pop(L, 1);
            }
            p.bias = bias;
            p.n_bias = n_bias;
        }
    }
    mh_sampler **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, SAMPLER_MT);
    mh_err err = {0};
    *box = mh_sampler_new(&p, V, &err);
    if (!*box) return mh_lua_raise(L, "sample.sampler", &err);
    return 1;
}

static mh_sampler *check_sampler(lua_State *L)
{
    mh_sampler **box = luaL_checkudata(L, 1, SAMPLER_MT);
    if (!*box) luaL_argerror(L, 1, "sampler has been freed");
    return *box;
}

static int s_free(lua_State *L)
{
    mh_sampler **box = luaL_checkudata(L, 1, SAMPLER_MT);
    mh_sampler_free(*box);
    *box = NULL;
    return 0;
}

/* s:sample(logits[, row]) -> id; the row is modified (bias, penalties) */
static int s_sample(lua_State *L)
{
    mh_sampler *s = check_sampler(L);
    int64_t n;
    float *lg = logits_row(L, 2, 3, &n);
    mh_err err = {0};
    int32_t id = mh_sampler_sample(s, lg, &err);
    if (id < 0) return mh_lua_raise(L, "sampler.sample", &err);
    lua_pushinteger(L, id);
    return 1;
}

static int s_accept(lua_State *L)
{
    mh_sampler *s = check_sampler(L);
    mh_err err = {0};
    if (mh_sampler_accept(s, (int32_t)luaL_checkinteger(L, 2), &err))
        return mh_lua_raise(L, "sampler.accept", &err);
    return 0;
}

static int s_reset(lua_State *L) { mh_sampler_reset(check_sampler(L)); return 0; }
static int s_seed(lua_State *L) { lua_pushinteger(L, (lua_Integer)mh_sampler_seed(check_sampler(L))); return 1; }

/* logprobs(logits, n_top, chosen[, row]) -> chosen_logprob, {ids}, {logprobs} */
static int l_logprobs(lua_State *L)
{
    int64_t n;
    float *lg = logits_row(L, 1, 4, &n);
    lua_Integer k = luaL_checkinteger(L, 2);
    luaL_argcheck(L, k >= 0 && k <= 100, 2, "n_top must be in 0..100");
    int32_t chosen = (int32_t)luaL_optinteger(L, 3, -1);
    int32_t ids[100];
    float lps[100], clp = 0;
    mh_err err = {0};
    int got = mh_logprobs_top(lg, n, (int)k, chosen, &clp, ids, lps, &err);
    if (got < 0) return mh_lua_raise(L, "sample.logprobs", &err);
    if (chosen >= 0) lua_pushnumber(L, clp); else lua_pushnil(L);
    lua_createtable(L, got, 0);
    lua_createtable(L, got, 0);
    for (int i = 0; i < got; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -3, i + 1);
        lua_pushnumber(L, lps[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 3;
}

/* ===== stop matcher ===== */

static mh_stop_matcher *check_stop(lua_State *L)
{
    mh_stop_matcher **box = luaL_checkudata(L, 1, STOP_MT);
    if (!*box) luaL_argerror(L, 1, "stop matcher has been freed");
    return *box;
}

/* stop({"a", "b"}) -> matcher */
static int l_stop(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    luaL_argcheck(L, n <= 64, 1, "at most 64 stop strings");
    const char *stops[64];
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        stops[i] = luaL_checkstring(L, -1);   /* kept alive by the table */
        lua_pop(L, 1);
    }
    mh_stop_matcher **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, STOP_MT);
    mh_err err = {0};
    *box = mh_stop_new(stops, n, &err);
    if (!*box) return mh_lua_raise(L, "sample.stop", &err);
    return 1;
}

static int st_free(lua_State *L)
{
    mh_stop_matcher **box = luaL_checkudata(L, 1, STOP_MT);
    mh_stop_free(*box);
    *box = NULL;
    return 0;
}

/* m:push(piece) -> text safe to emit, stopped */
static int st_push(lua_State *L)
{
    mh_stop_matcher *m = check_stop(L);
    size_t len;
    const char *piece = luaL_checklstring(L, 2, &len);
    const char *emit;
    size_t elen;
    bool stopped;
    mh_err err = {0};
    if (mh_stop_push(m, piece, len, &emit, &elen, &stopped, &err))
        return mh_lua_raise(L, "stop.push", &err);
    lua_pushlstring(L, emit, elen);
    lua_pushboolean(L, stopped);
    return 2;
}

static int st_flush(lua_State *L)
{
    const char *emit;
    size_t elen;
    mh_stop_flush(check_stop(L), &emit, &elen);
    lua_pushlstring(L, emit, elen);
    return 1;
}

static int st_reset(lua_State *L) { mh_stop_reset(check_stop(L)); return 0; }

int luaopen_moonhub_core_sample(lua_State *L)
{
    static const luaL_Reg sampler_methods[] = {
        { "sample", s_sample }, { "accept", s_accept }, { "reset", s_reset },
        { "seed", s_seed }, { "free", s_free }, { NULL, NULL },
    };
    static const luaL_Reg stop_methods[] = {
        { "push", st_push }, { "flush", st_flush }, { "reset", st_reset },
        { "free", st_free }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "sampler", l_sampler }, { "logprobs", l_logprobs }, { "stop", l_stop }, { NULL, NULL },
    };
    mh_lua_new_class(L, SAMPLER_MT, sampler_methods, s_free);
    mh_lua_new_class(L, STOP_MT, stop_methods, st_free);
    luaL_newlib(L, fns);
    return 1;
}
