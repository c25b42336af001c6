/* l_sys.c: moonhub.core.sys — version, home directory, CPU path and threads,
 * the memory-bandwidth probe.
 * Layer: engine/bind. */
#include <time.h>
#include "bind.h"
#include "mh/cpu.h"
#include "mh/membw.h"
#include "mh/threadpool.h"

static int l_cpu(lua_State *L)
{
    lua_pushstring(L, mh_cpu_level_name(mh_cpu_level_get()));
    lua_pushstring(L, mh_cpu_level_name(mh_cpu_detect()));
    return 2;
}

static int l_threads(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n >= 1 && n <= 1024, 1, "threads must be in 1..1024");
        mh_threads_set((int)n);
    }
    lua_pushinteger(L, mh_threads_get());
    return 1;
}

/* now() -> seconds from a monotonic clock (benchmarks, timeouts); wall time
 * across threads, which os.clock (CPU time of the process) is not */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

/* membw([mib [, rounds]]) -> {bytes_per_s, buffer_bytes, threads, rounds, checksum} | nil, msg */
static int l_membw(lua_State *L)
{
    lua_Integer mib = luaL_optinteger(L, 1, 0), rounds = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, mib >= 0 && mib <= 65536, 1, "buffer size must be 0 (default) or 1..65536 MiB");
    luaL_argcheck(L, rounds >= 0 && rounds <= 1000, 2, "rounds must be in 0..1000");
    mh_membw_result r;
    mh_err err = {0};
    if (mh_membw_probe((size_t)mib << 20, (int)rounds, &r, &err)) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, r.bytes_per_s); lua_setfield(L, -2, "bytes_per_s");
    lua_pushinteger(L, (lua_Integer)r.buffer_bytes); lua_setfield(L, -2, "buffer_bytes");
    lua_pushinteger(L, r.threads); lua_setfield(L, -2, "threads");
    lua_pushinteger(L, r.rounds); lua_setfield(L, -2, "rounds");
    lua_pushinteger(L, (lua_Integer)r.checksum); lua_setfield(L, -2, "checksum");
    return 1;
}

int luaopen_moonhub_core_sys(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "cpu", l_cpu },
        { "threads", l_threads },
        { "now", l_now },
        { "membw", l_membw },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    lua_pushstring(L, MH_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
