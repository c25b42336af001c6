/* main.c: the moonhub host — one Lua 5.4 state, protected main, dispatch.
 * Layer: engine/host (may include lua.h). Minimal bootstrap: `run FILE`
 * and `-e CODE`; the REPL and verbs are added by host work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "../bind/bind.h"

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        fprintf(stderr, "moonhub: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return status;
}

static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

static void preload_modules(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const mh_lua_module *m = mh_lua_modules; m->name; m++) {
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* Finds the folder holding lua/moonhub/init.lua: next to the binary (source
 * tree: build/.. ), or PREFIX/share/moonhub relative to it when installed. */
static void set_paths(lua_State *L)
{
    char exe[4096], cand[4200];
    const char *env = getenv("MOONHUB_LUA_ROOT");
    const char *root = NULL;
    static char found[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (env && *env) {
        root = env;
    } else if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        const char *rel[] = { "", "/..", "/../share/moonhub", NULL };
        for (int i = 0; rel[i]; i++) {
            snprintf(cand, sizeof cand, "%s%s/lua/moonhub/init.lua", exe, rel[i]);
            if (file_exists(cand)) {
                snprintf(found, sizeof found, "%s%s", exe, rel[i]);
                root = found;
                break;
            }
        }
    }
    if (!root) root = MH_PREFIX "/share/moonhub";
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", root, root);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_newtable(L);
    lua_pushstring(L, root);
    lua_setfield(L, -2, "root");
    lua_pushfstring(L, "%s/recipes", root);
    lua_setfield(L, -2, "recipes");
    lua_setfield(L, -2, "moonhub.core.host");
    lua_pop(L, 1);
}

static void create_arg(lua_State *L, char **argv, int argc, int script)
{
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    luaL_openlibs(L);
    preload_modules(L);
    set_paths(L);
    int status;
    if (argc >= 3 && !strcmp(argv[1], "-e")) {
        create_arg(L, argv, argc, 2);
        status = luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)");
        if (status == LUA_OK) status = docall(L, 0, 0);
    } else if (argc >= 3 && !strcmp(argv[1], "run")) {
        create_arg(L, argv, argc, 2);
        int nargs = argc - 3;
        status = luaL_loadfile(L, argv[2]);
        if (status == LUA_OK) {
            for (int i = 3; i < argc; i++) lua_pushstring(L, argv[i]);
            status = docall(L, nargs, 0);
        }
    } else {
        fprintf(stderr, "usage: moonhub run FILE [args] | moonhub -e CODE\n");
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushboolean(L, report(L, status) == LUA_OK);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "moonhub: cannot create Lua state: not enough memory\n");
        return 1;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    return (status == LUA_OK && ok) ? 0 : 1;
}
