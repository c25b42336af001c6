/* l_model.c: moonhub.core.model — llama-family models and their KV caches,
 * and encoder embedding models (bert, nomic-bert).
 * Layer: engine/bind (calls mh/model.h). A cache keeps its model alive via
 * its user value; forward returns logits as an f32 tensor. */
#include <string.h>
#include <stdlib.h>
#include "bind.h"
#include "l_task.h"
#include "mh/model.h"
#include "mh/tensor.h"

#define MODEL_MT "moonhub.model"
#define CACHE_MT "moonhub.kv_cache"

typedef struct cache_box { mh_kv_cache *c; mh_model *m; } cache_box;

/* The model box: lent while a scheduler's compute thread owns the model. */
struct mh_lua_model_box { mh_model *m; bool lent; };

mh_model *mh_lua_check_model(lua_State *L, int idx, const char *fname)
{
    mh_lua_model_box *b = luaL_testudata(L, idx, MODEL_MT);
    if (!b) luaL_error(L, "%s: argument %d must be a model handle, got %s", fname, idx, luaL_typename(L, idx));
    if (!b->m) luaL_error(L, "%s: the model has been closed", fname);
    if (b->lent) luaL_error(L, "%s: a scheduler runs on this model (close the scheduler first)", fname);
    return b->m;
}

mh_model *mh_lua_to_model(lua_State *L, int idx)
{
    mh_lua_model_box *b = luaL_testudata(L, idx, MODEL_MT);
    return b ? b->m : NULL;
}

mh_lua_model_box *mh_lua_model_lend(lua_State *L, int idx, const char *fname, mh_model **m)
{
    *m = mh_lua_check_model(L, idx, fname);
    mh_lua_model_box *b = lua_touserdata(L, idx);
    b->lent = true;
    return b;
}

void mh_lua_model_unlend(mh_lua_model_box *b) { if (b) b->lent = false; }

mh_kv_cache *mh_lua_check_cache(lua_State *L, int idx, const mh_model *m, const char *fname)
{
    cache_box *cb = luaL_testudata(L, idx, CACHE_MT);
    if (!cb) luaL_error(L, "%s: argument %d must be a KV cache, got %s", fname, idx, luaL_typename(L, idx));
    if (!cb->c) luaL_error(L, "%s: the cache has been freed", fname);
    if (cb->m != m) luaL_error(L, "%s: the cache belongs to another model", fname);
    return cb->c;
}

static mh_model *check_model(lua_State *L, int idx) { return mh_lua_check_model(L, idx, "model"); }

static cache_box *check_cache(lua_State *L, int idx)
{
    cache_box *cb = luaL_checkudata(L, idx, CACHE_MT);
    if (!cb->c) luaL_argerror(L, idx, "cache has been freed");
    return cb;
}

/* load(path) -> model | nil, msg */
static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mh_lua_model_box *box = lua_newuserdatauv(L, sizeof *box, 1);   /* user value: its adapters */
    *box = (mh_lua_model_box){ NULL, false };
    luaL_setmetatable(L, MODEL_MT);
    mh_err err = {0};
    if (mh_model_load(path, &box->m, &err)) return mh_lua_fail(L, &err);
    return 1;
}

/* ===== loading on a worker thread (the server's loop keeps answering) ===== */

typedef struct load_arg { mh_model *m; char path[]; } load_arg;

static int load_work(void *a, mh_err *err) { load_arg *la = a; return mh_model_load(la->path, &la->m, err); }
static void load_free(void *a) { if (a) mh_model_free(((load_arg *)a)->m); free(a); }

static int load_push(lua_State *L, void *a)
{
    mh_lua_model_box *box = lua_newuserdatauv(L, sizeof *box, 1);   /* user value: its adapters */
    *box = (mh_lua_model_box){ ((load_arg *)a)->m, false };          /* the box owns it now */
    ((load_arg *)a)->m = NULL;
    luaL_setmetatable(L, MODEL_MT);
    return 1;
}

/* load_start(path) -> task, channel: task:result() -> model | nil, msg once
 * the channel closed (mh/work.h) */
static int l_load_start(lua_State *L)
{
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    load_arg *la = malloc(sizeof *la + n + 1);
    if (!la) return luaL_error(L, "model.load_start: out of memory");
    la->m = NULL;
    memcpy(la->path, path, n + 1);
    return mhl_task_start(L, "model.load_start", load_work, load_push, load_free, la);
}

static int m_close(lua_State *L)
{
    mh_lua_model_box *box = luaL_checkudata(L, 1, MODEL_MT);
    if (box->lent) return luaL_error(L, "model.close: a scheduler runs on this model (close the scheduler first)");
    mh_model_free(box->m);
    box->m = NULL;
    return 0;
}

