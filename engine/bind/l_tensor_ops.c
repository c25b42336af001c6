/* l_tensor_ops.c: moonhub.core.tensor operations — elementwise math with
 * broadcasting (methods, in-place `_` forms, metamethods), comparisons,
 * where, reductions, matmul, softmax and norms, conversion, cat/stack.
 * Layer: engine/bind: checks arguments, calls mh/tensor.h, pushes results.
 * Dims are 1-based; indices returned by max/min/argmax are 1-based too. */
#include <math.h>
#include "l_tensor.h"

static mh_tensor *self(lua_State *L) { return mh_lua_check_tensor(L, 1); }

/* Raises "fname: shapes (a) and (b) cannot broadcast (dim d: x vs y)",
 * d counted 1-based in the broadcast shape; with `into`, the result must
 * also keep a's shape (in-place forms). */
static void check_broadcast(lua_State *L, const mh_tensor *a, const mh_tensor *b, bool into,
                            const char *fname)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    char ba[160], bb[160];
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t x = ia >= 0 ? a->shape[ia] : 1, y = ib >= 0 ? b->shape[ib] : 1;
        if (x != y && x != 1 && y != 1)
            luaL_error(L, "%s: shapes %s and %s cannot broadcast (dim %d: %d vs %d)", fname,
                       mh_lt_shape(a, ba, sizeof ba), mh_lt_shape(b, bb, sizeof bb), i + 1,
                       (int)x, (int)y);
        if (into && (ia < 0 || (x == 1 && y != 1)))
            luaL_error(L, "%s: in place, shape %s cannot take the broadcast with %s", fname,
                       mh_lt_shape(a, ba, sizeof ba), mh_lt_shape(b, bb, sizeof bb));
    }
}

/* ===== binary ops ===== */

#define NO_SCALAR (-1)
typedef struct binop_def {
    const char *name;
    mh_binop op;
    int sop;     /* mh_unop for tensor OP number, or NO_SCALAR */
    int rsop;    /* mh_unop for number OP tensor, or NO_SCALAR */
    bool inplace_form;
} binop_def;

static const binop_def binops[] = {
    { "add", MH_OP_ADD, MH_UOP_ADD_S, MH_UOP_ADD_S, true },
    { "sub", MH_OP_SUB, MH_UOP_SUB_S, MH_UOP_RSUB_S, true },
    { "mul", MH_OP_MUL, MH_UOP_MUL_S, MH_UOP_MUL_S, true },
    { "div", MH_OP_DIV, MH_UOP_DIV_S, MH_UOP_RDIV_S, true },
    { "pow", MH_OP_POW, MH_UOP_POW, NO_SCALAR, true },
    { "maximum", MH_OP_MAX, NO_SCALAR, NO_SCALAR, false },
    { "minimum", MH_OP_MIN, NO_SCALAR, NO_SCALAR, false },
    { "eq", MH_OP_EQ, NO_SCALAR, NO_SCALAR, false },
    { "ne", MH_OP_NE, NO_SCALAR, NO_SCALAR, false },
    { "lt", MH_OP_LT, NO_SCALAR, NO_SCALAR, false },
    { "le", MH_OP_LE, NO_SCALAR, NO_SCALAR, false },
    { "gt", MH_OP_GT, NO_SCALAR, NO_SCALAR, false },
    { "ge", MH_OP_GE, NO_SCALAR, NO_SCALAR, false },
};

