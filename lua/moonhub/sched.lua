-- moonhub.sched: the request scheduler (continuous batching) over a model.
-- Layer: lua/moonhub (wraps moonhub.core.sched; the channel comes from
-- moonhub.core.http). One compute thread runs every active request in one
-- batched forward per step; r:next() yields inside a server handler and
-- blocks (running the loop) in a plain script. See docs/sched.md.
local core = require "moonhub.core.sched"
local kvstate = require "moonhub.core.kvstate"

local M = {}
local Sched = {}
Sched.__index = Sched
local Request = {}
Request.__index = Request

-- Every id the tokenizer marks as ending generation (eos, eot, eom, ...);
-- computed once per tokenizer (a walk over the vocabulary).
local eog_memo = setmetatable({}, { __mode = "k" })
local function eog_ids(tok)
   if not tok then return {} end
   local ids = eog_memo[tok]
   if ids then return ids end
   if tok.eog_ids then             -- one C pass: no 50 ms Lua loop on the server's loop
      ids = tok:eog_ids()
      eog_memo[tok] = ids
      return ids
   end
   ids = {}
   for id = 0, (tok.vocab_size or 0) - 1 do
      if tok:is_eog(id) then ids[#ids + 1] = id end
   end
   eog_memo[tok] = ids
   return ids
end
M.eog_ids = eog_ids

-- The draft of a scheduler: opts.draft (a model, its handle or "ngram"),
-- else the model's own (mh.load's draft option). -> handle | nil, ngram
local function draft_of(model, opts)
   local d = opts.draft
   if d == nil and type(model) == "table" then d = model.draft end
   if d == nil or d == false then return nil, opts.ngram end
   if d == "ngram" then return nil, opts.ngram or 3 end
   if type(d) == "table" and d._h then return d._h, opts.ngram end
   if type(d) == "userdata" then return d, opts.ngram end
   error("sched.new: draft must be a model (mh.load) or \"ngram\", got " .. type(d), 3)
end

-- new(model, {parallel = 1, ctx = model.ctx, kv_type = model.kv_type,
--   prefill_chunk = 256, prefix_cache = true, mem_limit = bytes,
--   cache_bytes = 0, draft = model | "ngram", draft_max = 8, draft_p_min = 0})
--   -> sched | nil, msg
-- draft: speculative decoding (docs/speculative.md): a draft model sharing
-- the tokenizer proposes draft_max tokens a step, or "ngram" prompt lookup;
-- a model loaded with mh.load(path, {draft = ...}) brings its own;
-- draft_p_min: a draft model stops at a token it is less sure of.
-- cache_bytes: budget of the prefix store (KV of finished requests kept for
-- later prompts sharing their prefix, LRU); 0 keeps only the slots' own.
-- cache_dir: the store also writes each entry as a state file under
-- cache_dir/<model id>-<kv type> (docs/kv-state.md), up to cache_dir_bytes
-- (default 1 GiB, oldest first out), and a new scheduler finds them again:
-- a restarted server answers a long shared prefix warm.
-- model: a moonhub.model (from mh.load) or its core handle. While the
-- scheduler runs, the model cannot be used directly (model:forward raises):
-- the compute thread owns it until s:close().
function M.new(model, opts)
   if type(model) ~= "table" and type(model) ~= "userdata" then
      error("sched.new: model must be a moonhub model, got " .. type(model), 2)
   end
   if opts ~= nil and type(opts) ~= "table" then
      error("sched.new: opts must be a table, got " .. type(opts), 2)
   end
   opts = opts or {}
   local h = type(model) == "table" and model._h or model
   local o = {
      parallel = opts.parallel or 1,
      ctx = opts.ctx or (type(model) == "table" and model.ctx) or 2048,
      kv_type = opts.kv_type or (type(model) == "table" and model.kv_type) or "f16",
      prefill_chunk = opts.prefill_chunk, prefix_cache = opts.prefix_cache,
      cache_bytes = opts.cache_bytes, cache_dir = opts.cache_dir, cache_dir_bytes = opts.cache_dir_bytes,
      draft_max = opts.draft_max or (type(model) == "table" and model.draft_max) or nil,
      draft_p_min = opts.draft_p_min or (type(model) == "table" and model.draft_p_min) or nil,
      tok = type(model) == "table" and model.tokenizer and model.tokenizer._h or nil,
   }
   o.draft, o.ngram = draft_of(model, opts)
   if math.type(o.parallel) ~= "integer" or o.parallel < 1 then
      error("sched.new: parallel must be a positive integer, got " .. tostring(o.parallel), 2)
   end
   if math.type(o.ctx) ~= "integer" or o.ctx < 2 then
      error("sched.new: ctx must be an integer >= 2, got " .. tostring(o.ctx), 2)
   end
   local limit = opts.mem_limit or require("moonhub.fs").mem_available()
   if limit then
      local need = o.parallel * (h:kv_bytes(o.ctx, o.kv_type)
         + (o.draft and o.draft:kv_bytes(o.ctx, o.kv_type) or 0))
      if need > limit then
         return nil, string.format("sched.new: %d slots x ctx %d need %.1f MiB of KV cache "
            .. "but only %.1f MiB %s; lower parallel or ctx, or use kv_type q8_0", o.parallel,
            o.ctx, need / 2^20, limit / 2^20, opts.mem_limit and "is allowed" or "is available")
      end
   end
   local s, msg = core.new(h, o)
   if not s then return nil, msg end
   local tok = type(model) == "table" and model.tokenizer or nil
   return setmetatable({ _h = s, model = model, tokenizer = tok, ctx = o.ctx,
      parallel = o.parallel, eog_ids = eog_ids(tok) }, Sched)
