/* l_kvstate.c: moonhub.core.kvstate — KV state files (mh/kv_state.h) for
 * Lua: a cache's ids and rows to a file and back (model:save_state/
 * load_state), a scheduler slot's (the server's /slots routes), a file's
 * header, a model's identity. Bad arguments raise; a missing, truncated,
 * corrupt or foreign file returns nil, msg. Layer: engine/bind (no math). */
#include <stdlib.h>
#include <string.h>
#include "bind.h"
#include "l_task.h"
#include "mh/kv_state.h"
#include "mh/model.h"
#include "mh/sched.h"

/* identity(model) -> hex of the model's 32-byte identity */
static int l_identity(lua_State *L)
{
    mh_model *m = mh_lua_check_model(L, 1, "kvstate.identity");
    uint8_t id[MH_KV_STATE_ID_BYTES];
    char hex[2 * MH_KV_STATE_ID_BYTES + 1];
    mh_err err = { 0 };
    if (mh_model_identity(m, id, &err)) return mh_lua_raise(L, "kvstate.identity", &err);
    mh_kv_state_id_hex(id, MH_KV_STATE_ID_BYTES, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* save(model, cache, ids, path) -> bytes | nil, msg: the first #ids
 * positions of cache (which holds those ids) */
static int l_save(lua_State *L)
{
    mh_model *m = mh_lua_check_model(L, 1, "kvstate.save");
    mh_kv_cache *c = mh_lua_check_cache(L, 2, m, "kvstate.save");
    luaL_checktype(L, 3, LUA_TTABLE);
    const char *path = luaL_checkstring(L, 4);
    lua_Integer n = luaL_len(L, 3);
    if (n < 1) return luaL_error(L, "kvstate.save: no token ids (generate on the cache first)");
    if (n > mh_kv_cache_n_past(c))
        return luaL_error(L, "kvstate.save: %I ids given, the cache holds %I positions", n,
                          (lua_Integer)mh_kv_cache_n_past(c));
    int32_t *ids = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)n, 0);   /* freed by the GC */
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 3, i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v > INT32_MAX) return luaL_error(L, "kvstate.save: id %I is not a token id", i + 1);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    size_t size = 0;
    mh_err err = { 0 };
    if (mh_kv_state_save(path, m, c, ids, n, &size, &err)) return mh_lua_fail(L, &err);
    lua_pushinteger(L, (lua_Integer)size);
    return 1;
}

