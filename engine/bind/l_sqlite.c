/* l_sqlite.c: moonhub.core.sqlite — a thin SQLite binding of our own:
 * connections, prepared statements, exact int64, length-aware TEXT and BLOB,
 * busy timeout. Layer: engine/bind (talks to libsqlite3 directly; the
 * registry, jobs and history sit above it through lua/moonhub/db.lua).
 * Why not a Debian package: LuaDBI 0.7.2 truncates integers to 32 bits and
 * blobs at the first NUL, and LuaSQL has no parameter binding at all.
 * Errors of SQL (syntax, constraints, busy) raise with sqlite's message and
 * the statement; a file that cannot be opened returns nil, msg. */
#include <string.h>
#include <sqlite3.h>
#include "bind.h"

#define CONN_MT "moonhub.sqlite.conn"
#define STMT_MT "moonhub.sqlite.stmt"
#define BLOB_MT "moonhub.sqlite.blob"
#define SQL_SHOWN 160            /* bytes of SQL quoted in error messages */
#define DEFAULT_BUSY_MS 5000

typedef struct stmt_box stmt_box;

typedef struct conn_box {
    sqlite3 *db;                 /* NULL once closed */
    stmt_box *stmts;             /* live statements: close finalizes them */
} conn_box;

struct stmt_box {
    sqlite3_stmt *st;            /* NULL once finalized */
    conn_box *conn;              /* NULL once finalized; uservalue 1 keeps it alive */
    stmt_box *prev, *next;
};

static char null_sentinel;       /* its address is sqlite.null */

/* ===== helpers ===== */

/* Pushes "fname: msg (in: SQL...)" for the statement text sql. */
static void push_sql_error(lua_State *L, const char *fname, const char *msg, const char *sql)
{
    if (!sql) { lua_pushfstring(L, "%s: %s", fname, msg); return; }
    size_t n = strlen(sql);
    if (n > SQL_SHOWN)
        lua_pushfstring(L, "%s: %s (in: %s...)", fname, msg, lua_pushlstring(L, sql, SQL_SHOWN));
    else
        lua_pushfstring(L, "%s: %s (in: %s)", fname, msg, sql);
    if (n > SQL_SHOWN) lua_remove(L, -2);
}

static conn_box *check_conn(lua_State *L, const char *fname)
{
    conn_box *c = luaL_checkudata(L, 1, CONN_MT);
    if (!c->db) luaL_error(L, "%s: the connection is closed", fname);
    return c;
}

static stmt_box *check_stmt(lua_State *L, const char *fname)
{
    stmt_box *s = luaL_checkudata(L, 1, STMT_MT);
    if (!s->st) luaL_error(L, "%s: the statement is finalized", fname);
    return s;
}

static void stmt_unlink(stmt_box *s)
{
    if (s->prev) s->prev->next = s->next;
    else if (s->conn) s->conn->stmts = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void stmt_release(stmt_box *s)   /* idempotent */
{
    if (!s->st) return;
    sqlite3_finalize(s->st);
    s->st = NULL;
    stmt_unlink(s);
    s->conn = NULL;
}

/* ===== values ===== */

static int is_blob(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, BLOB_MT);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

/* Binds the Lua value at idx to parameter i; returns sqlite's status, or -1
 * for a Lua type that has no SQL counterpart. */
static int bind_value(lua_State *L, sqlite3_stmt *st, int i, int idx)
{
    size_t n;
    const char *p;
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
        return sqlite3_bind_null(st, i);
    case LUA_TBOOLEAN:           /* SQLite has no boolean: 1 and 0 as its docs say */
        return sqlite3_bind_int64(st, i, lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return sqlite3_bind_int64(st, i, lua_tointeger(L, idx));
        return sqlite3_bind_double(st, i, lua_tonumber(L, idx));
    case LUA_TSTRING:            /* by length, so embedded NULs survive */
        p = lua_tolstring(L, idx, &n);
        return sqlite3_bind_text64(st, i, p, n, SQLITE_TRANSIENT, SQLITE_UTF8);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_sentinel) return sqlite3_bind_null(st, i);
        return -1;
    case LUA_TTABLE:
        if (!is_blob(L, idx)) return -1;
        lua_getfield(L, idx, "data");
        p = lua_tolstring(L, -1, &n);
        int rc = sqlite3_bind_blob64(st, i, p ? p : "", p ? n : 0, SQLITE_TRANSIENT);
        lua_pop(L, 1);
        return rc;
    default:
        return -1;
    }
}

