-- Specs for concurrent writers: two moonhub processes, started together on a
-- fresh home, run many short transactions against the same registry file;
-- neither may fail with "database is locked", and no update may be lost.
-- Layer: tests (spawns the real binary; temp dirs).
local H = require "helpers.host"
local q = H.q

-- Each writer waits at a file barrier so both really overlap, then does N
-- read-modify-write transactions on a shared counter and adds messages and
-- model versions through the registry API.
local WRITER = [[
local who, dir, n = arg[1], arg[2], tonumber(arg[3])
local reg = assert(require("moonhub.registry").open(dir))
local function touch(p) local f = assert(io.open(p, "w")) f:close() end
local function exists(p) local f = io.open(p) if f then f:close() end return f ~= nil end
touch(dir .. "/ready." .. who)
local other = who == "a" and "b" or "a"
local t0 = os.time()
while not exists(dir .. "/ready." .. other) do   -- naps, so a busy host runs the other sooner
   assert(os.time() - t0 < 60, "the other writer never started")
   require("moonhub.db").sleep(2)
end
local d = reg.db
d:exec("CREATE TABLE IF NOT EXISTS counter (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
d:exec("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
d:exec("INSERT OR IGNORE INTO counter VALUES (1, 0)")
local conv = reg:add_conversation { title = who }
for i = 1, n do
   d:transaction(function(x)
      local v = x:first("SELECT v FROM counter WHERE k = 1").v
      x:exec("UPDATE counter SET v = ? WHERE k = 1", v + 1)
      x:insert("INSERT INTO log (who) VALUES (?)", who)
   end)
   reg:add_message(conv, "user", who .. i)
   if i % 20 == 0 then reg:add_model { name = "shared", tag = who, path = "/m/" .. who .. i .. ".gguf" } end
end
reg:close()
]]

describe("concurrent writers #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("two processes never see 'database is locked' and lose no update", function()
      local n = 150
      local script = home .. "/writer.lua"
      H.write(script, WRITER)
      local function cmd(who)
         return string.format("( MOONHUB_HOME=%s %s run %s %s %s %d >%s 2>&1; echo $? >%s )",
            q(home), q(H.exe), q(script), who, q(home), n,
            q(home .. "/out." .. who), q(home .. "/rc." .. who))
      end
      assert(os.execute(cmd("a") .. " & " .. cmd("b") .. " & wait"))
      for _, who in ipairs({ "a", "b" }) do
         local out = H.read(home .. "/out." .. who) or ""
         assert.equal("0\n", H.read(home .. "/rc." .. who), "writer " .. who .. " failed:\n" .. out)
         assert.is_nil(out:find("locked", 1, true), out)
      end
      local reg = assert(require("moonhub.registry").open(home))
      local d = reg.db
      assert.equal(2 * n, d:first("SELECT v FROM counter WHERE k = 1").v)
      assert.equal(2 * n, d:first("SELECT count(*) AS c FROM log").c)
      assert.equal(2 * n, d:first("SELECT count(*) AS c FROM messages").c)
      -- both loops ran at once (the barrier): a writer that lost the lock
      -- waited in sqlite's busy handler instead of failing
      for _, who in ipairs({ "a", "b" }) do
         assert.equal(n, d:first("SELECT count(*) AS c FROM log WHERE who = ?", who).c)
      end
      local versions = assert(reg:versions("shared"))
      assert.equal(2 * (n // 20), #versions)
      assert.truthy(reg:resolve("shared:a"))
      assert.truthy(reg:resolve("shared:b"))
      reg:close()
   end)

   it("several processes opening a fresh home at once all set it up", function()
      for round = 1, 3 do
         local dir = home .. "/r" .. round
         os.execute("mkdir -p " .. q(dir))
         local cmds = {}
         for i = 1, 4 do
            cmds[i] = string.format("( MOONHUB_HOME=%s %s -e %s >%s 2>&1; echo $? >%s )", q(dir), q(H.exe),
               q("local r = assert(require('moonhub.registry').open()); r:add_conversation{}; r:close()"),
               q(dir .. "/out" .. i), q(dir .. "/rc" .. i))
         end
         assert(os.execute(table.concat(cmds, " & ") .. " & wait"))
         for i = 1, 4 do
            assert.equal("0\n", H.read(dir .. "/rc" .. i), H.read(dir .. "/out" .. i))
         end
         local reg = assert(require("moonhub.registry").open(dir))
         assert.equal(4, #reg:conversations())
         reg:close()
      end
   end)
end)
