-- Specs for moonhub.db, the driver-shaped interface over the SQLite binding:
-- query/first/each/insert/exec, named and positional parameters, and
-- transactions (commit, rollback and re-raise, nesting). Layer: tests.
local db = require "moonhub.db"

describe("moonhub.db #unit", function()
   local d
   before_each(function()
      d = assert(db.open(":memory:"))
      d:exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER, data BLOB)")
   end)
   after_each(function() d:close() end)

   it("insert returns the new id; query, first and each read rows", function()
      assert.equal(1, d:insert("INSERT INTO t (name, n) VALUES (?, ?)", "a", 1 << 40))
      assert.equal(2, d:insert("INSERT INTO t (name, n) VALUES (:name, :n)", { name = "b", n = -5 }))
      assert.equal(3, d:insert("INSERT INTO t (name, n, data) VALUES (?, ?, ?)", "c", nil, db.blob("x\0y")))
      local rows = d:query("SELECT id, name, n FROM t ORDER BY id")
      assert.same({ { id = 1, name = "a", n = 1 << 40 }, { id = 2, name = "b", n = -5 }, { id = 3, name = "c" } }, rows)
      assert.same({ name = "b" }, d:first("SELECT name FROM t WHERE n < ?", 0))
      assert.is_nil(d:first("SELECT name FROM t WHERE n > ?", 1 << 50))
      assert.same({}, d:query("SELECT * FROM t WHERE id = ?", 99))
      assert.equal("x\0y", d:first("SELECT data FROM t WHERE id = 3").data)
      local seen = {}
      for row in d:each("SELECT name FROM t WHERE id >= ? ORDER BY id", 2) do seen[#seen + 1] = row.name end
      assert.same({ "b", "c" }, seen)
   end)

   it("each finalizes its statement on break, so the loop can run again", function()
      for _ = 1, 3 do
         local seen = 0
         for row in d:each("SELECT 1 AS x UNION ALL SELECT 2") do
            seen = seen + 1
            assert.equal(1, row.x)
            if seen == 1 then break end
         end
         assert.equal(1, seen)
      end
      -- a write after an abandoned read loop is not blocked by it
      assert.equal(1, d:exec("INSERT INTO t (name) VALUES (?)", "z"))
      assert.has_error(function() d:each("SELECT ?", 1, 2) end)
   end)

   it("exec with parameters returns the changed row count", function()
      d:exec("INSERT INTO t (name, n) VALUES ('a', 1), ('b', 2), ('c', 3)")
      assert.equal(2, d:exec("UPDATE t SET n = n * 10 WHERE n >= ?", 2))
      assert.equal(2, d:changes())
      assert.equal(0, d:exec("DELETE FROM t WHERE name = :name", { name = "nobody" }))
   end)

   it("reuses cached statements correctly across calls", function()
      for i = 1, 200 do d:insert("INSERT INTO t (name, n) VALUES (?, ?)", "k" .. i, i) end
      assert.equal(200, d:first("SELECT count(*) AS c FROM t").c)
      for i = 1, 100 do      -- more distinct statements than the cache holds
         assert.equal(i, d:first("SELECT n FROM t WHERE name = ? AND " .. i .. " = " .. i, "k" .. i).n)
      end
      assert.equal(5, d:first("SELECT n FROM t WHERE name = ?", "k5").n)
   end)

   it("transaction commits and returns fn's results", function()
      local a, b = d:transaction(function(x, extra)
         x:insert("INSERT INTO t (name) VALUES ('a')")
         return extra, 7
      end, "extra")
      assert.equal("extra", a)
      assert.equal(7, b)
      assert.equal(1, d:first("SELECT count(*) AS c FROM t").c)
      assert.is_false(d:in_transaction())
   end)

   it("transaction rolls back on error and re-raises the same error", function()
      local boom = { code = 42 }
      local ok, err = pcall(d.transaction, d, function(x)
         x:insert("INSERT INTO t (name) VALUES ('a')")
         error(boom)
      end)
      assert.is_false(ok)
      assert.equal(boom, err)
      assert.equal(0, d:first("SELECT count(*) AS c FROM t").c)
      ok, err = pcall(d.transaction, d, function(x)
         x:insert("INSERT INTO t (name) VALUES ('a')")
         x:insert("INSERT INTO t (name) VALUES ('a')")   -- UNIQUE violation
      end)
      assert.is_false(ok)
      assert.truthy(err:find("UNIQUE constraint failed: t.name", 1, true), err)
      assert.equal(0, d:first("SELECT count(*) AS c FROM t").c)
      assert.is_false(d:in_transaction())
   end)

   it("nested transactions are savepoints: an inner failure keeps the outer work", function()
      d:transaction(function(x)
         x:insert("INSERT INTO t (name) VALUES ('outer')")
         local ok = pcall(x.transaction, x, function(y)
            y:insert("INSERT INTO t (name) VALUES ('inner')")
            error("inner fails")
         end)
         assert.is_false(ok)
         x:transaction(function(y) y:insert("INSERT INTO t (name) VALUES ('inner2')") end)
      end)
      local names = {}
      for r in d:each("SELECT name FROM t ORDER BY id") do names[#names + 1] = r.name end
      assert.same({ "outer", "inner2" }, names)
   end)

   it("refuses misuse with clear messages", function()
      assert.has_error(function() d:query(42) end, "db:query: SQL must be a string, got a number")
      assert.has_error(function() d:transaction("no") end, "db:transaction: expected a function, got a string")
      assert.has_error(function() db.open("") end, "db.open: expected a path or URL string, got an empty string")
      local x, msg = db.open("mysql://localhost/moonhub")
      assert.is_nil(x)
      assert.truthy(msg:find("no driver for 'mysql'", 1, true), msg)
      local ok, err = pcall(d.query, d, "SELECT ?, ?", 1)
      assert.is_false(ok)
      assert.truthy(err:find("takes 2 parameters, got 1", 1, true), err)
   end)

   it("opens sqlite: URLs and file paths", function()
      local path = os.tmpname()
      local x = assert(db.open("sqlite:" .. path))
      x:exec("CREATE TABLE k (v)")
      x:close()
      x = assert(db.open("sqlite://" .. path, { readonly = true }))
      assert.equal(0, x:first("SELECT count(*) AS c FROM k").c)
      assert.has_error(function() x:exec("INSERT INTO k VALUES (1)") end)
      x:close()
      x:close()
      os.remove(path)
   end)
end)
