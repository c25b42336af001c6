/* l_pg.c: moonhub.core.pg — a thin PostgreSQL binding of our own over libpq:
 * connections, statements with bound parameters (never spliced into the
 * SQL), exact int64, bytea both ways, NULL. Layer: engine/bind (talks to
 * libpq directly; lua/moonhub/db/pg_conn.lua gives it moonhub.db's shape).
 * Why our own: the reasons of l_sqlite.c (DESIGN.md section 2). Errors of
 * SQL raise "pg: message [SQLSTATE xxxxx] (in: SQL...)"; connect returns nil, msg. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "bind.h"

#define CONN_MT "moonhub.pg.conn"
#define RES_MT "moonhub.pg.result"
#define BLOB_MT "moonhub.pg.blob"
#define SQLITE_BLOB_MT "moonhub.sqlite.blob"   /* moonhub.db.blob values bind as bytea too */
#define SQL_SHOWN 160
#define MAX_PARAMS 65535                       /* the protocol's limit */

/* type OIDs (catalog/pg_type_d.h is not in libpq-dev; these are fixed) */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700

typedef struct conn_box {
    PGconn *pg;                  /* NULL once closed */
} conn_box;

typedef struct res_box {         /* owns a PGresult while rows are built (a Lua error frees it) */
    PGresult *res;
} res_box;

/* ===== helpers ===== */

static void quiet(void *arg, const char *msg) { (void)arg; (void)msg; }   /* NOTICEs: not ours to print */

static conn_box *check_conn(lua_State *L, const char *fname)
{
    conn_box *c = luaL_checkudata(L, 1, CONN_MT);
    if (!c->pg) luaL_error(L, "%s: the connection is closed", fname);
    return c;
}

static int res_gc(lua_State *L)
{
    res_box *r = luaL_checkudata(L, 1, RES_MT);
    if (r->res) PQclear(r->res);
    r->res = NULL;
    return 0;
}

/* Pushes libpq's message on one line: its trailing newline trimmed and
 * the "\n\t" of continued lines made spaces (our errors are one line). */
static const char *push_trimmed(lua_State *L, const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
    lua_pushlstring(L, msg ? msg : "", n);
    luaL_gsub(L, lua_tostring(L, -1), "\n\t", " ");
    luaL_gsub(L, lua_tostring(L, -1), "\n", " ");
    lua_replace(L, -3);
    lua_pop(L, 1);
    return lua_tostring(L, -1);
}

/* Pushes "pg: message [SQLSTATE x] (detail) (in: SQL...)". A lost
 * connection has no SQLSTATE from the server: 08006 is its class's code. */
static void push_error(lua_State *L, PGconn *pg, const PGresult *res, const char *sql)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "pg: ");
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(pg) == CONNECTION_BAD) {
        luaL_addstring(&b, "the connection to the server was lost: ");
        primary = NULL;
        state = "08006";
    }
    if (primary) luaL_addstring(&b, primary);
    else {
        push_trimmed(L, res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res) : PQerrorMessage(pg));
        luaL_addvalue(&b);
    }
    if (state) { luaL_addstring(&b, " [SQLSTATE "); luaL_addstring(&b, state); luaL_addchar(&b, ']'); }
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (detail) { luaL_addstring(&b, " ("); luaL_addstring(&b, detail); luaL_addchar(&b, ')'); }
    if (sql) {
        size_t n = strlen(sql);
        luaL_addstring(&b, " (in: ");
        luaL_addlstring(&b, sql, n > SQL_SHOWN ? SQL_SHOWN : n);
        luaL_addstring(&b, n > SQL_SHOWN ? "...)" : ")");
    }
    luaL_pushresult(&b);
}

static int is_blob(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, BLOB_MT);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (!same) {
        luaL_getmetatable(L, SQLITE_BLOB_MT);
        same = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return same;
}

/* ===== parameters =====
 * Every value travels as text with type 0 ("unknown": the server infers it
 * from where the parameter stands, as it does for a quoted literal), except
 * blobs, which travel as binary bytea. Numbers print exactly: integers in
 * decimal, floats with 17 significant digits. */

typedef struct params {
    int n;
    const char **values;
    int *lengths, *formats;
    Oid *types;
} params;

/* Converts the Lua value at idx into parameter i (0-based); strings stay on
 * the Lua stack (the caller keeps idx..top alive until the call returns). */