/* __gc: a scheduler holding the model keeps it reachable, and Lua finalizes
 * it first (created later), so a lent model is not expected here; leaking
 * it beats freeing it under a running thread. */
static int m_gc(lua_State *L)
{
    mh_lua_model_box *box = luaL_checkudata(L, 1, MODEL_MT);
    if (!box->lent) mh_model_free(box->m);
    box->m = NULL;
    return 0;
}

static void set_int(lua_State *L, const char *k, int64_t v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }

static int m_hparams(lua_State *L)
{
    mh_model *m = check_model(L, 1);
    const mh_hparams *hp = mh_model_hparams(m);
    lua_newtable(L);
    lua_pushstring(L, hp->arch_name); lua_setfield(L, -2, "arch");
    set_int(L, "n_vocab", hp->n_vocab);
    set_int(L, "n_embd", hp->n_embd);
    set_int(L, "n_layer", hp->n_layer);
    set_int(L, "n_head", hp->n_head);
    set_int(L, "n_head_kv", hp->n_head_kv);
    set_int(L, "head_dim", hp->head_dim);
    set_int(L, "n_ff", hp->n_ff);
    set_int(L, "n_ctx_train", hp->n_ctx_train);
    if (hp->encoder) {                     /* bert, nomic-bert: embeddings only */
        static const char *const pool[] = { "none", "mean", "cls", "last" };
        lua_pushboolean(L, 1); lua_setfield(L, -2, "encoder");
        lua_pushstring(L, pool[hp->pooling]); lua_setfield(L, -2, "pooling");
    }
    set_int(L, "n_rot", hp->n_rot);
    lua_pushnumber(L, hp->rope_base); lua_setfield(L, -2, "rope_base");
    lua_pushnumber(L, hp->rms_eps); lua_setfield(L, -2, "rms_eps");
    lua_pushboolean(L, hp->rope_neox); lua_setfield(L, -2, "rope_neox");
    lua_pushboolean(L, hp->tied_embeddings); lua_setfield(L, -2, "tied_embeddings");
    set_int(L, "n_params", mh_model_n_params(m));
    set_int(L, "weight_bytes", (int64_t)mh_model_weight_bytes(m));
    /* weights one generated token reads: all but an untied embedding table,
     * of which it reads one row, and the experts it is not routed to
     * (bench's bandwidth percentage) */
    const mh_weight *e = &mh_model_globals_get(m)->tok_embd;
    size_t embd = hp->tied_embeddings ? 0 : mh_dtype_row_size(e->dtype, e->cols) * (size_t)(e->rows - 1);
    set_int(L, "bytes_per_token", (int64_t)(mh_model_weight_bytes(m) - embd - mh_model_moe_idle_bytes(m)));
    return 1;
}

/* A KV cache type name at arg: "f16" (default), "q8_0" or "f32". */
static mh_dtype check_kv_type(lua_State *L, int arg)
{
    const char *name = luaL_optstring(L, arg, "f16");
    int t = mh_dtype_from_name(name);
    if (t != MH_DTYPE_F16 && t != MH_DTYPE_Q8_0 && t != MH_DTYPE_F32)
        luaL_argerror(L, arg, lua_pushfstring(L, "KV cache type must be f16, q8_0 or f32, got '%s'", name));
    return (mh_dtype)t;
}

static int m_kv_bytes(lua_State *L)
{
    mh_model *m = check_model(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n > 0, 2, "n_ctx must be positive");
    lua_pushinteger(L, (lua_Integer)mh_model_kv_bytes_type(m, n, check_kv_type(L, 3)));
    return 1;
}

/* m:new_cache(n_ctx[, type]) -> cache */
static int m_new_cache(lua_State *L)
{
    mh_model *m = check_model(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n > 0 && n <= (1 << 24), 2, "n_ctx must be in 1..16777216");
    mh_dtype type = check_kv_type(L, 3);
    cache_box *cb = lua_newuserdatauv(L, sizeof *cb, 1);
    cb->c = NULL;
    cb->m = m;
    luaL_setmetatable(L, CACHE_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);          /* the cache keeps its model alive */
    mh_err err = {0};
    cb->c = mh_kv_cache_new_type(m, n, type, &err);
    if (!cb->c) return mh_lua_raise(L, "model.new_cache", &err);
    return 1;
}

