/* l_tensor_view.c: moonhub.core.tensor views (view, narrow, select, permute,
 * ...) and Torch-style indexing: t[i], t[{i, j}], t[{{a, b}, 3}] for reads
 * and writes. Layer: engine/bind. Indices and dims are 1-based here
 * (negative counts from the end) and 0-based in the core. */
#include "l_tensor.h"

#define IDX "tensor index"

static mh_tensor *self(lua_State *L) { return mh_lua_check_tensor(L, 1); }

/* ===== reshaping views ===== */

/* Checks that shape (with at most one -1) fits numel elements. */
static void check_numel(lua_State *L, int nd, const int64_t *shape, int64_t numel,
                        const char *fname)
{
    int64_t known = 1;
    int infer = 0;
    char b[160];
    for (int i = 0; i < nd; i++) {
        if (shape[i] == -1) infer++;
        else known *= shape[i];
    }
    if (infer > 1)
        luaL_error(L, "%s: shape %s has more than one -1", fname, mh_shape_str(nd, shape, b, sizeof b));
    if (!infer && known != numel)
        luaL_error(L, "%s: shape %s needs %d elements, got %d", fname,
                   mh_shape_str(nd, shape, b, sizeof b), (int)known, (int)numel);
    if (infer && (known == 0 || numel % known != 0))
        luaL_error(L, "%s: shape %s cannot hold %d elements", fname,
                   mh_shape_str(nd, shape, b, sizeof b), (int)numel);
}

static int reshape_like(lua_State *L, bool copy_ok, const char *fname)
{
    mh_tensor *t = self(L);
    int64_t shape[MH_MAX_DIMS];
    int nd;
    mh_lt_check_shape(L, 2, shape, &nd, true, fname);
    check_numel(L, nd, shape, mh_tensor_numel(t), fname);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, copy_ok ? mh_tensor_reshape(t, nd, shape, &err)
                              : mh_tensor_view(t, nd, shape, &err), fname, &err);
    return 1;
}

static int l_view(lua_State *L) { return reshape_like(L, false, "tensor.view"); }
static int l_reshape(lua_State *L) { return reshape_like(L, true, "tensor.reshape"); }

static int l_expand(lua_State *L)
{
    mh_tensor *t = self(L);
    int64_t shape[MH_MAX_DIMS];
    int nd;
    mh_lt_check_shape(L, 2, shape, &nd, true, "tensor.expand");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_expand(t, nd, shape, &err), "tensor.expand", &err);
    return 1;
}

/* ===== sub-ranges ===== */

/* Pushes narrow(t, dim, z0, len) after checking the range (z0 0-based). */
static mh_tensor *push_narrow(lua_State *L, mh_tensor *t, int dim, int64_t z0, int64_t len,
                              const char *fname)
{
    if (z0 < 0 || len < 0 || z0 + len > t->shape[dim])
        luaL_error(L, "%s: range %d..%d out of range for dim %d of size %d", fname,
                   (int)(z0 + 1), (int)(z0 + len), dim + 1, (int)t->shape[dim]);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_narrow(t, dim, z0, len, &err), fname, &err);
    return *box;
}

/* An inclusive range end: negative counts from the end (-1 = last). */
static int64_t range_end(lua_Integer i, int64_t n) { return i < 0 ? i + n + 1 : i; }

/* narrow(dim, start, length) */
static int l_narrow(lua_State *L)
{
    mh_tensor *t = self(L);
    int d = mh_lt_check_dim(L, 2, t->ndim, 0, "tensor.narrow");
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    luaL_argcheck(L, len >= 0, 4, "length must be >= 0");
    int64_t z0 = start < 0 ? start + t->shape[d] : start - 1;   /* 0 gives -1: rejected */
    push_narrow(L, t, d, z0, len, "tensor.narrow");
    return 1;
}

