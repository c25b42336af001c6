-- moonhub.jobs.runner: runs one claimed training job — loads the base,
-- encodes the dataset, resumes from the run's checkpoint when there is
-- one, steps with per-step metrics and heartbeat in the registry, evaluates
-- and stops early, checkpoints, saves and registers the adapter, archives.
-- Layer: lua/moonhub (uses moonhub.train, .model, .data, .registry, .fs).
local fs = require "moonhub.fs"
local json = require "dkjson"
local jconfig = require "moonhub.jobs.config"
local lease = require "moonhub.jobs.lease"
local sys = require "moonhub.core.sys"

local M = {}

local function set(...)
   local s = {}
   for _, k in ipairs({ ... }) do s[k] = true end
   return s
end

-- ===== batches: a fixed order per (seed, epoch), so a resumed run sees the same =====

-- xorshift64* over Lua's wrapping integers
local function rng(seed)
   local x = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) | 1
   return function(n)           -- an integer in 1..n
      x = x ~ (x >> 12); x = x ~ (x << 25); x = x ~ (x >> 27)
      local v = (x * 0x2545F4914F6CDD1D) >> 33
      return v % n + 1
   end
end

local function permutation(n, seed)
   local p = {}
   for i = 1, n do p[i] = i end
   local r = rng(seed)
   for i = n, 2, -1 do
      local j = r(i)
      p[i], p[j] = p[j], p[i]
   end
   return p
end

