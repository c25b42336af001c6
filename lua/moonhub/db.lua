-- moonhub.db: a small driver-shaped database interface: SQLite (a path)
-- or PostgreSQL (a postgres:// URL, moonhub.db.pgconn). Layer: lua/moonhub
-- (wraps moonhub.core.sqlite and moonhub.core.pg). Recipes use only this
-- surface; both drivers have the same methods.
--
--   local db = require("moonhub.db").open(path, {busy_timeout_ms = 5000})
--   db:exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
--   local id = db:insert("INSERT INTO t (v) VALUES (?)", "x")
--   local rows = db:query("SELECT * FROM t WHERE id = :id", {id = id})
--   db:transaction(function() ... end)   -- BEGIN IMMEDIATE; rollback on error
local core = require "moonhub.core.sqlite"

local M = {}

M.null = core.null            -- binds as NULL where nil cannot stand (named params)
M.blob = core.blob            -- M.blob(s) binds s as BLOB; plain strings bind as TEXT
M.is_blob = core.is_blob
M.sleep = core.sleep          -- sleep(ms), for retries the busy timeout does not cover

local CACHE_MAX = 64          -- prepared statements kept per connection

local DB = {}
DB.__index = DB

local function check_sql(fname, sql)
   if type(sql) ~= "string" then
      error(string.format("db:%s: SQL must be a string, got a %s", fname, type(sql)), 3)
   end
end

-- is_postgres(target) -> true when target names a PostgreSQL server
function M.is_postgres(target)
   return type(target) == "string" and (target:match("^postgres://") or target:match("^postgresql://")) ~= nil
end

-- open(path_or_url, {readonly=, create=, busy_timeout_ms=}) -> db | nil, msg.
-- Accepts a path, ":memory:", "sqlite:<path>" or "sqlite://<path>", or a
-- "postgres://" / "postgresql://" URL (libpq's syntax: user, host, port,
-- database, ?host=/socket/dir, sslmode...).
function M.open(target, opts)
   if type(target) ~= "string" or target == "" then
      error("db.open: expected a path or URL string, got " .. (target == "" and "an empty string" or type(target)), 2)
   end
   if opts ~= nil and type(opts) ~= "table" then
      error("db.open: opts must be a table, got a " .. type(opts), 2)
   end
   if M.is_postgres(target) then return require("moonhub.db.pgconn").open(target, opts) end
   local scheme, rest = target:match("^(%a[%w+.-]*)://(.*)$")
   if not scheme then scheme, rest = target:match("^(sqlite):(.*)$") end
   if scheme and scheme ~= "sqlite" then
      return nil, "db.open: no driver for '" .. scheme .. "' (sqlite paths, postgres:// or postgresql:// URLs)"
   end
   local path = rest or target
   local conn, msg = core.open(path, opts)
   if not conn then return nil, msg end
   -- dialect: which moonhub.db.<dialect> module holds this database's own SQL
   return setmetatable({ conn = conn, path = path, dialect = "sqlite", cache = {}, ncache = 0, depth = 0 }, DB)
end

-- A cached prepared statement, rewound and bound to the parameters.
-- One table argument that is not a blob binds by name (:name, @name, $name);
-- otherwise positional, and the count (nil included) must match.
local function prepared(self, fname, sql, ...)
   check_sql(fname, sql)
   local st = self.cache[sql]
   if not st then
      if self.ncache >= CACHE_MAX then
         for _, old in pairs(self.cache) do old:finalize() end
         self.cache, self.ncache = {}, 0
      end
      st = self.conn:prepare(sql)
      self.cache[sql] = st
      self.ncache = self.ncache + 1
   end
   st:reset()
   local first = ...
   if select("#", ...) == 1 and type(first) == "table" and not core.is_blob(first) then
      st:clear_bindings()
      st:bind(first)
   else
      st:bind_all(...)
   end
   return st
end

-- exec(sql) runs one or more statements; exec(sql, params...) runs one
-- statement with parameters. Returns the number of rows changed.
function DB:exec(sql, ...)
   if select("#", ...) == 0 then
      check_sql("exec", sql)
      self.conn:exec(sql)
   else
      local st = prepared(self, "exec", sql, ...)
      while st:step() do end
      st:reset()
   end
   return self.conn:changes()
end

-- query(sql, params...) -> array of rows ({column = value}; NULL is absent)
function DB:query(sql, ...)
   local st = prepared(self, "query", sql, ...)
   local rows, n = {}, 0
   while true do
      local row = st:step()
      if not row then break end
      n = n + 1
      rows[n] = row
   end
   st:reset()
   return rows
end

-- first(sql, params...) -> the first row or nil
function DB:first(sql, ...)
   local st = prepared(self, "first", sql, ...)
   local row = st:step()
   st:reset()
   return row
end

-- each(sql, params...): `for row in db:each(sql) do ... end`. The statement
-- is private to the loop and finalized when the loop ends, even on break.
function DB:each(sql, ...)
   check_sql("each", sql)
   local st = self.conn:prepare(sql)
   local first = ...
   if select("#", ...) == 1 and type(first) == "table" and not core.is_blob(first) then
      st:bind(first)
   else
      local ok, err = pcall(st.bind_all, st, ...)
      if not ok then st:finalize(); error(err, 2) end
   end
   return function()
      local row = st:step()
      if not row then st:finalize() end
      return row
   end, nil, nil, st          -- 4th value: to-be-closed by the generic for
end

-- insert(sql, params...) -> the rowid of the inserted row
function DB:insert(sql, ...)
   local st = prepared(self, "insert", sql, ...)
   while st:step() do end
   st:reset()
   return self.conn:last_insert_rowid()
end

function DB:changes() return self.conn:changes() end
function DB:last_id() return self.conn:last_insert_rowid() end
function DB:in_transaction() return self.conn:in_transaction() end

local function finish(self, undo, ok, ...)
   if ok then return ... end
   local err = ...
   -- sqlite may already have rolled back by itself (e.g. disk full); then
   -- there is nothing to undo and the original error is what matters
   if self.conn:in_transaction() then pcall(self.conn.exec, self.conn, undo) end
   error(err, 0)             -- re-raise the original error unchanged
end

local function run(self, begin, commit, undo, fn, ...)
   self.conn:exec(begin)
   self.depth = self.depth + 1
   local function done(ok, ...)
      self.depth = self.depth - 1
      if ok then
         local cok, cerr = pcall(self.conn.exec, self.conn, commit)
         if not cok then return finish(self, undo, false, cerr) end
      end
      return finish(self, undo, ok, ...)
   end
   return done(pcall(fn, self, ...))
end

-- transaction(fn, ...) -> fn's results. Calls fn(db, ...) inside BEGIN
-- IMMEDIATE (the write lock is taken up front, so WAL readers that later
-- write cannot deadlock) and commits; on error rolls back and re-raises.
-- Nested calls become savepoints.
function DB:transaction(fn, ...)
   if type(fn) ~= "function" then
      error("db:transaction: expected a function, got a " .. type(fn), 2)
   end
   if self.conn:in_transaction() then
      local sp = "mh_sp" .. self.depth
      return run(self, "SAVEPOINT " .. sp, "RELEASE " .. sp,
         "ROLLBACK TO " .. sp .. "; RELEASE " .. sp, fn, ...)
   end
   return run(self, "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", fn, ...)
end

-- close(): finalizes cached statements and closes; idempotent.
function DB:close()
   for _, st in pairs(self.cache) do st:finalize() end
   self.cache, self.ncache = {}, 0
   self.conn:close()
end

function DB:is_open() return self.conn:is_open() end

DB.__close = DB.close
DB.__gc = DB.close
function DB.__tostring(self) return "db (" .. self.path .. ")" end

return M
