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

void mh_lua_new_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, mt);
    lua_newtable(L);                       /* luaL_newlib needs an array, not a pointer */
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}
