-- moonhub.train: training loops over loaded models (LoRA, QLoRA, full).
-- Layer: lua/moonhub (wraps moonhub.core.train; moonhub.fs for checkpoint
-- files). Options and batches are checked here, the arithmetic runs in
-- engine/train. See docs/training.md.
local core = require "moonhub.core.train"
local json = require "dkjson"
local fs = require "moonhub.fs"

local M = {}

local Trainer = {}
Trainer.__index = Trainer

local TARGETS = { q = 1, k = 2, v = 4, o = 8, gate = 16, up = 32, down = 64 }

local function fail(fname, fmt, ...)
   error("train." .. fname .. ": " .. string.format(fmt, ...), 3)
end

local function num(fname, t, k, what)
   local v = t[k]
   if v ~= nil and type(v) ~= "number" then fail(fname, "%s must be a number, got %s", what or k, type(v)) end
   return v
end

local function targets_mask(list)
   if list == nil then return nil end
   if type(list) ~= "table" or #list == 0 then
      fail("trainer", "lora.targets must be a non-empty array such as {\"q\", \"v\"}")
   end
   local bits = 0
   for _, name in ipairs(list) do
      local b = TARGETS[name]
      if not b then fail("trainer", "lora.targets: unknown target %q (q k v o gate up down)", tostring(name)) end
      bits = bits | b
   end
   return bits
end

-- The nested user options -> the flat table moonhub.core.train reads.
local function flatten(opts)
   local lora, opt, sched = opts.lora or {}, opts.optimizer or {}, opts.schedule or {}
   for k, v in pairs({ lora = lora, optimizer = opt, schedule = sched }) do
      if type(v) ~= "table" then fail("trainer", "%s must be a table, got %s", k, type(v)) end
   end
   if opt.name ~= nil and opt.name ~= "adamw" then
      fail("trainer", "optimizer.name must be \"adamw\", got %q", tostring(opt.name))
   end
   local betas = opt.betas or {}
   if type(betas) ~= "table" then fail("trainer", "optimizer.betas must be {b1, b2}") end
   local f = {
      method = opts.method or "lora",
      rank = num("trainer", lora, "rank", "lora.rank"), alpha = num("trainer", lora, "alpha", "lora.alpha"),
      dropout = num("trainer", lora, "dropout", "lora.dropout"), targets = targets_mask(lora.targets),
      lr = num("trainer", opt, "lr", "optimizer.lr"),
      weight_decay = num("trainer", opt, "weight_decay", "optimizer.weight_decay"),
      beta1 = num("trainer", betas, 1, "optimizer.betas[1]"), beta2 = num("trainer", betas, 2, "optimizer.betas[2]"),
      eps = num("trainer", opt, "eps", "optimizer.eps"),
      warmup = num("trainer", sched, "warmup", "schedule.warmup"), decay = sched.decay,
      min_lr = num("trainer", sched, "min_lr", "schedule.min_lr"),
      total = num("trainer", sched, "total", "schedule.total") or num("trainer", opts, "steps"),
      grad_clip = num("trainer", opts, "grad_clip"), accumulate = num("trainer", opts, "accumulate"),
      seed = num("trainer", opts, "seed"), checkpoint = opts.gradient_checkpointing and true or false,
   }
   if f.method ~= "lora" and f.method ~= "full" then
      fail("trainer", "method must be \"lora\" or \"full\", got %q", tostring(f.method))
   end
   return f
end

-- trainer(model, opts) -> trainer. model: a moonhub model (mh.load).
function M.trainer(model, opts)
   opts = opts or {}
   if type(opts) ~= "table" then fail("trainer", "opts must be a table") end
   local h = type(model) == "table" and model._h or model
   if type(h) ~= "userdata" then fail("trainer", "model must be a loaded model (mh.load), got %s", type(model)) end
   for _, k in ipairs({ "batch", "seq" }) do
      local v = num("trainer", opts, k)
      if v and (math.type(v) ~= "integer" or v < 1) then fail("trainer", "%s must be a positive integer", k) end
   end
   local flat = flatten(opts)
   local ok, t = pcall(core.trainer, h, flat)
   if not ok then error(t, 2) end
   return setmetatable({ _t = t, _model = model, opts = opts, batch = opts.batch, seq = opts.seq }, Trainer)
end

