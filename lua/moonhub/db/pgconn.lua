-- moonhub.db.pgconn: a PostgreSQL connection with the methods of a
-- moonhub.db handle (exec, query, first, each, insert, transaction...), so
-- the registry's portable SQL runs unchanged. Layer: lua/moonhub (over
-- moonhub.core.pg; moonhub.db.open hands postgres:// URLs here). The SQL is
-- written for SQLite's parameters: `?` (positional) and `:name` (named) are
-- mapped to PostgreSQL's $1..$n, outside quotes and comments, and `::` casts
-- are left alone. Values are always bound, never spliced into the text.
local core = require "moonhub.core.pg"
local sqlite = require "moonhub.core.sqlite"

local M = {}

-- The write lock: every moonhub write transaction first takes the
-- transaction-scoped advisory lock (LOCK_KEY, hash of the schema), as
-- SQLite's BEGIN IMMEDIATE takes the file's write lock, so a read-then-write
-- (the next version number, a job's state check) stays atomic across
-- processes. One hub per schema: hubs in other schemas do not wait.
M.LOCK_KEY = 0x6D6F6F6E          -- "moon" in ASCII
local BEGIN = "BEGIN; SELECT pg_advisory_xact_lock(" .. M.LOCK_KEY
   .. ", hashtext(coalesce(current_schema(), '')))"

local TRANSLATE_MAX = 256      -- translated statements kept per connection

-- ===== parameters =====

-- translate(sql) -> pg_sql, names, count. names[k] is the name of $k for
-- :name parameters (nil for `?`). Raises when a statement mixes both.
function M.translate(sql)
   local out, names, n, byname = {}, {}, 0, {}
   local kind
   local i, len, start = 1, #sql, 1
   local function emit(upto, text)
      out[#out + 1] = sql:sub(start, upto)
      out[#out + 1] = text
   end
   while i <= len do
      local c = sql:sub(i, i)
      if c == "'" or c == '"' then                      -- a string or a quoted name ('' and "" escape)
         local j = i + 1
         while j <= len do
            if sql:sub(j, j) == c then
               if sql:sub(j + 1, j + 1) == c then j = j + 1 else break end
            end
            j = j + 1
         end
         i = j + 1
      elseif c == "-" and sql:sub(i + 1, i + 1) == "-" then
         i = (sql:find("\n", i, true) or len) + 1
      elseif c == "/" and sql:sub(i + 1, i + 1) == "*" then
         local _, e = sql:find("*/", i + 2, true)
         i = (e or len) + 1
      elseif c == "$" and sql:match("^%$[%a_]*%$", i) then   -- $tag$ ... $tag$
         local tag = sql:match("^%$[%a_]*%$", i)
         local _, e = sql:find(tag, i + #tag, true)
         i = (e or len) + 1
      elseif c == ":" and sql:sub(i + 1, i + 1) == ":" then  -- a cast: type name follows
         i = i + 2
      elseif c == "?" or (c == ":" and sql:match("^:[%a_]", i)) then
         local this = c == "?" and "pos" or "named"
         if kind and kind ~= this then
            error("db: a statement uses both ? and :name parameters; pick one (in: " .. sql:sub(1, 160) .. ")", 0)
         end
         kind = this
         if c == "?" then
            n = n + 1
            emit(i - 1, "$" .. n)
            i = i + 1
         else
            local name = sql:match("^:([%a_][%w_]*)", i)
            local k = byname[name]
            if not k then
               n = n + 1
               k, byname[name], names[n] = n, n, name
            end
            emit(i - 1, "$" .. k)
            i = i + 1 + #name
         end
         start = i
      else
         i = i + 1
      end
   end
   out[#out + 1] = sql:sub(start)
   return table.concat(out), kind == "named" and names or nil, n
end

-- ===== the handle =====

local DB = {}
DB.__index = DB

local function check_sql(fname, sql)
   if type(sql) ~= "string" then
      error(string.format("db:%s: SQL must be a string, got a %s", fname, type(sql)), 3)
   end
end

-- the URL as it may be shown: no password
function M.redact(url)
   return (url:gsub("^(%a[%w+.-]*://[^:/@]*):[^@/]*@", "%1:***@"):gsub("([?&]password=)[^&]*", "%1***"))
end

-- open(url, {busy_timeout_ms=, readonly=}) -> db | nil, msg
function M.open(url, opts)
   opts = opts or {}
   local conn, msg = core.connect(url)
   if not conn then
      return nil, "db.open: cannot connect to " .. M.redact(url) .. ": " .. tostring(msg)
   end
   local self = setmetatable({ conn = conn, path = M.redact(url), dialect = "postgres", sql = {},
      nsql = 0, depth = 0, nchanged = 0 }, DB)
   -- SQLite's busy timeout, in PostgreSQL's words: how long a lock (the
   -- write lock above included) may be waited for before the statement fails
   local busy = math.tointeger(opts.busy_timeout_ms or 5000) or 5000
   conn:exec(string.format("SET lock_timeout = %d", busy))
   if opts.readonly then conn:exec("SET default_transaction_read_only = on") end
   return self
end

local function translated(self, sql)
   local t = self.sql[sql]
   if not t then
      if self.nsql >= TRANSLATE_MAX then self.sql, self.nsql = {}, 0 end
      local pg, names, n = M.translate(sql)
      t = { pg = pg, names = names, n = n }
      self.sql[sql] = t
      self.nsql = self.nsql + 1
   end
   return t
end

local null = sqlite.null

local function value(v)
   if v == null then return nil end
   return v
end

-- run(self, fname, sql, ...) -> rows: one statement, parameters bound as
-- moonhub.db binds them (one non-blob table: by name; else by position,
-- and the count, nil included, must match)
local function run(self, fname, sql, ...)
   check_sql(fname, sql)
   local t = translated(self, sql)
   local args, nargs = { ... }, select("#", ...)
   local first = ...
   local vals = {}
   if nargs == 1 and type(first) == "table" and not sqlite.is_blob(first) and not core.is_blob(first) then
      if not t.names and t.n > 0 then
         error(string.format("db:%s: the statement takes ? parameters; a table binds :name ones", fname), 3)
      end
      for k = 1, t.n do
         local v = first[t.names[k]]
         if v == nil then
            error(string.format("db:%s: no value for parameter ':%s' (use db.null for NULL)", fname, t.names[k]), 3)
         end
         vals[k] = value(v)
      end
   else
      if nargs ~= t.n then
         error(string.format("db:%s: the statement takes %d parameter%s, got %d", fname, t.n,
            t.n == 1 and "" or "s", nargs), 3)
      end
      for k = 1, nargs do vals[k] = value(args[k]) end
   end
   local rows, changed = self.conn:run(t.pg, true, t.n, table.unpack(vals, 1, t.n))
   self.nchanged = changed
   return rows
end

-- exec(sql) runs one or more statements; exec(sql, params...) one statement
-- with parameters. Returns the number of rows changed.
function DB:exec(sql, ...)
   if select("#", ...) == 0 then
      check_sql("exec", sql)
      local _, changed = self.conn:exec(sql, true)
      self.nchanged = changed
   else
      run(self, "exec", sql, ...)
   end
   return self.nchanged
end

function DB:query(sql, ...) return run(self, "query", sql, ...) end

function DB:first(sql, ...) return run(self, "first", sql, ...)[1] end

-- each(sql, params...): the rows are read whole, then handed out one by one
function DB:each(sql, ...)
   local rows, i = run(self, "each", sql, ...), 0
   return function()
      i = i + 1
      return rows[i]
   end
end

-- insert(sql, params...) -> the id of the inserted row (RETURNING id is
-- added when the statement has no RETURNING: PostgreSQL has no rowid)
function DB:insert(sql, ...)
   check_sql("insert", sql)
   local ret = sql:lower():find("returning", 1, true) and sql or (sql .. " RETURNING id")
   local row = run(self, "insert", ret, ...)[1]
   if row then self.last = row.id end
   return self.last
end

function DB:changes() return self.nchanged end
function DB:last_id() return self.last end
function DB:in_transaction() return self.conn:transaction_status() ~= "idle" end

local function finish(self, undo, ok, ...)
   if ok then return ... end
   local err = ...
   if self.conn:is_open() and self:in_transaction() then pcall(self.conn.exec, self.conn, undo) end
   error(err, 0)
end

local function run_tx(self, begin, commit, undo, fn, ...)
   -- BEGIN and the lock go as one text: when the lock times out, BEGIN has
   -- already run, and the aborted transaction must not outlive the error
   local bok, berr = pcall(self.conn.exec, self.conn, begin)
   if not bok then return finish(self, undo, false, berr) end
   self.depth = self.depth + 1
   local function done(ok, ...)
      self.depth = self.depth - 1
      if ok then
         -- a failed statement whose error fn caught leaves PostgreSQL's
         -- transaction aborted: COMMIT would quietly roll back
         if self.conn:transaction_status() == "inerror" then
            return finish(self, undo, false, "db:transaction: a statement failed inside the transaction "
               .. "(its error was caught), so PostgreSQL rolled the transaction back")
         end
         local cok, cerr = pcall(self.conn.exec, self.conn, commit)
         if not cok then return finish(self, undo, false, cerr) end
      end
      return finish(self, undo, ok, ...)
   end
   return done(pcall(fn, self, ...))
end

-- transaction(fn, ...) -> fn's results: BEGIN, the write lock, fn(db, ...),
-- COMMIT; on error ROLLBACK and the error again. Nested calls are savepoints.
function DB:transaction(fn, ...)
   if type(fn) ~= "function" then
      error("db:transaction: expected a function, got a " .. type(fn), 2)
   end
   if self:in_transaction() then
      local sp = "mh_sp" .. self.depth
      return run_tx(self, "SAVEPOINT " .. sp, "RELEASE " .. sp,
         "ROLLBACK TO " .. sp .. "; RELEASE " .. sp, fn, ...)
   end
   return run_tx(self, BEGIN, "COMMIT", "ROLLBACK", fn, ...)
end

function DB:close()
   self.sql, self.nsql = {}, 0
   self.conn:close()
end

function DB:is_open() return self.conn:is_open() end

DB.__close = DB.close
DB.__gc = DB.close
function DB.__tostring(self) return "db (" .. self.path .. ")" end

return M
