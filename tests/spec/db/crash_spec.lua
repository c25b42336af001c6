-- Crash specs: a child moonhub process is killed with SIGKILL while it
-- writes the registry (import --copy, pull), the history, or training
-- checkpoints; the next start must find the database intact (PRAGMA
-- integrity_check and the FTS index), no half-written file registered, and
-- no temp file left. Layer: tests (runs ./moonhub children; no timing asserts).
local H = require "helpers.host"
local data = require "helpers.data"
local db = require "moonhub.db"
local fake = require "helpers.fake_hub"
local fs = require "moonhub.fs"
local q = H.q

-- Starts `moonhub run script` in the background with MOONHUB_HOME = home;
-- returns its pid.
local function spawn(home, script)
   local file = home .. "/child.lua"
   H.write(file, script)
   local p = assert(io.popen(string.format("MOONHUB_HOME=%s %s run %s >%s 2>&1 & echo $!",
      q(home), q(H.exe), q(file), q(home .. "/child.log"))))
   local pid = math.tointeger(tonumber(p:read("l")))
   p:close()
   assert(pid, "no child pid")
   return pid
end

-- Polls until ready() is true (the child made progress) or the child died.
local function await(pid, home, ready)
   for _ = 1, 6000 do
      if ready() then return end
      if not fs.pid_alive(pid) then
         error("child exited early:\n" .. (H.read(home .. "/child.log") or ""), 2)
      end
      db.sleep(10)
   end
   error("child made no progress:\n" .. (H.read(home .. "/child.log") or ""), 2)
end

local function kill9(pid)
   assert(os.execute("kill -9 " .. pid))
   for _ = 1, 1000 do
      -- a zombie still answers kill -0; ps shows it as Z until the shell reaps it
      local p = io.popen("ps -o stat= -p " .. pid)
      local st = p:read("a")
      p:close()
      if st == "" or st:match("^Z") then return end
      db.sleep(10)
   end
   error("child " .. pid .. " did not die")
end

