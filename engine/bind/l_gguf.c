/* l_gguf.c: moonhub.core.gguf — open a GGUF, read its metadata and tensor
 * table from Lua. Layer: engine/bind. Large arrays (token lists) are
 * summarized rather than copied into Lua tables. */
#include <string.h>
#include "bind.h"
#include "mh/gguf.h"

#define GGUF_MT "moonhub.gguf"
#define MAX_ARRAY_ITEMS 64      /* longer arrays become {type=..., n=...} */

typedef struct { mh_gguf *g; } gguf_box;

static mh_gguf *check_gguf(lua_State *L, const char *fname)
{
    gguf_box *b = luaL_checkudata(L, 1, GGUF_MT);
    if (!b->g) luaL_error(L, "%s: the GGUF file was closed", fname);
    return b->g;
}

static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    gguf_box *b = lua_newuserdatauv(L, sizeof *b, 0);   /* box first, then the resource */
    b->g = NULL;
    luaL_setmetatable(L, GGUF_MT);
    mh_err err = {0};
    if (mh_gguf_open(path, &b->g, &err)) return mh_lua_fail(L, &err);
    return 1;
}

static int l_close(lua_State *L)
{
    gguf_box *b = luaL_checkudata(L, 1, GGUF_MT);
    mh_gguf_close(b->g);
    b->g = NULL;
    return 0;
}

static void push_scalar(lua_State *L, int type, const mh_gguf_kv *kv, uint64_t i, bool arr)
{
    if (type == MH_GGUF_STRING) {
        mh_gguf_str s = arr ? mh_gguf_arr_str(kv, i) : mh_gguf_kv_str(kv);
        lua_pushlstring(L, s.ptr, s.len);
    } else if (type == MH_GGUF_BOOL) {
        lua_pushboolean(L, (int)(arr ? mh_gguf_arr_int(kv, i) : mh_gguf_kv_int(kv)));
    } else if (type == MH_GGUF_FLOAT32 || type == MH_GGUF_FLOAT64) {
        lua_pushnumber(L, arr ? mh_gguf_arr_float(kv, i) : mh_gguf_kv_float(kv));
    } else {
        lua_pushinteger(L, (lua_Integer)(arr ? mh_gguf_arr_int(kv, i) : mh_gguf_kv_int(kv)));
    }
}

static void push_value(lua_State *L, const mh_gguf_kv *kv)
{
    if (kv->type != MH_GGUF_ARRAY) {
        push_scalar(L, kv->type, kv, 0, false);
        return;
    }
    if (kv->n > MAX_ARRAY_ITEMS) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, mh_gguf_type_name(kv->arr_type));
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, (lua_Integer)kv->n);
        lua_setfield(L, -2, "n");
        return;
    }
    lua_createtable(L, (int)kv->n, 0);
    for (uint64_t i = 0; i < kv->n; i++) {
        push_scalar(L, kv->arr_type, kv, i, true);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static int l_metadata(lua_State *L)
{
    mh_gguf *g = check_gguf(L, "gguf:metadata");
    lua_createtable(L, 0, (int)mh_gguf_n_kv(g));
    for (int64_t i = 0; i < mh_gguf_n_kv(g); i++) {
        const mh_gguf_kv *kv = mh_gguf_kv_at(g, i);
        push_value(L, kv);
        lua_setfield(L, -2, kv->key);     /* repeated keys: the last one wins */
    }
    return 1;
}

static void push_tensor(lua_State *L, const mh_gguf_tensor *t)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, mh_gguf_ggml_type_name(t->ggml_type));
    lua_setfield(L, -2, "dtype");
    lua_createtable(L, t->n_dims, 0);     /* ggml order: shape[1] varies fastest */
    for (int d = 0; d < t->n_dims; d++) {
        lua_pushinteger(L, t->ne[d]);
        lua_rawseti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "shape");
    lua_pushinteger(L, (lua_Integer)t->offset);
    lua_setfield(L, -2, "offset");
    lua_pushinteger(L, (lua_Integer)t->nbytes);
    lua_setfield(L, -2, "nbytes");
}

static int l_tensors(lua_State *L)
{
    mh_gguf *g = check_gguf(L, "gguf:tensors");
    lua_createtable(L, (int)mh_gguf_n_tensors(g), 0);
    for (int64_t i = 0; i < mh_gguf_n_tensors(g); i++) {
        push_tensor(L, mh_gguf_tensor_at(g, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_tensor(lua_State *L)
{
    mh_gguf *g = check_gguf(L, "gguf:tensor");
    const mh_gguf_tensor *t = mh_gguf_find_tensor(g, luaL_checkstring(L, 2));
    if (!t) lua_pushnil(L);
    else push_tensor(L, t);
    return 1;
}

static int l_info(lua_State *L)
{
    mh_gguf *g = check_gguf(L, "gguf:info");
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, mh_gguf_version(g));
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, (lua_Integer)mh_gguf_file_size(g));
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)mh_gguf_data_offset(g));
    lua_setfield(L, -2, "data_offset");
    lua_pushinteger(L, mh_gguf_alignment(g));
    lua_setfield(L, -2, "alignment");
    lua_pushinteger(L, (lua_Integer)mh_gguf_n_tensors(g));
    lua_setfield(L, -2, "n_tensors");
    if (mh_gguf_warning(g)[0]) {
        lua_pushstring(L, mh_gguf_warning(g));
        lua_setfield(L, -2, "warning");
    }
    return 1;
}

int luaopen_moonhub_core_gguf(lua_State *L)
{
    static const luaL_Reg meth[] = {
        { "metadata", l_metadata }, { "tensors", l_tensors }, { "tensor", l_tensor },
        { "info", l_info }, { "close", l_close }, { "__gc", l_close }, { "__close", l_close },
        { NULL, NULL },
    };
    static const luaL_Reg fns[] = { { "open", l_open }, { NULL, NULL } };
    luaL_newmetatable(L, GGUF_MT);
    luaL_setfuncs(L, meth, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
