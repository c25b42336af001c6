/* l_tensor.h: helpers shared by the l_tensor*.c files of moonhub.core.tensor
 * (not a public header). Layer: engine/bind. The Lua API is 1-based for
 * dims and indices; these helpers translate to the 0-based C core and raise
 * errors that speak the Lua convention. */
#ifndef MH_L_TENSOR_H
#define MH_L_TENSOR_H

#include "bind.h"
#include "mh/tensor.h"

#define MH_TENSOR_MT "moonhub.tensor"

/* Raises "fname: msg" from a core error, dropping the core's own "fn: "
 * prefix so the message names the Lua function only. */
int mh_lt_raise(lua_State *L, const char *fname, const mh_err *err);
/* Tensor boxes: push the empty box first, then create the tensor and store
 * it with mh_lt_set, which raises (the empty box is collected) when t is
 * NULL. So a tensor never exists without an owner on the Lua side. */
mh_tensor **mh_lt_newbox(lua_State *L);
void mh_lt_set(lua_State *L, mh_tensor **box, mh_tensor *t, const char *fname, const mh_err *err);
/* "(2,3)" for t, in buf. */
const char *mh_lt_shape(const mh_tensor *t, char *buf, size_t n);

/* A dtype name at arg ("f32"...), or dflt when the arg is none/nil. */
mh_dtype mh_lt_check_dtype(lua_State *L, int arg, mh_dtype dflt, const char *fname);
/* Options table at arg (or none): its `dtype` field, else dflt. */
mh_dtype mh_lt_opt_dtype(lua_State *L, int arg, mh_dtype dflt, const char *fname);
/* A shape given as a table {2,3} at arg or as integers arg, arg+1, ...
 * Fills shape/ndim; returns the index of the first argument after it.
 * allow_neg lets -1 through (view/reshape/expand). */
int mh_lt_check_shape(lua_State *L, int arg, int64_t *shape, int *ndim, bool allow_neg,
                      const char *fname);
/* A 1-based (or negative, from the end) dim at arg for an ndim-D tensor;
 * returns it 0-based. extra = 1 allows one past the end (unsqueeze). */
int mh_lt_check_dim(lua_State *L, int arg, int ndim, int extra, const char *fname);
/* Same with a default (0-based) when the arg is none/nil. */
int mh_lt_opt_dim(lua_State *L, int arg, int ndim, int dflt, const char *fname);
/* Converts a 1-based (or negative) index i for a dim of size n (dim is
 * 0-based, shown 1-based) to 0-based, raising when out of range. */
int64_t mh_lt_index(lua_State *L, lua_Integer i, int dim, int64_t n, const char *fname);
/* A tensor operand (borrowed): the tensor at arg, or a number, which is
 * replaced in its stack slot by a 0-dim tensor of dtype `like`. */
mh_tensor *mh_lt_operand(lua_State *L, int arg, mh_dtype like, const char *fname);

/* ===== registration: l_tensor.c's luaopen gathers these lists ===== */
extern const luaL_Reg mh_lt_view_methods[];  /* l_tensor_view.c */
extern const luaL_Reg mh_lt_view_meta[];     /* __index, __newindex (upvalue: methods) */
/* l_tensor_ops.c: adds its methods, module functions (cat, stack, where)
 * and arithmetic metamethods to the tables at these stack indices. */
void mh_lt_open_ops(lua_State *L, int module, int methods, int meta);

#endif