static void bind_checked(lua_State *L, stmt_box *s, int i, int idx, const char *fname)
{
    if (sqlite3_stmt_busy(s->st))   /* sqlite would only say "API misuse" */
        luaL_error(L, "%s: the statement is running; reset() it before binding", fname);
    int rc = bind_value(L, s->st, i, idx);
    if (rc == SQLITE_OK) return;
    if (rc == -1)
        luaL_error(L, "%s: cannot bind a %s to parameter %d (expected nil, boolean, number, "
                   "string, sqlite.null or sqlite.blob)", fname, luaL_typename(L, idx), i);
    if (rc == SQLITE_RANGE)
        luaL_error(L, "%s: parameter %d out of range (the statement takes %d)", fname, i,
                   sqlite3_bind_parameter_count(s->st));
    luaL_error(L, "%s: %s", fname, sqlite3_errstr(rc));
}

static void push_column(lua_State *L, sqlite3_stmt *st, int col)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER: lua_pushinteger(L, sqlite3_column_int64(st, col)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, col)); break;
    case SQLITE_TEXT: {
        const char *p = (const char *)sqlite3_column_text(st, col);
        lua_pushlstring(L, p ? p : "", (size_t)sqlite3_column_bytes(st, col));
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, col);   /* before _bytes, as sqlite says */
        lua_pushlstring(L, p ? p : "", (size_t)sqlite3_column_bytes(st, col));
        break;
    }
    default: lua_pushnil(L); break;
    }
}

/* ===== module functions ===== */

/* open(path, {readonly=, create=, busy_timeout_ms=}) -> conn | nil, msg */
static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int readonly = 0, create = 1;
    lua_Integer busy = DEFAULT_BUSY_MS;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "readonly"); readonly = lua_toboolean(L, -1);
        lua_getfield(L, 2, "create"); if (!lua_isnil(L, -1)) create = lua_toboolean(L, -1);
        lua_getfield(L, 2, "busy_timeout_ms");
        if (!lua_isnil(L, -1)) {
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 0x7fffffff)
                return luaL_error(L, "sqlite.open: busy_timeout_ms must be an integer in 0..2^31-1");
            busy = lua_tointeger(L, -1);
        }
        lua_pop(L, 3);
    }
    conn_box *c = lua_newuserdatauv(L, sizeof *c, 0);   /* box first: no leak on error */
    c->db = NULL;
    c->stmts = NULL;
    luaL_setmetatable(L, CONN_MT);
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (strncmp(path, "file:", 5) == 0) flags |= SQLITE_OPEN_URI;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, (int)busy);
        /* sqlite opens lazily; reading the schema now turns a foreign or
         * corrupt file into an open() failure instead of a later surprise.
         * It only reads: the file is left as it was. */
        rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "sqlite.open: cannot open '%s': %s", path,
                        c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sqlite3_close_v2(c->db);
        c->db = NULL;
        return 2;
    }
    return 1;
}

/* blob(s) -> a value that binds as BLOB (plain strings bind as TEXT) */
static int l_blob(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "data");
    luaL_setmetatable(L, BLOB_MT);
    return 1;
}

/* sleep(ms): sqlite3_sleep, for retry loops where sqlite's busy handler
 * does not apply (switching the journal mode returns SQLITE_BUSY at once) */
static int l_sleep(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_argcheck(L, ms >= 0 && ms <= 60000, 1, "sleep takes 0..60000 ms");
    sqlite3_sleep((int)ms);
    return 0;
}

