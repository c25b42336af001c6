-- Specs for several `moonhub worker` processes on one home (SQLite; under
-- make test-pg, PostgreSQL) with stories260K: one worker killed with
-- SIGKILL mid-job, or hung past its lease (its pid alive, as on another
-- host), and the other resumes that job from its last checkpoint and ends
-- it with the losses of an uninterrupted run, step for step; the hung one,
-- awake, finds it lost the job and touches nothing. Layer: tests (the CLI).
local H = require "helpers.host"
local data = require "helpers.data"
local C = require "spec.jobs.common"

local ARGS = "--model stories:base --data toy --lr 1e-2 --batch 4 --seed 3 --threads 1 --steps 300 "
   .. "--checkpoint-every 40"

-- owners(home, id) -> the worker ids named by the job's "running" events
local function owners(home, id)
   local out = {}
   for _, e in ipairs(C.with(home, function(reg) return reg:run_events(id) end)) do
      if e.status == "running" then out[#out + 1] = e.reason:match("worker (%S+)") end
   end
   return out
end

describe("several workers on one database #integration", function()
   local home, started
   -- bg(args [, env]) -> pid: a worker this spec stops after the test, pass or fail
   local function bg(args, env)
      local pid = C.bg(home, args, env)
      started[#started + 1] = pid
      return pid
   end
   before_each(function()
      home, started = C.setup(pending), {}
   end)
   after_each(function()
      for _, pid in ipairs(started) do
         if C.alive(pid) then os.execute("kill -9 " .. pid) end
      end
      H.rmdir(home)
   end)

   it("a worker killed with SIGKILL: another resumes its job from the checkpoint, same losses", function()
      if not home then return end
      local ref = C.enqueue(home, ARGS)
      local id = C.enqueue(home, ARGS)
      local pids = {}
      for i = 1, 2 do pids[i] = bg("worker --quiet --max-active 2 --lease 5") end
      local victim = C.wait(function()
         local j = C.job(home, id)
         return j.status == "running" and j.step >= 90 and math.tointeger(tonumber(j.lease_owner:match(":(%d+):")))
      end, "job " .. id .. " to pass step 90")
      assert.is_truthy(victim == pids[1] or victim == pids[2], "held by one of our workers")
      os.execute("kill -9 " .. victim)
      C.wait_exit(victim)
      local killed_at = C.job(home, id).step
      assert.is_true(killed_at < 300, "killed before the end")
      C.wait(function() return C.job(home, id).status == "succeeded" end, "the other worker to finish job " .. id,
         9000)
      C.wait(function() return C.job(home, ref).status == "succeeded" end, "job " .. ref)
      local survivor = victim == pids[1] and pids[2] or pids[1]
      assert.is_true(C.alive(survivor))
      os.execute("kill " .. survivor)
      C.wait_exit(survivor)
      local want, got = C.losses(home, ref), C.losses(home, id)
      assert.equal(300, #got)
      for s = 1, 300 do
         assert.equal(string.format("%.17g", want[s]), string.format("%.17g", got[s]), "step " .. s)
      end
      local who = owners(home, id)
      assert.equal(2, #who, "claimed, then resumed once")
      assert.matches(":" .. victim .. ":", who[1])
      assert.matches(":" .. survivor .. ":", who[2])
      local events = C.with(home, function(reg) return reg:run_events(id) end)
      local states = {}
      for i, e in ipairs(events) do states[i] = e.status end
      assert.equal("queued running interrupted running succeeded", table.concat(states, " "))
      assert.matches("^worker " .. victim .. " is gone %(at step %d+%)", events[3].reason)
      assert.matches("resumed from the checkpoint at step %d+", H.read(C.job(home, id).artifacts .. "/log.txt"))
      assert.equal("ok", C.integrity(home))
   end)

   it("a hung worker's lease expires: another resumes the job; the first, awake, stops untouched", function()
      if not home then return end
      local args = ARGS:gsub("%-%-steps 300", "--steps 120")
      local ref = C.enqueue(home, args)
      C.must(home, "worker --drain --quiet")
      local id = C.enqueue(home, args)
      -- worker a hangs before step 60 (no heartbeats; its pid stays alive) until it has lost the job
      local a = bg("worker --quiet --lease 2", "MOONHUB_JOBS_FAULT=stall:60")
      C.wait(function() local j = C.job(home, id); return j.lease_owner and j.lease_owner:find(":" .. a .. ":") end,
         "worker a to take the job")
      local b = bg("worker --quiet --lease 2")
      C.wait(function() return C.job(home, id).status == "succeeded" end, "worker b to finish the job", 9000)
      local j = C.job(home, id)
      local log = H.read(j.artifacts .. "/log.txt")
      C.wait(function() return (H.read(j.artifacts .. "/log.txt") or ""):find("lost the lease at step 60", 1, true) end,
         "worker a to find it lost the job")
      for _, pid in ipairs({ a, b }) do
         assert.is_true(C.alive(pid), "both workers live on")
         os.execute("kill " .. pid)
         C.wait_exit(pid)
      end
      local want, got = C.losses(home, ref), C.losses(home, id)
      assert.equal(120, #got)
      for s = 1, 120 do
         assert.equal(string.format("%.17g", want[s]), string.format("%.17g", got[s]), "step " .. s)
      end
      local events = C.with(home, function(reg) return reg:run_events(id) end)
      local states = {}
      for i, e in ipairs(events) do states[i] = e.status end
      assert.equal("queued running interrupted running succeeded", table.concat(states, " "))
      assert.matches("^no heartbeat from worker " .. a .. " for %d+ s %(the lease of .+:" .. a
         .. ":%x+ expired%) %(at step 59%)$", events[3].reason)
      assert.matches("^resumed by worker .+:" .. b .. ":%x+ from the last checkpoint", events[4].reason)
      assert.matches("stalling before step 60", log)
      assert.matches("resumed from the checkpoint at step 40", log)
      assert.equal("ok", C.integrity(home))
   end)
end)

assert(data.root())
