/* l_sched_extra.c: the scheduler binding's per-request extensions read
 * from a submit table: the request's own LoRA adapters and the logits
 * buffer of a request whose processors run on the Lua side
 * (docs/lora.md, docs/processors.md); s:embed's batch form; the stats
 * table and the speculative costs it carries (read back by new/new_sync).
 * Layer: engine/bind (mh/sched.h,
 * l_model.c's adapter boxes; no math). */
#include <string.h>
#include "l_sched.h"
#include "mh/tensor.h"

#define LORA_MT "moonhub.lora"            /* l_model.c's adapters: a box holding one mh_lora * */

/* lora = {adapter | {adapter =, scale =}, ...} (adapters from model:load_lora)
 * into a userdata of mh_lora_use (GC-owned) on the stack; the adapters stay
 * alive in t until submit retains them. */
void mhl_sched_read_loras(lua_State *L, int t, mh_sched_request *r)
{
    const char *fn = "sched:submit";
    int ty = lua_getfield(L, t, "lora");
    if (ty != LUA_TNIL && ty != LUA_TTABLE)
        luaL_error(L, "%s: lora must be a list of adapters, got %s", fn, luaL_typename(L, -1));
    int n = ty == LUA_TTABLE ? (int)luaL_len(L, -1) : 0;
    if (n > MH_MAX_SEQ_LORAS) luaL_error(L, "%s: at most %d adapters per request, got %d", fn, MH_MAX_SEQ_LORAS, n);
    mh_lora_use *u = lua_newuserdatauv(L, sizeof *u * (size_t)(n ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        lua_geti(L, -2, i + 1);
        float scale = 1.0f;
        if (lua_istable(L, -1)) {
            int ty2 = lua_getfield(L, -1, "scale");
            if (ty2 != LUA_TNIL && ty2 != LUA_TNUMBER)
                luaL_error(L, "%s: lora[%d].scale must be a number, got %s", fn, i + 1, luaL_typename(L, -1));
            if (ty2 == LUA_TNUMBER) scale = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
            lua_getfield(L, -1, "adapter");
            lua_remove(L, -2);
        }
        mh_lora **box = luaL_testudata(L, -1, LORA_MT);
        if (!box || !*box)
            luaL_error(L, "%s: lora[%d] must be an adapter from load_lora (or {adapter =, scale =})", fn, i + 1);
        u[i] = (mh_lora_use){ *box, scale };
        lua_pop(L, 1);
    }
    lua_remove(L, -2);
    r->loras = u;
    r->n_loras = n;
}

/* processors = true (the threaded scheduler): the request's logits come out
 * as "logits" events into a new (1, n_vocab) tensor, pushed (nil when not
 * asked); s:resume(id) sends them back (docs/processors.md). */
void mhl_sched_read_park(lua_State *L, int t, bool sync, int64_t n_vocab, mh_sched_request *r)
{
    lua_getfield(L, t, "processors");
    bool want = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!want) { lua_pushnil(L); return; }
    if (sync) luaL_error(L, "sched:submit: processors = true needs the threaded scheduler; a synchronous "
                            "one runs a logits_processor function");
    int64_t shape[2] = { 1, n_vocab };
    mh_err err = { 0 };
    r->park = mh_tensor_new(MH_DTYPE_F32, 2, shape, &err);
    mh_lua_push_tensor(L, r->park, "sched:submit", &err);   /* the box holds our reference */
}

static int embed_fn(void *ctx, const int32_t *const *tokens, const int64_t *n, int n_seqs, float *out,
                    mh_err *err)
{
    return mh_sched_embed_batch(ctx, tokens, n, n_seqs, out, err);
}

int mhl_sched_embed_list(lua_State *L, mh_sched *s, int64_t n_vocab, const mh_model *m)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    int list = lua_geti(L, 2, 1) == LUA_TTABLE;
    lua_pop(L, 1);
    if (!list) return 0;
    return mh_lua_embed_list(L, 2, n_vocab, mh_model_hparams(m)->n_embd, embed_fn, s, "sched:embed");
}