/* slice(dim, from[, to]): elements from..to inclusive (to defaults to -1) */
static int l_slice(lua_State *L)
{
    mh_tensor *t = self(L);
    int d = mh_lt_check_dim(L, 2, t->ndim, 0, "tensor.slice");
    int64_t n = t->shape[d];
    int64_t from = range_end(luaL_checkinteger(L, 3), n);   /* 0 stays 0: rejected */
    int64_t to = range_end(luaL_optinteger(L, 4, -1), n);
    push_narrow(L, t, d, from - 1, to - from + 1, "tensor.slice");
    return 1;
}

static int l_select(lua_State *L)
{
    mh_tensor *t = self(L);
    int d = mh_lt_check_dim(L, 2, t->ndim, 0, "tensor.select");
    int64_t z = mh_lt_index(L, luaL_checkinteger(L, 3), d, t->shape[d], "tensor.select");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_select(t, d, z, &err), "tensor.select", &err);
    return 1;
}

/* ===== dim order ===== */

static int l_transpose(lua_State *L)
{
    mh_tensor *t = self(L);
    int d0 = mh_lt_check_dim(L, 2, t->ndim, 0, "tensor.transpose");
    int d1 = mh_lt_check_dim(L, 3, t->ndim, 0, "tensor.transpose");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_transpose(t, d0, d1, &err), "tensor.transpose", &err);
    return 1;
}

/* t(): the transpose of a 2-D tensor (1-D and 0-D come back unchanged) */
static int l_t(lua_State *L)
{
    mh_tensor *t = self(L);
    if (t->ndim > 2) {
        char b[160];
        luaL_error(L, "tensor.t: needs at most 2 dims, got shape %s", mh_lt_shape(t, b, sizeof b));
    }
    if (t->ndim < 2) { lua_settop(L, 1); return 1; }
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_transpose(t, 0, 1, &err), "tensor.t", &err);
    return 1;
}

/* permute(d1, d2, ...) or permute({d1, d2, ...}) */
static int l_permute(lua_State *L)
{
    const char *fname = "tensor.permute";
    mh_tensor *t = self(L);
    int64_t raw[MH_MAX_DIMS];
    int n, perm[MH_MAX_DIMS];
    bool seen[MH_MAX_DIMS] = { false };
    mh_lt_check_shape(L, 2, raw, &n, false, fname);
    if (n != t->ndim) {
        char b[160];
        luaL_error(L, "%s: %d dims given for a tensor of shape %s", fname, n,
                   mh_lt_shape(t, b, sizeof b));
    }
    for (int i = 0; i < n; i++) {
        if (raw[i] < 1 || raw[i] > n)
            luaL_error(L, "%s: dim %d out of range for a %d-D tensor", fname, (int)raw[i], n);
        if (seen[raw[i] - 1]) luaL_error(L, "%s: dim %d repeated", fname, (int)raw[i]);
        seen[raw[i] - 1] = true;
        perm[i] = (int)raw[i] - 1;
    }
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_permute(t, perm, n, &err), fname, &err);
    return 1;
}

/* squeeze() drops every size-1 dim; squeeze(dim) that one (when size 1) */
static int l_squeeze(lua_State *L)
{
    mh_tensor *t = self(L);
    int d = lua_isnoneornil(L, 2) ? MH_ALL : mh_lt_check_dim(L, 2, t->ndim, 0, "tensor.squeeze");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_squeeze(t, d, &err), "tensor.squeeze", &err);
    return 1;
}

static int l_unsqueeze(lua_State *L)
{
    mh_tensor *t = self(L);
    int d = mh_lt_check_dim(L, 2, t->ndim, 1, "tensor.unsqueeze");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_unsqueeze(t, d, &err), "tensor.unsqueeze", &err);
    return 1;
}

static int l_contiguous(lua_State *L)
{
    mh_tensor *t = self(L);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_contiguous(t, &err), "tensor.contiguous", &err);
    return 1;
}

static int l_clone(lua_State *L)
{
    mh_tensor *t = self(L);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_clone(t, &err), "tensor.clone", &err);
    return 1;
}

/* ===== indexing ===== */

