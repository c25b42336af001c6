/* main.c: the moonhub host — one Lua 5.4 state, protected main, dispatch of
 * the command line (REPL, run FILE, -e CODE, - , --version, VERB).
 * Layer: engine/host (may include lua.h). Verbs are recipes found and run by
 * lua/moonhub/cli.lua; this file only hands them the arguments. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "../bind/bind.h"
#include "mh/cpu.h"
#include "mh/threadpool.h"
#include "host.h"

#define EXIT_USAGE 2

static const char usage[] =
    "usage: moonhub                     start the REPL\n"
    "       moonhub run FILE.lua [args] run a Lua script\n"
    "       moonhub run MODEL [PROMPT]  chat with a model, or answer PROMPT once\n"
    "       moonhub -e CODE [args]      run a string of Lua\n"
    "       moonhub - [args]            run a script read from stdin\n"
    "       moonhub VERB [args]         run a recipe (see 'moonhub help')\n"
    "       moonhub --version\n";

/* ===== before the state: OpenBLAS core type, threads ===== */

/* Debian's OpenBLAS picks its kernels in a load-time constructor and takes
 * AVX-512 Zen 5 for Haswell (half the GEMM speed). setenv() in main is too
 * late, so set OPENBLAS_CORETYPE and exec ourselves again; the variable
 * being set is the loop guard. A failed exec just runs on with AVX2 BLAS. */
static void choose_blas_core(char **argv)
{
    const char *ct = getenv("OPENBLAS_CORETYPE");
    if (ct && *ct) return;
    if (mh_cpu_detect() != MH_CPU_AVX512) return;
    if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) != 0) return;
    execv("/proc/self/exe", argv);
}

static void set_threads(void)
{
    const char *s = getenv("MOONHUB_THREADS");
    if (!s || !*s) return;
    char *end;
    long n = strtol(s, &end, 10);
    if (*end || n < 1 || n > 1024) {
        fprintf(stderr, "moonhub: ignoring MOONHUB_THREADS='%s' (want 1..1024)\n", s);
        return;
    }
    mh_threads_set((int)n);
}

/* ===== the state ===== */

static void preload_modules(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const mh_lua_module *m = mh_lua_modules; m->name; m++) {
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);
}

/* Global `arg` as lua.c makes it: arg[0] = argv[script], the arguments after
 * it at 1.., the interpreter part at negative indices. */
static void create_arg(lua_State *L, char **argv, int argc, int script)
{
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* Calls the chunk on the stack with argv[first..] as its varargs. */
static int call_chunk(lua_State *L, char **argv, int argc, int first)
{
    luaL_checkstack(L, argc, "too many arguments to script");
    for (int i = first; i < argc; i++) lua_pushstring(L, argv[i]);
    return mh_host_docall(L, argc > first ? argc - first : 0, 0);
}

/* run FILE / - (FILE NULL = stdin) / -e CODE: argv[script] is arg[0]. */
static int run_script(lua_State *L, char **argv, int argc, int script, const char *code)
{
    create_arg(L, argv, argc, script);
    int status;
    if (code) status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
    else if (!strcmp(argv[script], "-")) status = luaL_loadfile(L, NULL);
    else status = luaL_loadfile(L, argv[script]);
    if (status == LUA_OK) status = call_chunk(L, argv, argc, script + 1);
    return mh_host_report(L, status) == LUA_OK ? 0 : 1;
}

/* `run X`: a script when X is "-", ends in .lua, or is a file that starts
 * like Lua (bytecode, "#!", "--", or a first word Lua scripts begin with);
 * anything else (a registry name, a .gguf, a folder, hf.co/...) is a model
 * for recipes/run.lua. Reads at most 64 bytes; docs/cli.md states the rule. */
static int is_script(const char *x)
{
    static const char *const first_words[] = { "local", "function", "return", "require",
        "print", "for", "if", "while", "do", "repeat", NULL };
    size_t n = strlen(x);
    if (!strcmp(x, "-") || (n > 4 && !strcmp(x + n - 4, ".lua"))) return 1;
    FILE *f = fopen(x, "rb");
    if (!f) return 0;
    char buf[65] = {0};
    size_t got = fread(buf, 1, 64, f);
    fclose(f);
    if (got == 0) return 0;                   /* a folder reads nothing */
    const char *s = buf;
    if (!strncmp(s, "\xEF\xBB\xBF", 3)) s += 3;     /* UTF-8 BOM */
    if (!strncmp(s, LUA_SIGNATURE, 4) || !strncmp(s, "#!", 2)) return 1;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    if (!strncmp(s, "--", 2)) return 1;
    for (const char *const *w = first_words; *w; w++) {
        size_t k = strlen(*w);
        if (!strncmp(s, *w, k) && s[k] != '_' && !isalnum((unsigned char)s[k])) return 1;
    }
    return 0;
}

/* VERB args: require("moonhub.cli").main(VERB, args...) -> exit code. */
static int run_verb(lua_State *L, char **argv, int argc)
{
    create_arg(L, argv, argc, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonhub.cli");
    int status = mh_host_docall(L, 1, 1);
    if (status != LUA_OK) return mh_host_report(L, status), 1;
    lua_getfield(L, -1, "main");
    lua_remove(L, -2);
    luaL_checkstack(L, argc, "too many arguments to recipe");
    for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
    status = mh_host_docall(L, argc - 1, 1);
    if (status != LUA_OK) return mh_host_report_verb(L, status, argv[1]), 1;
    int isnum;
    lua_Integer code = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    return isnum ? (int)(code & 0xff) : 0;
}

static int dispatch(lua_State *L, char **argv, int argc)
{
    const char *a = argc > 1 ? argv[1] : NULL;
    if (!a) return mh_host_repl(L);
    if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
        printf("moonhub %s (%s)\n", MH_VERSION, LUA_RELEASE);
        return 0;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(a, "-e") || !strcmp(a, "run")) {
        if (argc < 3) {
            fprintf(stderr, "moonhub: '%s' needs an argument — %s\n", a, a[0] == '-'
                    ? "moonhub -e CODE [args]" : "moonhub run FILE.lua [args], or moonhub run MODEL [PROMPT]");
            return EXIT_USAGE;
        }
        if (a[0] == 'r' && !is_script(argv[2])) return run_verb(L, argv, argc);
        return run_script(L, argv, argc, 2, a[0] == '-' ? argv[2] : NULL);
    }
    if (!strcmp(a, "-")) return run_script(L, argv, argc, 1, NULL);
    if (a[0] == '-') {
        fprintf(stderr, "moonhub: unknown option '%s' — see 'moonhub --help'\n", a);
        return EXIT_USAGE;
    }
    return run_verb(L, argv, argc);
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    lua_settop(L, 0);
    luaL_openlibs(L);
    preload_modules(L);
    mh_host_set_paths(L);
    lua_pushinteger(L, dispatch(L, argv, argc));
    return 1;
}

int main(int argc, char **argv)
{
    mh_err cpu_err = {0};
    if (mh_cpu_check_env(&cpu_err) != MH_OK) {
        fprintf(stderr, "moonhub: %s\n", cpu_err.msg);
        return 2;
    }
    choose_blas_core(argv);
    set_threads();
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "moonhub: cannot create Lua state: not enough memory\n");
        return 1;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int code = status == LUA_OK ? (int)lua_tointeger(L, -1) : 1;
    if (status != LUA_OK) mh_host_report(L, status);
    lua_close(L);
    return code;
}
