/* l_gguf_write.c: moonhub.core.gguf_write — the GGUF-writing jobs of the
 * core (quantize a model file, convert a Hugging Face folder, create a
 * random model) for Lua.
 * Layer: engine/bind. Argument checks and result tables only; file errors
 * come back as nil, msg; wrong argument types raise. */
#include <string.h>
#include "bind.h"
#include "mh/convert.h"
#include "mh/create.h"
#include "mh/gguf_write.h"
#include "mh/quantize.h"

/* {q4_K = n, f32 = n, ...}: counts under GGUF's type names (as gguf:tensors()) */
static void push_types(lua_State *L, const int64_t *n_by_type)
{
    lua_newtable(L);
    for (int t = 0; t < MH_DTYPE_COUNT; t++)
        if (n_by_type[t]) {
            lua_pushinteger(L, n_by_type[t]);
            lua_setfield(L, -2, mh_gguf_ggml_type_name((uint32_t)mh_gguf_ggml_type_of((mh_dtype)t)));
        }
}

static int check_ftype(lua_State *L, int idx, const char *fname)
{
    const char *name = luaL_checkstring(L, idx);
    int ft = mh_ftype_from_name(name);
    if (ft < 0)
        return luaL_error(L, "%s: unknown type '%s' (expected one of %s)", fname, name,
                          mh_ftype_names());
    return ft;
}

/* The engine's progress hook calls a Lua function(done, total) through this:
 * the job runs on the calling thread, so the call is a plain pcall. A
 * failing callback is not called again and its error is raised once the
 * job has returned (no longjmp across the engine's frames). */
typedef struct {
    lua_State *L;
    int fn;          /* stack index of the function, 0: none */
    int failed;      /* the error message sits on the stack above fn */
} lprog;

static void lprog_hook(void *ud, uint64_t done, uint64_t total)
{
    lprog *p = ud;
    if (p->failed) return;
    lua_pushvalue(p->L, p->fn);
    lua_pushinteger(p->L, (lua_Integer)done);
    lua_pushinteger(p->L, (lua_Integer)total);
    if (lua_pcall(p->L, 2, 0, 0) != LUA_OK) p->failed = 1;   /* leaves the message */
}

static void lprog_init(lua_State *L, int idx, lprog *p)
{
    p->L = L;
    p->failed = 0;
    p->fn = lua_isnoneornil(L, idx) ? 0 : (luaL_checktype(L, idx, LUA_TFUNCTION), idx);
}

/* quantize(in, out, type, progress?) -> stats | nil, msg;
 * progress(done, total) in input tensor bytes */
static int l_quantize(lua_State *L)
{
    const char *in = luaL_checkstring(L, 1), *out = luaL_checkstring(L, 2);
    int ft = check_ftype(L, 3, "gguf_write.quantize");
    lprog pr;
    lprog_init(L, 4, &pr);
    lua_settop(L, 4);
    mh_quantize_stats st;
    mh_err err = {0};
    int rc = mh_quantize_file_cb(in, out, (mh_ftype)ft, pr.fn ? lprog_hook : NULL, &pr, &st, &err);
    if (pr.failed) return lua_error(L);
    if (rc) return mh_lua_fail(L, &err);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, st.n_tensors); lua_setfield(L, -2, "tensors");
    lua_pushinteger(L, st.n_fallback); lua_setfield(L, -2, "fallbacks");
    lua_pushinteger(L, (lua_Integer)st.bytes_in); lua_setfield(L, -2, "bytes_in");
    lua_pushinteger(L, (lua_Integer)st.bytes_out); lua_setfield(L, -2, "bytes_out");
    lua_pushinteger(L, (lua_Integer)st.file_bytes); lua_setfield(L, -2, "file_bytes");
    lua_pushnumber(L, st.seconds); lua_setfield(L, -2, "seconds");
    lua_pushstring(L, mh_ftype_name(ft)); lua_setfield(L, -2, "type");
    push_types(L, st.n_by_type); lua_setfield(L, -2, "types");
    return 1;
}

/* convert(dir, out, type, progress?, name?) -> stats | nil, msg;
 * progress(done, total) in tensors */
