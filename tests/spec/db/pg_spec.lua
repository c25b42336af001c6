-- Specs for the PostgreSQL binding (moonhub.core.pg) through moonhub.db:
-- exact int64 and floats, bytea with every byte value, NULL, unicode,
-- parameter mapping (? and :name to $n, quotes and :: casts left alone),
-- parameter count errors, SQLSTATE in errors, a dropped connection, and
-- transactions. Layer: tests (integration: a real server; under make test-pg
-- the one of $MOONHUB_TEST_DB, else a throwaway one of helpers.pg).
local db = require "moonhub.db"
local pgconn = require "moonhub.db.pgconn"
local core = require "moonhub.core.pg"
local pg = require "helpers.pg"

describe("moonhub.db on PostgreSQL #integration", function()
   local cluster, url, d
   setup(function()
      url = os.getenv("MOONHUB_TEST_DB")
      if not url then
         local why
         cluster, why = pg.start()
         url = cluster and cluster.url
         if not url then print("pg_spec: " .. tostring(why)) end
      end
   end)
   teardown(function() if cluster then cluster.stop() end end)
   before_each(function()
      if not url then return end
      d = assert(db.open(url))
      d:exec("CREATE TEMP TABLE t (id BIGSERIAL PRIMARY KEY, i BIGINT, f DOUBLE PRECISION, s TEXT, b BYTEA)")
   end)
   after_each(function() if d then d:close() end end)

   local function need()
      if url then return true end
      local data = require "helpers.data"
      data.skip("no PostgreSQL server binaries (apt-get install postgresql)", pending)
      return false
   end

   it("round-trips int64 extremes and floats exactly", function()
      if not need() then return end
      local ints = { math.mininteger, math.maxinteger, 0, -1, (1 << 53) + 1 }
      for _, v in ipairs(ints) do d:insert("INSERT INTO t (i) VALUES (?)", v) end
      local got = {}
      for _, r in ipairs(d:query("SELECT i FROM t ORDER BY id")) do got[#got + 1] = r.i end
      assert.same(ints, got)
      for _, v in ipairs(got) do assert.equal("integer", math.type(v)) end
      assert.equal(math.maxinteger, d:first("SELECT ?::bigint AS v", math.maxinteger).v)
      local floats = { 0.1, 1 / 3, 1e-300, -2.5e300, 1 / 0, -1 / 0 }
      for _, v in ipairs(floats) do
         local r = d:first("SELECT ?::double precision AS v", v)
         assert.equal(v, r.v)
         assert.equal("float", math.type(r.v))
      end
      local nan = d:first("SELECT ?::double precision AS v", 0 / 0).v
      assert.is_true(nan ~= nan)
      -- sum() of bigint is numeric in PostgreSQL: it reads back as an integer, as in SQLite
      d:exec("DELETE FROM t")
      d:exec("INSERT INTO t (i) VALUES (?), (?)", 1 << 40, 3)
      local s = d:first("SELECT sum(i) AS s, count(*) AS n, avg(i) AS a FROM t")
      assert.same({ (1 << 40) + 3, "integer", 2 }, { s.s, math.type(s.s), s.n })
      assert.equal("float", math.type(s.a))
   end)

   it("round-trips bytea with NUL and every byte value, NULL and unicode text", function()
      if not need() then return end
      local all = {}
      for c = 0, 255 do all[#all + 1] = string.char(c) end
      all = table.concat(all) .. "\0\0"
      local id = d:insert("INSERT INTO t (b, s) VALUES (?, ?)", db.blob(all), "héllo — 日本語 🎉")
      local r = d:first("SELECT b, s, i FROM t WHERE id = ?", id)
      assert.equal(#all, #r.b)
      assert.is_true(r.b == all)
      assert.equal("héllo — 日本語 🎉", r.s)
      assert.is_nil(r.i)                                  -- NULL is absent, as in SQLite
      id = d:insert("INSERT INTO t (b, s, i) VALUES (:b, :s, :i)", { b = core.blob(""), s = db.null, i = db.null })
      r = d:first("SELECT b, s, i FROM t WHERE id = :id", { id = id })
      assert.same({ b = "" }, r)
      id = d:insert("INSERT INTO t (s, i) VALUES (?, ?)", nil, nil)   -- trailing nils are NULLs, counted
      assert.same({}, d:first("SELECT s, i FROM t WHERE id = ?", id))
      assert.same({ yes = 1, no = 0 }, d:first("SELECT 1 = 1 AS yes, 1 = 2 AS no"))   -- booleans as SQLite's 1/0
   end)

   it("maps ? and :name to $n outside quotes, comments and :: casts", function()
      local sql, names, n = pgconn.translate("SELECT '?', \"a?\", x::text, ? -- what?\n FROM t WHERE y = ?")
      assert.same({ "SELECT '?', \"a?\", x::text, $1 -- what?\n FROM t WHERE y = $2", 2 }, { sql, n })
      assert.is_nil(names)
      sql, names, n = pgconn.translate("SELECT :a, ':b', :b, :a /* :c */")
      assert.same({ "SELECT $1, ':b', $2, $1 /* :c */", { "a", "b" }, 2 }, { sql, names, n })
      assert.has_error(function() pgconn.translate("SELECT ?, :a") end)
      if not need() then return end
      assert.same({ a = "x", b = 2, c = ":a" }, d:first("SELECT :a AS a, :b::int AS b, ':a' AS c", { a = "x", b = 2 }))
   end)

   it("refuses wrong parameter counts, unbindable values and text with NUL, in one line", function()
      if not need() then return end
      local ok, err = pcall(d.query, d, "SELECT ?, ?", 1)
      assert.is_false(ok)
      assert.matches("db:query: the statement takes 2 parameters, got 1", err)
      assert.has_error(function() d:first("SELECT ?", 1, 2) end)
      err = select(2, pcall(d.first, d, "SELECT ?", 1, 2))
      assert.matches("takes 1 parameter, got 2", err)
      err = select(2, pcall(d.query, d, "SELECT :a, :b", { a = 1 }))
      assert.matches("no value for parameter ':b' %(use db.null for NULL%)", err)
      err = select(2, pcall(d.query, d, "SELECT ?", print))
      assert.matches("cannot bind a function to parameter 1", err)
      err = select(2, pcall(d.query, d, "SELECT ?", "a\0b"))
      assert.matches("parameter 1 is a string with a NUL byte", err)
      assert.equal(1, d:first("SELECT 1 AS one").one)      -- the connection is still good
      -- many parameters: the binding makes room on the Lua stack for them
      local ones = {}
      for i = 1, 5000 do ones[i] = 1 end
      local sql = "SELECT sum(x) AS n FROM (VALUES " .. string.rep("(?::int), ", 4999) .. "(?::int)) AS v(x)"
      assert.equal(5000, d:first(sql, table.unpack(ones)).n)
   end)

   it("names the SQLSTATE and the statement in SQL errors", function()
      if not need() then return end
      local ok, err = pcall(d.query, d, "SELEC 1")
      assert.is_false(ok)
      assert.equal('pg: syntax error at or near "SELEC" [SQLSTATE 42601] (in: SELEC 1)', err)
      err = select(2, pcall(d.exec, d, "INSERT INTO t (i) VALUES (?)", "twelve"))
      assert.matches('invalid input syntax for type bigint: "twelve" %[SQLSTATE 22P02%]', err)
      err = select(2, pcall(d.query, d, "SELECT * FROM nowhere"))
      assert.matches('relation "nowhere" does not exist %[SQLSTATE 42P01%]', err)
   end)

   it("says the connection was lost when the server drops it", function()
      if not need() then return end
      local other = assert(db.open(url))
      local pid = d:first("SELECT pg_backend_pid() AS p").p
      assert.equal(1, other:first("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ?", pid).n)
      other:query("SELECT pg_terminate_backend(?)", pid)
      other:close()
      local ok, err = pcall(d.query, d, "SELECT 1")
      assert.is_false(ok)
      assert.matches("^pg: the connection to the server was lost: .- %[SQLSTATE 08006%] %(in: SELECT 1%)$", err)
      assert.is_false(d:is_open())
      d:close()                                            -- and closing it is fine
      d = nil
   end)

   it("returns nil and a message without the password when it cannot connect", function()
      local x, msg = db.open("postgresql://someone:hunter2@127.0.0.1:1/nothing?connect_timeout=2")
      assert.is_nil(x)
      assert.matches("^db.open: cannot connect to postgresql://someone:%*%*%*@127.0.0.1:1/nothing", msg)
      assert.is_nil(msg:find("hunter2", 1, true))
      assert.is_nil(msg:find("\n", 1, true))
   end)

   it("commits, rolls back on error, nests savepoints and refuses a swallowed failure", function()
      if not need() then return end
      assert.equal(7, d:transaction(function(x)
         x:exec("INSERT INTO t (i) VALUES (1)")
         return 7
      end))
      assert.has_error(function()
         d:transaction(function(x)
            x:exec("INSERT INTO t (i) VALUES (2)")
            error("boom", 0)
         end)
      end, "boom")
      d:transaction(function(x)
         x:exec("INSERT INTO t (i) VALUES (3)")
         pcall(x.transaction, x, function(y)
            y:exec("INSERT INTO t (i) VALUES (4)")
            error("inner")
         end)
         x:exec("INSERT INTO t (i) VALUES (5)")
      end)
      local got = {}
      for r in d:each("SELECT i FROM t ORDER BY i") do got[#got + 1] = r.i end
      assert.same({ 1, 3, 5 }, got)
      -- a statement that fails with its error caught (no savepoint) aborts
      -- PostgreSQL's transaction: committing it would silently roll back
      local ok, err = pcall(d.transaction, d, function(x)
         x:exec("INSERT INTO t (i) VALUES (6)")
         pcall(x.exec, x, "INSERT INTO t (i) VALUES ('bad')")
      end)
      assert.is_false(ok)
      assert.matches("a statement failed inside the transaction", err)
      assert.is_false(d:in_transaction())
      assert.equal(3, d:first("SELECT count(*) AS n FROM t").n)
   end)

   it("serializes write transactions across connections, as SQLite's write lock does", function()
      if not need() then return end
      local other = assert(db.open(url, { busy_timeout_ms = 200 }))
      d:exec("CREATE TABLE IF NOT EXISTS pg_spec_lock (n BIGINT)")
      local ok, err
      d:transaction(function()
         -- the other connection cannot start a write transaction meanwhile
         ok, err = pcall(other.transaction, other, function(o) o:exec("INSERT INTO pg_spec_lock VALUES (1)") end)
      end)
      assert.is_false(ok)
      assert.matches("lock timeout %[SQLSTATE 55P03%]", err)
      other:transaction(function(o) o:exec("INSERT INTO pg_spec_lock VALUES (2)") end)   -- free again
      assert.equal(1, d:first("SELECT count(*) AS n FROM pg_spec_lock").n)
      d:exec("DROP TABLE pg_spec_lock")
      other:close()
   end)
end)
