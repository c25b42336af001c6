/* paths.c: where moonhub's files are — the Lua tree, the bundled recipes and
 * the user's $MOONHUB_HOME (default ~/.moonhub, created on first use).
 * Layer: engine/host. Publishes them as package.loaded["moonhub.core.host"]
 * (root, recipes, home, user_recipes, history, exe, listdir). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include "host.h"

#define PATH_CAP 4096

static char g_home[PATH_CAP];

const char *mh_host_home(void) { return g_home; }

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* mkdir -p; 0 on success (or already there). */
static int mkdir_p(const char *path)
{
    char buf[PATH_CAP];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* $MOONHUB_HOME, else $HOME/.moonhub, else the passwd entry's home. */
static void find_home(void)
{
    const char *env = getenv("MOONHUB_HOME");
    if (env && *env) {
        snprintf(g_home, sizeof g_home, "%s", env);
    } else {
        const char *h = getenv("HOME");
        if (!h || !*h) {
            struct passwd *pw = getpwuid(getuid());
            h = (pw && pw->pw_dir) ? pw->pw_dir : "/tmp";
        }
        snprintf(g_home, sizeof g_home, "%s/.moonhub", h);
    }
    size_t n = strlen(g_home);
    while (n > 1 && g_home[n - 1] == '/') g_home[--n] = 0;
    char rec[PATH_CAP + 16];
    snprintf(rec, sizeof rec, "%s/recipes", g_home);
    /* A read-only home is not fatal: whatever needs it reports the error. */
    if (mkdir_p(g_home) == 0) mkdir_p(rec);
}

/* The folder holding lua/moonhub/init.lua: $MOONHUB_LUA_ROOT, else next to
 * the binary (source tree: build/..), else PREFIX/share/moonhub relative to
 * it (installed), else the compiled-in prefix. */
static const char *find_root(const char *exe_dir)
{
    static char found[PATH_CAP + 32];
    const char *env = getenv("MOONHUB_LUA_ROOT");
    if (env && *env) return env;
    if (exe_dir) {
        const char *rel[] = { "", "/..", "/../share/moonhub", NULL };
        char cand[PATH_CAP + 64];
        for (int i = 0; rel[i]; i++) {
            snprintf(cand, sizeof cand, "%s%s/lua/moonhub/init.lua", exe_dir, rel[i]);
            if (!file_exists(cand)) continue;
            snprintf(found, sizeof found, "%s%s", exe_dir, rel[i]);
            char real[PATH_MAX];
            if (realpath(found, real)) snprintf(found, sizeof found, "%s", real);
            return found;
        }
    }
    return MH_PREFIX "/share/moonhub";
}

/* host.listdir(path) -> array of entry names in readdir order (no "." or
 * ".."), or nil, msg, errno. Callers sort. The DIR lives in a box with
 * __gc so an out-of-memory error while pushing names cannot leak it. */
static int dirbox_gc(lua_State *L)
{
    DIR **box = lua_touserdata(L, 1);
    if (*box) closedir(*box);
    *box = NULL;
    return 0;
}

static int l_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    if (luaL_newmetatable(L, "moonhub.host.dirbox")) {
        lua_pushcfunction(L, dirbox_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    *box = opendir(path);
    if (!*box) return luaL_fileresult(L, 0, path);
    lua_newtable(L);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(*box)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(*box);
    *box = NULL;
    return 1;
}

static void set_field(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

void mh_host_set_paths(lua_State *L)
{
    char exe[PATH_CAP] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char exe_dir[PATH_CAP] = "";
    if (n > 0) {
        exe[n] = 0;
        memcpy(exe_dir, exe, (size_t)n + 1);
        char *slash = strrchr(exe_dir, '/');
        if (slash) *slash = 0;
    }
    const char *root = find_root(n > 0 ? exe_dir : NULL);
    find_home();

    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", root, root);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_newtable(L);
    set_field(L, "root", root);
    lua_pushfstring(L, "%s/recipes", root);
    lua_setfield(L, -2, "recipes");
    set_field(L, "home", g_home);
    lua_pushfstring(L, "%s/recipes", g_home);
    lua_setfield(L, -2, "user_recipes");
    lua_pushfstring(L, "%s/history", g_home);
    lua_setfield(L, -2, "history");
    set_field(L, "exe", exe);
    lua_pushcfunction(L, l_listdir);
    lua_setfield(L, -2, "listdir");
    lua_pushcfunction(L, mh_host_l_rearm_interrupt);
    lua_setfield(L, -2, "rearm_interrupt");
    lua_pushcfunction(L, mh_host_l_isatty);
    lua_setfield(L, -2, "isatty");
    lua_pushcfunction(L, mh_host_l_verb_message);
    lua_setfield(L, -2, "verb_message");
    lua_setfield(L, -2, "moonhub.core.host");
    lua_pop(L, 1);
}