static int l_convert(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1), *out = luaL_checkstring(L, 2);
    int ft = check_ftype(L, 3, "gguf_write.convert");
    const char *name = luaL_optstring(L, 5, NULL);
    lprog pr;
    lprog_init(L, 4, &pr);
    lua_settop(L, 5);
    mh_convert_opts o = { .ftype = (mh_ftype)ft, .name = name,
                          .progress = pr.fn ? lprog_hook : NULL, .progress_ud = &pr };
    mh_convert_stats st;
    mh_err err = {0};
    int rc = mh_convert_hf(dir, out, &o, &st, &err);
    if (pr.failed) return lua_error(L);
    if (rc) return mh_lua_fail(L, &err);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, st.arch); lua_setfield(L, -2, "arch");
    lua_pushinteger(L, st.n_tensors); lua_setfield(L, -2, "tensors");
    lua_pushinteger(L, st.n_vocab); lua_setfield(L, -2, "vocab");
    lua_pushinteger(L, (lua_Integer)st.file_bytes); lua_setfield(L, -2, "file_bytes");
    lua_pushnumber(L, st.seconds); lua_setfield(L, -2, "seconds");
    lua_pushstring(L, mh_ftype_name(ft)); lua_setfield(L, -2, "type");
    push_types(L, st.n_by_type); lua_setfield(L, -2, "types");
    return 1;
}

/* ===== create ===== */