-- Checks a batch {tokens = {{...}}, mask = {{...}}} and crops rows to seq.
local function rows(self, fname, b)
   if type(b) ~= "table" or type(b.tokens) ~= "table" then
      fail(fname, "batch must be {tokens = {{ids...}, ...}, mask = {{0/1...}, ...}}")
   end
   local tok, mask = b.tokens, b.mask
   if mask ~= nil and (type(mask) ~= "table" or #mask ~= #tok) then
      fail(fname, "mask must have one row per token row (%d), got %s", #tok,
         type(mask) == "table" and #mask or type(mask))
   end
   if self.batch and #tok > self.batch then
      fail(fname, "batch has %d rows but the trainer was made for batch = %d", #tok, self.batch)
   end
   local seq = self.seq
   if seq then
      local function crop(list)
         local out = {}
         for i, r in ipairs(list) do
            if type(r) ~= "table" then fail(fname, "row %d must be an array", i) end
            if #r > seq then out[i] = table.move(r, 1, seq, 1, {}) else out[i] = r end
         end
         return out
      end
      tok = crop(tok)
      if mask then mask = crop(mask) end
   end
   return tok, mask
end

-- tr:step(batch) -> {loss, grad_norm, lr, tokens_per_s, status = "ok"|"nan", step, tokens}
function Trainer:step(batch)
   local tok, mask = rows(self, "step", batch)
   return self._t:step(tok, mask)
end

-- tr:evaluate(batch or {batch, ...}) -> {loss = mean, perplexity, tokens}
function Trainer:evaluate(batches)
   if type(batches) ~= "table" then fail("evaluate", "expected a batch or an array of batches") end
   if batches.tokens then batches = { batches } end
   local sum, n = 0, 0
   for _, b in ipairs(batches) do
      local tok, mask = rows(self, "evaluate", b)
      local s, k = self._t:eval(tok, mask)
      sum, n = sum + s, n + k
   end
   if n == 0 then fail("evaluate", "no unmasked target tokens") end
   return { loss = sum / n, perplexity = math.exp(sum / n), tokens = n }
end

-- tr:save(path): LoRA adapters as PEFT-style safetensors, or, for a path
-- ending in .gguf, as a GGUF LoRA that llama.cpp loads (llama-cli --lora).
function Trainer:save(path)
   if type(path) ~= "string" then fail("save", "path must be a string") end
   fs.clean_temps(fs.dirname(path), path:match("[^/]*$"))
   return self._t:save_adapter(path)
end

-- tr:export(path, {type = "Q8_0"}): the merged model as GGUF.
function Trainer:export(path, opts)
   if type(path) ~= "string" then fail("export", "path must be a string") end
   local ty = opts and opts.type or "f32"
   local base = type(self._model) == "table" and self._model.path or nil
   if type(base) == "string" and fs.same_file(base, path) then   -- the rename would replace the base
      return nil, "train.export: " .. path .. " is the base model itself; choose another output file"
   end
   return self._t:export(path, string.lower(ty))
end

-- tr:checkpoint(dir): weights/adapters, AdamW moments, step, and the
-- options and base path mh.train.resume needs.
function Trainer:checkpoint(dir)
   if type(dir) ~= "string" then fail("checkpoint", "dir must be a string") end
   local ok, err = fs.mkdirs(dir)
   if not ok then return nil, err end
   fs.clean_temps(dir)          -- what a killed earlier run was writing
   local base = type(self._model) == "table" and self._model.path or nil
   ok, err = fs.write(dir .. "/trainer.json", json.encode({ base = base, opts = self.opts }, { indent = true }))
   if not ok then return nil, err end
   return self._t:checkpoint(dir)
end

function Trainer:info() return self._t:info() end
function Trainer:lr_at(step) return self._t:lr_at(step) end
function Trainer:close() self._t:close() end

-- resume(dir [, model]) -> trainer | nil, msg. Loads the base from the
-- path stored in the checkpoint unless a model is given.
function M.resume(dir, model)
   if type(dir) ~= "string" then fail("resume", "dir must be a string") end
   fs.clean_temps(dir)          -- a crashed checkpoint's temp files
   local text, ferr = fs.read(dir .. "/trainer.json")
   if not text then return nil, "train.resume: " .. tostring(ferr) end
   local meta = json.decode(text)
   if type(meta) ~= "table" or type(meta.opts) ~= "table" then
      return nil, "train.resume: " .. dir .. "/trainer.json is not a moonhub checkpoint"
   end
   if not model then
      if type(meta.base) ~= "string" then return nil, "train.resume: no base model path stored; pass the model" end
      local err
      model, err = require("moonhub.model").load(meta.base)
      if not model then return nil, err end
   end
   local tr = M.trainer(model, meta.opts)
   local ok, err = tr._t:restore(dir)
   if not ok then return nil, err end
   return tr
end

M.Trainer = Trainer   -- the class, for help() and its docs (moonhub.docs_table)
return M
