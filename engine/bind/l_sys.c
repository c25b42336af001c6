/* l_sys.c: moonhub.core.sys — version, home directory, CPU path and threads.
 * Layer: engine/bind. */
#include <time.h>
#include "bind.h"
#include "mh/cpu.h"
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

int luaopen_moonhub_core_sys(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "cpu", l_cpu },
        { "threads", l_threads },
        { "now", l_now },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    lua_pushstring(L, MH_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