/* a OP b where either may be a number (not both); out = a when in place. */
static int do_binary(lua_State *L, const binop_def *def, bool inplace)
{
    char fname[40];
    snprintf(fname, sizeof fname, "tensor.%s%s", def->name, inplace ? "_" : "");
    lua_settop(L, 2);
    bool na = lua_type(L, 1) == LUA_TNUMBER, nb = lua_type(L, 2) == LUA_TNUMBER;
    if (inplace || !na) mh_lua_check_tensor(L, 1);
    if (!nb) luaL_argexpected(L, mh_lua_to_tensor(L, 2) != NULL, 2, "tensor or number");
    mh_err err;
    if (nb && def->sop != NO_SCALAR) {           /* tensor OP number */
        mh_tensor *a = self(L);
        mh_tensor **box = mh_lt_newbox(L);
        mh_lt_set(L, box, mh_tensor_unary((mh_unop)def->sop, a, lua_tonumber(L, 2), 0,
                                          inplace ? a : NULL, &err), fname, &err);
    } else if (na && def->rsop != NO_SCALAR) {   /* number OP tensor */
        mh_tensor *b = mh_lua_check_tensor(L, 2);
        mh_tensor **box = mh_lt_newbox(L);
        mh_lt_set(L, box, mh_tensor_unary((mh_unop)def->rsop, b, lua_tonumber(L, 1), 0,
                                          NULL, &err), fname, &err);
    } else {                                      /* tensors (a number made 0-D) */
        mh_tensor *a = na ? NULL : self(L), *b = nb ? NULL : mh_lua_check_tensor(L, 2);
        if (na) a = mh_lt_operand(L, 1, b->dtype, fname);
        if (nb) b = mh_lt_operand(L, 2, a->dtype, fname);
        check_broadcast(L, a, b, inplace, fname);
        mh_tensor **box = mh_lt_newbox(L);
        mh_lt_set(L, box, mh_tensor_binary(def->op, a, b, inplace ? a : NULL, &err), fname, &err);
    }
    if (inplace) lua_settop(L, 1);               /* the core retained a as out: drop the extra */
    return 1;
}

static int l_binary(lua_State *L)
{
    return do_binary(L, &binops[lua_tointeger(L, lua_upvalueindex(1))],
                     lua_toboolean(L, lua_upvalueindex(2)));
}

/* ===== unary ops (table-driven; p0 and p1 from arguments where they apply) ===== */

typedef struct unop_def { const char *name; mh_unop op; } unop_def;

static const unop_def unops[] = {
    { "neg", MH_UOP_NEG }, { "abs", MH_UOP_ABS }, { "exp", MH_UOP_EXP }, { "log", MH_UOP_LOG },
    { "sqrt", MH_UOP_SQRT }, { "rsqrt", MH_UOP_RSQRT }, { "tanh", MH_UOP_TANH },
    { "sigmoid", MH_UOP_SIGMOID }, { "silu", MH_UOP_SILU }, { "gelu", MH_UOP_GELU },
    { "clamp", MH_UOP_CLAMP },
};

static int l_unary(lua_State *L)
{
    const unop_def *def = &unops[lua_tointeger(L, lua_upvalueindex(1))];
    bool inplace = lua_toboolean(L, lua_upvalueindex(2));
    char fname[40];
    snprintf(fname, sizeof fname, "tensor.%s%s", def->name, inplace ? "_" : "");
    mh_tensor *a = self(L);
    double p0 = 0, p1 = 0;
    if (def->op == MH_UOP_CLAMP) {               /* clamp(lo, hi); nil = unbounded */
        p0 = luaL_optnumber(L, 2, -HUGE_VAL);
        p1 = luaL_optnumber(L, 3, HUGE_VAL);
        if (p0 > p1) luaL_error(L, "%s: lo %f is greater than hi %f", fname, p0, p1);
    }
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_unary(def->op, a, p0, p1, inplace ? a : NULL, &err), fname, &err);
    if (inplace) lua_settop(L, 1);
    return 1;
}

static int l_unm(lua_State *L)
{
    mh_tensor *a = self(L);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_unary(MH_UOP_NEG, a, 0, 0, NULL, &err), "tensor.neg", &err);
    return 1;
}

/* where(cond, a, b): a and b may be numbers */
static int l_where(lua_State *L)
{
    const char *fname = "tensor.where";
    mh_tensor *c = mh_lua_check_tensor(L, 1);
    mh_tensor *a = mh_lua_to_tensor(L, 2), *b = mh_lua_to_tensor(L, 3);
    mh_dtype like = a ? a->dtype : b ? b->dtype : MH_DTYPE_F32;
    a = mh_lt_operand(L, 2, like, fname);
    b = mh_lt_operand(L, 3, like, fname);
    check_broadcast(L, c, a, false, fname);
    check_broadcast(L, c, b, false, fname);
    check_broadcast(L, a, b, false, fname);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_where(c, a, b, &err), fname, &err);
    return 1;
}

/* ===== conversion and filling ===== */

