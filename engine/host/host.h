/* host.h: private interface between the files of the moonhub host.
 * Layer: engine/host (may include lua.h). main.c parses the command line,
 * call.c runs chunks under a traceback and the Ctrl-C hook, paths.c finds
 * the Lua files and $MOONHUB_HOME, repl.c is the interactive loop. */
#ifndef MH_HOST_H
#define MH_HOST_H

#include <lua.h>

/* ===== call.c ===== */
/* Calls the function below narg args with a traceback handler; Ctrl-C while
 * it runs raises "interrupted!" inside Lua (lua.c's laction). */
int mh_host_docall(lua_State *L, int narg, int nres);
/* Prints the error at the top of the stack to stderr ("moonhub: msg") and
 * pops it; returns status unchanged. */
int mh_host_report(lua_State *L, int status);
/* A recipe's error, printed once as "moonhub VERB: message" (see
 * docs/errors.md): a leading "moonhub VERB: ", "moonhub.VERB: " or "VERB: "
 * in the message is dropped; a message without a source position (a user
 * error: error(msg, 0)) prints without the traceback, one with a position
 * (a bug) keeps it. Pops the error; returns status unchanged. */
int mh_host_report_verb(lua_State *L, int status, const char *verb);
/* Lua functions published in moonhub.core.host: rearm_interrupt(), isatty(fd),
 * verb_message(verb, msg). */
int mh_host_l_rearm_interrupt(lua_State *L);
int mh_host_l_isatty(lua_State *L);
int mh_host_l_verb_message(lua_State *L);

/* ===== paths.c ===== */
/* Prepends the moonhub Lua folders to package.path, creates $MOONHUB_HOME
 * (and its recipes/) and fills package.loaded["moonhub.core.host"]. */
void mh_host_set_paths(lua_State *L);
/* $MOONHUB_HOME as set by mh_host_set_paths (static storage). */
const char *mh_host_home(void);

/* ===== repl.c ===== */
/* Runs the read-eval-print loop on stdin until end of input; line editing
 * and history when stdin is a terminal. Returns 0. */
int mh_host_repl(lua_State *L);

#endif