static int l_is_blob(lua_State *L)
{
    lua_pushboolean(L, is_blob(L, 1));
    return 1;
}

static int blob_tostring(lua_State *L)
{
    lua_getfield(L, 1, "data");
    lua_pushfstring(L, "sqlite.blob (%d bytes)", (int)luaL_len(L, -1));
    return 1;
}

static int blob_len(lua_State *L)
{
    lua_getfield(L, 1, "data");
    lua_pushinteger(L, luaL_len(L, -1));
    return 1;
}

/* ===== connections ===== */

static int conn_close(lua_State *L)   /* __gc, __close and close(): idempotent */
{
    conn_box *c = luaL_checkudata(L, 1, CONN_MT);
    while (c->stmts) stmt_release(c->stmts);
    if (c->db) sqlite3_close_v2(c->db);
    c->db = NULL;
    return 0;
}

static int conn_exec(lua_State *L)
{
    conn_box *c = check_conn(L, "conn:exec");
    const char *sql = luaL_checkstring(L, 2);
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        push_sql_error(L, "conn:exec", msg ? msg : sqlite3_errmsg(c->db), sql);
        sqlite3_free(msg);
        return lua_error(L);
    }
    return 0;
}

/* Non-blank text after the first statement: another statement? */
static int has_second_statement(sqlite3 *db, const char *tail, const char *end)
{
    sqlite3_stmt *extra = NULL;
    if (tail >= end) return 0;
    int rc = sqlite3_prepare_v2(db, tail, (int)(end - tail), &extra, NULL);
    sqlite3_finalize(extra);
    return rc != SQLITE_OK || extra != NULL;   /* comments and ';' prepare to NULL */
}

static int conn_prepare(lua_State *L)
{
    conn_box *c = check_conn(L, "conn:prepare");
    size_t n;
    const char *sql = luaL_checklstring(L, 2, &n);
    if (n > 0x7ffffffe) return luaL_error(L, "conn:prepare: SQL text too long");
    stmt_box *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, STMT_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);            /* the statement keeps its connection alive */
    const char *tail = NULL;
    if (sqlite3_prepare_v2(c->db, sql, (int)n, &s->st, &tail) != SQLITE_OK) {
        push_sql_error(L, "conn:prepare", sqlite3_errmsg(c->db), sql);
        return lua_error(L);
    }
    if (!s->st) return luaL_error(L, "conn:prepare: no statement in the SQL text");
    s->conn = c;                            /* link now: close() finalizes it */
    s->next = c->stmts;
    if (c->stmts) c->stmts->prev = s;
    c->stmts = s;
    if (has_second_statement(c->db, tail, sql + n)) {
        stmt_release(s);
        push_sql_error(L, "conn:prepare", "more than one statement (use conn:exec)", sql);
        return lua_error(L);
    }
    return 1;
}

static int conn_changes(lua_State *L)
{
    lua_pushinteger(L, sqlite3_changes(check_conn(L, "conn:changes")->db));
    return 1;
}

static int conn_last_insert_rowid(lua_State *L)
{
    lua_pushinteger(L, sqlite3_last_insert_rowid(check_conn(L, "conn:last_insert_rowid")->db));
    return 1;
}

static int conn_in_transaction(lua_State *L)
{
    lua_pushboolean(L, !sqlite3_get_autocommit(check_conn(L, "conn:in_transaction")->db));
    return 1;
}

static int conn_busy_timeout(lua_State *L)
{
    conn_box *c = check_conn(L, "conn:busy_timeout");
    lua_Integer ms = luaL_checkinteger(L, 2);
    luaL_argcheck(L, ms >= 0 && ms <= 0x7fffffff, 2, "busy timeout must be in 0..2^31-1 ms");
    sqlite3_busy_timeout(c->db, (int)ms);
    return 0;
}

static int conn_is_open(lua_State *L)
{
    lua_pushboolean(L, ((conn_box *)luaL_checkudata(L, 1, CONN_MT))->db != NULL);
    return 1;
}

