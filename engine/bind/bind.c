/* bind.c: shared helpers of the binding layer (see bind.h): the one error
 * helper, classes. Layer: engine/bind (lua.h, mh/err.h). */
#include <string.h>
#include "bind.h"

const char *mh_lua_err_text(const char *fname, const mh_err *err)
{
    (void)fname;
    const char *msg = err && err->msg[0] ? err->msg : "failed";
    const char *p = msg;                  /* the C side's own "label: " */
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
           || *p == '_' || *p == '.')
        p++;
    if (p > msg && p[0] == ':' && p[1] == ' ') return p + 2;
    return msg;
}

int mh_lua_raise(lua_State *L, const char *fname, const mh_err *err)
{
    return luaL_error(L, "%s: %s", fname, mh_lua_err_text(fname, err));
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
