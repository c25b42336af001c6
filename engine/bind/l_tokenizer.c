/* l_tokenizer.c: moonhub.core.tokenizer — load a tokenizer, encode, decode,
 * look up pieces and stream-decode from Lua. Ids are the file's 0-based ids.
 * Layer: engine/bind (argument checks and conversions only). */
#include <stdlib.h>
#include <string.h>
#include "bind.h"
#include "l_task.h"
#include "mh/tokenizer.h"

#define TOK_MT "moonhub.tokenizer"
#define STREAM_MT "moonhub.tokenizer.stream"

typedef struct { mh_tokenizer *t; } tok_box;
typedef struct { mh_tok_stream s; bool live; } stream_box;

static mh_tokenizer *check_tok(lua_State *L, int idx)
{
    tok_box *b = luaL_checkudata(L, idx, TOK_MT);
    if (!b->t) luaL_error(L, "tokenizer: used after free");
    return b->t;
}

mh_tokenizer *mh_lua_check_tokenizer(lua_State *L, int idx, const char *fname)
{
    tok_box *b = luaL_testudata(L, idx, TOK_MT);
    if (!b) luaL_error(L, "%s: argument %d must be a tokenizer handle, got %s", fname, idx, luaL_typename(L, idx));
    if (!b->t) luaL_error(L, "%s: the tokenizer has been freed", fname);
    return b->t;
}

static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    tok_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->t = NULL;
    luaL_setmetatable(L, TOK_MT);
    mh_err err = {0};
    if (mh_tokenizer_load(path, &b->t, &err)) return mh_lua_fail(L, &err);
    return 1;
}

/* ===== loading on a worker thread (a large vocabulary takes a while) ===== */

typedef struct load_arg { mh_tokenizer *t; char path[]; } load_arg;

static int load_work(void *a, mh_err *err) { load_arg *la = a; return mh_tokenizer_load(la->path, &la->t, err); }
static void load_free(void *a) { if (a) mh_tokenizer_free(((load_arg *)a)->t); free(a); }

static int load_push(lua_State *L, void *a)
{
    tok_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->t = ((load_arg *)a)->t;          /* the box owns it now */
    ((load_arg *)a)->t = NULL;
    luaL_setmetatable(L, TOK_MT);
    return 1;
}

/* load_start(path) -> task, channel: task:result() -> tokenizer | nil, msg */
static int l_load_start(lua_State *L)
{
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    load_arg *la = malloc(sizeof *la + n + 1);
    if (!la) return luaL_error(L, "tokenizer.load_start: out of memory");
    la->t = NULL;
    memcpy(la->path, path, n + 1);
    return mhl_task_start(L, "tokenizer.load_start", load_work, load_push, load_free, la);
}

static int l_gc(lua_State *L)
{
    tok_box *b = luaL_checkudata(L, 1, TOK_MT);
    mh_tokenizer_free(b->t);
    b->t = NULL;
    return 0;
}