-- every temp name under dir ("<x>.tmp.<pid>.<n>"), as relative paths
local function temps(dir)
   local found = {}
   local function walk(d, rel)
      for _, name in ipairs(fs.list(d) or {}) do
         local st = fs.stat(d .. "/" .. name)
         if fs.temp_pid(name) then found[#found + 1] = rel .. name end
         if st and st.type == "dir" and not st.link then walk(d .. "/" .. name, rel .. name .. "/") end
      end
   end
   walk(dir, "")
   return found
end

local function count(home, sql)
   local conn = db.open(home .. "/moonhub.db", { readonly = true, busy_timeout_ms = 5000 })
   if not conn then return 0 end
   local ok, row = pcall(conn.first, conn, sql)
   conn:close()
   return ok and row and row.n or 0
end

describe("crash during writes #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("kill -9 during registry writes: intact database, only whole files registered, temps removed", function()
      local src = data.need("models/stories260K.gguf", pending)
      if not src then return end
      -- copies the model under new names until killed: each copy is a temp
      -- file renamed into place, then a registry row
      local pid = spawn(home, string.format([[
         local mh = require "moonhub"
         for i = 1, 100000 do
            assert(mh.models.import(%q, { name = "m" .. i, mode = "copy" }))
         end]], src))
      await(pid, home, function() return count(home, "SELECT count(*) AS n FROM versions") >= 3 end)
      kill9(pid)
      local left = #temps(home .. "/models")     -- a copy cut short, in many runs
      -- and, for certain, one more of the dead child's
      H.write(home .. "/models/local/m1/stories260K.gguf.tmp." .. pid .. ".99", "half")
      -- the next start
      local reg = assert(require("moonhub.registry").open(home))
      assert.equal("ok", reg:integrity_check())
      local want = assert(fs.stat(src)).size
      local rows = reg:list()
      assert.is_true(#rows >= 3)
      for _, r in ipairs(rows) do
         local st = fs.stat(r.path)
         assert.is_truthy(st, r.path)
         assert.equal(want, st.size, r.path)     -- no half file behind a registered name
         assert.equal(want, r.size)
      end
      reg:close()
      assert.same({}, temps(home .. "/models"), "temp files left (" .. left .. " before the restart)")
   end)

   it("kill -9 during history writes: intact database and FTS index, whole exchanges only", function()
      local pid = spawn(home, [[
         local h = assert(require("moonhub.history").open())
         local long = string.rep("walrus and seal ", 4000)
         for i = 1, 1000000 do
            h:store({ model = "m", source = "server", messages = { { role = "user", content = "q" .. i .. long } },
               answer = "a" .. i .. long })
         end]])
      await(pid, home, function() return count(home, "SELECT count(*) AS n FROM conversations") >= 5 end)
      kill9(pid)
      local history = require "moonhub.history"
      local h = assert(history.open(home))
      assert.equal("ok", h.reg:integrity_check())
      local list = h:list()
      assert.is_true(#list >= 5)
      for _, c in ipairs(list) do assert.equal(2, c.messages, "conversation " .. c.id) end
      assert.is_true(#h:search("walrus", { limit = 1000 }) >= 5)
      h:store({ model = "m", messages = { { role = "user", content = "after the crash" } }, answer = "ok" })
      h:close()
      -- the last close folds the WAL back: only the database file stays
      local names = fs.list(home)
      table.sort(names)
      assert.same({ "child.log", "child.lua", "moonhub.db", "recipes" }, names)
   end)

   it("kill -9 during training checkpoints: resume works and removes the dead run's temp files", function()
      local ck = home .. "/ck"
      local pid = spawn(home, string.format([[
         local mh = require "moonhub"
         local fs = require "moonhub.fs"
         local path = %q .. "/tiny.gguf"
         assert(mh.create.model({ preset = "tiny", seed = 1, out = path }))
         local m = assert(mh.load(path))
         local tr = mh.train.trainer(m, { method = "full", seed = 1 })
         for i = 1, 100000 do
            assert(tr:checkpoint(%q))
            assert(fs.write(%q .. "/done", tostring(i)))
         end]], home, ck, home))
      await(pid, home, function() return (tonumber(H.read(home .. "/done") or "0") or 0) >= 2 end)
      kill9(pid)
      local left = #temps(ck)
      -- a stale temp of a dead writer, for certain, beside what the kill left
      local stale = ck .. "/model.safetensors.tmp." .. pid .. ".999"
      H.write(stale, "half")
      -- a live writer's temp (ours) must stay
      local live = ck .. "/other.safetensors.tmp." .. fs.pid() .. ".0"
      H.write(live, "busy")
      local tr = assert(require("moonhub.train").resume(ck))
      assert.is_true(tr:info().step >= 0)
      assert.same({ "other.safetensors.tmp." .. fs.pid() .. ".0" }, temps(ck),
         "temp files left (" .. left .. " from the kill)")
      os.remove(live)
      tr:close()
   end)

   it("kill -9 during a pull: nothing registered, the next pull resumes, verifies and leaves no part file", function()
      local src = data.need("models/mh-smol-llama-17m-Q8_0.gguf", pending)
      if not src then return end
      local hubdir = H.tmpdir()
      -- throttled so the child is surely mid-transfer when it is killed
      local srv = fake.start(hubdir, { throttle = 2 * 2^20,
         repos = { ["mh/smol-GGUF"] = { files = { ["smol-Q8_0.gguf"] = src } } } })
      local dest = home .. "/models/mh/smol-GGUF/smol-Q8_0.gguf"
      local p = assert(io.popen(string.format("env MOONHUB_HOME=%s MOONHUB_HF_ENDPOINT=%s HF_HUB_CACHE=%s %s pull "
         .. "mh/smol-GGUF >%s 2>&1 </dev/null & echo $!", H.q(home), H.q(srv.url), H.q(home .. "/hf"), H.q(H.exe),
         H.q(home .. "/child.log"))))
      local pid = math.tointeger(tonumber(p:read("l")))
      p:close()
      await(pid, home, function()
         local st = fs.stat(dest .. ".part")
         return st and st.size > 2^20
      end)
      kill9(pid)
      local reg = assert(require("moonhub.registry").open(home))
      assert.equal("ok", reg:integrity_check())
      assert.same({}, reg:list())                        -- no half model behind a name
      reg:close()
      assert.is_nil(fs.stat(dest))
      local out, err, code = fake.run(home, srv, "pull mh/smol-GGUF", { HF_HUB_CACHE = home .. "/hf" })
      local resumed = false                              -- a Range request from the kept bytes
      for _, r in ipairs(srv.requests()) do
         if r.path:find("smol-Q8_0.gguf", 1, true) and (r.from or 0) > 2^20 then resumed = true end
      end
      srv.stop()
      H.rmdir(hubdir)
      assert.equal(0, code, err)
      assert.matches("pulled", out)
      assert.is_true(resumed)
      local sha = require("moonhub.core.fetch").sha256_file
      assert.equal(sha(src), sha(dest))
      assert.is_nil(fs.stat(dest .. ".part"))
      assert.same({}, temps(home .. "/models"))
   end)
end)
