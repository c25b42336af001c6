/* l_safetensors.c: moonhub.core.safetensors — open (file, index or
 * directory) returning a handle, and save. Layer: engine/bind.
 * Missing or corrupt files are environmental: open/save return nil, msg.
 * Misuse (wrong argument types, unknown tensor names) raises. */
#include <string.h>
#include "bind.h"
#include "mh/safetensors.h"

#define ST_MT "moonhub.safetensors"

static mh_safetensors **check_box(lua_State *L, const char *fname)
{
    mh_safetensors **box = luaL_checkudata(L, 1, ST_MT);
    if (!*box) luaL_error(L, "%s: the safetensors file has been closed", fname);
    return box;
}

static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mh_safetensors **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, ST_MT);
    mh_err err = {0};
    *box = mh_safetensors_open(path, &err);
    if (!*box) return mh_lua_fail(L, &err);
    return 1;
}

static int l_close(lua_State *L)
{
    mh_safetensors **box = luaL_checkudata(L, 1, ST_MT);
    mh_safetensors_close(*box);     /* idempotent: __gc, __close and close() */
    *box = NULL;
    return 0;
}

static int l_len(lua_State *L)
{
    lua_pushinteger(L, mh_safetensors_count(*check_box(L, "safetensors:__len")));
    return 1;
}

static int l_names(lua_State *L)
{
    mh_safetensors *st = *check_box(L, "safetensors:names");
    int n = mh_safetensors_count(st);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, mh_safetensors_info(st, i)->name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* info(name) -> {dtype = "bf16" | nil, file_dtype = "BF16", shape = {...},
 * nbytes = n, shard = 1-based}, or nil when there is no such tensor. */
static int l_info(lua_State *L)
{
    mh_safetensors *st = *check_box(L, "safetensors:info");
    int i = mh_safetensors_find(st, luaL_checkstring(L, 2));
    if (i < 0) { lua_pushnil(L); return 1; }
    const mh_st_info *in = mh_safetensors_info(st, i);
    lua_createtable(L, 0, 5);
    if (in->dtype >= 0) {
        lua_pushstring(L, mh_dtype_info((mh_dtype)in->dtype)->name);
        lua_setfield(L, -2, "dtype");
    }
    lua_pushstring(L, in->file_dtype);
    lua_setfield(L, -2, "file_dtype");
    lua_createtable(L, in->ndim, 0);
    for (int d = 0; d < in->ndim; d++) {
        lua_pushinteger(L, in->shape[d]);
        lua_rawseti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "shape");
    lua_pushinteger(L, (lua_Integer)(in->end - in->begin));
    lua_setfield(L, -2, "nbytes");
    lua_pushinteger(L, in->shard + 1);
    lua_setfield(L, -2, "shard");
    return 1;
}

static int l_get(lua_State *L)
{
    mh_safetensors *st = *check_box(L, "safetensors:get");
    const char *name = luaL_checkstring(L, 2);
    if (mh_safetensors_find(st, name) < 0)
        return luaL_error(L, "safetensors:get: no tensor named '%s'", name);
    mh_err err = {0};
    mh_lua_push_tensor(L, mh_safetensors_get(st, name, &err), "safetensors:get", &err);
    return 1;
}

static int l_metadata(lua_State *L)
{
    mh_safetensors *st = *check_box(L, "safetensors:metadata");
    int n = mh_safetensors_meta_count(st);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, mh_safetensors_meta_value(st, i));
        lua_setfield(L, -2, mh_safetensors_meta_key(st, i));
    }
    return 1;
}

static int l_shards(lua_State *L)
{
    mh_safetensors *st = *check_box(L, "safetensors:shards");
    int n = mh_safetensors_shard_count(st);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, mh_safetensors_shard_path(st, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_tostring(lua_State *L)
{
    mh_safetensors **box = luaL_checkudata(L, 1, ST_MT);
    if (!*box) lua_pushliteral(L, "safetensors (closed)");
    else lua_pushfstring(L, "safetensors (%d tensors, %d shards)", mh_safetensors_count(*box),
                         mh_safetensors_shard_count(*box));
    return 1;
}

/* ===== save(path, {name = tensor, ...}, {key = "value", ...} | nil) ===== */

/* Counts string keys of the table at idx, raising on anything else. */
static int count_pairs(lua_State *L, int idx, bool tensors)
{
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "safetensors.save: %s keys must be strings, got a %s",
                       tensors ? "tensor" : "metadata", luaL_typename(L, -2));
        const char *k = lua_tostring(L, -2);
        if (tensors && !mh_lua_to_tensor(L, -1))
            luaL_error(L, "safetensors.save: value for '%s' is not a tensor (got a %s)", k, luaL_typename(L, -1));
        if (!tensors && lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "safetensors.save: metadata value for '%s' must be a string, got a %s",
                       k, luaL_typename(L, -1));
        lua_pop(L, 1);
        n++;
    }
    return n;
}

static int l_save(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    bool has_meta = !lua_isnoneornil(L, 3);
    if (has_meta) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    int n = count_pairs(L, 2, true), nm = has_meta ? count_pairs(L, 3, false) : 0;
    /* arrays in userdata so a later error frees them; the strings and tensors
     * they point to stay alive in the argument tables during the call */
    mh_st_named *v = lua_newuserdatauv(L, sizeof *v * (size_t)(n + 1), 0);
    const char **meta = lua_newuserdatauv(L, sizeof *meta * (size_t)(2 * nm + 1), 0);
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        v[i++] = (mh_st_named){ lua_tostring(L, -2), mh_lua_to_tensor(L, -1) };
        lua_pop(L, 1);
    }
    for (int k = 0; k < n; k++)
        if (!v[k].tensor) return luaL_error(L, "safetensors.save: tensor '%s' has been closed", v[k].name);
    i = 0;
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            meta[i++] = lua_tostring(L, -2);
            meta[i++] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
    }
    mh_err err = {0};
    int rc = mh_safetensors_save(path, v, n, meta, nm, &err);
    if (rc == MH_EIO) return mh_lua_fail(L, &err);       /* environmental */
    if (rc != MH_OK) {   /* drop the core's "safetensors: " prefix: we name the function */
        const char *m = err.msg, *c = strstr(m, ": ");
        if (!strncmp(m, "safetensors", 11) && c) m = c + 2;
        return luaL_error(L, "safetensors.save: %s", m);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_is_tensor(lua_State *L)
{
    lua_pushboolean(L, mh_lua_to_tensor(L, 1) != NULL);
    return 1;
}

int luaopen_moonhub_core_safetensors(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "names", l_names }, { "info", l_info }, { "get", l_get },
        { "metadata", l_metadata }, { "shards", l_shards }, { "close", l_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", l_close }, { "__close", l_close }, { "__len", l_len },
        { "__tostring", l_tostring }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "open", l_open }, { "save", l_save }, { "is_tensor", l_is_tensor }, { NULL, NULL },
    };
    luaL_newmetatable(L, ST_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