end

-- submit{tokens = {...} | prompt = "text", max_tokens =, temperature =,
--   top_k =, top_p =, min_p =, repeat_penalty =, repeat_last_n =,
--   presence_penalty =, frequency_penalty =, seed =, logit_bias = {[id] = b},
--   logprobs = true | 0..20, top_logprobs = 0..20, stop = "s" | {"s", ...},
--   grammar = (from mh.grammar),
--   eog = true (stop at the tokenizer's end-of-generation ids) | false,
--   eog_ids = {...}, speculative = false | "draft" | "ngram" | {n_max =,
--   ngram = true | n, draft = true},
--   lora = {{adapter = (model:load_lora), scale = 1}, ...} (this request's
--   own adapters, docs/lora.md),
--   processors = {{name =, args =}, ...} (docs/processors.md) or a chain
--   from moonhub.processors.prepare} -> request | nil, msg
-- Unset fields take the defaults every path shares (moonhub.model.defaults()).
-- With processors, the request's logits come to r:next() between two steps
-- of the compute thread; it runs them there and sends them back (its slot
-- sits out those steps, the others go on).
function Sched:submit(req)
   if type(req) ~= "table" then
      error("sched:submit: expects a table {tokens = ..., ...}, got " .. type(req), 2)
   end
   local plain = {}
   for k, v in pairs(req) do plain[k] = v end
   if plain.tokens == nil and type(plain.prompt) == "string" then
      if not self.tokenizer then error("sched:submit: prompt needs a model with a tokenizer", 2) end
      plain.tokens = self.tokenizer:encode(plain.prompt)
   end
   if plain.eog_ids == nil and plain.eog ~= false then plain.eog_ids = self.eog_ids end
   local chain = plain.processors
   if chain ~= nil and getmetatable(chain) == nil then
      if type(self.model) ~= "table" then error("sched:submit: processors need a moonhub model (mh.load)", 2) end
      local perr
      chain, perr = require("moonhub.processors").prepare(chain, self.model)
      if perr then return nil, perr end
   end
   plain.processors = chain ~= nil or nil
   local id, ch, logits = self._h:submit(plain)
   if not id then return nil, ch end
   return setmetatable({ id = id, _ch = ch, _s = self, done = false, _chain = chain, _logits = logits,
      _tokens = chain and {} or nil,
      logprobs = req.logprobs ~= nil and req.logprobs ~= false or (req.top_logprobs or 0) > 0 }, Request)
end

-- submit_all{req, ...} -> {request, ...} | nil, error: submits every request
-- with the compute thread held, so they are admitted together and share
-- their steps (up to `parallel` of them), as vLLM's generate(list) does. When
-- one is refused, those already submitted are cancelled and the error is
-- returned (a Lua error from a bad request is raised after the release).
function Sched:submit_all(reqs)
   if type(reqs) ~= "table" then
      error("sched:submit_all: expects a list of requests, got " .. type(reqs), 2)
   end
   self._h:hold(true)
   local out, failure, raised = {}, nil, false
   for i = 1, #reqs do
      local ok, r, err = pcall(self.submit, self, reqs[i])
      if not ok then failure, raised = r, true
      elseif not r then failure = "request " .. i .. ": " .. tostring(err) end
      if failure then break end
      out[i] = r
   end
   if failure then
      for _, q in ipairs(out) do q:cancel() end
   end
   self._h:hold(false)
   if raised then error(failure, 2) end
   if failure then return nil, failure end
   return out
end

-- stats() -> {running, waiting, parallel, kv_used, kv_total, prefix_hits,
--   prefix_tokens, prompt_tokens, generated_tokens, requests_done, steps,
--   store_hits, store_tokens, store_entries, store_bytes, store_budget,
--   store_evictions, spec_drafted, spec_accepted, spec_steps, spec_tokens,
--   parks (logits handed to processors), lora_rows (batch rows with their
--   own adapters), lora_mixed_steps (forwards whose rows had different ones)}
function Sched:stats() return self._h:stats() end

-- embed(ids) -> f32 tensor (n_embd): the model's sentence embedding, run
-- between two scheduler steps (the scheduler owns the model meanwhile)
function Sched:embed(ids) return self._h:embed(ids) end
-- embed_batch({ids, ...}) -> {tensor, ...}: several texts, one forward for
-- encoder models (bert, nomic-bert), between two steps as embed
function Sched:embed_batch(lists) return self._h:embed(lists) end

-- ===== slot state on disk (docs/kv-state.md) =====
-- A free slot's cached ids and KV rows to a state file and back; a restored
-- slot answers the next prompt that starts with its ids warm. Each waits for
-- the current step; a busy slot, a missing, corrupt or foreign file give nil, msg.

-- In a server coroutine both run on a worker thread (moonhub.work).

-- save_slot(slot, path) -> n_saved, bytes | nil, msg (slots count from 0)
function Sched:save_slot(slot, path)
   return require("moonhub.work").call(kvstate, "slot_save", self._h, slot, path)
end
-- restore_slot(slot, path) -> n_restored, bytes | nil, msg
function Sched:restore_slot(slot, path)
   return require("moonhub.work").call(kvstate, "slot_restore", self._h, slot, path)
end
-- erase_slot(slot) -> n_erased | nil, msg: forgets what the slot holds
function Sched:erase_slot(slot) return kvstate.slot_erase(self._h, slot) end

-- Cancels everything still running, stops the thread and gives the model back.
function Sched:close() self._h:close() end

-- ===== requests =====

-- next() -> {token = id, text = "visible text it adds", logprob =,
--      top = {{id, lp}, ...}}
--   | {done = true, reason = "stop"|"length"|"cancel"|"error", error =,
--      text = "text held back until the end", stop_index =, usage = {...},
--      timings = {...}, settings = {...}} | nil after the final event
-- Text is valid UTF-8 and never holds a stop string (with a model's
-- tokenizer; a bare core model handle gives ids only).
-- A request's processors see its logits here, in the caller's coroutine
-- (the server's loop), and an error fails this request alone.
function Request:next()
   while true do
      if self.done then return nil end
      local data, tag = self._ch:recv()
      if not data then
         self.done = true
         return nil
      end
      local ev = core.decode(data, tag, self.logprobs)
      if not ev.logits then
         if ev.done then
            self.done = true
            self.result = ev
         elseif self._tokens then
            self._tokens[#self._tokens + 1] = ev.token
         end
         return ev
      end
      local ok, err = pcall(self._chain.run, self._chain, self._logits, self._tokens)
      self._s._h:resume(self.id, not ok and tostring(err) or nil)
   end
end

-- Asks the scheduler to end the request; a "cancel" final event follows.
function Request:cancel()
   if self.done then return false end
   return self._s._h:cancel(self.id)
end

-- wait() -> list of token ids, final event (drains the request)
function Request:wait()
   local ids = {}
   while true do
      local ev = self:next()
      if not ev or ev.done then return ids, ev or self.result end
      ids[#ids + 1] = ev.token
   end
end

-- A request dropped unfinished (a handler that errored) frees its slot.
function Request:__gc()
   if not self.done then pcall(self._s._h.cancel, self._s._h, self.id) end
end

--- default_cache_bytes() -> the prefix store budget serve uses when
-- --cache-mb is not given: 1/16 of the memory available at start, within
-- [16 MiB, 512 MiB].
function M.default_cache_bytes() return core.default_cache_bytes() end

return M
