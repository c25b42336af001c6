/* bind.h: shared helpers of the Lua binding layer and the list of C modules.
 * Layer: engine/bind (may include lua.h and mh/ headers). */
#ifndef MH_BIND_H
#define MH_BIND_H

#include <lua.h>
#include <lauxlib.h>
#include "mh/err.h"

typedef struct mh_lua_module {
    const char *name;          /* "moonhub.core.tensor" */
    lua_CFunction open;
} mh_lua_module;

/* NULL-terminated; engine/bind/modules.c. The host preloads each. */
extern const mh_lua_module mh_lua_modules[];

/* Raises a Lua error "fname: <err->msg>" (never returns). */
int mh_lua_raise(lua_State *L, const char *fname, const mh_err *err);
/* Pushes nil, "<err->msg>" and returns 2 (environmental failures). */
int mh_lua_fail(lua_State *L, const mh_err *err);

/* Registers metatable mt: methods as its __index table, gc as both __gc
 * and __close (one idempotent release). Leaves the stack as it was. */
void mh_lua_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc);

/* ===== tensors across bindings (defined in l_tensor.c) ===== */
struct mh_tensor;
/* Pushes a Lua tensor that takes over the caller's reference to t; when t is
 * NULL raises "fname: err->msg". */
void mh_lua_push_tensor(lua_State *L, struct mh_tensor *t, const char *fname, const mh_err *err);
/* The tensor at idx (borrowed; raises a clear error if it is not one). */
struct mh_tensor *mh_lua_check_tensor(lua_State *L, int idx);
/* The tensor at idx or NULL. */
struct mh_tensor *mh_lua_to_tensor(lua_State *L, int idx);

/* ===== the event loop across bindings (defined in l_http.c) ===== */
struct mh_loop;
struct mh_chan;
/* The loop of this state (moonhub.core.http's), loading that module first. */
struct mh_loop *mh_lua_loop(lua_State *L);
/* Pushes a channel (ch:recv, ch:close...) that takes over the caller's
 * reference to ch, made on mh_lua_loop(L); C threads push into it. */
void mh_lua_push_chan(lua_State *L, struct mh_chan *ch);

#endif
