-- moonhub.jobs.runs: tracked runs for reading — a run's parameters,
-- reproducibility record, per-step and named metrics and artifacts gathered
-- into one summary, and several runs compared (parameters that differ,
-- final figures). Layer: lua/moonhub (uses the registry's run methods, .fs).
local fs = require "moonhub.fs"
local json = require "dkjson"

local M = {}

-- list(reg, {limit=}) -> runs newest first, each with its last loss and eval loss
function M.list(reg, opts)
   require("moonhub.jobs").reap(reg)
   local rows = reg:runs({ limit = opts and opts.limit })
   for _, r in ipairs(rows) do
      local last = reg.db:first("SELECT loss FROM run_steps WHERE run_id = ? ORDER BY step DESC LIMIT 1", r.id)
      local ev = reg.db:first([[SELECT value FROM run_metrics WHERE run_id = ? AND key = 'eval_loss'
         ORDER BY id DESC LIMIT 1]], r.id)
      r.loss, r.eval_loss = last and last.loss, ev and ev.value
   end
   return rows
end

local PARAMS_SKIP = { model_path = true, dataset_version_id = true, val_version_id = true }

local function files(dir)
   local out = {}
   local function walk(d, rel, depth)
      for _, name in ipairs(fs.list(d) or {}) do
         local st = fs.stat(d .. "/" .. name)
         local r = rel == "" and name or (rel .. "/" .. name)
         if st and st.type == "dir" and depth < 3 then walk(d .. "/" .. name, r, depth + 1)
         elseif st then out[#out + 1] = string.format("%s (%s)", r, require("moonhub.progress").human(st.size or 0)) end
      end
   end
   if dir then walk(dir, "", 0) end
   table.sort(out)
   return out
end

-- summary(reg, id) -> {id, kind, status, params, param_keys, repro, steps,
-- losses, last, metrics, artifacts, files} | nil, msg
function M.summary(reg, id)
   require("moonhub.jobs").reap(reg)
   local r = reg:run(id)
   if not r then return nil, "no run " .. tostring(id) end
   local cfg = json.decode(r.config or "{}") or {}
   local params, keys = {}, {}
   for k, v in pairs(cfg) do
      if not PARAMS_SKIP[k] then
         params[k] = type(v) == "table" and json.encode(v) or tostring(v)
         keys[#keys + 1] = k
      end
   end
   table.sort(keys)
   local steps = reg:steps(id)
   local metrics = reg:run_metrics(id)
   -- what `moonhub eval` recorded on the run (runs.metrics JSON: eval[dataset])
   local rec = json.decode(r.metrics or "{}")
   if type(rec) == "table" and type(rec.eval) == "table" then
      for ds, e in pairs(rec.eval) do
         if type(e) == "table" and type(e.loss) == "number" then
            metrics[#metrics + 1] = { key = "eval_loss[" .. tostring(ds) .. "]", value = e.loss, at = e.at }
         end
      end
   end
   local losses = {}
   for i, s in ipairs(steps) do losses[i] = s.loss end
   return { id = r.id, kind = r.kind, status = r.status, error = r.error, params = params, param_keys = keys,
      repro = json.decode(r.repro or "{}") or {}, steps = steps, losses = losses, last = steps[#steps] or {},
      metrics = metrics, artifacts = r.artifacts, files = files(r.artifacts),
      output_version_id = r.output_version_id }
end

-- jsonable(summary) -> the summary with arrays marked for dkjson
function M.jsonable(s)
   local out = {}
   for k, v in pairs(s) do out[k] = v end
   for _, k in ipairs({ "steps", "losses", "metrics", "files", "param_keys" }) do
      out[k] = setmetatable(s[k], { __jsontype = "array" })
   end
   return out
end

-- compare(summaries) -> {status = {...}, differ = {{key, values}...}, steps,
-- final_loss, best_eval_loss, tokens_per_s}: one value per run in each list
function M.compare(list)
   local all = {}
   for _, s in ipairs(list) do for k in pairs(s.params) do all[k] = true end end
   local keys = {}
   for k in pairs(all) do keys[#keys + 1] = k end
   table.sort(keys)
   local out = { status = {}, differ = {}, steps = {}, final_loss = {}, best_eval_loss = {}, tokens_per_s = {} }
   for _, k in ipairs(keys) do
      local vals, same = {}, true
      for i, s in ipairs(list) do
         vals[i] = s.params[k] or "-"
         if vals[i] ~= vals[1] then same = false end
      end
      if not same then out.differ[#out.differ + 1] = { key = k, values = vals } end
   end
   for i, s in ipairs(list) do
      out.status[i] = s.status
      out.steps[i] = #s.steps
      out.final_loss[i] = s.last.loss and string.format("%.4f", s.last.loss) or "-"
      local best, tps, n = nil, 0, 0
      for _, m in ipairs(s.metrics) do
         if m.key == "eval_loss" and (not best or m.value < best) then best = m.value end
      end
      for _, st in ipairs(s.steps) do if st.tokens_per_s then tps, n = tps + st.tokens_per_s, n + 1 end end
      out.best_eval_loss[i] = best and string.format("%.4f", best) or "-"
      out.tokens_per_s[i] = n > 0 and string.format("%.0f", tps / n) or "-"
   end
   return out
end

return M