static int l_to(lua_State *L)
{
    mh_tensor *t = self(L);
    luaL_checkany(L, 2);
    mh_dtype dt = mh_lt_check_dtype(L, 2, t->dtype, "tensor.to");
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_to(t, dt, &err), "tensor.to", &err);
    return 1;
}

static int l_copy_(lua_State *L)
{
    mh_tensor *t = self(L), *src = mh_lua_check_tensor(L, 2);
    check_broadcast(L, t, src, true, "tensor.copy_");
    mh_err err;
    if (mh_tensor_copy_(t, src, &err)) mh_lt_raise(L, "tensor.copy_", &err);
    lua_settop(L, 1);
    return 1;
}

static int fill(lua_State *L, double v, const char *fname)
{
    mh_err err;
    if (mh_tensor_fill_(self(L), v, &err)) mh_lt_raise(L, fname, &err);
    lua_settop(L, 1);
    return 1;
}

static int l_fill_(lua_State *L) { self(L); return fill(L, luaL_checknumber(L, 2), "tensor.fill_"); }
static int l_zero_(lua_State *L) { return fill(L, 0, "tensor.zero_"); }

/* cat(list, dim) / stack(list, dim); dim defaults to 1 */
static int join(lua_State *L, bool stack, const char *fname)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);                            /* the scratch array goes above dim */
    int n = (int)luaL_len(L, 1);
    if (n == 0) luaL_error(L, "%s: the list is empty", fname);
    mh_tensor **ts = lua_newuserdatauv(L, n * sizeof *ts, 0);   /* collected with the call */
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        ts[i] = mh_lua_to_tensor(L, -1);
        if (!ts[i]) luaL_error(L, "%s: list entry %d is %s, expected a tensor", fname, i + 1,
                               luaL_typename(L, -1));
        lua_pop(L, 1);                           /* the list keeps it alive */
    }
    int d = lua_isnoneornil(L, 2) ? 0 : mh_lt_check_dim(L, 2, ts[0]->ndim, stack, fname);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, stack ? mh_tensor_stack(ts, n, d, &err) : mh_tensor_cat(ts, n, d, &err),
              fname, &err);
    return 1;
}

static int l_cat(lua_State *L) { return join(L, false, "tensor.cat"); }
static int l_stack(lua_State *L) { return join(L, true, "tensor.stack"); }

/* ===== reductions ===== */

/* Pushes element 0 of a 0-D result as a Lua number (integer for int dtypes). */
static void push_scalar(lua_State *L, const mh_tensor *r)
{
    if (mh_dtype_info(r->dtype)->is_float) lua_pushnumber(L, mh_tensor_get_flat(r, 0));
    else lua_pushinteger(L, mh_tensor_get_flat_i64(r, 0));
}

/* Turns a box of 0-based i64 positions into 1-based ones (core op, in place). */
static void one_based(lua_State *L, mh_tensor *idx, const char *fname)
{
    mh_err err;
    mh_tensor *r = mh_tensor_unary(MH_UOP_ADD_S, idx, 1, 0, idx, &err);
    if (!r) mh_lt_raise(L, fname, &err);
    mh_tensor_release(r);                        /* r is idx, retained as out */
}

/* Runs op over dim (arg `darg`, none = everything) with keepdim at darg+1.
 * Everything reduces to a Lua number; a dim gives a tensor (and for
 * max/min also the 1-based indices). */
static int reduce(lua_State *L, mh_redop op, int darg, double p, const char *fname)
{
    mh_tensor *t = self(L);
    bool all = lua_isnoneornil(L, darg);
    int d = all ? MH_ALL : mh_lt_check_dim(L, darg, t->ndim, 0, fname);
    bool keep = lua_toboolean(L, darg + 1);
    bool want_idx = !all && (op == MH_RED_MAX || op == MH_RED_MIN);
    bool is_arg = op == MH_RED_ARGMAX || op == MH_RED_ARGMIN;
    mh_err err;
    mh_tensor **ibox = want_idx ? mh_lt_newbox(L) : NULL;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_reduce(op, t, d, keep, p, ibox, &err), fname, &err);
    if (all) {
        push_scalar(L, *box);
        if (is_arg) lua_pushinteger(L, lua_tointeger(L, -1) + 1);
        return 1;
    }
    if (is_arg) one_based(L, *box, fname);
    if (!want_idx) return 1;
    if (!*ibox) luaL_error(L, "%s: no indices were returned", fname);
    one_based(L, *ibox, fname);
    lua_insert(L, -2);                           /* values, indices */
    return 2;
}