-- batcher(examples, batch, seed) -> fn(step) -> {tokens, mask}
local function batcher(ex, batch, seed)
   local n = #ex
   local per_epoch = math.ceil(n / batch)
   local cache = {}
   return function(step)
      local epoch, i = (step - 1) // per_epoch, (step - 1) % per_epoch
      local p = cache[epoch]
      if not p then p = permutation(n, seed * 1000003 + epoch); cache = { [epoch] = p } end
      local b = { tokens = {}, mask = {} }
      for k = i * batch + 1, math.min((i + 1) * batch, n) do
         local e = ex[p[k]]
         b.tokens[#b.tokens + 1], b.mask[#b.mask + 1] = e.tokens, e.mask
      end
      return b, epoch + 1
   end
end

-- encode(reg, model, ref, seq) -> examples | nil, msg
local function encode(reg, model, ref, seq)
   local data = require "moonhub.data"
   local ds, err = data.open(reg, ref)
   if not ds then return nil, err end
   local out, n = {}, 0
   for row in ds:iter() do
      n = n + 1
      local tok, mask = data.encode(model, row, { ctx = seq })
      if not tok then
         return nil, string.format("dataset %s row %d %s (see --seq)", ref, n, (tostring(mask):gsub("^row ", "")))
      end
      out[#out + 1] = { tokens = tok, mask = mask }
   end
   if #out == 0 then return nil, "dataset " .. ref .. " has no rows" end
   return out
end

-- ===== the run =====

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

-- The base to train on: qlora wants a quantized base; an f32/f16/bf16 one is
-- quantized once into the run's folder (reused when the run resumes).
local function base_path(cfg, dir, log)
   if cfg.method ~= "qlora" then return cfg.model_path end
   local facts = require("moonhub.models").gguf_facts(cfg.model_path)
   local q = facts and facts.quant or ""
   if type(q) == "table" then q = q[1] or "" end        -- the main type first
   if q ~= "" and not q:match("^F") and not q:match("^BF") then return cfg.model_path end
   local out = dir .. "/base-" .. cfg.quant .. ".gguf"
   if fs.stat(out) then return out end
   log("qlora: quantizing the base to " .. cfg.quant)
   local ok, err = require("moonhub.quantize").file(cfg.model_path, out, cfg.quant)
   if not ok then return nil, "qlora: cannot quantize the base: " .. tostring(err) end
   return out
end

-- Fault injection for the crash specs: MOONHUB_JOBS_FAULT=checkpoint:N makes
-- the checkpoint at step N fail as a full disk would; stall:N makes the
-- worker hang before step N (no heartbeats) until its lease is lost.
local function fault(what, step)
   local f = os.getenv("MOONHUB_JOBS_FAULT")
   return f ~= nil and f == what .. ":" .. step
end

local function checkpoint(tr, dir, step)
   if fault("checkpoint", step) then return nil, dir .. ": No space left on device (injected)" end
   local ok, err = tr:checkpoint(dir)
   if not ok then return nil, tostring(err) end
   return true
end

local Run = {}
Run.__index = Run

function Run:log(msg)
   local line = string.format("%s %s", os.date("!%Y-%m-%dT%H:%M:%SZ"), msg)
   if self.logf then self.logf:write(line, "\n"); self.logf:flush() end
   if self.opts.log then self.opts.log(self.job.id, msg) end
end

-- heartbeat() -> true while this worker still holds the job (its lease
-- renewed); false once it was lost (this process stalled past its lease
-- and another worker took the job over): then it stops, touching nothing
function Run:heartbeat()
   if not self.owner then return true end
   return lease.renew(self.reg.db, self.job.id, self.owner, self.lease_s)
end

-- stall(s): the stall fault — behave as a hung worker, sending no
-- heartbeat until the job is no longer ours (its lease expired and someone
-- looked), at most 2 minutes; the next heartbeat then finds it lost
function Run:stall(s)
   self:log(string.format("stalling before step %d (MOONHUB_JOBS_FAULT)", s))
   for _ = 1, 600 do
      if self.owner == nil or not lease.holds(self.reg.db, self.job.id, self.owner) then return end
      require("moonhub.db").sleep(200)
   end
end

-- lost(where): the job belongs to another worker now; end without a transition
function Run:lost(where)
   self:log(string.format("lost the lease %s (worker %s); another worker resumes the job", where, self.owner))
   if self.logf then self.logf:close(); self.logf = nil end
   return "lost"
end

-- finish(to, reason, fields): the last transition; finished jobs are archived
function Run:finish(to, reason, fields)
   if self.owner and not lease.holds(self.reg.db, self.job.id, self.owner) then
      return self:lost("before ending " .. to)
   end
   self:log(to .. ": " .. reason)
   if self.logf then self.logf:close(); self.logf = nil end
   fields = fields or {}
   if to == "failed" then fields.error = reason end
   local ok, err = self.reg:transition(self.job.id, set("running"), to, reason, fields)
   if not ok then return nil, err end
   if to ~= "interrupted" then require("moonhub.jobs").archive(self.reg, self.job.id) end
   return to
end

-- the reproducibility record
local function repro(cfg, threads)
   local active, detected = sys.cpu()
   return json.encode({ seed = cfg.seed, dataset_sha256 = cfg.dataset_sha256, dataset = cfg.dataset_ref,
      config = cfg, moonhub_version = sys.version, cpu_path = active, cpu_detected = detected,
      threads = threads, base = cfg.model_path })
end

function Run:setup()
   local cfg, dir = self.cfg, self.dir
   local path, err = base_path(cfg, dir, function(m) self:log(m) end)
   if not path then return nil, err end
   local mh = require "moonhub"
   local model
   model, err = mh.load(path, { threads = cfg.threads })
   if not model then return nil, "cannot load " .. path .. ": " .. tostring(err) end
   self.model = model
   if not self:heartbeat() then return false end          -- loading may take a while: renew between phases
   self.examples, err = encode(self.reg, model, cfg.dataset_ref, cfg.seq)
   if not self.examples then return nil, err end
   if not self:heartbeat() then return false end
   if cfg.val_ref or cfg.eval_every > 0 then
      local ref = cfg.val_ref
      if not ref then
         ref = cfg.dataset_ref:gsub(":%a+$", "") .. ":val"
      end
      self.val, err = encode(self.reg, model, ref, cfg.seq)
      if not self.val then return nil, "evaluation: " .. err end
   end
   local ck = dir .. "/checkpoint"
   if fs.stat(ck .. "/trainer.json") then
      local tr, rerr = require("moonhub.train").resume(ck, model)
      if not tr then return nil, "cannot resume from " .. ck .. ": " .. tostring(rerr) end
      self.tr, self.start = tr, tr:info().step
      self.reg:drop_steps(self.job.id, self.start)
      self:log(string.format("resumed from the checkpoint at step %d", self.start))
   else
      local topts = jconfig.trainer_opts(cfg)
      local ok, tr = pcall(mh.train.trainer, model, topts)
      if not ok then return nil, tostring(tr):gsub("^[^:\n]+:%d+: ", "") end
      self.tr, self.start = tr, 0
   end
   self.reg:update_run(self.job.id, { repro = repro(cfg, sys.threads()) })
   return true
end

-- evaluate at step s; returns true when early stopping says stop
function Run:evaluate(s)
   local batches, b = {}, self.cfg.batch
   for i = 1, #self.val, b do
      local t = { tokens = {}, mask = {} }
      for k = i, math.min(i + b - 1, #self.val) do
         t.tokens[#t.tokens + 1], t.mask[#t.mask + 1] = self.val[k].tokens, self.val[k].mask
      end
      batches[#batches + 1] = t
   end
   local ev = self.tr:evaluate(batches)
   self.reg:log_metric(self.job.id, "eval_loss", ev.loss, s)
   self.reg:log_metric(self.job.id, "eval_perplexity", ev.perplexity, s)
   self:log(string.format("step %d eval loss %.4f perplexity %.3f", s, ev.loss, ev.perplexity))
   if self.opts.on_eval then self.opts.on_eval(self.job.id, s, ev) end
   local p = self.cfg.patience
   if p <= 0 then return false end
   if not self.best or ev.loss < self.best then
      self.best, self.bad = ev.loss, 0
      return false
   end
   self.bad = (self.bad or 0) + 1
   return self.bad >= p
end

-- save the adapter (or the fully trained model), register it as a new
-- version of the base's model with lineage; the folder is archived first
function Run:publish()
   local cfg, id = self.cfg, self.job.id
   local file = cfg.method == "full" and "model.gguf" or "adapter.gguf"
   local out = self.dir .. "/" .. file
   local ok, err
   if cfg.method == "full" then ok, err = self.tr:export(out, { type = "f32" })
   else ok, err = self.tr:save(out) end
   if not ok then return nil, "cannot save " .. out .. ": " .. tostring(err) end
   local jobs = require "moonhub.jobs"
   ok, err = jobs.archive(self.reg, id)
   if not ok then return nil, err end
   local path = jobs.run_dir(id, true) .. "/" .. file
   -- a base given as a file outside the registry has no version to hang lineage on
   if not self.job.version_id or type(self.reg.add_adapter_version) ~= "function" then return nil, nil, path end
   local vid
   ok, vid = pcall(self.reg.add_adapter_version, self.reg, { base_version_id = self.job.version_id,
      path = path, run_id = id, dataset_version_id = cfg.dataset_version_id, name = cfg.name, tag = cfg.tag,
      merged = cfg.method == "full" })
   if not ok then return nil, "cannot register the adapter: " .. tostring(vid):gsub("^[^:\n]+:%d+: ", "") end
   return vid, nil, path
end

function Run:loop()
   local cfg, id = self.cfg, self.job.id
   local total = cfg.total_steps
   local next_batch = batcher(self.examples, cfg.batch, cfg.seed)
   local ck = self.dir .. "/checkpoint"
   self:log(string.format("training %s on %s (%s), steps %d..%d", cfg.model, cfg.dataset_ref, cfg.method,
      self.start + 1, total))
   for s = self.start + 1, total do
      if fault("stall", s) then self:stall(s) end
      local b, epoch = next_batch(s)
      local t0 = sys.now()
      local r = self.tr:step(b)
      local dt = sys.now() - t0
      if r.status ~= "ok" or not finite(r.loss) or not finite(r.grad_norm) then
         local reason = string.format("loss is %s at step %d (grad norm %s, lr %g); stopped",
            tostring(r.loss), s, tostring(r.grad_norm), r.lr or cfg.lr)
         return self:finish("failed", reason, { step = s - 1 })
      end
      local rec = { step = s, loss = r.loss, lr = r.lr, grad_norm = r.grad_norm, tokens = r.tokens,
         tokens_per_s = r.tokens_per_s, step_ms = dt * 1000, peak_rss = fs.peak_rss(), epoch = epoch }
      -- the lease first: a worker that lost the job records nothing more
      if not self:heartbeat() then return self:lost("at step " .. s) end
      local cancel = self.reg:add_step(id, rec)
      if self.opts.on_step then self.opts.on_step(id, rec, total) end
      if s % 10 == 0 or s == total then
         self:log(string.format("step %d/%d loss %.4f lr %.3g grad %.3g %.0f tok/s", s, total, r.loss, r.lr,
            r.grad_norm, r.tokens_per_s or 0))
      end
      local stop = cfg.eval_every > 0 and s % cfg.eval_every == 0 and self:evaluate(s)
      if s % cfg.checkpoint_every == 0 or cancel or stop or s == total then
         local ok, err = checkpoint(self.tr, ck, s)
         if not ok then
            return self:finish("failed", string.format("checkpoint at step %d failed: %s", s, err))
         end
      end
      if cancel then return self:finish("cancelled", string.format("cancelled by the user at step %d", s)) end
      if stop then
         self:log(string.format("early stop at step %d: eval loss did not improve for %d evaluations", s,
            cfg.patience))
         break
      end
   end
   return self:succeed()
end

function Run:succeed()
   local s = self.tr:info().step
   if self.owner and not lease.holds(self.reg.db, self.job.id, self.owner) then
      return self:lost("before publishing")
   end
   if self.logf then self.logf:close(); self.logf = nil end
   local vid, err, path = self:publish()
   if err then return self:finish("failed", err) end
   local reason = string.format("finished at step %d; %s", s, vid and ("registered as version " .. vid)
      or (tostring(path) .. " (the base is no registered model: not registered)"))
   local ok, terr = self.reg:transition(self.job.id, set("running"), "succeeded", reason,
      { output_version_id = vid })
   if not ok then return nil, terr end
   return "succeeded"
end

-- run(reg, job, opts) -> final status ("lost" when another worker took the
-- job over). opts: on_step(id, rec, total), on_eval(id, step, ev), log(id,
-- msg), owner and lease_s (the claim's lease, renewed at every step).
-- Never raises for a job's own failure: the job ends failed with the reason.
function M.run(reg, job, opts)
   local cfg = json.decode(job.config)
   local dir = job.artifacts or require("moonhub.jobs").run_dir(job.id)
   fs.mkdirs(dir)
   opts = opts or {}
   local self = setmetatable({ reg = reg, job = job, cfg = cfg, dir = dir, opts = opts,
      owner = opts.owner or job.lease_owner, lease_s = opts.lease_s or lease.LEASE_S }, Run)
   self.logf = io.open(dir .. "/log.txt", "a")
   fs.write(dir .. "/config.json", json.encode(cfg, { indent = true }) .. "\n")
   local ok, res, err = pcall(function()
      local sok, serr = self:setup()
      if sok == false then return self:lost("while loading") end
      if not sok then return self:finish("failed", serr) end
      return self:loop()
   end)
   if self.model then self.model:close() end
   if not ok and tostring(res):find("interrupted!", 1, true) then     -- Ctrl-C in `moonhub train`
      return self:finish("interrupted", string.format("stopped by Ctrl-C after step %d; 'moonhub jobs retry %d' "
         .. "resumes from the last checkpoint", self.reg:run(job.id).step, job.id))
   end
   if not ok then return self:finish("failed", "internal error: " .. tostring(res)) end
   if res == nil and err then return self:finish("failed", err) end
   return res
end

return M
