-- Specs for the job state machine and queue (moonhub.jobs) on the registry
-- alone: migration 5 (runs' 'done' becomes 'succeeded'), every transition
-- recorded, oldest-first claiming with one active job, a dead worker's job
-- found interrupted, cancel and retry rules, config checks. No model needed.
local H = require "helpers.host"
local jobs = require "moonhub.jobs"
local registry = require "moonhub.registry"
local mdb = require "moonhub.db"
local sqlite_it = require("helpers.pg").sqlite_it(it)   -- SQLite-file specs: not under test-pg

local DEAD = 2^22 + 12345          -- above the default pid_max: never a live process

local statuses = require("spec.jobs.common").statuses

describe("moonhub.jobs state machine #unit", function()
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

   it("claims the oldest queued job, one active at a time, and records each transition", function()
      local a, b, c = add(), add(), add()
      local j = jobs.claim(reg, { pid = require("moonhub.fs").pid() })      -- this live process
      assert.equal(a, j.id)
      assert.is_nil(jobs.claim(reg, {}), "a second job must wait while one runs")
      local j2 = jobs.claim(reg, { max_active = 2 })
      assert.equal(b, j2.id)
      assert.is_true(reg:transition(a, { running = true }, "succeeded", "done here"))
      assert.is_true(reg:transition(b, { running = true }, "failed", "broke"))
      assert.equal(c, jobs.claim(reg, {}).id)
      assert.equal("queued running succeeded", statuses(reg, a))
      assert.equal("queued running failed", statuses(reg, b))
      assert.is_nil(reg:transition(a, { running = true }, "failed", "late"), "a finished job stays finished")
      assert.is_truthy(reg:run(a).finished_at)
   end)

   it("finds a job whose worker is gone interrupted, then cancels or retries it", function()
      local a = add()
      assert.equal(a, jobs.claim(reg, { pid = DEAD }).id)
      assert.same({ a }, jobs.reap(reg))
      local r = reg:run(a)
      assert.equal("interrupted", r.status)
      assert.matches("worker " .. math.tointeger(DEAD) .. " is gone", reg:run_events(a)[3].reason)
      assert.is_true(jobs.retry(reg, a))
      assert.equal("queued", reg:run(a).status)
      assert.equal(a, jobs.claim(reg, { pid = DEAD }).id)
      assert.equal("cancelled", jobs.cancel(reg, a))      -- reaped first, then cancelled
      assert.equal("queued running interrupted queued running interrupted cancelled", statuses(reg, a))
      assert.is_nil(jobs.claim(reg, {}))
   end)

   it("takes a live pid with a stale heartbeat (its lease expired) for a lost worker", function()
      local a = add()
      jobs.claim(reg, { pid = require("moonhub.fs").pid() })
      assert.same({}, jobs.reap(reg))
      reg.db:exec("UPDATE runs SET heartbeat_at = ?, lease_expires_at = ? WHERE id = ?",
         os.time() - jobs.LEASE_S - 5, os.time() - 5, a)
      assert.same({ a }, jobs.reap(reg))
      assert.matches("^no heartbeat from worker %d+ for %d+ s %(the lease of .+ expired%)",
         reg:run_events(a)[3].reason)
   end)

   it("cancels a queued job at once and a running one at its next step; retry refuses live jobs", function()
      local a, b = add(), add()
      assert.equal("cancelled", jobs.cancel(reg, b))
      jobs.claim(reg, { pid = require("moonhub.fs").pid() })
      assert.equal("cancelling", jobs.cancel(reg, a))
      assert.equal(1, reg:run(a).cancel_requested)
      assert.is_true(reg:add_step(a, { step = 1, loss = 1.5 }), "the runner learns of the cancel at its step")
      local ok, err = jobs.retry(reg, a)
      assert.is_nil(ok)
      assert.equal("job " .. a .. " is running; only failed, cancelled or interrupted jobs can be retried", err)
      assert.same({ nil, "job " .. b .. " is already cancelled" }, { jobs.cancel(reg, b) })
      assert.same({ nil, "no job 12345" }, { jobs.cancel(reg, 12345) })
   end)

   it("checks configs: unknown keys, types, ranges, required keys, in one line", function()
      local cfg = assert(jobs.config({ model = "m", data = "d", steps = 5, lr = 1e-3 }))
      assert.equal("lora", cfg.method)
      assert.equal(4, cfg.batch)
      local function err(t) return select(2, jobs.config(t)) end
      assert.matches("^config: unknown key 'learning_rate' %(known: .*lr.*%)$",
         err({ model = "m", data = "d", learning_rate = 1 }))
      assert.equal("config: steps must be at least 1, got 0", err({ model = "m", data = "d", steps = 0 }))
      assert.equal("config: lr must be above 0, got -1", err({ model = "m", data = "d", lr = -1 }))
      assert.equal("config: method must be one of full, lora, qlora, got sgd",
         err({ model = "m", data = "d", method = "sgd" }))
      assert.equal("config: data is required", err({ model = "m" }))
      assert.equal("config: give steps or epochs, not both", err({ model = "m", data = "d", steps = 1, epochs = 1 }))
      assert.equal("config: patience needs eval_every (evaluations on the val split to compare)",
         err({ model = "m", data = "d", patience = 2 }))
      H.write(home .. "/c.lua", "return { model = 'm', data = 'd', stepz = 3 }")
      local t = assert(jobs.config_file(home .. "/c.lua"))
      assert.matches("unknown key 'stepz'", select(2, jobs.config(t)))
      H.write(home .. "/c.json", '{"model": "m", "data": "d", "steps": 3, "rank": 4}')
      assert.equal(4, jobs.config(assert(jobs.config_file(home .. "/c.json"))).rank)
      H.write(home .. "/bad.lua", "os.exit(3)")
      assert.matches("^config: .*os", select(2, jobs.config_file(home .. "/bad.lua")), "no globals in a config")
   end)
end)

describe("migration 5 #unit", function()
   sqlite_it("rebuilds runs: a v3 registry's 'done' run becomes 'succeeded', rows and ids kept", function()
      local home = H.tmpdir()
      local path = home .. "/moonhub.db"
      local conn = assert(mdb.open(path))
      for v = 1, 3 do conn:exec(registry.migrations[v]) end
      conn:exec("PRAGMA user_version = 3; PRAGMA application_id = " .. registry.APP_ID)
      conn:exec("INSERT INTO runs (id, kind, status, created_at) VALUES (7, 'quantize', 'done', 1)")
      conn:exec("INSERT INTO runs (id, kind, status, created_at) VALUES (8, 'train', 'failed', 2)")
      conn:close()
      local reg = assert(registry.open(home))
      assert.equal("succeeded", reg:run(7).status)
      assert.equal("failed", reg:run(8).status)
      assert.equal(registry.SCHEMA_VERSION, reg.dialect.schema_version(reg.db))
      assert.has_error(function()
         reg.db:exec("UPDATE runs SET status = 'done' WHERE id = 7")
      end)
      assert.equal("ok", reg:integrity_check())
      reg:close()
      H.rmdir(home)
   end)
end)

describe("moonhub.jobs.view #unit", function()
   local view = require "moonhub.jobs.view"
   it("draws sparklines and charts from losses, skipping NaN", function()
      assert.equal("█▅▁", view.sparkline({ 3, 2, 0 / 0, 0.5 }))
      local lines = view.chart({ 4, 2, 1 }, { height = 4 })
      assert.equal(6, #lines)
      assert.matches("^%s+4%.0000 ┤█", lines[1])
      assert.equal("3m", view.age(200))
      assert.equal("5/10 50%", view.progress({ step = 5, total_steps = 10 }))
   end)
end)