static int l_sum(lua_State *L) { return reduce(L, MH_RED_SUM, 2, 0, "tensor.sum"); }
static int l_mean(lua_State *L) { return reduce(L, MH_RED_MEAN, 2, 0, "tensor.mean"); }
static int l_prod(lua_State *L) { return reduce(L, MH_RED_PROD, 2, 0, "tensor.prod"); }
static int l_max(lua_State *L) { return reduce(L, MH_RED_MAX, 2, 0, "tensor.max"); }
static int l_min(lua_State *L) { return reduce(L, MH_RED_MIN, 2, 0, "tensor.min"); }
static int l_argmax(lua_State *L) { return reduce(L, MH_RED_ARGMAX, 2, 0, "tensor.argmax"); }
static int l_argmin(lua_State *L) { return reduce(L, MH_RED_ARGMIN, 2, 0, "tensor.argmin"); }

/* var([dim[, keepdim[, correction = 1]]]) */
static int l_var(lua_State *L)
{
    return reduce(L, MH_RED_VAR, 2, luaL_optnumber(L, 4, 1), "tensor.var");
}

/* norm([p = 2[, dim[, keepdim]]]) */
static int l_norm(lua_State *L)
{
    return reduce(L, MH_RED_NORM, 3, luaL_optnumber(L, 2, 2), "tensor.norm");
}

/* ===== linear algebra and NN ===== */

static void check_inner(lua_State *L, const mh_tensor *a, const mh_tensor *b, const char *fname)
{
    char ba[160], bb[160];
    if (a->ndim == 0 || b->ndim == 0)
        luaL_error(L, "%s: needs tensors with at least 1 dim, got %s and %s", fname,
                   mh_lt_shape(a, ba, sizeof ba), mh_lt_shape(b, bb, sizeof bb));
    int64_t k0 = a->shape[a->ndim - 1], k1 = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
    if (k0 != k1)
        luaL_error(L, "%s: shapes %s and %s cannot be multiplied (%d vs %d)", fname,
                   mh_lt_shape(a, ba, sizeof ba), mh_lt_shape(b, bb, sizeof bb), (int)k0, (int)k1);
}

static int matmul(lua_State *L, int need_dims, const char *fname)
{
    mh_tensor *a = mh_lua_check_tensor(L, 1), *b = mh_lua_check_tensor(L, 2);
    char ba[160], bb[160];
    if (need_dims && (a->ndim != need_dims || b->ndim != need_dims))
        luaL_error(L, "%s: needs two %d-D tensors, got %s and %s", fname, need_dims,
                   mh_lt_shape(a, ba, sizeof ba), mh_lt_shape(b, bb, sizeof bb));
    if (need_dims == 3 && a->shape[0] != b->shape[0])
        luaL_error(L, "%s: batch sizes differ in %s and %s", fname,
                   mh_lt_shape(a, ba, sizeof ba), mh_lt_shape(b, bb, sizeof bb));
    check_inner(L, a, b, fname);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_matmul(a, b, &err), fname, &err);
    return 1;
}

static int l_matmul(lua_State *L) { return matmul(L, 0, "tensor.matmul"); }
static int l_mm(lua_State *L) { return matmul(L, 2, "tensor.mm"); }
static int l_bmm(lua_State *L) { return matmul(L, 3, "tensor.bmm"); }

static int softmax(lua_State *L, bool log, const char *fname)
{
    mh_tensor *t = self(L);
    int d = mh_lt_opt_dim(L, 2, t->ndim, t->ndim - 1, fname);
    if (t->ndim == 0) luaL_error(L, "%s: needs at least 1 dim", fname);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_softmax(t, d, log, &err), fname, &err);
    return 1;
}

static int l_softmax(lua_State *L) { return softmax(L, false, "tensor.softmax"); }
static int l_log_softmax(lua_State *L) { return softmax(L, true, "tensor.log_softmax"); }

