/* repl.c: the interactive loop of `moonhub` with no arguments.
 * Layer: engine/host. Follows lua.c: a line is first tried as
 * "return <line>", incomplete chunks ("<eof>" syntax errors) read more lines,
 * results go to moonhub.repl's show (pretty tables, tostring for tensors).
 * On a terminal, libedit gives editing and $MOONHUB_HOME/history; from a pipe
 * lines are read plainly with no prompt, so tests can drive it. */
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
#define EOFMARK "<eof>"
#define EOFMARK_LEN (sizeof(EOFMARK) - 1)

enum { LINE_OK, LINE_EOF, LINE_INTR };   /* read_line results */

typedef struct repl {
    int tty;                 /* stdin is a terminal: libedit and prompts */
    char history[4200];      /* history file, "" when none */
    int show_ref;            /* registry ref of moonhub.repl.show or LUA_NOREF */
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

/* A syntax error that ends in "<eof>" means "needs more lines": pops it. */
static int incomplete(lua_State *L, int status)
{
    if (status != LUA_ERRSYNTAX) return 0;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (len < EOFMARK_LEN || strcmp(msg + len - EOFMARK_LEN, EOFMARK) != 0) return 0;
    lua_pop(L, 1);
    return 1;
}

/* Tries "return <line>" so expressions print their values. */
static int try_return(lua_State *L)
{
    const char *line = lua_tostring(L, -1);
    const char *code = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
    lua_remove(L, -2);              /* the "return" string */
    if (status != LUA_OK) lua_pop(L, 1);
    return status;
}

/* Reads and compiles one chunk. Leaves the function on the stack and returns
 * LUA_OK, or leaves an error message and returns its status, or returns
 * -LINE_EOF / -LINE_INTR with nothing pushed. */
static int load_chunk(lua_State *L, repl *r)
{
    int got = read_line(L, r, "> ");
    if (got != LINE_OK) return -got;
    if (try_return(L) == LUA_OK) {
        save_history(r, lua_tostring(L, -2));
        lua_remove(L, -2);          /* the line */
        return LUA_OK;
    }
    for (;;) {                      /* stack: chunk text */
        size_t len;
        const char *text = lua_tolstring(L, -1, &len);
        int status = luaL_loadbuffer(L, text, len, "=stdin");
        if (!incomplete(L, status)) {
            save_history(r, text);
            lua_remove(L, -2);      /* the text; leaves function or message */
            return status;
        }
        got = read_line(L, r, ">> ");
        if (got == LINE_INTR) { lua_pop(L, 1); return -LINE_INTR; }
        if (got == LINE_EOF) {      /* report the unfinished chunk's error */
            status = luaL_loadbuffer(L, text, len, "=stdin");
            lua_remove(L, -2);
            return status;
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

/* ===== printing ===== */

/* Finds moonhub.repl.show once; plain tostring output when it is missing. */
static void load_show(lua_State *L, repl *r)
{
    r->show_ref = LUA_NOREF;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonhub.repl");
    if (mh_host_docall(L, 1, 1) != LUA_OK) {
        mh_host_report(L, LUA_ERRRUN);
        return;
    }
    lua_getfield(L, -1, "show");
    lua_remove(L, -2);
    if (lua_isfunction(L, -1)) r->show_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else lua_pop(L, 1);
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
    if (r->show_ref == LUA_NOREF) {
        show_plain(L, n);
    } else {
        luaL_checkstack(L, 1, "too many results to print");
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->show_ref);
        lua_insert(L, -n - 1);
        if (mh_host_docall(L, n, 0) != LUA_OK)
            mh_host_report(L, LUA_ERRRUN);
    }
    fflush(stdout);
}

/* ===== loop ===== */

static void repl_init(lua_State *L, repl *r)
{
    memset(r, 0, sizeof *r);
    r->tty = isatty(STDIN_FILENO);
    snprintf(r->history, sizeof r->history, "%s/history", mh_host_home());
    if (r->tty) {
        setlocale(LC_CTYPE, "");     /* libedit decodes UTF-8 input */
        rl_readline_name = "moonhub";
        rl_catch_signals = 0;        /* our handler: Ctrl-C means new prompt */
        rl_initialize();
    }
    using_history();
    stifle_history(HISTORY_MAX);
    read_history(r->history);        /* missing on first use: fine */
    if (access(r->history, F_OK) != 0) {
        FILE *f = fopen(r->history, "a");   /* created on first use */
        if (f) fclose(f);
    }
    load_show(L, r);
    if (r->tty) {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "moonhub");
        const char *v = "?";
        if (mh_host_docall(L, 1, 1) == LUA_OK) {
            lua_getfield(L, -1, "version");
            if (lua_isstring(L, -1)) v = lua_tostring(L, -1);
        }
        printf("moonhub %s (%s) - Ctrl-D to quit, Ctrl-C to interrupt\n", v, LUA_RELEASE);
        lua_settop(L, 0);
    }
}

int mh_host_repl(lua_State *L)
{
    repl r;
    repl_init(L, &r);
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
    if (r.show_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, r.show_ref);
    return 0;
}