/* opts[key]: nil -> dflt; booleans only. */
static int opt_bool(lua_State *L, int idx, const char *fname, const char *key, int dflt)
{
    if (lua_isnoneornil(L, idx)) return dflt;
    int ty = lua_getfield(L, idx, key), v = dflt;
    if (ty == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL)
        luaL_error(L, "%s: option '%s' must be a boolean, got %s", fname, key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static int l_encode(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    mh_tok_encode_opts o = {
        opt_bool(L, 3, "tokenizer:encode", "bos", -1),
        opt_bool(L, 3, "tokenizer:encode", "eos", -1),
        opt_bool(L, 3, "tokenizer:encode", "special", 0) != 0,
    };
    mh_tok_ids ids = {0};
    mh_err err = {0};
    if (mh_tokenizer_encode(t, s, n, &o, &ids, &err)) {
        mh_tok_ids_free(&ids);
        return mh_lua_raise(L, "tokenizer:encode", &err);
    }
    lua_createtable(L, (int)ids.n, 0);
    for (size_t i = 0; i < ids.n; i++) {
        lua_pushinteger(L, ids.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    mh_tok_ids_free(&ids);
    return 1;
}

/* Checks that v is a valid id; raises naming fname and the position. */
static int32_t check_id(lua_State *L, const mh_tokenizer *t, int idx, const char *fname, lua_Integer pos)
{
    int isnum;
    lua_Integer v = lua_tointegerx(L, idx, &isnum);
    if (!isnum) luaL_error(L, "%s: id #%d must be an integer, got %s", fname, (int)pos, luaL_typename(L, idx));
    if (v < 0 || v >= mh_tokenizer_n_vocab(t))
        luaL_error(L, "%s: id %d (#%d) out of range 0..%d", fname, (int)v, (int)pos, (int)mh_tokenizer_n_vocab(t) - 1);
    return (int32_t)v;
}

static int l_decode(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    int flags = (opt_bool(L, 3, "tokenizer:decode", "skip_special", 0) ? MH_DECODE_SKIP_SPECIAL : 0) |
                (opt_bool(L, 3, "tokenizer:decode", "keep_space", 0) ? MH_DECODE_KEEP_SPACE : 0);
    lua_Integer n = luaL_len(L, 2);
    int32_t *ids = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ids, 0);  /* GC-owned scratch */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        ids[i - 1] = check_id(L, t, -1, "tokenizer:decode", i);
        lua_pop(L, 1);
    }
    mh_tok_buf b = {0};
    mh_err err = {0};
    if (mh_tokenizer_decode(t, ids, (size_t)n, flags, &b, &err)) {
        mh_tok_buf_free(&b);
        return mh_lua_raise(L, "tokenizer:decode", &err);
    }
    lua_pushlstring(L, b.p ? b.p : "", b.n);
    mh_tok_buf_free(&b);
    return 1;
}

/* tok:piece(id [, special]) -> the bytes of one token; tok:text(id) -> raw vocab string */
static int l_piece(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    int32_t id = check_id(L, t, 2, "tokenizer:piece", 1);
    mh_tok_buf b = {0};
    mh_err err = {0};
    if (mh_tokenizer_piece(t, id, lua_isnoneornil(L, 3) || lua_toboolean(L, 3), &b, &err)) {
        mh_tok_buf_free(&b);
        return mh_lua_raise(L, "tokenizer:piece", &err);
    }
    lua_pushlstring(L, b.p ? b.p : "", b.n);
    mh_tok_buf_free(&b);
    return 1;
}

static int l_text(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    size_t n;
    const char *s = mh_tokenizer_text(t, check_id(L, t, 2, "tokenizer:text", 1), &n);
    lua_pushlstring(L, s, n);
    return 1;
}

static int l_id(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int32_t id = mh_tokenizer_id(t, s, n);
    if (id < 0) lua_pushnil(L);
    else lua_pushinteger(L, id);
    return 1;
}

static int l_is_eog(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    lua_pushboolean(L, mh_tokenizer_is_eog(t, (int32_t)luaL_checkinteger(L, 2)));
    return 1;
}

/* eog_ids() -> {id, ...}: every id that ends generation, in one C pass (a
 * Lua loop over a 100k vocabulary took ~50 ms of the server's loop) */
static int l_eog_ids(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    int32_t n = mh_tokenizer_n_vocab(t);
    lua_newtable(L);
    lua_Integer k = 0;
    for (int32_t id = 0; id < n; id++) {
        if (!mh_tokenizer_is_eog(t, id)) continue;
        lua_pushinteger(L, id);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

static void set_id(lua_State *L, const char *k, int32_t id)
{
    if (id < 0) return;
    lua_pushinteger(L, id);
    lua_setfield(L, -2, k);
}

static int l_info(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    const mh_tok_special *sp = mh_tokenizer_special(t);
    lua_createtable(L, 0, 16);
    lua_pushinteger(L, mh_tokenizer_n_vocab(t));
    lua_setfield(L, -2, "vocab_size");
    lua_pushstring(L, mh_tokenizer_kind_name(t));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, mh_tokenizer_pre(t));
    lua_setfield(L, -2, "pre");
    lua_pushboolean(L, mh_tokenizer_add_bos(t));
    lua_setfield(L, -2, "add_bos");
    lua_pushboolean(L, mh_tokenizer_add_eos(t));
    lua_setfield(L, -2, "add_eos");
    set_id(L, "bos", sp->bos); set_id(L, "eos", sp->eos); set_id(L, "eot", sp->eot);
    set_id(L, "eom", sp->eom); set_id(L, "unk", sp->unk); set_id(L, "pad", sp->pad);
    set_id(L, "sep", sp->sep); set_id(L, "cls", sp->cls); set_id(L, "mask", sp->mask);
    if (mh_tokenizer_chat_template(t)) {
        lua_pushstring(L, mh_tokenizer_chat_template(t));
        lua_setfield(L, -2, "chat_template");
    }
    return 1;
}

/* ===== streaming decoder: keeps its tokenizer alive via a user value ===== */

static int l_decoder(lua_State *L)
{
    mh_tokenizer *t = check_tok(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    int flags = opt_bool(L, 2, "tokenizer:decoder", "skip_special", 1) ? MH_DECODE_SKIP_SPECIAL : 0;
    stream_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->live = false;
    luaL_setmetatable(L, STREAM_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    mh_tok_stream_init(&b->s, t, flags);
    b->live = true;
    return 1;
}

static int l_stream_push(lua_State *L)
{
    stream_box *b = luaL_checkudata(L, 1, STREAM_MT);
    if (!b->live) return luaL_error(L, "decoder:push: decoder was closed");
    int32_t id = check_id(L, b->s.t, 2, "decoder:push", 1);
    mh_tok_buf out = {0};
    mh_err err = {0};
    if (mh_tok_stream_push(&b->s, id, &out, &err)) {
        mh_tok_buf_free(&out);
        return mh_lua_raise(L, "decoder:push", &err);
    }
    lua_pushlstring(L, out.p ? out.p : "", out.n);
    mh_tok_buf_free(&out);
    return 1;
}

static int l_stream_flush(lua_State *L)
{
    stream_box *b = luaL_checkudata(L, 1, STREAM_MT);
    if (!b->live) return luaL_error(L, "decoder:flush: decoder was closed");
    mh_tok_buf out = {0};
    mh_err err = {0};
    if (mh_tok_stream_flush(&b->s, &out, &err)) {
        mh_tok_buf_free(&out);
        return mh_lua_raise(L, "decoder:flush", &err);
    }
    lua_pushlstring(L, out.p ? out.p : "", out.n);
    mh_tok_buf_free(&out);
    return 1;
}

static int l_stream_gc(lua_State *L)
{
    stream_box *b = luaL_checkudata(L, 1, STREAM_MT);
    if (b->live) mh_tok_stream_free(&b->s);
    b->live = false;
    return 0;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *meth)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meth, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_moonhub_core_tokenizer(lua_State *L)
{
    static const luaL_Reg tok[] = {
        { "encode", l_encode }, { "decode", l_decode }, { "piece", l_piece }, { "text", l_text },
        { "id", l_id }, { "is_eog", l_is_eog }, { "eog_ids", l_eog_ids },
        { "info", l_info }, { "decoder", l_decoder },
        { "__gc", l_gc }, { NULL, NULL },
    };
    static const luaL_Reg stream[] = {
        { "push", l_stream_push }, { "flush", l_stream_flush }, { "__gc", l_stream_gc },
        { "__close", l_stream_gc }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = { { "load", l_load }, { "load_start", l_load_start }, { NULL, NULL } };
    new_class(L, TOK_MT, tok);
    new_class(L, STREAM_MT, stream);
    luaL_newlib(L, fns);
    return 1;
}
