/* l_fs.c: moonhub.core.fs — the file-system calls the hub needs (stat with
 * inode identity, mkdirs, links, realpath, free space, isatty, directory
 * listing), atomic whole-file writes (mh/fs.h) and pid checks for stale
 * temp files. Layer: engine/bind; lua/moonhub/fs.lua is its public face.
 * Environmental failures return nil, msg (luaL_fileresult). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "bind.h"
#include "mh/fs.h"

static const char *kind_name(mode_t m)
{
    if (S_ISREG(m)) return "file";
    if (S_ISDIR(m)) return "dir";
    if (S_ISLNK(m)) return "link";
    return "other";
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* stat(path) -> {type = "file"|"dir"|"other", size, mtime, link = bool,
 * dev, ino, nlink} | nil, msg. Follows links; dev + ino name the file itself,
 * whatever path (link, hard link) reached it. */
static int l_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st, lst;
    if (stat(path, &st) != 0) return luaL_fileresult(L, 0, path);
    int is_link = lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, kind_name(st.st_mode));
    lua_setfield(L, -2, "type");
    set_int(L, "size", (lua_Integer)st.st_size);
    set_int(L, "mtime", (lua_Integer)st.st_mtime);
    set_int(L, "dev", (lua_Integer)st.st_dev);
    set_int(L, "ino", (lua_Integer)st.st_ino);
    set_int(L, "nlink", (lua_Integer)st.st_nlink);
    lua_pushboolean(L, is_link);
    lua_setfield(L, -2, "link");
    return 1;
}

/* mkdirs(path) -> true | nil, msg: mkdir -p */
static int l_mkdirs(lua_State *L)
{
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n > 0 && n < 4096, 1, "fs.mkdirs: path must be 1..4095 bytes");
    char buf[4096];
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return luaL_fileresult(L, 0, buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return luaL_fileresult(L, 0, path);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return luaL_fileresult(L, 0, path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_symlink(lua_State *L)
{
    const char *target = luaL_checkstring(L, 1);
    const char *link = luaL_checkstring(L, 2);
    return luaL_fileresult(L, symlink(target, link) == 0, link);
}

/* readlink(path) -> the link's target | nil, msg */
static int l_readlink(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return luaL_fileresult(L, 0, path);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

/* realpath(path) -> the absolute path, links resolved | nil, msg */
static int l_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r) return luaL_fileresult(L, 0, path);
    lua_pushstring(L, r);
    free(r);
    return 1;
}

/* free_bytes(path) -> bytes available to us on path's file system | nil, msg */
static int l_free_bytes(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct statvfs vs;
    if (statvfs(path, &vs) != 0) return luaL_fileresult(L, 0, path);
    lua_pushinteger(L, (lua_Integer)((unsigned long long)vs.f_bavail * vs.f_frsize));
    return 1;
}

static int l_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "fs.isatty: fd must be 0, 1 or 2");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

/* list(dir) -> the names in dir (no "." or ".."), unsorted | nil, msg */
static int l_list(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d) return luaL_fileresult(L, 0, path);
    lua_newtable(L);
    lua_Integer i = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++i);
    }
    closedir(d);
    return 1;
}

/* write_atomic(path, data) -> true | nil, msg */
static int l_write_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    mh_err err = { 0 };
    if (mh_fs_write_atomic(path, data, n, &err)) return mh_lua_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

static int l_pid_alive(lua_State *L)
{
    lua_pushboolean(L, mh_fs_pid_alive((long)luaL_checkinteger(L, 1)));
    return 1;
}

/* temp_pid(name) -> the writer's pid of a "<x>.tmp.<pid>.<n>" name, or nil */
static int l_temp_pid(lua_State *L)
{
    long pid = mh_fs_temp_pid(luaL_checkstring(L, 1));
    if (pid > 0) lua_pushinteger(L, (lua_Integer)pid);
    else lua_pushnil(L);
    return 1;
}

int luaopen_moonhub_core_fs(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "stat", l_stat }, { "mkdirs", l_mkdirs }, { "symlink", l_symlink },
        { "readlink", l_readlink }, { "realpath", l_realpath }, { "free_bytes", l_free_bytes },
        { "isatty", l_isatty }, { "list", l_list }, { "write_atomic", l_write_atomic },
        { "pid", l_pid }, { "pid_alive", l_pid_alive }, { "temp_pid", l_temp_pid },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
