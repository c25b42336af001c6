/* l_tensor.c: moonhub.core.tensor — the tensor box (userdata holding one
 * mh_tensor reference), argument helpers shared by l_tensor_*.c,
 * constructors, geometry queries and the module's luaopen.
 * Layer: engine/bind (calls mh/tensor.h; no math here). The Lua API is
 * 1-based for dims and indices; the C core is 0-based. */
#include <string.h>
#include <time.h>
#include "l_tensor.h"

#define SEED_KEY "moonhub.tensor.seed"   /* registry: next seed for unseeded rand */

/* ===== the box ===== */

/* Tensors made by other bindings (model logits...) may appear before any
 * script required the tensor module: load it so the metatable exists. */
static void ensure_tensor_module(lua_State *L)
{
    if (luaL_getmetatable(L, MH_TENSOR_MT) == LUA_TNIL) {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "moonhub.tensor");
        lua_call(L, 1, 0);
    }
    lua_pop(L, 1);
}

mh_tensor **mh_lt_newbox(lua_State *L)
{
    ensure_tensor_module(L);
    mh_tensor **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;                           /* empty until the tensor exists */
    luaL_setmetatable(L, MH_TENSOR_MT);
    return box;
}

/* Lua's collector sees only the small box, not the tensor's memory: for a
 * fresh large storage, step the collector as if that much were allocated,
 * so loops that make big temporaries do not grow without bound. */
static void gc_pressure(lua_State *L, const mh_tensor *t)
{
    size_t n = t->st->nbytes;
    if (n >= ((size_t)1 << 20) && atomic_load(&t->st->refs) == 1)
        lua_gc(L, LUA_GCSTEP, (int)(n >> 10 > 1 << 30 ? 1 << 30 : n >> 10));
}

void mh_lt_set(lua_State *L, mh_tensor **box, mh_tensor *t, const char *fname, const mh_err *err)
{
    if (!t) mh_lt_raise(L, fname, err);
    *box = t;
    gc_pressure(L, t);
}

/* __gc and __close: one idempotent release (liolib's f_gc) */
static int t_release(lua_State *L)
{
    mh_tensor **box = luaL_checkudata(L, 1, MH_TENSOR_MT);
    mh_tensor_release(*box);
    *box = NULL;
    return 0;
}

/* For other bindings, whose tensor already exists: the box is made after it,
 * so only a memory error inside lua_newuserdatauv could strand t. The
 * bindings in this module use mh_lt_newbox/mh_lt_set instead. */
void mh_lua_push_tensor(lua_State *L, struct mh_tensor *t, const char *fname, const mh_err *err)
{
    if (!t) mh_lt_raise(L, fname, err);
    mh_tensor **box = mh_lt_newbox(L);
    *box = t;
    gc_pressure(L, t);
}

struct mh_tensor *mh_lua_to_tensor(lua_State *L, int idx)
{
    mh_tensor **box = luaL_testudata(L, idx, MH_TENSOR_MT);
    return box ? *box : NULL;
}

struct mh_tensor *mh_lua_check_tensor(lua_State *L, int idx)
{
    mh_tensor **box = luaL_testudata(L, idx, MH_TENSOR_MT);
    if (!box) luaL_typeerror(L, idx, "tensor");
    if (!*box) luaL_argerror(L, idx, "tensor has been closed");
    return *box;
}

/* ===== argument helpers ===== */

/* The one binding error helper (bind.c) under the tensor modules' name. */
int mh_lt_raise(lua_State *L, const char *fname, const mh_err *err)
{
    return mh_lua_raise(L, fname, err);
}

const char *mh_lt_shape(const mh_tensor *t, char *buf, size_t n)
{
    return mh_shape_str(t->ndim, t->shape, buf, n);
}

mh_dtype mh_lt_check_dtype(lua_State *L, int arg, mh_dtype dflt, const char *fname)
{
    if (lua_isnoneornil(L, arg)) return dflt;
    const char *name = luaL_checkstring(L, arg);
    int dt = mh_dtype_from_name(name);
    if (dt < 0)
        luaL_error(L, "%s: unknown dtype '%s' (expected f32, f16, bf16, i32, i64, u8 or i8)",
                   fname, name);
    return (mh_dtype)dt;
}

