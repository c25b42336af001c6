/* repl.c: the interactive loop of `moonhub` with no arguments.
 * Layer: engine/host. Follows lua.c: incomplete chunks read more lines,
 * results go to moonhub.repl's show (pretty tables, tostring for tensors).
 * On a terminal, libedit gives editing, $MOONHUB_HOME/history and Tab
 * completion; from a pipe lines are read plainly with no prompt, so tests
 * can drive it. Compiling (persistent locals, %time), printing and the
 * completion candidates are Lua's (moonhub.repl); C reads and loops. */
#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <editline/readline.h>
#include <lua.h>
#include <lauxlib.h>
#include "host.h"

#define HISTORY_MAX 1000

enum { LINE_OK, LINE_EOF, LINE_INTR };   /* read_line results */

typedef struct repl {
    int tty;                 /* stdin is a terminal: libedit and prompts */
    char history[4200];      /* history file, "" when none */
    int show_ref;            /* registry refs of moonhub.repl.show, .compile */
    int compile_ref;
} repl;

static volatile sig_atomic_t g_prompt_intr;   /* Ctrl-C while reading */

static void on_prompt_sigint(int sig)
{
    (void)sig;
    g_prompt_intr = 1;       /* the read returns EINTR; the loop starts over */
}

/* Ctrl-C at the prompt interrupts the read (no SA_RESTART). */
static void prompt_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* ===== reading lines ===== */

/* Pushes the next line without its newline. */
static int read_line(lua_State *L, repl *r, const char *prompt)
{
    g_prompt_intr = 0;
    if (r->tty) {
        char *s = readline(prompt);
        if (!s) return g_prompt_intr ? LINE_INTR : LINE_EOF;
        lua_pushstring(L, s);
        free(s);
        return g_prompt_intr ? (lua_pop(L, 1), LINE_INTR) : LINE_OK;
    }
    char *buf = NULL;
    size_t cap = 0;
    errno = 0;
    ssize_t n = getline(&buf, &cap, stdin);
    if (n < 0) {
        int intr = g_prompt_intr || errno == EINTR;
        free(buf);
        clearerr(stdin);
        return intr ? LINE_INTR : LINE_EOF;
    }
    if (n > 0 && buf[n - 1] == '\n') buf[--n] = 0;
    if (n > 0 && buf[n - 1] == '\r') buf[--n] = 0;
    lua_pushlstring(L, buf, (size_t)n);
    free(buf);
    return LINE_OK;
}

static void save_history(repl *r, const char *chunk)
{
    if (!*r->history || !*chunk) return;
    add_history(chunk);
    if (write_history(r->history) != 0 && r->tty)
        fprintf(stderr, "moonhub: cannot write history to %s\n", r->history);
}

/* ===== compiling ===== */

/* Calls moonhub.repl.compile on the chunk text at the top (which stays):
 * pushes the function and returns LUA_OK, pushes nothing and returns 1 when
 * the chunk is unfinished, or pushes the message and returns LUA_ERRSYNTAX.
 * A failing compile itself (an error in repl.lua) is reported the same way. */
static int compile(lua_State *L, repl *r)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->compile_ref);
    lua_pushvalue(L, -2);
    if (mh_host_docall(L, 1, 2) != LUA_OK) return LUA_ERRSYNTAX;
    if (lua_isfunction(L, -2)) { lua_pop(L, 1); return LUA_OK; }
    if (lua_isboolean(L, -2)) { lua_pop(L, 2); return 1; }   /* false: more */
    lua_remove(L, -2);
    if (!lua_isstring(L, -1)) { lua_pop(L, 1); lua_pushliteral(L, "cannot compile"); }
    return LUA_ERRSYNTAX;
}

/* Reads and compiles one chunk. Leaves the function on the stack and returns
 * LUA_OK, or leaves an error message and returns its status, or returns
 * -LINE_EOF / -LINE_INTR with nothing pushed. */
