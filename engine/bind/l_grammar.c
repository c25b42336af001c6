/* l_grammar.c: moonhub.core.grammar — JSON / JSON-schema constrained
 * decoding from Lua: build a grammar over a tokenizer, mask a logits tensor,
 * accept ids. Layer: engine/bind (argument checks and conversions only;
 * the work is in engine/sample/grammar*.c). */
#include <string.h>
#include "bind.h"
#include "mh/grammar.h"
#include "mh/tensor.h"

#define GRAMMAR_MT "moonhub.grammar"

/* The grammar copies the vocabulary: the tokenizer is borrowed only during
 * construction. */
static const mh_tokenizer *check_tok(lua_State *L, int idx, const char *fname)
{
    return mh_lua_check_tokenizer(L, idx, fname);
}

static mh_grammar **newbox(lua_State *L)
{
    mh_grammar **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, GRAMMAR_MT);
    return box;
}

static mh_grammar *check_grammar(lua_State *L, const char *fname)
{
    mh_grammar **box = luaL_testudata(L, 1, GRAMMAR_MT);
    if (!box) luaL_error(L, "%s: call it with ':' on a grammar", fname);
    if (!*box) luaL_error(L, "%s: the grammar has been freed", fname);
    return *box;
}

/* json_schema(tok, schema_text) -> grammar | nil, msg (a bad schema is data) */
static int l_json_schema(lua_State *L)
{
    const mh_tokenizer *t = check_tok(L, 1, "grammar.json_schema");
    const char *schema = luaL_checkstring(L, 2);
    mh_grammar **box = newbox(L);
    mh_err err = {0};
    if (!(*box = mh_grammar_json_schema(schema, t, &err))) {
        if (err.code == MH_ENOMEM) return mh_lua_raise(L, "grammar.json_schema", &err);
        return mh_lua_fail(L, &err);
    }
    return 1;
}

/* json_object(tok) -> grammar */
static int l_json_object(lua_State *L)
{
    const mh_tokenizer *t = check_tok(L, 1, "grammar.json_object");
    mh_grammar **box = newbox(L);
    mh_err err = {0};
    if (!(*box = mh_grammar_json_object(t, &err))) return mh_lua_raise(L, "grammar.json_object", &err);
    return 1;
}

/* The grammar at idx, handed over to a scheduler request as its constraint
 * (the box is emptied: a grammar drives one generation). Raises when idx is
 * not an unused grammar. For l_sched.c. */
void mh_lua_take_grammar(lua_State *L, int idx, const char *fname, mh_sample_constraint *out)
{
    mh_grammar **gb = luaL_testudata(L, idx, GRAMMAR_MT);
    if (!gb || !*gb) luaL_error(L, "%s: grammar must be an unused grammar from mh.grammar", fname);
    mh_grammar_as_constraint(*gb, out);
    *gb = NULL;
}

/* g:mask(logits[, row]) -> number of allowed ids; logits is a contiguous
 * f32 tensor (V) or (R, V), masked in place (row: 1-based, default last). */
static int g_mask(lua_State *L)
{
    mh_grammar *g = check_grammar(L, "grammar:mask");
    mh_tensor *t = mh_lua_check_tensor(L, 2);
    if (t->dtype != MH_DTYPE_F32 || !mh_tensor_is_contiguous(t) || t->ndim < 1 || t->ndim > 2)
        return luaL_error(L, "grammar:mask: logits must be a contiguous f32 tensor of 1 or 2 dims");
    int64_t V = t->shape[t->ndim - 1], rows = t->ndim == 2 ? t->shape[0] : 1;
    lua_Integer r = luaL_optinteger(L, 3, rows);
    if (r < 0) r += rows + 1;
    if (r < 1 || r > rows)
        return luaL_error(L, "grammar:mask: row %d out of range 1..%d", (int)r, (int)rows);
    mh_err err = {0};
    int64_t n = mh_grammar_mask(g, (float *)mh_tensor_data(t) + (r - 1) * V, V, &err);
    if (n < 0) return mh_lua_raise(L, "grammar:mask", &err);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* g:accept(id): raises when id may not come next */
static int g_accept(lua_State *L)
{
    mh_grammar *g = check_grammar(L, "grammar:accept");
    int ok;
    lua_Integer id = lua_tointegerx(L, 2, &ok);
    if (!ok) return luaL_error(L, "grammar:accept: id must be an integer, got %s", luaL_typename(L, 2));
    mh_err err = {0};
    if (id < INT32_MIN || id > INT32_MAX || mh_grammar_accept(g, (int32_t)id, &err)) {
        if (!err.code) mh_err_set(&err, MH_EINVAL, "token id %lld is out of range", (long long)id);
        return mh_lua_raise(L, "grammar:accept", &err);
    }
    return 0;
}

static int g_allows(lua_State *L)
{
    mh_grammar *g = check_grammar(L, "grammar:allows");
    lua_Integer id = luaL_checkinteger(L, 2);
    lua_pushboolean(L, id >= 0 && id <= INT32_MAX && mh_grammar_allows(g, (int32_t)id));
    return 1;
}

static int g_done(lua_State *L) { lua_pushboolean(L, mh_grammar_done(check_grammar(L, "grammar:done"))); return 1; }
static int g_reset(lua_State *L) { mh_grammar_reset(check_grammar(L, "grammar:reset")); return 0; }

static int g_free(lua_State *L)
{
    mh_grammar **box = luaL_checkudata(L, 1, GRAMMAR_MT);
    mh_grammar_free(*box);
    *box = NULL;
    return 0;
}

static int g_tostring(lua_State *L)
{
    mh_grammar **box = luaL_checkudata(L, 1, GRAMMAR_MT);
    lua_pushfstring(L, "grammar (%s)", !*box ? "freed" : mh_grammar_done(*box) ? "done" : "open");
    return 1;
}

int luaopen_moonhub_core_grammar(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "mask", g_mask }, { "accept", g_accept }, { "allows", g_allows }, { "done", g_done },
        { "reset", g_reset }, { "free", g_free }, { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", g_free }, { "__close", g_free }, { "__tostring", g_tostring }, { NULL, NULL },
    };
    static const luaL_Reg funcs[] = {
        { "json_schema", l_json_schema }, { "json_object", l_json_object }, { NULL, NULL },
    };
    luaL_newmetatable(L, GRAMMAR_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