mh_dtype mh_lt_opt_dtype(lua_State *L, int arg, mh_dtype dflt, const char *fname)
{
    if (lua_isnoneornil(L, arg)) return dflt;
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_getfield(L, arg, "dtype");
    mh_dtype dt = mh_lt_check_dtype(L, lua_gettop(L), dflt, fname);
    lua_pop(L, 1);
    return dt;
}

/* A number field of the options table at arg, or dflt. */
static double opt_number(lua_State *L, int arg, const char *key, double dflt, const char *fname)
{
    if (lua_isnoneornil(L, arg)) return dflt;
    lua_getfield(L, arg, key);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: option '%s' must be a number, got %s", fname, key,
                            luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static int64_t shape_entry(lua_State *L, int idx, int pos, bool allow_neg, const char *fname)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok)
        luaL_error(L, "%s: size %d of the shape must be an integer, got %s", fname, pos,
                   lua_type(L, idx) == LUA_TNUMBER ? "a float" : luaL_typename(L, idx));
    if (v < 0 && !(allow_neg && v == -1))
        luaL_error(L, "%s: size %d of the shape is %d, must be >= 0", fname, pos, (int)v);
    return v;
}

int mh_lt_check_shape(lua_State *L, int arg, int64_t *shape, int *ndim, bool allow_neg,
                      const char *fname)
{
    int n = 0;
    if (lua_istable(L, arg) && !mh_lua_to_tensor(L, arg)) {
        lua_Integer len = luaL_len(L, arg);
        if (len > MH_MAX_DIMS)
            luaL_error(L, "%s: shape has %d dims, at most %d allowed", fname, (int)len, MH_MAX_DIMS);
        for (n = 0; n < len; n++) {
            lua_geti(L, arg, n + 1);
            shape[n] = shape_entry(L, -1, n + 1, allow_neg, fname);
            lua_pop(L, 1);
        }
        *ndim = n;
        return arg + 1;
    }
    if (lua_type(L, arg) != LUA_TNUMBER)
        luaL_typeerror(L, arg, "shape (table or sizes)");
    while (lua_type(L, arg + n) == LUA_TNUMBER) {
        if (n == MH_MAX_DIMS)
            luaL_error(L, "%s: shape has more than %d dims", fname, MH_MAX_DIMS);
        shape[n] = shape_entry(L, arg + n, n + 1, allow_neg, fname);
        n++;
    }
    *ndim = n;
    return arg + n;
}

int mh_lt_check_dim(lua_State *L, int arg, int ndim, int extra, const char *fname)
{
    lua_Integer d = luaL_checkinteger(L, arg), n = ndim + extra;
    lua_Integer z = d < 0 ? d + n : d - 1;
    if (d == 0 || z < 0 || z >= n)
        luaL_error(L, "%s: dim %d out of range for a %d-D tensor (dims are 1-based)", fname,
                   (int)d, ndim);
    return (int)z;
}

int mh_lt_opt_dim(lua_State *L, int arg, int ndim, int dflt, const char *fname)
{
    return lua_isnoneornil(L, arg) ? dflt : mh_lt_check_dim(L, arg, ndim, 0, fname);
}

int64_t mh_lt_index(lua_State *L, lua_Integer i, int dim, int64_t n, const char *fname)
{
    lua_Integer z = i < 0 ? i + n : i - 1;
    if (i == 0 || z < 0 || z >= n)
        luaL_error(L, "%s: index %d out of range for dim %d of size %d", fname, (int)i, dim + 1,
                   (int)n);
    return z;
}

mh_tensor *mh_lt_operand(lua_State *L, int arg, mh_dtype like, const char *fname)
{
    if (lua_type(L, arg) != LUA_TNUMBER) return mh_lua_check_tensor(L, arg);
    double v = lua_tonumber(L, arg);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_full(like, 0, NULL, v, &err), fname, &err);
    lua_replace(L, arg);
    return *box;
}