static void set_param(lua_State *L, params *p, int i, int idx, const char *fname)
{
    size_t n;
    const char *s;
    p->types[i] = 0;
    p->formats[i] = 0;
    p->lengths[i] = 0;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        p->values[i] = NULL;
        return;
    case LUA_TBOOLEAN:           /* '1'/'0' read as boolean and as integer alike (SQLite's 1 and 0) */
        p->values[i] = lua_toboolean(L, idx) ? "1" : "0";
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            char buf[40];
            if (isnan(d)) strcpy(buf, "NaN");
            else if (isinf(d)) strcpy(buf, d > 0 ? "Infinity" : "-Infinity");
            else snprintf(buf, sizeof buf, "%.17g", d);
            lua_pushstring(L, buf);
        }
        lua_replace(L, idx);     /* keep the text alive where the number was */
        p->values[i] = lua_tostring(L, idx);
        return;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        if (memchr(s, 0, n))
            luaL_error(L, "%s: parameter %d is a string with a NUL byte, which PostgreSQL text "
                       "cannot hold (bind it as a blob)", fname, i + 1);
        p->values[i] = s;
        return;
    case LUA_TTABLE:
        if (is_blob(L, idx)) {
            lua_getfield(L, idx, "data");
            s = lua_tolstring(L, -1, &n);
            if (!s || n > 0x7fffffff) luaL_error(L, "%s: parameter %d: blob data must be a string under 2 GiB",
                                                 fname, i + 1);
            lua_replace(L, idx);
            p->values[i] = lua_tostring(L, idx);
            p->lengths[i] = (int)n;
            p->formats[i] = 1;
            p->types[i] = OID_BYTEA;
            return;
        }
        /* fall through */
    default:
        luaL_error(L, "%s: cannot bind a %s to parameter %d (expected nil, boolean, number, "
                   "string or a blob)", fname, luaL_typename(L, idx), i + 1);
    }
}

/* ===== results ===== */

static void push_numeric(lua_State *L, const char *s)
{
    /* sum() of bigint is numeric in PostgreSQL: an integral value that fits
     * comes back as a Lua integer, as SQLite's sum() does */
    if (!strpbrk(s, ".eEN")) {
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0') { lua_pushinteger(L, (lua_Integer)v); return; }
    }
    lua_pushnumber(L, strtod(s, NULL));
}

static void push_value(lua_State *L, const PGresult *res, int row, int col, int bool_int)
{
    const char *s = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case OID_BOOL:
        if (bool_int) lua_pushinteger(L, s[0] == 't');
        else lua_pushboolean(L, s[0] == 't');
        break;
    case OID_INT8: case OID_INT4: case OID_INT2: case OID_OID:
        lua_pushinteger(L, (lua_Integer)strtoll(s, NULL, 10));
        break;
    case OID_FLOAT4: case OID_FLOAT8:
        lua_pushnumber(L, strtod(s, NULL));   /* strtod reads Infinity and NaN too */
        break;
    case OID_NUMERIC:
        push_numeric(L, s);
        break;
    case OID_BYTEA: {
        size_t n = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)s, &n);
        if (!raw) luaL_error(L, "pg: out of memory reading a bytea value");
        /* lua_pushlstring raises only when Lua is out of memory; raw would
         * leak then, the lesser evil next to copying every value twice */
        lua_pushlstring(L, (const char *)raw, n);
        PQfreemem(raw);
        break;
    }
    default:                     /* text, json, varchar, dates...: the server's text */
        lua_pushlstring(L, s, (size_t)PQgetlength(res, row, col));
        break;
    }
}

/* Pushes rows (an array of {column = value}, NULL absent) and the count of
 * rows the command changed. The result is owned by the box at box_idx. */
static int push_rows(lua_State *L, res_box *box, int bool_int)
{
    PGresult *res = box->res;
    int nrows = PQntuples(res), ncols = PQnfields(res);
    lua_createtable(L, nrows, 0);
    for (int r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols);
        for (int c = 0; c < ncols; c++) {
            if (PQgetisnull(res, r, c)) continue;
            push_value(L, res, r, c, bool_int);
            lua_setfield(L, -2, PQfname(res, c));
        }
        lua_rawseti(L, -2, r + 1);
    }
    const char *changed = PQcmdTuples(res);
    lua_pushinteger(L, changed && *changed ? (lua_Integer)strtoll(changed, NULL, 10) : 0);
    PQclear(res);
    box->res = NULL;
    return 2;
}

/* Checks res; on failure raises with the server's message (after freeing it). */
static void check_result(lua_State *L, conn_box *c, res_box *box, const char *sql)
{
    ExecStatusType st = box->res ? PQresultStatus(box->res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return;
    push_error(L, c->pg, box->res, sql);
    if (box->res) PQclear(box->res);
    box->res = NULL;
    lua_error(L);
}

static res_box *new_res_box(lua_State *L)
{
    res_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->res = NULL;
    luaL_setmetatable(L, RES_MT);
    return box;
}

/* ===== module functions ===== */

/* connect(conninfo) -> conn | nil, msg. conninfo: a postgresql:// URL or
 * "key=value" words, as libpq reads them. */
static int l_connect(lua_State *L)
{
    const char *info = luaL_checkstring(L, 1);
    conn_box *c = lua_newuserdatauv(L, sizeof *c, 0);   /* box first: no leak on error */
    c->pg = NULL;
    luaL_setmetatable(L, CONN_MT);
    c->pg = PQconnectdb(info);
    if (!c->pg) { lua_pushnil(L); lua_pushliteral(L, "out of memory"); return 2; }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        lua_pushnil(L);
        push_trimmed(L, PQerrorMessage(c->pg));
        PQfinish(c->pg);
        c->pg = NULL;
        return 2;
    }
    PQsetNoticeProcessor(c->pg, quiet, NULL);
    return 1;
}