static int load_chunk(lua_State *L, repl *r)
{
    int got = read_line(L, r, "> ");
    if (got != LINE_OK) return -got;
    for (;;) {                      /* stack: chunk text */
        int status = compile(L, r);
        if (status != 1) {
            save_history(r, lua_tostring(L, -2));
            lua_remove(L, -2);      /* the text; leaves function or message */
            return status;
        }
        got = read_line(L, r, ">> ");
        if (got == LINE_INTR) { lua_pop(L, 1); return -LINE_INTR; }
        if (got == LINE_EOF) {      /* report the unfinished chunk's error */
            const char *text = lua_tostring(L, -1);
            status = luaL_loadbuffer(L, text, strlen(text), "=stdin");
            lua_remove(L, -2);
            return status == LUA_OK ? (lua_pop(L, 1), -LINE_EOF) : status;
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

/* ===== completion ===== */

static lua_State *g_L;              /* the REPL's state, for libedit's callback */
static int g_complete_ref = LUA_NOREF;

/* Tab: moonhub.repl.complete(word) returns the matches as libedit wants
 * them ({substitution, match...}); C only copies them out. */
static char **complete(const char *text, int start, int end)
{
    (void)start; (void)end;
    rl_attempted_completion_over = 1;   /* no file names as a fallback */
    lua_State *L = g_L;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, g_complete_ref);
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) { lua_settop(L, top); return NULL; }
    lua_Integer n = luaL_len(L, -1);
    char **m = n > 0 ? calloc((size_t)n + 1, sizeof *m) : NULL;
    for (lua_Integer i = 0; m && i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        const char *s = lua_tostring(L, -1);
        m[i] = strdup(s ? s : "");
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return m;
}

/* ===== printing ===== */

/* Takes moonhub.repl's compile, show and complete, and starts its session
 * (help, $MOONHUB_HOME/init.lua, whose error is reported, not fatal).
 * Returns 0, or -1 when the module cannot load: no REPL without it. */
static int load_module(lua_State *L, repl *r)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonhub.repl");
    if (mh_host_docall(L, 1, 1) != LUA_OK) {
        mh_host_report(L, LUA_ERRRUN);
        return -1;
    }
    int *refs[] = { &r->compile_ref, &r->show_ref, &g_complete_ref };
    const char *names[] = { "compile", "show", "complete" };
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, -1, names[i]);
        *refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_getfield(L, -1, "start");
    lua_pushstring(L, mh_host_home());
    if (mh_host_docall(L, 1, 1) != LUA_OK || lua_isstring(L, -1)) {
        fprintf(stderr, "moonhub: init.lua: %s\n", lua_tostring(L, -1));
        fflush(stderr);
    }
    lua_settop(L, 0);
    return 0;
}

static void show_plain(lua_State *L, int n)
{
    int base = lua_gettop(L) - n;
    for (int i = 1; i <= n; i++) {
        const char *s = luaL_tolstring(L, base + i, NULL);
        fputs(s, stdout);
        fputs(i < n ? "\t" : "\n", stdout);
        lua_pop(L, 1);
    }
    lua_settop(L, base);
}

/* Prints and pops the n values at the top of the stack. */
static void show_results(lua_State *L, repl *r, int n)
{
    if (n <= 0) return;
    if (!lua_checkstack(L, 1)) {
        show_plain(L, n);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->show_ref);
        lua_insert(L, -n - 1);
        if (mh_host_docall(L, n, 0) != LUA_OK)
            mh_host_report(L, LUA_ERRRUN);
    }
    fflush(stdout);
}

/* ===== loop ===== */

static int repl_init(lua_State *L, repl *r)
{
    memset(r, 0, sizeof *r);
    g_L = L;
    r->tty = isatty(STDIN_FILENO);
    snprintf(r->history, sizeof r->history, "%s/history", mh_host_home());
    if (r->tty) {
        setlocale(LC_CTYPE, "");     /* libedit decodes UTF-8 input */
        rl_readline_name = "moonhub";
        rl_catch_signals = 0;        /* our handler: Ctrl-C means new prompt */
        rl_initialize();
        rl_attempted_completion_function = complete;
        rl_completion_append_character = '\0';   /* mh.ten -> mh.tensor, no space */
    }
    using_history();
    stifle_history(HISTORY_MAX);
    read_history(r->history);        /* missing on first use: fine */
    if (access(r->history, F_OK) != 0) {
        FILE *f = fopen(r->history, "a");   /* created on first use */
        if (f) fclose(f);
    }
    if (load_module(L, r) != 0) return -1;
    if (r->tty) {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "moonhub");
        const char *v = "?";
        if (mh_host_docall(L, 1, 1) == LUA_OK) {
            lua_getfield(L, -1, "version");
            if (lua_isstring(L, -1)) v = lua_tostring(L, -1);
        }
        printf("moonhub %s (%s) - help() for help, Tab completes, Ctrl-D quits\n", v, LUA_RELEASE);
        lua_settop(L, 0);
    }
    return 0;
}

int mh_host_repl(lua_State *L)
{
    repl r;
    if (repl_init(L, &r) != 0) return 1;
    for (;;) {
        int base = lua_gettop(L);
        prompt_signals();
        int status = load_chunk(L, &r);
        if (status == -LINE_EOF) break;
        if (status == -LINE_INTR) {
            if (r.tty) fputs("\n", stdout);
            continue;
        }
        if (status == LUA_OK) status = mh_host_docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK) show_results(L, &r, lua_gettop(L) - base);
        else mh_host_report(L, status);
        lua_settop(L, base);
    }
    signal(SIGINT, SIG_DFL);
    if (r.tty) fputs("\n", stdout);
    luaL_unref(L, LUA_REGISTRYINDEX, r.show_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, r.compile_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, g_complete_ref);
    g_complete_ref = LUA_NOREF;
    return 0;
}
