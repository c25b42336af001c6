-- moonhub.eval: loss and perplexity of a model (optionally with LoRA
-- adapters) on a dataset version or split, forward only, recorded on the
-- run the model came from (or the one named). Layer: lua/moonhub (uses
-- moonhub.model, .adapters, .data, .registry, .progress).
--
--   local r = assert(eval.run(reg, "stories", "tales:val", {lora = {"tales-lora"}}))
--   print(r.loss, r.perplexity, r.tokens)
local json = require "dkjson"

local M = {}

-- row_nll(model, ids, mask) -> summed negative log-likelihood, counted
-- tokens. As the trainer: position i predicts ids[i+1], counted where
-- mask[i+1] ~= 0.
function M.row_nll(model, ids, mask)
   if #ids < 2 then return 0.0, 0 end
   local lp = model:forward(ids, nil, { all = true }):log_softmax(2)
   local nll, n = 0.0, 0
   for i = 1, #ids - 1 do
      if not mask or mask[i + 1] ~= 0 then
         nll = nll - lp[{ i, ids[i + 1] + 1 }]
         n = n + 1
      end
   end
   return nll, n
end

-- The run an evaluation belongs to: the one asked for (checked), else the
-- run that made the model's adapter or the model itself.
local function run_of(reg, model, run_id)
   if run_id ~= nil then
      if math.type(run_id) ~= "integer" then return nil, "run id must be an integer, got " .. tostring(run_id) end
      if not reg.db:first("SELECT id FROM runs WHERE id = ?", run_id) then
         return nil, "no run " .. run_id .. " (see 'moonhub runs')"
      end
      return run_id
   end
   for _, v in ipairs({ model.adapter_version or false, model.version or false }) do
      if v and v.id then
         local lin = reg:version_lineage(v.id)
         if lin and lin.run_id and reg.db:first("SELECT id FROM runs WHERE id = ?", lin.run_id) then
            return lin.run_id
         end
      end
   end
   return false
end

-- Adds this result to the run's metrics JSON under eval[dataset ref].
local function record(reg, run_id, res)
   local row = reg.db:first("SELECT metrics FROM runs WHERE id = ?", run_id)
   local metrics = row and row.metrics and json.decode(row.metrics) or {}
   if type(metrics) ~= "table" then metrics = {} end
   metrics.eval = type(metrics.eval) == "table" and metrics.eval or {}
   metrics.eval[res.dataset] = { loss = res.loss, perplexity = res.perplexity, tokens = res.tokens,
      rows = res.rows, model = res.model, lora = res.lora, at = os.time() }
   return reg:update_run(run_id, { metrics = json.encode(metrics) })
end

local function load_model(model_ref, opts)
   if type(model_ref) == "table" then return model_ref, false end
   if type(model_ref) ~= "string" or model_ref == "" then
      return nil, "eval: expected a model (a path or a registry name)"
   end
   local m, err = require("moonhub.model").load(model_ref, { ctx = opts.ctx, threads = opts.threads })
   if not m then return nil, (tostring(err):gsub("^moonhub%.load: ", "")) end
   return m, true
end

-- run(reg, model, data_ref, {lora = {"ADAPTER[:SCALE]", ...}, run_id =,
--   ctx =, threads =, limit = rows, progress = fn(done, total) | false,
--   on_row = fn(i)}) -> {loss, perplexity, tokens, rows, skipped, dataset,
--   dataset_version_id, model, lora, run_id} | nil, msg.
-- model is a path, a registry name (an adapter version loads with its
-- base) or a loaded model (its adapters stay as they are after the call).
-- Rows over the context are skipped and counted. With a run (run_id, or
-- the run that trained the model), the result goes into its metrics.
function M.run(reg, model_ref, data_ref, opts)
   opts = opts or {}
   if type(reg) ~= "table" or not reg.db then error("eval.run: reg must be an open registry", 2) end
   local data = require "moonhub.data"
   local ds, derr = data.open(reg, data_ref)
   if not ds then return nil, derr end
   local model, owned = load_model(model_ref, opts)
   if not model then return nil, owned end
   local before = model.adapters
   local function done(...)
      if owned then model:close()
      elseif opts.lora then pcall(model.set_adapters, model, before or {}) end
      return ...
   end
   local lora = opts.lora
   if type(lora) == "string" then lora = { lora } end
   local ok, aerr = require("moonhub.adapters").apply(model, lora)
   if not ok then return done(nil, aerr) end
   local run_id, rerr = run_of(reg, model, opts.run_id)
   if run_id == nil then return done(nil, rerr) end
   local progress = opts.progress
   if progress == nil then progress = require("moonhub.progress").new("eval " .. ds:ref(), { unit = "rows" }) end
   local total = opts.limit and math.min(opts.limit, ds.rows) or ds.rows
   local sum, n, rows, skipped, i = 0.0, 0, 0, 0, 0
   for row in ds:iter() do
      i = i + 1
      if i > total then break end
      local ids, mask = data.encode(model, row, { ctx = model.ctx })
      if ids then
         local s, k = M.row_nll(model, ids, mask)
         sum, n, rows = sum + s, n + k, rows + 1
      else
         skipped = skipped + 1
      end
      if progress then progress(i, total) end
      if opts.on_row then opts.on_row(i) end
   end
   if progress then progress(nil, nil, true) end
   if n == 0 then
      return done(nil, string.format("dataset %s has no tokens to evaluate%s", ds:ref(),
         skipped > 0 and string.format(" (%d rows over the context of %d)", skipped, model.ctx) or ""))
   end
   local names = {}
   for _, l in ipairs(lora or {}) do names[#names + 1] = l end
   local res = { loss = sum / n, perplexity = math.exp(sum / n), tokens = n, rows = rows, skipped = skipped,
      dataset = ds:ref(), dataset_version_id = ds.id, lora = #names > 0 and names or nil,
      model = type(model_ref) == "string" and model_ref or model.path, run_id = run_id or nil }
   if run_id then
      local rok, werr = pcall(record, reg, run_id, res)
      if not rok then return done(nil, "eval: recording on run " .. run_id .. ": " .. tostring(werr)) end
   end
   return done(res)
end

return M
