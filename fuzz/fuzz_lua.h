/* fuzz_lua.h: the libFuzzer driver for targets written in Lua. One Lua state
 * with the project's bindings (as the moonhub host preloads them) runs the
 * harness file FUZZ_HARNESS, which returns function(data). That function
 * classifies what the code under test did and raises only on a finding
 * (an internal error, a wrong answer); the driver then aborts, so libFuzzer
 * saves the input. Sanitizer reports from the C underneath come for free.
 * Layer: fuzz (engine/bind + engine/host; the one place fuzz/ sees lua.h).
 * Include once, from the target's .c, after defining FUZZ_HARNESS (and
 * FUZZ_LUA_CUSTOM_DRIVER when the target brings its own entry points). */
#ifndef MH_FUZZ_LUA_H
#define MH_FUZZ_LUA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "bind.h"
#include "host.h"

static lua_State *g_L;
static int g_fn = LUA_NOREF;

static int fuzz_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Makes the state and keeps what the harness returned in g_fn. */
static void fuzz_lua_init(void)
{
    lua_State *L = g_L = luaL_newstate();
    if (!L) abort();
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const mh_lua_module *m = mh_lua_modules; m->name; m++) {
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);
    mh_host_set_paths(L);          /* MOONHUB_LUA_ROOT: run.sh sets the checkout */
    lua_pushcfunction(L, fuzz_traceback);
    if (luaL_loadfile(L, FUZZ_HARNESS) != LUA_OK || lua_pcall(L, 0, 1, -2) != LUA_OK ||
        lua_isnil(L, -1)) {
        fprintf(stderr, "fuzz: %s failed to load: %s\n", FUZZ_HARNESS,
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        exit(2);
    }
    g_fn = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
}

#ifndef FUZZ_LUA_CUSTOM_DRIVER
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_lua_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = g_L;
    lua_pushcfunction(L, fuzz_traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, g_fn);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
        fprintf(stderr, "fuzz: finding in %s:\n%s\n", FUZZ_HARNESS, lua_tostring(L, -1));
        abort();
    }
    lua_pop(L, 1);
    return 0;
}
#endif

#endif