/* ===== constructors ===== */

/* zeros/ones/empty(shape..., opts) */
static int ctor_const(lua_State *L, double v, const char *fname)
{
    int64_t shape[MH_MAX_DIMS];
    int nd;
    int next = mh_lt_check_shape(L, 1, shape, &nd, false, fname);
    mh_dtype dt = mh_lt_opt_dtype(L, next, MH_DTYPE_F32, fname);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_full(dt, nd, shape, v, &err), fname, &err);
    return 1;
}

static int l_zeros(lua_State *L) { return ctor_const(L, 0, "tensor.zeros"); }
static int l_ones(lua_State *L) { return ctor_const(L, 1, "tensor.ones"); }

static int l_empty(lua_State *L)
{
    int64_t shape[MH_MAX_DIMS];
    int nd;
    int next = mh_lt_check_shape(L, 1, shape, &nd, false, "tensor.empty");
    mh_dtype dt = mh_lt_opt_dtype(L, next, MH_DTYPE_F32, "tensor.empty");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_new(dt, nd, shape, &err), "tensor.empty", &err);
    return 1;
}

/* full(shape, v, opts): the shape must be a table, since v follows it */
static int l_full(lua_State *L)
{
    int64_t shape[MH_MAX_DIMS];
    int nd;
    luaL_argexpected(L, lua_istable(L, 1) && !mh_lua_to_tensor(L, 1), 1, "shape table");
    mh_lt_check_shape(L, 1, shape, &nd, false, "tensor.full");
    double v = luaL_checknumber(L, 2);
    mh_dtype dt = mh_lt_opt_dtype(L, 3, MH_DTYPE_F32, "tensor.full");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_full(dt, nd, shape, v, &err), "tensor.full", &err);
    return 1;
}

/* arange(stop) | arange(start, stop[, step]) [, opts]; stop is exclusive */
static int l_arange(lua_State *L)
{
    int n = 0;
    while (n < 3 && lua_type(L, n + 1) == LUA_TNUMBER) n++;
    if (n == 0) luaL_typeerror(L, 1, "number");
    double start = n >= 2 ? lua_tonumber(L, 1) : 0;
    double stop = n >= 2 ? lua_tonumber(L, 2) : lua_tonumber(L, 1);
    double step = n == 3 ? lua_tonumber(L, 3) : 1;
    if (step == 0) luaL_argerror(L, 3, "step must be nonzero");
    mh_dtype dt = mh_lt_opt_dtype(L, n + 1, MH_DTYPE_F32, "tensor.arange");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_arange(dt, start, stop, step, &err), "tensor.arange", &err);
    return 1;
}

static int l_linspace(lua_State *L)
{
    double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0, 3, "count must be >= 0");
    mh_dtype dt = mh_lt_opt_dtype(L, 4, MH_DTYPE_F32, "tensor.linspace");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_linspace(dt, a, b, n, &err), "tensor.linspace", &err);
    return 1;
}

/* eye(n[, m][, opts]) */
static int l_eye(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1), m = n;
    int opts = 2;
    if (lua_type(L, 2) == LUA_TNUMBER) { m = luaL_checkinteger(L, 2); opts = 3; }
    luaL_argcheck(L, n >= 0, 1, "size must be >= 0");
    luaL_argcheck(L, m >= 0, 2, "size must be >= 0");
    mh_dtype dt = mh_lt_opt_dtype(L, opts, MH_DTYPE_F32, "tensor.eye");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_eye(dt, n, m, &err), "tensor.eye", &err);
    return 1;
}

/* The seed option, or the next one of this state's sequence (manual_seed). */
static uint64_t opt_seed(lua_State *L, int opts, const char *fname)
{
    if (!lua_isnoneornil(L, opts)) {
        lua_getfield(L, opts, "seed");
        if (!lua_isnil(L, -1)) {
            int ok;
            lua_Integer s = lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_error(L, "%s: option 'seed' must be an integer", fname);
            lua_pop(L, 1);
            return (uint64_t)s;
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, SEED_KEY);
    lua_Integer s = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer)((lua_Unsigned)s + 1));
    lua_setfield(L, LUA_REGISTRYINDEX, SEED_KEY);
    return (uint64_t)s;
}

