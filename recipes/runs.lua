-- tracked runs: list, show (params, metrics per step, eval metrics, artifacts, reproducibility), compare
-- Layer: recipes (uses the public moonhub API only: moonhub.jobs.runs, moonhub.jobs.view).
-- Usage: moonhub runs [list] | show ID [--steps] | compare ID ID...
local cli = require "moonhub.cli"
local mh = require "moonhub"
local runs = require "moonhub.jobs.runs"
local view = require "moonhub.jobs.view"
local json = require "dkjson"

local p = cli.parser("runs", "Runs with their parameters, per-step metrics (loss, lr, grad norm, "
   .. "tokens/s, step time, peak memory), eval metrics and artifacts (see docs/jobs.md).")
p:command_target("command")
p:require_command(false)
local c_list = p:command("list ls", "runs, newest first, with their last loss and eval loss")
c_list:option("-n --limit", "at most this many", "50"):convert(cli.count(1))
c_list:flag("--json", "print JSON")
local c_show = p:command("show", "one run: parameters, metrics, artifacts, reproducibility record")
c_show:argument("id", "run id"):convert(cli.count(1))
c_show:flag("--steps", "print every step's metrics")
c_show:flag("--json", "print JSON")
local c_cmp = p:command("compare", "runs side by side: parameters that differ, final metrics, loss curves")
c_cmp:argument("ids", "run ids"):args("2+"):convert(cli.count(1))
c_cmp:flag("--json", "print JSON")

local a, code = cli.parse(p, arg)
if not a then return code end
local cmd = a.command or "list"
local reg, err = mh.models.open()
if not reg then return cli.fail("runs", err) end
local function done(c) reg:close(); return c end
local function num(x, fmt) return x and string.format(fmt or "%.4f", x) or "-" end

if cmd == "list" then
   local rows = runs.list(reg, { limit = a.limit or 50 })
   if a.json then
      io.write(json.encode({ runs = setmetatable(rows, { __jsontype = "array" }) }, { indent = true }), "\n")
      return done(0)
   end
   if #rows == 0 then io.write("no runs yet: 'moonhub train' makes one\n"); return done(0) end
   local fmt = "%-5s %-6s %-12s %-10s %-10s %-10s %-24s %s\n"
   io.write(string.format(fmt, "ID", "KIND", "STATUS", "STEPS", "LOSS", "EVAL", "MODEL", "DATASET"))
   for _, r in ipairs(rows) do
      io.write(string.format(fmt, r.id, r.kind, r.status, view.progress(r), num(r.loss), num(r.eval_loss),
         tostring(r.model or "-"):sub(-24), tostring(r.dataset or "-")))
   end
   return done(0)
end

if cmd == "show" then
   local s, serr = runs.summary(reg, a.id)
   if not s then return done(cli.fail("runs", serr)) end
   if a.json then io.write(json.encode(runs.jsonable(s), { indent = true }), "\n"); return done(0) end
   io.write(string.format("run %d  %s  %s\n", s.id, s.kind, s.status))
   io.write("\nparams:\n")
   for _, k in ipairs(s.param_keys) do io.write(string.format("  %-20s %s\n", k, s.params[k])) end
   io.write("\nreproducibility:\n")
   for _, k in ipairs({ "seed", "dataset", "dataset_sha256", "moonhub_version", "cpu_path", "threads", "base" }) do
      io.write(string.format("  %-20s %s\n", k, tostring(s.repro[k] or "-")))
   end
   io.write("\nmetrics:\n")
   for _, k in ipairs({ "step", "loss", "lr", "grad_norm", "tokens_per_s", "step_ms", "peak_rss" }) do
      io.write(string.format("  %-20s %s\n", k, tostring(s.last[k] or "-")))
   end
   for _, m in ipairs(s.metrics) do
      io.write(string.format("  %-20s %.4f (step %s)\n", m.key, m.value or 0 / 0, tostring(m.step or "-")))
   end
   if a.steps then
      io.write(string.format("\n%6s %10s %10s %10s %10s %9s %10s\n", "STEP", "LOSS", "LR", "GRAD", "TOK/S", "MS",
         "PEAK MiB"))
      for _, st in ipairs(s.steps) do
         io.write(string.format("%6d %10.4f %10.3g %10.4g %10.0f %9.1f %10.1f\n", st.step, st.loss or 0 / 0,
            st.lr or 0, st.grad_norm or 0, st.tokens_per_s or 0, st.step_ms or 0, (st.peak_rss or 0) / 2^20))
      end
   end
   io.write("\nartifacts: ", s.artifacts or "-", "\n")
   for _, f in ipairs(s.files) do io.write("  ", f, "\n") end
   io.write("\n", view.sparkline(s.losses, 60), "\n")
   return done(0)
end

-- compare
local list = {}
for i, id in ipairs(a.ids) do
   local s, serr = runs.summary(reg, id)
   if not s then return done(cli.fail("runs", serr)) end
   list[i] = s
end
if a.json then
   local out = {}
   for i, s in ipairs(list) do out[i] = runs.jsonable(s) end
   io.write(json.encode(setmetatable(out, { __jsontype = "array" }), { indent = true }), "\n")
   return done(0)
end
local cmp = runs.compare(list)
local w = 14
local head = string.format("%-22s", "")
for _, s in ipairs(list) do head = head .. string.format("%-" .. w .. "s", "run " .. s.id) end
io.write(head, "\n")
local function row(label, vals)
   local line = string.format("%-22s", label)
   for _, v in ipairs(vals) do line = line .. string.format("%-" .. w .. "s", tostring(v):sub(1, w - 1)) end
   io.write(line, "\n")
end
row("status", cmp.status)
for _, d in ipairs(cmp.differ) do row(d.key, d.values) end
if #cmp.differ == 0 then io.write("(same parameters)\n") end
for _, k in ipairs({ "steps", "final_loss", "best_eval_loss", "tokens_per_s" }) do row(k, cmp[k]) end
io.write("\n")
for _, s in ipairs(list) do io.write(string.format("run %-5d %s\n", s.id, view.sparkline(s.losses, 50))) end
return done(0)