static int conn_tostring(lua_State *L)
{
    conn_box *c = luaL_checkudata(L, 1, CONN_MT);
    const char *f = c->db ? sqlite3_db_filename(c->db, "main") : NULL;
    lua_pushfstring(L, "sqlite.conn (%s)", c->db ? (f && *f ? f : ":memory:") : "closed");
    return 1;
}

/* ===== statements ===== */

/* bind(i | ":name", v) or bind({name = v, ...}) */
static int stmt_bind(lua_State *L)
{
    stmt_box *s = check_stmt(L, "stmt:bind");
    if (lua_type(L, 2) == LUA_TTABLE && !is_blob(L, 2)) {
        int n = sqlite3_bind_parameter_count(s->st);
        for (int i = 1; i <= n; i++) {
            const char *name = sqlite3_bind_parameter_name(s->st, i);
            if (!name) return luaL_error(L, "stmt:bind: parameter %d has no name (bind it by index)", i);
            lua_getfield(L, 2, name + 1);   /* skip the ':' '@' or '$' */
            if (lua_isnil(L, -1))
                return luaL_error(L, "stmt:bind: no value for parameter '%s' (use sqlite.null for NULL)", name);
            bind_checked(L, s, i, lua_gettop(L), "stmt:bind");
            lua_pop(L, 1);
        }
        return 0;
    }
    int i;
    if (lua_type(L, 2) == LUA_TSTRING) {
        i = sqlite3_bind_parameter_index(s->st, lua_tostring(L, 2));
        if (i == 0) return luaL_error(L, "stmt:bind: no parameter named '%s'", lua_tostring(L, 2));
    } else {
        lua_Integer k = luaL_checkinteger(L, 2);
        int n = sqlite3_bind_parameter_count(s->st);
        if (k < 1 || k > n)
            return luaL_error(L, "stmt:bind: parameter %d out of range (the statement takes %d)", (int)k, n);
        i = (int)k;
    }
    luaL_checkany(L, 3);
    bind_checked(L, s, i, 3, "stmt:bind");
    return 0;
}

/* bind_all(...): every parameter in order; the count must match exactly,
 * so a trailing nil is a NULL, never a forgotten argument. */
static int stmt_bind_all(lua_State *L)
{
    stmt_box *s = check_stmt(L, "stmt:bind_all");
    int got = lua_gettop(L) - 1, want = sqlite3_bind_parameter_count(s->st);
    if (got != want)
        return luaL_error(L, "stmt:bind_all: the statement takes %d parameter%s, got %d",
                          want, want == 1 ? "" : "s", got);
    sqlite3_clear_bindings(s->st);
    for (int i = 1; i <= got; i++) bind_checked(L, s, i, i + 1, "stmt:bind_all");
    return 0;
}

/* step() -> {column = value, ...} for the next row, or nil when done */
static int stmt_step(lua_State *L)
{
    stmt_box *s = check_stmt(L, "stmt:step");
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_DONE) { lua_pushnil(L); return 1; }
    if (rc != SQLITE_ROW) {
        push_sql_error(L, "stmt:step", sqlite3_errmsg(sqlite3_db_handle(s->st)), sqlite3_sql(s->st));
        sqlite3_reset(s->st);   /* ready for another try; the message is already pushed */
        return lua_error(L);
    }
    int n = sqlite3_column_count(s->st);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        if (sqlite3_column_type(s->st, i) == SQLITE_NULL) continue;   /* NULL -> absent */
        push_column(L, s->st, i);
        lua_setfield(L, -2, sqlite3_column_name(s->st, i));
    }
    return 1;
}