static int64_t check_int_key(lua_State *L, int idx, int dim, int64_t n)
{
    int ok;
    lua_Integer i = lua_tointegerx(L, idx, &ok);
    if (!ok)
        luaL_error(L, IDX ": index for dim %d must be an integer, got %s", dim + 1,
                   lua_type(L, idx) == LUA_TNUMBER ? "a float" : luaL_typename(L, idx));
    return mh_lt_index(L, i, dim, n, IDX);
}

/* A range entry {}, {i} or {a, b} (inclusive, negative from the end) of
 * dim d (size n) of the result so far; orig is the dim shown in errors. */
static void range_entry(lua_State *L, int e, int orig, int64_t n, int64_t *z0, int64_t *len)
{
    lua_Integer cnt = luaL_len(L, e);
    if (cnt > 2) luaL_error(L, IDX ": range for dim %d must be {}, {i} or {from, to}", orig + 1);
    if (cnt == 0) { *z0 = 0; *len = n; return; }
    lua_geti(L, e, 1);
    lua_geti(L, e, cnt);
    int ok0, ok1;
    lua_Integer a = lua_tointegerx(L, -2, &ok0), b = lua_tointegerx(L, -1, &ok1);
    lua_pop(L, 2);
    if (!ok0 || !ok1) luaL_error(L, IDX ": range for dim %d must hold integers", orig + 1);
    int64_t from = mh_lt_index(L, a, orig, n, IDX) + 1, to = range_end(b, n);
    if (to < from - 1 || to > n)
        luaL_error(L, IDX ": range %d..%d out of range for dim %d of size %d", (int)a, (int)b,
                   orig + 1, (int)n);
    *z0 = from - 1;
    *len = to - from + 1;
}

/* Pushes the view t[k] for a table key k of n entries (integers select,
 * range tables narrow), leaving one box on the stack; returns its tensor. */
static mh_tensor *push_table_view(lua_State *L, mh_tensor *t, int k, int n)
{
    mh_err err;
    luaL_checkstack(L, 2 * n + 4, IDX);
    mh_tensor *cur = t;
    int d = 0;                       /* dim of cur that entry i addresses */
    for (int i = 0; i < n; i++) {    /* entry i addresses dim i of t */
        lua_geti(L, k, i + 1);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            int64_t z = check_int_key(L, -1, i, cur->shape[d]);
            mh_tensor **box = mh_lt_newbox(L);
            mh_lt_set(L, box, mh_tensor_select(cur, d, z, &err), IDX, &err);
            cur = *box;
        } else if (lua_istable(L, -1) && !mh_lua_to_tensor(L, -1)) {
            int64_t z0, len;
            range_entry(L, lua_gettop(L), i, cur->shape[d], &z0, &len);
            cur = push_narrow(L, cur, d, z0, len, IDX);
            d++;
        } else {
            luaL_error(L, IDX ": entry %d must be an integer or a range table, got %s", i + 1,
                       luaL_typename(L, -1));
        }
        lua_remove(L, -2);           /* the entry; the previous box stays below */
    }
    if (cur == t) {                  /* t[{}]: a plain view */
        mh_tensor **box = mh_lt_newbox(L);
        mh_lt_set(L, box, mh_tensor_narrow(t, 0, 0, t->shape[0], &err), IDX, &err);
        cur = *box;
    }
    return cur;
}

/* Resolves key k (stack index) on t. When every dim gets a number it fills
 * idx and returns NULL (an element); otherwise it pushes a view box and
 * returns its tensor. */