static double cost_num(lua_State *L, const char *fn, const char *what)
{
    if (!lua_isnumber(L, -1) || !(lua_tonumber(L, -1) >= 0 && lua_tonumber(L, -1) < 1e6))
        luaL_error(L, "%s: spec_costs.%s must be a number >= 0, got %s", fn, what, luaL_tolstring(L, -1, NULL));
    return lua_tonumber(L, -1);
}

void mhl_sched_read_costs(lua_State *L, int t, const char *fn, mh_spec_costs *c)
{
    memset(c, 0, sizeof *c);
    if (lua_isnoneornil(L, t)) return;
    int ty = lua_getfield(L, t, "spec_costs");
    if (ty == LUA_TNIL) { lua_pop(L, 1); return; }
    if (ty != LUA_TTABLE) luaL_error(L, "%s: spec_costs must be a table (as stats gives it), got %s", fn,
                                     luaL_typename(L, -1));
    if (lua_getfield(L, -1, "draft_ms") != LUA_TNIL) c->draft_s = cost_num(L, fn, "draft_ms") * 1e-3;
    lua_pop(L, 1);
    if ((ty = lua_getfield(L, -1, "check_rounds")) != LUA_TNIL && ty != LUA_TTABLE)
        luaL_error(L, "%s: spec_costs.check_rounds must be a table {[rows] = rounds}, got %s", fn,
                   luaL_typename(L, -1));
    for (lua_pushnil(L); ty == LUA_TTABLE && lua_next(L, -2); lua_pop(L, 1)) {
        lua_Integer n = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : -1;
        if (n < 2 || n >= MH_SCHED_COST_ROWS)
            luaL_error(L, "%s: spec_costs.check_rounds is keyed by rows 2..%d, got %s", fn,
                       MH_SCHED_COST_ROWS - 1, luaL_tolstring(L, -2, NULL));
        c->check_rounds[n] = cost_num(L, fn, "check_rounds[rows]");
    }
    lua_pop(L, 2);
}

/* stats.spec_costs: what the draft lengths were chosen by, nil before any */
static void push_costs(lua_State *L, const mh_spec_costs *c)
{
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, c->draft_s * 1e3);
    lua_setfield(L, -2, "draft_ms");
    lua_newtable(L);
    for (int n = 2; n < MH_SCHED_COST_ROWS; n++) {
        if (c->check_rounds[n] <= 0) continue;
        lua_pushnumber(L, c->check_rounds[n]);
        lua_seti(L, -2, n);
    }
    lua_setfield(L, -2, "check_rounds");
}

void mhl_sched_push_stats(lua_State *L, const mh_sched_stats *st)
{
    const struct { const char *k; int64_t v; } f[] = {
        { "running", st->running },
        { "waiting", st->waiting },
        { "parallel", st->n_parallel },
        { "kv_used", st->kv_used },
        { "kv_total", st->kv_total },
        { "prefix_hits", st->prefix_hits },
        { "prefix_tokens", st->prefix_tokens },
        { "prompt_tokens", st->prompt_tokens },
        { "generated_tokens", st->generated_tokens },
        { "requests_done", st->requests_done },
        { "steps", st->steps },
        { "store_hits", st->store_hits },
        { "store_tokens", st->store_tokens },
        { "store_entries", st->store_entries },
        { "store_bytes", st->store_bytes },
        { "store_budget", st->store_budget },
        { "store_evictions", st->store_evictions },
        { "store_disk_entries", st->store_disk_entries },
        { "store_disk_bytes", st->store_disk_bytes },
        { "store_disk_hits", st->store_disk_hits },
        { "spec_drafted", st->spec_drafted },
        { "spec_accepted", st->spec_accepted },
        { "spec_steps", st->spec_steps },
        { "spec_tokens", st->spec_tokens },
        { "parks", st->parks },
        { "lora_rows", st->lora_rows },
        { "lora_mixed_steps", st->lora_mixed_steps },
    };
    int n = (int)(sizeof f / sizeof f[0]);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
    if (st->spec_costs.draft_s > 0) {
        push_costs(L, &st->spec_costs);
        lua_setfield(L, -2, "spec_costs");
    }
}