/* m:forward(cache, ids, all_logits) -> logits tensor (n or 1, n_vocab) */
static int m_forward(lua_State *L)
{
    mh_model *m = check_model(L, 1);
    cache_box *cb = check_cache(L, 2);
    luaL_argcheck(L, cb->m == m, 2, "cache belongs to another model");
    luaL_checktype(L, 3, LUA_TTABLE);
    bool all = lua_toboolean(L, 4);
    lua_Integer n = luaL_len(L, 3);
    luaL_argcheck(L, n > 0, 3, "no token ids");
    int32_t *ids = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)n, 0);   /* freed by the GC */
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 3, i + 1);
        int isnum;
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        if (!isnum) return luaL_error(L, "model.forward: token %d is not an integer", (int)(i + 1));
        if (v < 0 || v > INT32_MAX) return luaL_error(L, "model.forward: token id %d out of range", (int)v);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    int64_t shape[2] = { all ? n : 1, mh_model_hparams(m)->n_vocab };
    mh_err err = {0};
    mh_tensor *t = mh_tensor_new(MH_DTYPE_F32, 2, shape, &err);
    if (!t) return mh_lua_raise(L, "model.forward", &err);
    int st = mh_model_forward(m, cb->c, ids, n, mh_tensor_data(t), all, &err);
    if (st) {
        mh_tensor_release(t);
        return mh_lua_raise(L, "model.forward", &err);
    }
    mh_lua_push_tensor(L, t, "model.forward", &err);
    return 1;
}

/* m:embed(ids) -> f32 tensor (n_embd): mean-pooled, L2-normalized */
static int m_embed(lua_State *L)
{
    mh_model *m = check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    luaL_argcheck(L, n > 0, 2, "no token ids");
    int32_t *ids = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)n, 0);   /* freed by the GC */
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        int isnum;
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v < 0 || v > INT32_MAX) return luaL_error(L, "model.embed: token %d is not a valid id", (int)(i + 1));
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    int64_t shape[1] = { mh_model_hparams(m)->n_embd };
    mh_err err = {0};
    mh_tensor *t = mh_tensor_new(MH_DTYPE_F32, 1, shape, &err);
    if (!t) return mh_lua_raise(L, "model.embed", &err);
    if (mh_model_embed(m, ids, n, mh_tensor_data(t), &err)) {
        mh_tensor_release(t);
        return mh_lua_raise(L, "model.embed", &err);
    }
    mh_lua_push_tensor(L, t, "model.embed", &err);
    return 1;
}

/* ===== batch embeddings (encoders run all texts in one forward) ===== */

int mh_lua_embed_list(lua_State *L, int idx, int64_t n_vocab, int64_t n_embd, mh_lua_embed_fn fn,
                      void *ctx, const char *fname)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n_seqs = luaL_len(L, idx), total = 0;
    if (n_seqs < 1 || n_seqs > 65536) return luaL_error(L, "%s: expected a list of 1..65536 id lists", fname);
    for (lua_Integer s = 1; s <= n_seqs; s++) {
        if (lua_geti(L, idx, s) != LUA_TTABLE) return luaL_error(L, "%s: text %d must be a list of token ids", fname, (int)s);
        lua_Integer n = luaL_len(L, -1);
        if (n < 1) return luaL_error(L, "%s: text %d has no token ids", fname, (int)s);
        total += n;
        lua_pop(L, 1);
    }
    /* one block, freed by the GC: ids, then pointers and lengths, then output */
    size_t bytes = sizeof(int32_t) * (size_t)total + (sizeof(int32_t *) + sizeof(int64_t)) * (size_t)n_seqs +
                   sizeof(float) * (size_t)(n_seqs * n_embd) + 16;
    char *blk = lua_newuserdatauv(L, bytes, 0);
    const int32_t **ptr = (const int32_t **)blk;
    int64_t *len = (int64_t *)(blk + sizeof(int32_t *) * (size_t)n_seqs);
    float *out = (float *)(len + n_seqs);
    int32_t *ids = (int32_t *)(out + n_seqs * n_embd);
    for (lua_Integer s = 1; s <= n_seqs; s++) {
        lua_geti(L, idx, s);
        lua_Integer n = luaL_len(L, -1);
        ptr[s - 1] = ids;
        len[s - 1] = n;
        for (lua_Integer i = 1; i <= n; i++, ids++) {
            int isnum;
            lua_geti(L, -1, i);
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum || v < 0 || v >= n_vocab)
                return luaL_error(L, "%s: token %d of text %d is not an id in 0..%d", fname, (int)i, (int)s,
                                  (int)(n_vocab - 1));
            *ids = (int32_t)v;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    mh_err err = {0};
    if (fn(ctx, ptr, len, (int)n_seqs, out, &err)) return mh_lua_raise(L, fname, &err);
    lua_createtable(L, (int)n_seqs, 0);
    for (lua_Integer s = 0; s < n_seqs; s++) {
        int64_t shape[1] = { n_embd };
        mh_tensor *t = mh_tensor_new(MH_DTYPE_F32, 1, shape, &err);
        if (!t) return mh_lua_raise(L, fname, &err);
        memcpy(mh_tensor_data(t), out + s * n_embd, sizeof(float) * (size_t)n_embd);
        mh_lua_push_tensor(L, t, fname, &err);
        lua_rawseti(L, -2, s + 1);
    }
    return 1;
}

