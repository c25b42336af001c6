/* bind.c: shared helpers of the binding layer (see bind.h). */
#include "bind.h"

int mh_lua_raise(lua_State *L, const char *fname, const mh_err *err)
{
    return luaL_error(L, "%s: %s", fname, err && err->msg[0] ? err->msg : "failed");
}

int mh_lua_fail(lua_State *L, const mh_err *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err && err->msg[0] ? err->msg : "failed");
    return 2;
}
