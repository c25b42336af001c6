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

#endif