/* step_values() -> v1, v2, ... (NULL as nil, column order) or nothing when done */
static int stmt_step_values(lua_State *L)
{
    stmt_box *s = check_stmt(L, "stmt:step_values");
    int rc = sqlite3_step(s->st);
    if (rc == SQLITE_DONE) return 0;
    if (rc != SQLITE_ROW) {
        push_sql_error(L, "stmt:step_values", sqlite3_errmsg(sqlite3_db_handle(s->st)), sqlite3_sql(s->st));
        sqlite3_reset(s->st);
        return lua_error(L);
    }
    int n = sqlite3_column_count(s->st);
    luaL_checkstack(L, n, "stmt:step_values: too many columns");
    for (int i = 0; i < n; i++) push_column(L, s->st, i);
    return n;
}

static int stmt_reset(lua_State *L)
{
    /* the error of a failed step was already raised; reset only rewinds */
    sqlite3_reset(check_stmt(L, "stmt:reset")->st);
    return 0;
}

static int stmt_clear(lua_State *L)
{
    sqlite3_clear_bindings(check_stmt(L, "stmt:clear_bindings")->st);
    return 0;
}

static int stmt_finalize(lua_State *L)   /* __gc, __close and finalize(): idempotent */
{
    stmt_release(luaL_checkudata(L, 1, STMT_MT));
    return 0;
}

static int stmt_columns(lua_State *L)
{
    stmt_box *s = check_stmt(L, "stmt:columns");
    int n = sqlite3_column_count(s->st);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, sqlite3_column_name(s->st, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int stmt_param_count(lua_State *L)
{
    lua_pushinteger(L, sqlite3_bind_parameter_count(check_stmt(L, "stmt:param_count")->st));
    return 1;
}

static int stmt_sql(lua_State *L)
{
    lua_pushstring(L, sqlite3_sql(check_stmt(L, "stmt:sql")->st));
    return 1;
}

static int stmt_tostring(lua_State *L)
{
    stmt_box *s = luaL_checkudata(L, 1, STMT_MT);
    if (s->st) lua_pushfstring(L, "sqlite.stmt (%s)", sqlite3_sql(s->st));
    else lua_pushliteral(L, "sqlite.stmt (finalized)");
    return 1;
}

/* ===== registration ===== */

static void new_class(lua_State *L, const char *mt, const luaL_Reg *methods, const luaL_Reg *meta)
{
    luaL_newmetatable(L, mt);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);           /* luaL_newlib needs an array, not a pointer */
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_moonhub_core_sqlite(lua_State *L)
{
    static const luaL_Reg conn_methods[] = {
        { "exec", conn_exec }, { "prepare", conn_prepare }, { "changes", conn_changes },
        { "last_insert_rowid", conn_last_insert_rowid }, { "in_transaction", conn_in_transaction },
        { "busy_timeout", conn_busy_timeout }, { "is_open", conn_is_open }, { "close", conn_close },
        { NULL, NULL },
    };
    static const luaL_Reg conn_meta[] = {
        { "__gc", conn_close }, { "__close", conn_close }, { "__tostring", conn_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg stmt_methods[] = {
        { "bind", stmt_bind }, { "bind_all", stmt_bind_all }, { "step", stmt_step },
        { "step_values", stmt_step_values }, { "reset", stmt_reset },
        { "clear_bindings", stmt_clear }, { "finalize", stmt_finalize },
        { "columns", stmt_columns }, { "param_count", stmt_param_count }, { "sql", stmt_sql },
        { NULL, NULL },
    };
    static const luaL_Reg stmt_meta[] = {
        { "__gc", stmt_finalize }, { "__close", stmt_finalize }, { "__tostring", stmt_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg blob_meta[] = {
        { "__tostring", blob_tostring }, { "__len", blob_len }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "open", l_open }, { "blob", l_blob }, { "is_blob", l_is_blob },
        { "sleep", l_sleep }, { NULL, NULL },
    };
    new_class(L, CONN_MT, conn_methods, conn_meta);
    new_class(L, STMT_MT, stmt_methods, stmt_meta);
    luaL_newmetatable(L, BLOB_MT);
    luaL_setfuncs(L, blob_meta, 0);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, &null_sentinel);
    lua_setfield(L, -2, "null");
    lua_pushstring(L, sqlite3_libversion());
    lua_setfield(L, -2, "version");
    return 1;
}