static int l_blob(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "data");
    luaL_setmetatable(L, BLOB_MT);
    return 1;
}

static int l_is_blob(lua_State *L)
{
    lua_pushboolean(L, is_blob(L, 1));
    return 1;
}

/* ===== connections ===== */

static int conn_close(lua_State *L)   /* __gc, __close and close(): idempotent */
{
    conn_box *c = luaL_checkudata(L, 1, CONN_MT);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    return 0;
}

/* exec(sql) -> rows, changed: one or more statements, no parameters (the
 * simple protocol; the rows are the last statement's) */
static int conn_exec(lua_State *L)
{
    conn_box *c = check_conn(L, "conn:exec");
    const char *sql = luaL_checkstring(L, 2);
    int bool_int = lua_toboolean(L, 3);
    res_box *box = new_res_box(L);
    box->res = PQexec(c->pg, sql);
    check_result(L, c, box, sql);
    return push_rows(L, box, bool_int);
}

/* run(sql, bool_as_int, n, p1..pn) -> rows, changed: one statement with n
 * parameters ($1..$n), bound, never spliced into the text. n is given so
 * that trailing nils count; the server checks it against the statement. */
static int conn_run(lua_State *L)
{
    conn_box *c = check_conn(L, "conn:run");
    const char *sql = luaL_checkstring(L, 2);
    int bool_int = lua_toboolean(L, 3);
    lua_Integer n = luaL_checkinteger(L, 4);
    luaL_argcheck(L, n >= 0 && n <= MAX_PARAMS, 4, "parameter count out of range");
    luaL_checkstack(L, (int)n + 8, "conn:run: too many parameters");
    lua_settop(L, 4 + (int)n);             /* missing values are nils */
    params p = { (int)n, NULL, NULL, NULL, NULL };
    if (n > 0) {                           /* in a userdata: freed by the GC if a bind raises */
        char *mem = lua_newuserdatauv(L, (size_t)n * (sizeof(char *) + 2 * sizeof(int) + sizeof(Oid)), 0);
        p.values = (const char **)mem;
        p.lengths = (int *)(mem + (size_t)n * sizeof(char *));
        p.formats = p.lengths + n;
        p.types = (Oid *)(p.formats + n);
        for (int i = 0; i < n; i++) set_param(L, &p, i, 5 + i, "conn:run");
    }
    res_box *box = new_res_box(L);
    box->res = PQexecParams(c->pg, sql, p.n, p.types, p.values, p.lengths, p.formats, 0);
    check_result(L, c, box, sql);
    return push_rows(L, box, bool_int);
}

/* transaction_status() -> "idle" | "active" | "intrans" | "inerror" | "unknown" */
static int conn_txstatus(lua_State *L)
{
    static const char *const names[] = { "idle", "active", "intrans", "inerror", "unknown" };
    PGTransactionStatusType t = PQtransactionStatus(check_conn(L, "conn:transaction_status")->pg);
    lua_pushstring(L, (unsigned)t < 5 ? names[t] : "unknown");
    return 1;
}

static int conn_is_open(lua_State *L)
{
    conn_box *c = luaL_checkudata(L, 1, CONN_MT);
    lua_pushboolean(L, c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK);
    return 1;
}

static int conn_server_version(lua_State *L)
{
    lua_pushinteger(L, PQserverVersion(check_conn(L, "conn:server_version")->pg));
    return 1;
}

/* backend_pid() -> the server process serving this connection (tests end it
 * with pg_terminate_backend to check how a dropped connection reads) */
static int conn_backend_pid(lua_State *L)
{
    lua_pushinteger(L, PQbackendPID(check_conn(L, "conn:backend_pid")->pg));
    return 1;
}

static int conn_tostring(lua_State *L)
{
    conn_box *c = luaL_checkudata(L, 1, CONN_MT);
    if (c->pg) lua_pushfstring(L, "pg.conn (%s/%s)", PQhost(c->pg), PQdb(c->pg));
    else lua_pushliteral(L, "pg.conn (closed)");
    return 1;
}

/* ===== registration ===== */

int luaopen_moonhub_core_pg(lua_State *L)
{
    static const luaL_Reg conn_methods[] = {
        { "exec", conn_exec }, { "run", conn_run }, { "transaction_status", conn_txstatus },
        { "is_open", conn_is_open }, { "server_version", conn_server_version },
        { "backend_pid", conn_backend_pid }, { "close", conn_close }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "connect", l_connect }, { "blob", l_blob }, { "is_blob", l_is_blob }, { NULL, NULL },
    };
    mh_lua_new_class(L, CONN_MT, conn_methods, conn_close);
    luaL_getmetatable(L, CONN_MT);
    lua_pushcfunction(L, conn_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaL_newmetatable(L, RES_MT);
    lua_pushcfunction(L, res_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, BLOB_MT);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    lua_pushinteger(L, PQlibVersion());
    lua_setfield(L, -2, "libversion");
    return 1;
}
