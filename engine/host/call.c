/* call.c: protected calls for the host — traceback handler, Ctrl-C hook,
 * error reporting. Layer: engine/host. The SIGINT handler only arms a Lua
 * hook (as lua.c's laction does); the hook raises "interrupted!" at the next
 * Lua instruction, so C code is never cut off midway. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include "host.h"

static lua_State *volatile g_running;   /* state inside mh_host_docall */
static volatile sig_atomic_t g_armed;   /* laction set the hook */

/* ===== Ctrl-C ===== */

static void set_sigint(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static void lstop(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);   /* one shot */
    luaL_error(L, "interrupted!");
}

static void laction(int sig)
{
    (void)sig;
    /* A second Ctrl-C before the hook fires (stuck in C) kills the process. */
    set_sigint(SIG_DFL);
    if (g_running) {
        g_armed = 1;
        lua_sethook(g_running, lstop,
                    LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
    }
}

/* host.rearm_interrupt() -> bool: Lua code that caught "interrupted!" and
 * goes on (moonhub chat) calls it so the next Ctrl-C is caught too, since
 * laction fell back to SIG_DFL. False outside mh_host_docall. */
int mh_host_l_rearm_interrupt(lua_State *L)
{
    int inside = g_running != NULL;
    if (inside) set_sigint(laction);
    lua_pushboolean(L, inside);
    return 1;
}

/* host.isatty(fd) -> bool: whether fd (0 stdin, 1 stdout, 2 stderr) is a terminal */
int mh_host_l_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    lua_pushboolean(L, fd >= 0 && fd <= 1024 && isatty((int)fd));
    return 1;
}

/* ===== calls ===== */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);   /* error object with its own text */
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int mh_host_docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;   /* function index */
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    lua_State *prev = g_running;
    struct sigaction old;
    sigaction(SIGINT, NULL, &old);
    g_running = L;
    set_sigint(laction);
    int status = lua_pcall(L, narg, nres, base);
    sigaction(SIGINT, &old, NULL);   /* back to what the caller had */
    g_running = prev;
    if (g_armed) {                   /* armed too late to fire: must not linger */
        g_armed = 0;
        lua_sethook(L, NULL, 0, 0);
    }
    lua_remove(L, base);
    return status;
}

int mh_host_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        fflush(stdout);              /* keep order when both go to one file */
        fprintf(stderr, "moonhub: %s\n", msg);
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

/* ===== recipe errors: "moonhub VERB: message", once ===== */

/* msg without leading labels that repeat the verb ("moonhub VERB: ",
 * "moonhub.VERB: ", "VERB: ") or name the public Lua function the recipe
 * called ("moonhub.load: "): the verb is what the user called, so it names
 * the error, as a binding's name replaces the C label. */
static const char *skip_verb_labels(const char *msg, const char *verb)
{
    size_t nv = strlen(verb);
    for (;;) {
        const char *p = msg;
        if (!strncmp(p, "moonhub.", 8)) {
            const char *q = p + 8;
            while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_')
                q++;
            if (q > p + 8 && q[0] == ':' && q[1] == ' ') { msg = q + 2; continue; }
        }
        if (!strncmp(p, "moonhub ", 8)) p += 8;
        if (strncmp(p, verb, nv) || p[nv] != ':' || p[nv + 1] != ' ') return msg;
        msg = p + nv + 2;
    }
}

/* host.verb_message(verb, msg) -> msg as `moonhub VERB: ` will follow it:
 * the rule above, for recipes that print their errors themselves (cli.fail) */
int mh_host_l_verb_message(lua_State *L)
{
    const char *verb = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    lua_pushstring(L, skip_verb_labels(msg, verb));
    return 1;
}

/* True when msg opens with a source position ("file.lua:12: "). */
static int has_position(const char *msg)
{
    const char *c = strchr(msg, ':');
    const char *nl = strchr(msg, '\n');
    if (!c || (nl && nl < c) || c == msg) return 0;
    const char *d = c + 1;
    while (*d >= '0' && *d <= '9') d++;
    return d > c + 1 && d[0] == ':' && d[1] == ' ';
}

int mh_host_report_verb(lua_State *L, int status, const char *verb)
{
    if (status == LUA_OK) return status;
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "(error object is not a string)";
    msg = skip_verb_labels(msg, verb);
    const char *tb = strstr(msg, "\nstack traceback:");
    int len = tb && !has_position(msg) ? (int)(tb - msg) : (int)strlen(msg);
    fflush(stdout);
    fprintf(stderr, "moonhub %s: %.*s\n", verb, len, msg);
    fflush(stderr);
    lua_pop(L, 1);
    return status;
}