/* A weight of shape (D) matching x's last dim, or NULL for nil. */
static mh_tensor *opt_weight(lua_State *L, int arg, const mh_tensor *x, const char *fname)
{
    if (lua_isnoneornil(L, arg)) return NULL;
    mh_tensor *w = mh_lua_check_tensor(L, arg);
    char bx[160], bw[160];
    if (x->ndim == 0 || w->ndim != 1 || w->shape[0] != x->shape[x->ndim - 1])
        luaL_error(L, "%s: weight of shape %s does not match the last dim of %s", fname,
                   mh_lt_shape(w, bw, sizeof bw), mh_lt_shape(x, bx, sizeof bx));
    return w;
}

/* rms_norm([w[, eps = 1e-6]]) */
static int l_rms_norm(lua_State *L)
{
    mh_tensor *x = self(L), *w = opt_weight(L, 2, x, "tensor.rms_norm");
    double eps = luaL_optnumber(L, 3, 1e-6);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_rms_norm(x, w, eps, &err), "tensor.rms_norm", &err);
    return 1;
}

/* layer_norm([w[, b[, eps = 1e-5]]]) */
static int l_layer_norm(lua_State *L)
{
    const char *fname = "tensor.layer_norm";
    mh_tensor *x = self(L), *w = opt_weight(L, 2, x, fname), *b = opt_weight(L, 3, x, fname);
    double eps = luaL_optnumber(L, 4, 1e-5);
    mh_err err;
    mh_tensor **box = mh_lt_newbox(L);
    mh_lt_set(L, box, mh_tensor_layer_norm(x, w, b, eps, &err), fname, &err);
    return 1;
}

/* ===== registration ===== */

static const luaL_Reg methods[] = {
    { "to", l_to }, { "copy_", l_copy_ }, { "fill_", l_fill_ }, { "zero_", l_zero_ },
    { "sum", l_sum }, { "mean", l_mean }, { "prod", l_prod }, { "max", l_max }, { "min", l_min },
    { "argmax", l_argmax }, { "argmin", l_argmin }, { "var", l_var }, { "norm", l_norm },
    { "matmul", l_matmul }, { "mm", l_mm }, { "bmm", l_bmm },
    { "softmax", l_softmax }, { "log_softmax", l_log_softmax },
    { "rms_norm", l_rms_norm }, { "layer_norm", l_layer_norm },
    { NULL, NULL },
};

static const luaL_Reg funcs[] = {
    { "cat", l_cat }, { "stack", l_stack }, { "where", l_where },
    { NULL, NULL },
};

/* Sets methods[name] (and name_ when in place) to f with upvalues (i, inplace). */
static void set_op(lua_State *L, int methods_idx, const char *name, lua_CFunction f, int i,
                   bool inplace)
{
    lua_pushinteger(L, i);
    lua_pushboolean(L, inplace);
    lua_pushcclosure(L, f, 2);
    if (inplace) {
        lua_pushfstring(L, "%s_", name);
        lua_insert(L, -2);
        lua_rawset(L, methods_idx);
    } else {
        lua_setfield(L, methods_idx, name);
    }
}

/* metamethod -> binops index */
static const struct { const char *event; int op; } metaops[] = {
    { "__add", 0 }, { "__sub", 1 }, { "__mul", 2 }, { "__div", 3 }, { "__pow", 4 },
};

void mh_lt_open_ops(lua_State *L, int module, int methods_idx, int meta)
{
    int nb = (int)(sizeof binops / sizeof binops[0]), nu = (int)(sizeof unops / sizeof unops[0]);
    for (int i = 0; i < nb; i++) {
        set_op(L, methods_idx, binops[i].name, l_binary, i, false);
        if (binops[i].inplace_form) set_op(L, methods_idx, binops[i].name, l_binary, i, true);
    }
    for (int i = 0; i < nu; i++) {
        set_op(L, methods_idx, unops[i].name, l_unary, i, false);
        set_op(L, methods_idx, unops[i].name, l_unary, i, true);
    }
    for (size_t i = 0; i < sizeof metaops / sizeof metaops[0]; i++) {
        lua_pushinteger(L, metaops[i].op);
        lua_pushboolean(L, false);
        lua_pushcclosure(L, l_binary, 2);
        lua_setfield(L, meta, metaops[i].event);
    }
    lua_pushcfunction(L, l_unm);
    lua_setfield(L, meta, "__unm");
    lua_pushvalue(L, methods_idx);
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, module);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