/* rand(shape..., {seed=, lo=0, hi=1, dtype=}) / randn(shape..., {seed=, mean=0, std=1}) */
static int ctor_random(lua_State *L, bool normal)
{
    const char *fname = normal ? "tensor.randn" : "tensor.rand";
    int64_t shape[MH_MAX_DIMS];
    int nd;
    int opts = mh_lt_check_shape(L, 1, shape, &nd, false, fname);
    mh_dtype dt = mh_lt_opt_dtype(L, opts, MH_DTYPE_F32, fname);
    double p0 = opt_number(L, opts, normal ? "mean" : "lo", 0, fname);
    double p1 = opt_number(L, opts, normal ? "std" : "hi", 1, fname);
    uint64_t seed = opt_seed(L, opts, fname);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_tensor *t = normal ? mh_tensor_randn(dt, nd, shape, seed, p0, p1, &err)
                          : mh_tensor_rand(dt, nd, shape, seed, p0, p1, &err);
    mh_lt_set(L, box, t, fname, &err);
    return 1;
}

static int l_rand(lua_State *L) { return ctor_random(L, false); }
static int l_randn(lua_State *L) { return ctor_random(L, true); }

static int l_manual_seed(lua_State *L)
{
    lua_Integer s = luaL_checkinteger(L, 1);
    lua_pushinteger(L, s);
    lua_setfield(L, LUA_REGISTRYINDEX, SEED_KEY);
    return 0;
}

/* from_flat(values, shape, dtype): values is a flat array of numbers in
 * row-major order (tensor.lua flattens nested tables into it). */
static int l_from_flat(lua_State *L)
{
    const char *fname = "tensor.tensor";
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t shape[MH_MAX_DIMS];
    int nd;
    luaL_checktype(L, 2, LUA_TTABLE);
    mh_lt_check_shape(L, 2, shape, &nd, false, fname);
    mh_dtype dt = mh_lt_check_dtype(L, 3, MH_DTYPE_F32, fname);
    lua_Integer n = luaL_len(L, 1);
    double *v = lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);  /* freed by the GC */
    for (lua_Integer i = 0; i < n; i++) {
        int ok;
        lua_geti(L, 1, i + 1);
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: element %d is %s, expected a number", fname, (int)(i + 1),
                            luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_from_doubles(dt, nd, shape, v, n, &err), fname, &err);
    return 1;
}

/* ===== geometry ===== */

static mh_tensor *self(lua_State *L) { return mh_lua_check_tensor(L, 1); }

static int l_is_tensor(lua_State *L)
{
    lua_pushboolean(L, mh_lua_to_tensor(L, 1) != NULL);
    return 1;
}

