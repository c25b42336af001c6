-- Specs for job leases across workers (moonhub.jobs, moonhub.jobs.lease) on
-- the registry alone: owner ids, a holder on another host judged by its
-- lease only, a lost worker's job resumed by the next claim (at most
-- MAX_RESUMES times), fencing of a holder that lost its lease, migration 7,
-- and two processes claiming from one queue at once. No model needed.
-- Layer: tests.
local H = require "helpers.host"
local jobs = require "moonhub.jobs"
local lease = require "moonhub.jobs.lease"
local registry = require "moonhub.registry"
local mdb = require "moonhub.db"
local sqlite_it = require("helpers.pg").sqlite_it(it)   -- SQLite-file specs: not under test-pg

local statuses = require("spec.jobs.common").statuses

describe("moonhub.jobs leases #unit", function()
   local home, reg
   before_each(function()
      home = H.tmpdir()
      reg = assert(registry.open(home))
   end)
   after_each(function()
      if reg then reg:close() end
      H.rmdir(home)
   end)

   local function add() return reg:add_run({ kind = "train", model = "m", dataset = "d", total_steps = 3 }) end

   it("names a worker host:pid:random, unique per process", function()
      local a, b = lease.owner_id(42), lease.owner_id(42)
      assert.matches("^.+:42:%x%x%x%x%x%x%x%x$", a)
      assert.are_not.equal(a, b)
      assert.same({ lease.host(), 42 }, { lease.parse(a) })
   end)

   it("judges a holder on another host by its lease alone, then resumes its job in another worker", function()
      local a = add()
      -- pid 1 lives here, but on another host a pid says nothing: only the lease counts
      local far = "otherhost.example:1:00c0ffee"
      local j = jobs.claim(reg, { pid = 1, owner = far, lease_s = 30 })
      assert.equal(a, j.id)
      assert.equal(far, j.lease_owner)
      assert.same({}, jobs.reap(reg), "a live lease is kept")
      assert.is_true(jobs.renew(reg, a, far, 30))
      assert.is_nil(jobs.claim(reg, { max_active = 2 }), "a held job is not taken")
      local t0 = os.time()
      reg.db:exec("UPDATE runs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ?", t0 - 1, t0 - 31, a)
      assert.same({ a }, jobs.reap(reg))
      local r = reg:run(a)
      assert.equal("interrupted", r.status)
      assert.equal(1, r.auto_resume)
      local why = reg:run_events(a)[3].reason
      assert.matches("^no heartbeat from worker 1 for %d+ s %(the lease of otherhost%.example:1:00c0ffee expired%) "
         .. "%(at step 0%)$", why)
      -- 31 s, or more when reap's clock read came in a later second than t0
      local secs = tonumber(why:match("for (%d+) s"))
      assert.is_true(secs >= 31 and secs <= 31 + os.time() - t0, why)
      local me = lease.owner_id()
      local k = jobs.claim(reg, { owner = me })
      assert.equal(a, k.id, "the next claim resumes it")
      assert.equal(me, k.lease_owner)
      assert.equal(1, k.resumes)
      assert.matches("^resumed by worker .+ from the last checkpoint %(resume 1 of 3%)$", reg:run_events(a)[4].reason)
      -- fencing: the old holder's heartbeat is refused, the new one's kept
      assert.is_false(jobs.renew(reg, a, far, 30))
      assert.is_true(jobs.renew(reg, a, me, 30))
      assert.equal("queued running interrupted running", statuses(reg, a))
   end)

   it("resumes a lost worker's job at most MAX_RESUMES times; a user's interruption waits for retry", function()
      local a = add()
      local dead = string.format("%s:%d:0000abcd", lease.host(), 2^22 + 12345)     -- above pid_max: gone
      for _ = 1, jobs.MAX_RESUMES + 1 do
         assert.equal(a, jobs.claim(reg, { owner = dead, pid = 2^22 + 12345 }).id)
         assert.same({ a }, jobs.reap(reg))
      end
      assert.is_nil(jobs.claim(reg, {}), "past MAX_RESUMES it waits for 'jobs retry'")
      assert.matches("^worker %d+ is gone", reg:run_events(a)[3].reason)
      assert.is_true(jobs.retry(reg, a))
      assert.equal(0, reg:run(a).resumes)
      local b = add()
      assert.equal(a, jobs.claim(reg, { max_active = 2 }).id)
      assert.equal(b, jobs.claim(reg, { max_active = 2 }).id)
      -- Ctrl-C in `moonhub train`: the runner's own interruption, not a lost worker
      assert.is_true(reg:transition(b, { running = true }, "interrupted", "stopped by Ctrl-C"))
      assert.is_true(reg:transition(a, { running = true }, "succeeded", "done"))
      assert.is_nil(jobs.claim(reg, {}), "nobody resumes what the user stopped")
   end)

   sqlite_it("migrates a v6 registry: lease columns with defaults; an old running row is judged by its pid", function()
      reg:close()
      reg = nil
      local h2 = H.tmpdir()
      local conn = assert(mdb.open(h2 .. "/moonhub.db"))
      for v = 1, 6 do conn:exec(registry.migrations[v]) end
      conn:exec("PRAGMA user_version = 6; PRAGMA application_id = " .. registry.APP_ID)
      conn:exec(string.format([[INSERT INTO runs (id, kind, status, worker_pid, heartbeat_at, created_at)
         VALUES (3, 'train', 'running', %d, %d, 1)]], 2^22 + 12345, os.time()))
      conn:close()
      local r2 = assert(registry.open(h2))
      assert.equal(0, r2:run(3).resumes)
      assert.is_nil(r2:run(3).lease_owner)
      assert.same({ 3 }, jobs.reap(r2))
      assert.matches("^worker %d+ is gone", r2:run_events(3)[1].reason)
      assert.equal(3, jobs.claim(r2, {}).id, "and resumed like any lost job")
      assert.equal("ok", r2:integrity_check())
      r2:close()
      H.rmdir(h2)
   end)

   it("two processes claiming from one queue take every job exactly once", function()
      local n = 40
      for _ = 1, n do add() end
      local script = home .. "/claim.lua"
      H.write(script, [[
local jobs = require "moonhub.jobs"
local reg = assert(require("moonhub.registry").open(os.getenv("MOONHUB_HOME")))
local got = {}
while true do
   local j = jobs.claim(reg, { max_active = 1000 })
   if not j then break end
   got[#got + 1] = j.id
   assert(reg:transition(j.id, { running = true }, "succeeded", "claimed by " .. arg[1]))
end
io.write(table.concat(got, " "), "\n")
]])
      local pids, outs = {}, {}
      for i = 1, 2 do
         outs[i] = home .. "/claim" .. i .. ".out"
         local p = io.popen(string.format("MOONHUB_HOME=%s %s run %s w%d >%s 2>&1 & echo $!", H.q(home), H.q(H.exe),
            H.q(script), i, H.q(outs[i])))
         pids[i] = p:read("l")
         p:close()
      end
      for i = 1, 2 do
         os.execute("while kill -0 " .. pids[i] .. " 2>/dev/null; do sleep 0.05; done")
      end
      local seen = {}
      for i = 1, 2 do
         for id in (H.read(outs[i]) or ""):gmatch("%d+") do
            id = math.tointeger(tonumber(id))
            assert.is_nil(seen[id], "job " .. id .. " claimed twice")
            seen[id] = i
         end
      end
      for id = 1, n do
         assert.is_truthy(seen[id], "job " .. id .. " never claimed: " .. tostring(H.read(outs[1])))
         assert.equal("queued running succeeded", statuses(reg, id))
      end
   end)
end)