static int model_embed_fn(void *ctx, const int32_t *const *tokens, const int64_t *n, int n_seqs, float *out,
                          mh_err *err)
{
    return mh_model_embed_batch(ctx, tokens, n, n_seqs, out, err);
}

/* m:embed_batch({ids, ...}) -> {f32 tensor (n_embd), ...}: one forward for
 * encoders (pooled as the file says), one text at a time for decoders */
static int m_embed_batch(lua_State *L)
{
    mh_model *m = check_model(L, 1);
    const mh_hparams *hp = mh_model_hparams(m);
    return mh_lua_embed_list(L, 2, hp->n_vocab, hp->n_embd, model_embed_fn, m, "model.embed_batch");
}

/* ===== LoRA adapters ===== */

#define LORA_MT "moonhub.lora"

static int lora_gc(lua_State *L)
{
    mh_lora **box = luaL_checkudata(L, 1, LORA_MT);
    mh_lora_free(*box);
    *box = NULL;
    return 0;
}

/* m:load_lora(path[, scale]) -> adapter | nil, msg (checked against this
 * model). Allowed while a scheduler runs on the model: it only reads the
 * model's shapes, and per-request adapters are added to a serving model. */
static int m_load_lora(lua_State *L)
{
    mh_lua_model_box *mb = luaL_checkudata(L, 1, MODEL_MT);
    if (!mb->m) return luaL_error(L, "model.load_lora: the model is closed");
    const mh_model *m = mb->m;
    const char *path = luaL_checkstring(L, 2);
    float scale = (float)luaL_optnumber(L, 3, 1.0);
    mh_lora **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, LORA_MT);
    mh_err err = {0};
    if (mh_lora_load(m, path, scale, box, &err)) return mh_lua_fail(L, &err);
    return 1;
}

/* m:set_loras({adapter, ...}): the model applies them (summed) from now on;
 * {} removes them. The model keeps the adapters alive. */
static int m_set_loras(lua_State *L)
{
    mh_model *m = check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)luaL_len(L, 2);
    const mh_lora *list[8];
    if (n > 8) return luaL_error(L, "model.set_loras: at most 8 adapters, got %d", n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        mh_lora **b = luaL_testudata(L, -1, LORA_MT);
        if (!b || !*b) return luaL_error(L, "model.set_loras: entry %d is not an adapter from load_lora", i + 1);
        list[i] = *b;
        lua_pop(L, 1);
    }
    mh_err err = {0};
    if (mh_model_set_loras(m, list, n, &err)) return mh_lua_raise(L, "model.set_loras", &err);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 1);            /* keeps the adapters alive */
    return 0;
}

static int c_free(lua_State *L)
{
    cache_box *cb = luaL_checkudata(L, 1, CACHE_MT);
    mh_kv_cache_free(cb->c);
    cb->c = NULL;
    return 0;
}

static int c_n_past(lua_State *L) { lua_pushinteger(L, mh_kv_cache_n_past(check_cache(L, 1)->c)); return 1; }
static int c_n_ctx(lua_State *L) { lua_pushinteger(L, mh_kv_cache_n_ctx(check_cache(L, 1)->c)); return 1; }

static int c_truncate(lua_State *L)
{
    cache_box *cb = check_cache(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && n <= mh_kv_cache_n_past(cb->c), 2, "position beyond the cached tokens");
    mh_kv_cache_truncate(cb->c, n);
    return 0;
}

int luaopen_moonhub_core_model(lua_State *L)
{
    static const luaL_Reg model_methods[] = {
        { "hparams", m_hparams }, { "kv_bytes", m_kv_bytes }, { "new_cache", m_new_cache },
        { "forward", m_forward }, { "embed", m_embed }, { "embed_batch", m_embed_batch }, { "close", m_close },
        { "load_lora", m_load_lora }, { "set_loras", m_set_loras }, { NULL, NULL },
    };
    static const luaL_Reg cache_methods[] = {
        { "n_past", c_n_past }, { "n_ctx", c_n_ctx }, { "truncate", c_truncate },
        { "free", c_free }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = { { "load", l_load }, { "load_start", l_load_start }, { NULL, NULL } };
    mh_lua_new_class(L, MODEL_MT, model_methods, m_gc);
    mh_lua_new_class(L, CACHE_MT, cache_methods, c_free);
    static const luaL_Reg lora_methods[] = { { "free", lora_gc }, { NULL, NULL } };
    mh_lua_new_class(L, LORA_MT, lora_methods, lora_gc);
    luaL_newlib(L, fns);
    return 1;
}