static mh_tensor *resolve(lua_State *L, mh_tensor *t, int k, int64_t *idx)
{
    if (t->ndim == 0) luaL_error(L, IDX ": cannot index a 0-D tensor (use :item())");
    if (lua_type(L, k) == LUA_TNUMBER) {
        idx[0] = check_int_key(L, k, 0, t->shape[0]);
        if (t->ndim == 1) return NULL;
        mh_err err;
        mh_tensor **box = mh_lt_newbox(L);
        mh_lt_set(L, box, mh_tensor_select(t, 0, idx[0], &err), IDX, &err);
        return *box;
    }
    if (!lua_istable(L, k) || mh_lua_to_tensor(L, k))
        luaL_error(L, IDX ": expected an integer, a table of indices or a method name, got %s",
                   luaL_typename(L, k));
    int n = (int)luaL_len(L, k), all_num = 1;
    if (n > t->ndim) luaL_error(L, IDX ": %d indices for a %d-D tensor", n, t->ndim);
    for (int i = 0; i < n && all_num; i++) {   /* a full set of integers: one element */
        lua_geti(L, k, i + 1);
        all_num = lua_type(L, -1) == LUA_TNUMBER;
        if (all_num) idx[i] = check_int_key(L, -1, i, t->shape[i]);
        lua_pop(L, 1);
    }
    if (all_num && n == t->ndim) return NULL;
    return push_table_view(L, t, k, n);
}

static void push_element(lua_State *L, mh_tensor *t, const int64_t *idx)
{
    mh_err err;
    double v;
    if (mh_tensor_get(t, idx, &v, &err)) mh_lt_raise(L, IDX, &err);
    if (mh_dtype_info(t->dtype)->is_float) lua_pushnumber(L, v);
    else lua_pushinteger(L, (lua_Integer)v);
}

/* __index: method names go to the methods table (upvalue 1) */
static int l_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        return 1;
    }
    mh_tensor *t = self(L);
    int64_t idx[MH_MAX_DIMS];
    if (!resolve(L, t, 2, idx)) push_element(L, t, idx);
    return 1;                        /* the element, or the view resolve pushed */
}

/* Writes v (stack index) into the view dst: a number fills, a tensor copies
 * with broadcasting. */
static void assign(lua_State *L, mh_tensor *dst, int v)
{
    mh_err err;
    int rc;
    if (lua_type(L, v) == LUA_TNUMBER) rc = mh_tensor_fill_(dst, lua_tonumber(L, v), &err);
    else if (mh_lua_to_tensor(L, v)) rc = mh_tensor_copy_(dst, mh_lua_check_tensor(L, v), &err);
    else return (void)luaL_error(L, IDX ": can only assign a number or a tensor, got %s",
                                 luaL_typename(L, v));
    if (rc) mh_lt_raise(L, IDX, &err);
}

static int l_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "tensor: cannot set field '%s' (tensors have no fields)",
                          lua_tostring(L, 2));
    mh_tensor *t = self(L);
    int64_t idx[MH_MAX_DIMS];
    mh_tensor *view = resolve(L, t, 2, idx);
    if (view) { assign(L, view, 3); return 0; }
    if (lua_type(L, 3) != LUA_TNUMBER) {
        mh_tensor *src = mh_lua_to_tensor(L, 3);
        if (!src || mh_tensor_numel(src) != 1)
            return luaL_error(L, IDX ": an element takes a number or a 1-element tensor, got %s",
                              luaL_typename(L, 3));
        int64_t zero[MH_MAX_DIMS] = { 0 };
        double v;
        mh_err err;
        if (mh_tensor_get(src, zero, &v, &err)) mh_lt_raise(L, IDX, &err);
        lua_pushnumber(L, v);
        lua_replace(L, 3);
    }
    mh_err err;
    if (mh_tensor_set(t, idx, lua_tonumber(L, 3), &err)) mh_lt_raise(L, IDX, &err);
    return 0;
}

const luaL_Reg mh_lt_view_methods[] = {
    { "view", l_view }, { "reshape", l_reshape }, { "expand", l_expand },
    { "narrow", l_narrow }, { "slice", l_slice }, { "select", l_select },
    { "transpose", l_transpose }, { "t", l_t }, { "permute", l_permute },
    { "squeeze", l_squeeze }, { "unsqueeze", l_unsqueeze },
    { "contiguous", l_contiguous }, { "clone", l_clone },
    { NULL, NULL },
};

const luaL_Reg mh_lt_view_meta[] = {
    { "__index", l_index }, { "__newindex", l_newindex },
    { NULL, NULL },
};