static int l_shape(lua_State *L)
{
    mh_tensor *t = self(L);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_stride(lua_State *L)
{
    mh_tensor *t = self(L);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, t->stride[mh_lt_check_dim(L, 2, t->ndim, 0, "tensor.stride")]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->stride[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* size() = shape table; size(dim) = that dim's size */
static int l_size(lua_State *L)
{
    mh_tensor *t = self(L);
    if (lua_isnoneornil(L, 2)) return l_shape(L);
    lua_pushinteger(L, t->shape[mh_lt_check_dim(L, 2, t->ndim, 0, "tensor.size")]);
    return 1;
}

static int l_len(lua_State *L)
{
    mh_tensor *t = self(L);
    if (t->ndim == 0) luaL_error(L, "tensor.__len: a 0-D tensor has no dim 1");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

static int l_dim(lua_State *L) { lua_pushinteger(L, self(L)->ndim); return 1; }
static int l_numel(lua_State *L) { lua_pushinteger(L, mh_tensor_numel(self(L))); return 1; }
static int l_is_contiguous(lua_State *L) { lua_pushboolean(L, mh_tensor_is_contiguous(self(L))); return 1; }
static int l_dtype(lua_State *L) { lua_pushstring(L, mh_dtype_info(self(L)->dtype)->name); return 1; }

static void check_plain(lua_State *L, const mh_tensor *t, const char *fname)
{
    const mh_dtype_traits *tr = mh_dtype_info(t->dtype);
    if (tr->is_quant)
        luaL_error(L, "%s: not supported on %s tensors (convert with :to(\"f32\") first)", fname,
                   tr->name);
}

/* Pushes element i (row-major) as an integer for integer dtypes. */
static void push_flat(lua_State *L, const mh_tensor *t, int64_t i)
{
    if (mh_dtype_info(t->dtype)->is_float) lua_pushnumber(L, mh_tensor_get_flat(t, i));
    else lua_pushinteger(L, mh_tensor_get_flat_i64(t, i));
}

static int l_item(lua_State *L)
{
    mh_tensor *t = self(L);
    check_plain(L, t, "tensor.item");
    if (mh_tensor_numel(t) != 1) {
        char b[160];
        luaL_error(L, "tensor.item: shape %s has %d elements, needs exactly 1",
                   mh_lt_shape(t, b, sizeof b), (int)mh_tensor_numel(t));
    }
    push_flat(L, t, 0);
    return 1;
}

static void push_nested(lua_State *L, const mh_tensor *t, int d, int64_t *flat)
{
    if (d == t->ndim) { push_flat(L, t, (*flat)++); return; }
    luaL_checkstack(L, 2, "tensor.totable");
    lua_createtable(L, (int)t->shape[d], 0);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        push_nested(L, t, d + 1, flat);
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_totable(lua_State *L)
{
    mh_tensor *t = self(L);
    check_plain(L, t, "tensor.totable");
    int64_t flat = 0;
    push_nested(L, t, 0, &flat);
    return 1;
}

/* ===== module ===== */

static const luaL_Reg methods[] = {
    { "shape", l_shape }, { "size", l_size }, { "stride", l_stride }, { "dim", l_dim },
    { "numel", l_numel }, { "dtype", l_dtype }, { "is_contiguous", l_is_contiguous },
    { "item", l_item }, { "totable", l_totable }, { "close", t_release },
    { NULL, NULL },
};

static const luaL_Reg funcs[] = {
    { "zeros", l_zeros }, { "ones", l_ones }, { "empty", l_empty }, { "full", l_full },
    { "arange", l_arange }, { "linspace", l_linspace }, { "eye", l_eye },
    { "rand", l_rand }, { "randn", l_randn }, { "manual_seed", l_manual_seed },
    { "from_flat", l_from_flat }, { "is_tensor", l_is_tensor },
    { NULL, NULL },
};

static const luaL_Reg meta[] = {
    { "__gc", t_release }, { "__close", t_release }, { "__len", l_len },
    { NULL, NULL },
};

/* Returns { <functions>, methods = {...}, meta = <metatable> }; tensor.lua
 * adds Lua methods to `methods` and sets meta.__tostring. */
int luaopen_moonhub_core_tensor(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)time(NULL) * 1000003 + (lua_Integer)clock());
    lua_setfield(L, LUA_REGISTRYINDEX, SEED_KEY);

    luaL_newlib(L, funcs);
    lua_newtable(L);                                  /* methods */
    luaL_setfuncs(L, methods, 0);
    luaL_setfuncs(L, mh_lt_view_methods, 0);
    luaL_newmetatable(L, MH_TENSOR_MT);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, mh_lt_view_meta, 1);             /* __index sees methods */
    luaL_setfuncs(L, meta, 0);
    mh_lt_open_ops(L, lua_absindex(L, -3), lua_absindex(L, -2), lua_absindex(L, -1));
    lua_pushliteral(L, "tensor");
    lua_setfield(L, -2, "__name");
    lua_setfield(L, -3, "meta");
    lua_setfield(L, -2, "methods");
    return 1;
}
