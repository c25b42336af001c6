-- training jobs: list, show (config, status history, metrics, loss chart), logs [-f], cancel, retry
-- Layer: recipes (uses the public moonhub API only: moonhub.jobs).
-- Usage: moonhub jobs [list] [--status S] | show ID | logs ID [-f] | cancel ID | retry ID
local cli = require "moonhub.cli"
local mh = require "moonhub"
local jobs = require "moonhub.jobs"
local view = require "moonhub.jobs.view"
local json = require "dkjson"

local p = cli.parser("jobs", "Training jobs in the queue and their history (see docs/jobs.md). "
   .. "'moonhub train' enqueues them, 'moonhub worker' or 'moonhub serve --worker' runs them.")
p:command_target("command")
p:require_command(false)
local c_list = p:command("list ls", "jobs, newest first: id, status, progress, model, dataset, age")
c_list:option("--status", "only jobs in this state"):choices(jobs.STATES)
c_list:option("-n --limit", "at most this many", "50"):convert(cli.count(1))
c_list:flag("--json", "print JSON")
local c_show = p:command("show", "one job: config, status history, latest metrics, loss chart")
c_show:argument("id", "job id"):convert(cli.count(1))
c_show:flag("--json", "print JSON")
local c_logs = p:command("logs", "the job's log")
c_logs:argument("id", "job id"):convert(cli.count(1))
c_logs:flag("-f --follow", "keep printing until the job is done")
local c_cancel = p:command("cancel", "cancel a queued job, or stop a running one at its next step "
   .. "(its last checkpoint is kept)")
c_cancel:argument("id", "job id"):convert(cli.count(1))
local c_retry = p:command("retry", "queue a failed, cancelled or interrupted job again; it resumes "
   .. "from its last checkpoint")
c_retry:argument("id", "job id"):convert(cli.count(1))

local a, code = cli.parse(p, arg)
if not a then return code end
local cmd = a.command or "list"

local reg, err = mh.models.open()
if not reg then return cli.fail("jobs", err) end
local function done(c) reg:close(); return c end
local function when(t) return t and os.date("%Y-%m-%d %H:%M:%S", t) or "-" end

if cmd == "list" then
   local rows = jobs.list(reg, { status = a.status, limit = a.limit or 50 })
   if a.json then
      io.write(json.encode({ jobs = setmetatable(rows, { __jsontype = "array" }) }, { indent = true }), "\n")
   elseif #rows == 0 then
      io.write("no jobs yet: 'moonhub train --model M --data D' enqueues one\n")
   else
      for _, line in ipairs(view.table(rows, os.time())) do io.write(line, "\n") end
   end
   return done(0)
end

local j, gerr = jobs.get(reg, a.id)
if not j then return done(cli.fail("jobs", gerr)) end
local r = j.run

if cmd == "show" then
   if a.json then
      j.events = setmetatable(j.events, { __jsontype = "array" })
      j.steps = setmetatable(j.steps, { __jsontype = "array" })
      j.metrics = setmetatable(j.metrics, { __jsontype = "array" })
      j.repro = r.repro and json.decode(r.repro) or nil
      io.write(json.encode(j, { indent = true }), "\n")
      return done(0)
   end
   io.write(string.format("job %d  %s  %s  model %s  dataset %s\n", r.id, r.status, view.progress(r),
      r.model or "-", r.dataset or "-"))
   if r.error then io.write("error: ", r.error, "\n") end
   io.write("artifacts: ", r.artifacts or "-", "\n")
   if r.output_version_id then io.write("output version: ", r.output_version_id, "\n") end
   io.write("\nconfig:\n")
   local keys = {}
   for k in pairs(j.config) do keys[#keys + 1] = k end
   table.sort(keys)
   for _, k in ipairs(keys) do
      local v = j.config[k]
      io.write(string.format("  %-20s %s\n", k, type(v) == "table" and json.encode(v) or tostring(v)))
   end
   io.write("\nstatus history:\n")
   for _, e in ipairs(j.events) do
      io.write(string.format("  %s  %-12s %s\n", when(e.at), e.status, e.reason or ""))
   end
   local last = j.steps[#j.steps]
   if last then
      io.write(string.format("\nlatest step %d: loss %.4f  lr %.3g  grad norm %.3g  %.0f tok/s  %.1f ms/step"
         .. "  peak %s\n",
         last.step, last.loss or 0 / 0, last.lr or 0, last.grad_norm or 0, last.tokens_per_s or 0,
         last.step_ms or 0, last.peak_rss and require("moonhub.progress").human(last.peak_rss) or "-"))
   end
   for _, m in ipairs(j.metrics) do
      io.write(string.format("  %s = %.4f (step %s)\n", m.key, m.value or 0 / 0, tostring(m.step or "-")))
   end
   local losses = {}
   for i, s in ipairs(j.steps) do losses[i] = s.loss end
   io.write("\n")
   for _, line in ipairs(view.chart(losses, { label = "loss" })) do io.write(line, "\n") end
   return done(0)
elseif cmd == "logs" then
   local printed = 0
   while true do
      local row = reg:run(a.id)
      local text = row.log_path and require("moonhub.fs").read(row.log_path) or ""
      if #text > printed then io.write(text:sub(printed + 1)); io.stdout:flush(); printed = #text end
      if not a.follow or jobs.DONE[row.status] then break end
      jobs.reap(reg)
      require("moonhub.db").sleep(300)
   end
   return done(0)
elseif cmd == "cancel" then
   local st, cerr = jobs.cancel(reg, a.id)
   if not st then return done(cli.fail("jobs", cerr)) end
   io.write(string.format("job %d %s\n", a.id, st == "cancelling" and "will stop at its next step" or st))
   return done(0)
elseif cmd == "retry" then
   local ok, rerr = jobs.retry(reg, a.id)
   if not ok then return done(cli.fail("jobs", rerr)) end
   io.write(string.format("job %d queued again (resumes from its last checkpoint)\n", a.id))
   return done(0)
end
return done(0)