static void push_ids(lua_State *L, const int32_t *ids, int64_t n)
{
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* load(model, cache, path) -> ids, bytes | nil, msg: the cache then holds
 * the file's positions (n_past = #ids); unchanged on failure */
static int l_load(lua_State *L)
{
    mh_model *m = mh_lua_check_model(L, 1, "kvstate.load");
    mh_kv_cache *c = mh_lua_check_cache(L, 2, m, "kvstate.load");
    const char *path = luaL_checkstring(L, 3);
    int32_t *ids = NULL;
    int64_t n = 0;
    size_t size = 0;
    mh_err err = { 0 };
    if (mh_kv_state_load(path, m, NULL, c, -1, &ids, &n, &size, &err)) return mh_lua_fail(L, &err);
    push_ids(L, ids, n);
    free(ids);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* info(path) -> {version, model_id, type, n_layer, n_head_kv, head_dim,
 * n_vocab, n_tokens, bytes} | nil, msg (the whole file is checked) */
static int l_info(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    uint8_t *buf;
    size_t size;
    mh_err err = { 0 }, e2 = { 0 };
    if (mh_kv_state_read_file(path, &buf, &size, &err)) return mh_lua_fail(L, &err);
    mh_kv_state_info info;
    const uint8_t *ids, *rows;
    int rc = mh_kv_state_parse(buf, size, &info, &ids, &rows, &e2);
    free(buf);
    if (rc) {
        mh_err_set(&err, rc, "%s: %s", path, e2.msg);
        return mh_lua_fail(L, &err);
    }
    char hex[2 * MH_KV_STATE_ID_BYTES + 1];
    mh_kv_state_id_hex(info.model_id, MH_KV_STATE_ID_BYTES, hex);
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, info.version); lua_setfield(L, -2, "version");
    lua_pushstring(L, hex); lua_setfield(L, -2, "model_id");
    lua_pushstring(L, mh_dtype_info(info.type)->name); lua_setfield(L, -2, "type");
    lua_pushinteger(L, info.n_layer); lua_setfield(L, -2, "n_layer");
    lua_pushinteger(L, info.n_head_kv); lua_setfield(L, -2, "n_head_kv");
    lua_pushinteger(L, info.head_dim); lua_setfield(L, -2, "head_dim");
    lua_pushinteger(L, info.n_vocab); lua_setfield(L, -2, "n_vocab");
    lua_pushinteger(L, info.n_tokens); lua_setfield(L, -2, "n_tokens");
    lua_pushinteger(L, (lua_Integer)size); lua_setfield(L, -2, "bytes");
    return 1;
}

/* ===== scheduler slots ===== */

static int check_slot(lua_State *L, int idx, const char *fname)
{
    lua_Integer slot = luaL_checkinteger(L, idx);
    if (slot < 0 || slot >= MH_SCHED_MAX_PARALLEL)
        return luaL_error(L, "%s: slot must be in 0..%d, got %I", fname, MH_SCHED_MAX_PARALLEL - 1, slot);
    return (int)slot;
}

/* slot_save(sched, slot, path) -> n_saved, bytes | nil, msg */
static int l_slot_save(lua_State *L)
{
    mh_sched *s = mh_lua_check_sched(L, 1, "kvstate.slot_save");
    int slot = check_slot(L, 2, "kvstate.slot_save");
    const char *path = luaL_checkstring(L, 3);
    int64_t n = 0;
    size_t size = 0;
    mh_err err = { 0 };
    if (mh_sched_slot_save(s, slot, path, &n, &size, &err)) return mh_lua_fail(L, &err);
    lua_pushinteger(L, n);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* slot_restore(sched, slot, path) -> n_restored, bytes | nil, msg */
static int l_slot_restore(lua_State *L)
{
    mh_sched *s = mh_lua_check_sched(L, 1, "kvstate.slot_restore");
    int slot = check_slot(L, 2, "kvstate.slot_restore");
    const char *path = luaL_checkstring(L, 3);
    int64_t n = 0;
    size_t size = 0;
    mh_err err = { 0 };
    if (mh_sched_slot_restore(s, slot, path, &n, &size, &err)) return mh_lua_fail(L, &err);
    lua_pushinteger(L, n);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* ===== the same on a worker thread (moonhub.work: the server's loop keeps
 * answering while a save waits for a step and syncs its file). The caller
 * keeps the scheduler open until the channel closes (the pool holds the
 * model's entry for the request). ===== */

typedef struct slot_arg { mh_sched *s; int slot; bool save; int64_t n; size_t bytes; char path[]; } slot_arg;

static int slot_work(void *a, mh_err *err)
{
    slot_arg *x = a;
    return x->save ? mh_sched_slot_save(x->s, x->slot, x->path, &x->n, &x->bytes, err)
                   : mh_sched_slot_restore(x->s, x->slot, x->path, &x->n, &x->bytes, err);
}

static int slot_push(lua_State *L, void *a)
{
    slot_arg *x = a;
    lua_pushinteger(L, x->n);
    lua_pushinteger(L, (lua_Integer)x->bytes);
    return 2;
}

static int slot_start(lua_State *L, bool save, const char *fname)
{
    mh_sched *s = mh_lua_check_sched(L, 1, fname);
    int slot = check_slot(L, 2, fname);
    size_t n;
    const char *path = luaL_checklstring(L, 3, &n);
    slot_arg *x = malloc(sizeof *x + n + 1);
    if (!x) return luaL_error(L, "%s: out of memory", fname);
    *x = (slot_arg){ .s = s, .slot = slot, .save = save };
    memcpy(x->path, path, n + 1);
    return mhl_task_start(L, fname, slot_work, slot_push, free, x);
}

/* slot_save_start(sched, slot, path) -> task, channel (moonhub.work.call) */
static int l_slot_save_start(lua_State *L) { return slot_start(L, true, "kvstate.slot_save_start"); }
/* slot_restore_start(sched, slot, path) -> task, channel */
static int l_slot_restore_start(lua_State *L) { return slot_start(L, false, "kvstate.slot_restore_start"); }

/* slot_erase(sched, slot) -> n_erased | nil, msg */
static int l_slot_erase(lua_State *L)
{
    mh_sched *s = mh_lua_check_sched(L, 1, "kvstate.slot_erase");
    int slot = check_slot(L, 2, "kvstate.slot_erase");
    int64_t n = 0;
    mh_err err = { 0 };
    if (mh_sched_slot_erase(s, slot, &n, &err)) return mh_lua_fail(L, &err);
    lua_pushinteger(L, n);
    return 1;
}

int luaopen_moonhub_core_kvstate(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "identity", l_identity }, { "save", l_save }, { "load", l_load }, { "info", l_info },
        { "slot_save", l_slot_save }, { "slot_restore", l_slot_restore }, { "slot_erase", l_slot_erase },
        { "slot_save_start", l_slot_save_start }, { "slot_restore_start", l_slot_restore_start },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