static int64_t opt_int(lua_State *L, int t, const char *k, int64_t def, const char *fname)
{
    int ty = lua_getfield(L, t, k);
    int64_t v = def;
    if (ty != LUA_TNIL) {
        int ok;
        v = (int64_t)lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: field '%s' must be an integer, got %s", fname, k, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static double opt_num(lua_State *L, int t, const char *k, double def, const char *fname)
{
    int ty = lua_getfield(L, t, k);
    double v = def;
    if (ty != LUA_TNIL) {
        if (ty != LUA_TNUMBER) luaL_error(L, "%s: field '%s' must be a number, got %s", fname, k, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static void opt_str(lua_State *L, int t, const char *k, char *dst, size_t cap, const char *def,
                    const char *fname)
{
    int ty = lua_getfield(L, t, k);
    const char *s = def;
    size_t len = strlen(def);
    if (ty != LUA_TNIL) {
        if (ty != LUA_TSTRING) luaL_error(L, "%s: field '%s' must be a string, got %s", fname, k, luaL_typename(L, -1));
        s = lua_tolstring(L, -1, &len);
        if (len >= cap) luaL_error(L, "%s: field '%s' is longer than %d bytes", fname, k, (int)cap - 1);
    }
    memcpy(dst, s, len);
    dst[len] = 0;
    lua_pop(L, 1);
}

static void read_config(lua_State *L, int t, mh_create_config *c)
{
    const char *fn = "gguf_write.create";
    memset(c, 0, sizeof *c);
    opt_str(L, t, "arch", c->arch, sizeof c->arch, "llama", fn);
    opt_str(L, t, "name", c->name, sizeof c->name, "random", fn);
    c->n_layer = opt_int(L, t, "n_layer", 0, fn);
    c->n_embd = opt_int(L, t, "n_embd", 0, fn);
    c->n_ff = opt_int(L, t, "n_ff", 0, fn);
    c->n_head = opt_int(L, t, "n_head", 0, fn);
    c->n_head_kv = opt_int(L, t, "n_head_kv", c->n_head, fn);
    c->n_vocab = opt_int(L, t, "n_vocab", 0, fn);
    c->n_ctx = opt_int(L, t, "n_ctx", 2048, fn);
    c->rope_base = opt_num(L, t, "rope_base", 10000.0, fn);
    c->rms_eps = opt_num(L, t, "rms_eps", 1e-5, fn);
    c->rope_factor = opt_num(L, t, "rope_factor", 0, fn);
    c->rope_low_freq = opt_num(L, t, "rope_low_freq", 1, fn);
    c->rope_high_freq = opt_num(L, t, "rope_high_freq", 4, fn);
    c->rope_orig_ctx = opt_int(L, t, "rope_orig_ctx", 8192, fn);
    c->std = opt_num(L, t, "std", 0.02, fn);
    c->head_dim = opt_int(L, t, "head_dim", 0, fn);
    c->n_swa = opt_int(L, t, "n_swa", 0, fn);
    c->attn_softcap = opt_num(L, t, "attn_softcap", 0, fn);
    c->final_softcap = opt_num(L, t, "final_softcap", 0, fn);
    c->rope_base_swa = opt_num(L, t, "rope_base_swa", 0, fn);
    c->rope_scale_linear = opt_num(L, t, "rope_scale_linear", 0, fn);
    c->rope_scale_yarn = opt_num(L, t, "rope_scale_yarn", 0, fn);
    c->norm_std = opt_num(L, t, "norm_std", 0, fn);
    c->pooling = opt_int(L, t, "pooling", 0, fn);      /* encoders: 1 mean, 2 cls */
    c->n_expert = opt_int(L, t, "n_expert", 0, fn);
    c->n_expert_used = opt_int(L, t, "n_expert_used", 0, fn);
    c->n_ff_exp = opt_int(L, t, "n_ff_exp", 0, fn);
    c->n_ff_shexp = opt_int(L, t, "n_ff_shexp", 0, fn);
    lua_getfield(L, t, "tied");
    c->tied = lua_toboolean(L, -1);
    lua_getfield(L, t, "qkv_bias");
    c->qkv_bias = lua_toboolean(L, -1);
    lua_getfield(L, t, "longrope");
    c->longrope = lua_toboolean(L, -1);
    lua_pop(L, 3);
}

/* create(config, {type=, seed=, tokenizer=, progress=fn(done, total)}, out)
 * -> stats | nil, msg (progress in tensor bytes written) */
static int l_create(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *out = luaL_checkstring(L, 3);
    mh_create_config cfg;
    read_config(L, 1, &cfg);
    mh_create_opts o = {0};
    lua_getfield(L, 2, "type");
    o.ftype = lua_isnil(L, -1) ? MH_FTYPE_Q8_0 : (mh_ftype)check_ftype(L, -1, "gguf_write.create");
    lua_getfield(L, 2, "tokenizer");
    o.tokenizer = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);   /* stays on the stack */
    o.seed = (uint64_t)opt_int(L, 2, "seed", 0, "gguf_write.create");
    lprog pr;
    lua_getfield(L, 2, "progress");
    lprog_init(L, lua_gettop(L), &pr);
    o.progress = pr.fn ? lprog_hook : NULL;
    o.progress_ud = &pr;
    mh_create_stats st;
    mh_err err = {0};
    int rc = mh_create_model(&cfg, &o, out, &st, &err);
    if (pr.failed) return lua_error(L);
    if (rc) return mh_lua_fail(L, &err);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, st.n_params); lua_setfield(L, -2, "params");
    lua_pushinteger(L, st.n_tensors); lua_setfield(L, -2, "tensors");
    lua_pushinteger(L, st.n_vocab); lua_setfield(L, -2, "vocab");
    lua_pushboolean(L, st.vocab_changed); lua_setfield(L, -2, "vocab_changed");
    lua_pushinteger(L, (lua_Integer)st.file_bytes); lua_setfield(L, -2, "file_bytes");
    lua_pushnumber(L, st.seconds); lua_setfield(L, -2, "seconds");
    lua_pushstring(L, mh_ftype_name(o.ftype)); lua_setfield(L, -2, "type");
    push_types(L, st.n_by_type); lua_setfield(L, -2, "types");
    return 1;
}

/* ftypes() -> {"Q8_0", ...} */
static int l_ftypes(lua_State *L)
{
    const char *s = mh_ftype_names();
    lua_newtable(L);
    int i = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        lua_pushlstring(L, s, n);
        lua_rawseti(L, -2, ++i);
        s += n;
        while (*s == ',' || *s == ' ') s++;
    }
    return 1;
}

/* randn(seed, stream, first, n) -> {n numbers}: the create RNG, for tests */
static int l_randn(lua_State *L)
{
    uint64_t seed = (uint64_t)luaL_checkinteger(L, 1), stream = (uint64_t)luaL_checkinteger(L, 2);
    lua_Integer first = luaL_checkinteger(L, 3), n = luaL_checkinteger(L, 4);
    luaL_argcheck(L, first >= 0 && n >= 0 && n <= 1 << 20, 4, "gguf_write.randn: 0 <= n <= 2^20");
    float buf[256];
    lua_createtable(L, (int)n, 0);
    for (lua_Integer k = 0; k < n; k += 256) {
        int64_t m = n - k < 256 ? n - k : 256;
        mh_create_randn(seed, stream, (uint64_t)(first + k), buf, m);
        for (int64_t i = 0; i < m; i++) {
            lua_pushnumber(L, buf[i]);
            lua_rawseti(L, -2, k + i + 1);
        }
    }
    return 1;
}

static const luaL_Reg funcs[] = {
    {"quantize", l_quantize}, {"convert", l_convert}, {"create", l_create}, {"ftypes", l_ftypes}, {"randn", l_randn},
    {NULL, NULL},
};

int luaopen_moonhub_core_gguf_write(lua_State *L)
{
    luaL_newlib(L, funcs);
    return 1;
}
