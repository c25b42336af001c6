-- moonhub.model: load a model, run it, generate and stream text, perplexity.
-- Layer: lua/moonhub (wraps moonhub.core.model, .sched, moonhub.tokenizer).
-- Token ids are the tokenizer's 0-based ids; logits are (n, n_vocab) f32
-- tensors. The sampler chain and its options are described in docs/sampling.md.
local core = require "moonhub.core.model"
local sched = require "moonhub.core.sched"
local sched_lua = require "moonhub.sched"
local sys = require "moonhub.core.sys"
local kvstate = require "moonhub.core.kvstate"
local tokenizer = require "moonhub.tokenizer"

local M = {}
local Model = {}
Model.__index = Model

-- ===== memory check =====

local function gib(n) return string.format("%.2f GiB", n / 2^30) end

-- Bytes of the KV cache at n_ctx (default: the model's context).
function Model:kv_bytes(n_ctx) return self._h:kv_bytes(n_ctx or self.ctx, self.kv_type) end

-- Bytes a model needs at n_ctx: weights (mapped) + KV cache + scratch.
function Model:memory_needed(n_ctx)
   local hp = self.info
   local scratch = 4 * 512 * (3 * hp.n_embd + 4 * hp.n_head * hp.head_dim + 2 * hp.n_ff)
      + 4 * 512 * hp.n_vocab
   return hp.weight_bytes + self._h:kv_bytes(n_ctx or self.ctx, self.kv_type) + scratch
end

-- ===== loading =====

-- LoRA adapters: a list of PEFT-style safetensors paths or {path =, scale =}
-- tables (as mh.train's tr:save writes); their effects add up.
function M.set_adapters(h, list)
   if type(list) == "string" then list = { list } end
   if type(list) ~= "table" then
      return nil, "moonhub.load: adapters must be a list of paths or {path =, scale =} tables"
   end
   local loaded = {}
   for i, a in ipairs(list) do
      local path, scale = a, 1.0
      if type(a) == "table" then path, scale = a.path, a.scale or 1.0 end
      if type(path) ~= "string" then return nil, "moonhub.load: adapter " .. i .. " has no path" end
      local lo, err = h:load_lora(path, scale)
      if not lo then return nil, "moonhub.load: adapter " .. path .. ": " .. tostring(err) end
      loaded[#loaded + 1] = lo
   end
   h:set_loras(loaded)
   return true
end

-- load(path or "name[:tag]", {ctx =, threads =, mem_limit = bytes, kv_type = "f16"|"q8_0"|"f32",
--   adapters = {path or {path =, scale =}, ...}, draft = path | model | "ngram", draft_max = 8,
--   draft_p_min = 0, verbose = bool})
--   -> model | nil, msg. Without ctx, the context serve/chat/generate pick.
--   A registered adapter version (or its file) loads its base with the
--   adapter first (moonhub.adapters).
-- draft: speculative decoding (docs/speculative.md) for every generation
-- and scheduler on this model, unless a request says otherwise.
function M.load(path, opts)
   if type(path) ~= "string" or path == "" then
      error("moonhub.load: path must be a non-empty string, got " .. type(path), 2)
   end
   opts = opts or {}
   -- not a file or folder: a registry name "name[:tag]" (moonhub.models)
   local resolved, rerr = require("moonhub.models").resolve(path)
   if not resolved then return nil, "moonhub.load: " .. rerr end
   -- a registered LoRA adapter (by name, or its file, which the engine does
   -- not load as a model) loads as its base plus the adapter
   local row = type(rerr) == "table" and rerr or nil
   local adapters, aver, bver = opts.adapters, nil, nil
   local function as_adapter(file_row)
      local base, own
      base, own, aver, bver = require("moonhub.adapters").for_load(path, resolved, file_row)
      if not base then return nil, own end
      if own then
         adapters = { own }
         for _, a in ipairs(type(opts.adapters) == "table" and opts.adapters or { opts.adapters }) do
            adapters[#adapters + 1] = a
         end
      end
      return base
   end
   local lineage = require "moonhub.registry.lineage"
   if row and lineage.ADAPTER_FORMATS[row.format] then
      local base, aerr = as_adapter(row)
      if not base then return nil, "moonhub.load: " .. aerr end
      resolved = base
   end
   path = resolved
   -- in a server coroutine the file is mapped and parsed on a worker thread
   local h, msg = require("moonhub.work").call(core, "load", path)
   if not h and not aver then
      local base, aerr = as_adapter(nil)
      if not base then return nil, "moonhub.load: " .. aerr end
      if base ~= path then
         path = base
         h, msg = require("moonhub.work").call(core, "load", path)
      end
   end
   if not h then return nil, msg end
   -- an HF checkpoint named by its config.json keeps tokenizer.json beside it
   local tok, terr = tokenizer.load(path:match("^(.*)/config%.json$")
      or (path == "config.json" and ".") or path)
   if not tok then
      h:close()
      return nil, "moonhub.load: " .. path .. ": tokenizer: " .. tostring(terr)
   end
   if opts.threads then sys.threads(opts.threads) end
   if adapters then
      local ok, err = M.set_adapters(h, adapters)
      if not ok then
         h:close()
         return nil, err
      end
   end
   local info = h:hparams()
   info.path = path
   -- version: the registry row it came from (an adapter version's base row);
   -- adapter_version: the adapter version loaded by name; adapters: those applied
   local self = setmetatable({ _h = h, tokenizer = tok, info = info, path = path,
      kv_type = opts.kv_type or "f16", version = bver or row, adapter_version = aver,
      adapters = type(adapters) == "string" and { adapters } or adapters }, Model)
   if opts.ctx == nil then
      -- the rule of serve/chat/generate (moonhub.config.context): MOONHUB_CTX
      -- or the config file's ctx, else the trained context capped by memory.
      -- The choice is kept in m.context_note (printed with opts.verbose, as
      -- `generate --verbose` does: a library writes nothing unasked).
      local cfg = require "moonhub.config"
      local ok, asked, src = pcall(cfg.get, "ctx")
      if not ok then
         h:close()
         return nil, "moonhub.load: " .. tostring(asked)
      end
      self.ctx, self.context_note, self.context_warning = cfg.context(self, { ctx = asked, source = src,
         mem = opts.mem_limit })
      if opts.verbose then
         io.stderr:write("moonhub.load: ", self.context_note, "\n")
         if self.context_warning then io.stderr:write("moonhub.load: ", self.context_warning, "\n") end
      end
   else
      self.ctx = opts.ctx
   end
   if math.type(self.ctx) ~= "integer" or self.ctx < 1 then
      h:close()
      error("moonhub.load: ctx must be a positive integer, got " .. tostring(opts.ctx), 2)
   end
   local need = self:memory_needed(self.ctx)
   local limit = opts.mem_limit or require("moonhub.fs").mem_available()
   if limit and need > limit then
      h:close()
      return nil, string.format("moonhub.load: %s needs %s at ctx %d but only %s %s; "
         .. "lower --ctx or raise --mem-limit", path, gib(need), self.ctx, gib(limit),
         opts.mem_limit and "is allowed (--mem-limit)" or "is available")
   end
   if opts.draft ~= nil then
      local ok, derr = self:set_draft(opts.draft, opts.draft_max, opts.draft_p_min)
      if not ok then
         h:close()
         return nil, derr
      end
   end
   return self
end

-- set_draft(draft, draft_max) -> true | nil, msg: speculative decoding from
-- now on: draft = a path or registry name (loaded here, closed with this
-- model), a model from mh.load, "ngram" (prompt lookup), or nil/false (off);
-- draft_max: tokens drafted per step (1..32, default 8); p_min: a draft
-- model stops drafting at a token it gives less probability (default 0).
function Model:set_draft(draft, draft_max, p_min)
   if draft_max ~= nil and (math.type(draft_max) ~= "integer" or draft_max < 1 or draft_max > 32) then
      return nil, "moonhub.load: draft_max must be an integer in 1..32, got " .. tostring(draft_max)
   end
   if p_min ~= nil and (type(p_min) ~= "number" or not (p_min >= 0 and p_min < 1)) then
      return nil, "moonhub.load: draft_p_min must be a number in [0, 1), got " .. tostring(p_min)
   end
   if self._own_draft then self._own_draft:close() end
   self._own_draft, self.draft, self.draft_max, self.draft_p_min = nil, nil, draft_max, p_min
   if draft == nil or draft == false then return true end
   if draft == "ngram" then
      self.draft = "ngram"
      return true
   end
   local d = draft
   if type(draft) == "string" then
      local derr
      d, derr = M.load(draft, { ctx = self.ctx, kv_type = self.kv_type })
      if not d then return nil, "moonhub.load: draft " .. tostring(derr):gsub("^moonhub%.load: ", "") end
      self._own_draft = d
   elseif type(draft) ~= "table" or not draft._h then
      return nil, "moonhub.load: draft must be a path, a registry name, a model or \"ngram\", got " .. type(draft)
   end
   if d.info.n_vocab ~= self.info.n_vocab then
      if self._own_draft then self._own_draft:close() end
      self._own_draft = nil
      return nil, string.format("moonhub.load: the draft %s has a vocabulary of %d tokens, the model %d: "
         .. "a draft must share the model's tokenizer", d.path, d.info.n_vocab, self.info.n_vocab)
   end
   self.draft = d
   return true
end

-- speculative_costs() -> {draft_ms =, check_rounds = {[rows] = x}} | nil: the
-- step costs the draft lengths are chosen by, as measured in the last
-- generations with the current draft model (docs/speculative.md, "Draft
-- length"); the next generation starts from them.
function Model:speculative_costs()
   return type(self.draft) == "table" and self._spec_costs and self._spec_costs[self.draft] or nil
end

-- set_adapters(list): replaces the model's LoRA adapters ({} removes them)
function Model:set_adapters(list)
   local ok, err = M.set_adapters(self._h, list)
   if not ok then error(err, 2) end
   self.adapters = type(list) == "string" and { list } or list
end

-- add_lora(name, "ADAPTER[:SCALE]") -> true | nil, msg: an adapter that
-- calls and requests pick by name (opts.lora = {name}) while the model's
-- own weights stay shared (docs/lora.md); serve --lora NAME=PATH does this.
function Model:add_lora(name, spec)
   return require("moonhub.adapters").register(self, name, spec)
end

function Model:close()
   if self._own_draft then self._own_draft:close() end
   self._own_draft, self.draft = nil, nil
   self._h:close()
end

-- ===== running =====

-- new_cache(n_ctx?) -> a KV cache for one sequence
function Model:new_cache(n_ctx)
   return self._h:new_cache(n_ctx or self.ctx, self.kv_type)
end

-- forward(ids, cache?, {all = bool}) -> logits (n or 1, n_vocab)
function Model:forward(ids, cache, opts)
   cache = cache or self:new_cache(math.max(#ids, 1))
   return self._h:forward(cache, ids, opts and opts.all or false), cache
end

-- The token ids of a prompt: a string, a table of ids, or {messages = ...}
-- rendered through the model's chat template (moonhub.template: opts.template
-- names one, else the model's own; opts.tools, opts.template_kwargs); for
-- messages also the template's stop strings and its choice (ids, stops, choice).
function Model:prompt_ids(prompt, opts)
   if type(prompt) == "table" and prompt.messages then
      -- more results: the template's stop strings (they join opts.stop), its choice;
      -- special-token strings inside message text stay plain text (moonhub.prompt)
      return require("moonhub.prompt").encode(self, prompt.messages, opts)
   elseif type(prompt) == "table" then
      return prompt
   elseif type(prompt) == "string" then
      return self.tokenizer:encode(prompt, { special = opts and opts.special or false })
   end
   error("generate: prompt must be a string, a table of ids or {messages = ...}, got "
      .. type(prompt), 3)
end

-- The longest text an encoder embeds: its trained context (learned
-- positions end there); decoders have no such limit here.
function Model:embed_limit()
   return self.info.encoder and self.info.n_ctx_train or nil
end

-- embed(input, {truncate = false}) -> f32 tensor (n_embd), or a list of them
-- input: a text or a list of token ids (one vector), or a list of texts or
-- id lists (one vector each, in order). Encoder files (bert, nomic-bert)
-- give their pooled vectors (CLS or mean, as the file says; all texts in one
-- forward), decoders their mean-pooled final hidden states; both
-- L2-normalized. A text longer than an encoder's context is an error, or is
-- cut to it with truncate = true.
function Model:embed(input, opts)
   local one = type(input) == "string" or (type(input) == "table" and math.type(input[1]) == "integer")
   if type(input) ~= "table" and type(input) ~= "string" then
      error("embed: input must be a text, a list of token ids or a list of texts, got " .. type(input), 2)
   end
   if opts ~= nil and type(opts) ~= "table" then error("embed: opts must be a table", 2) end
   local list, limit = one and { input } or input, self:embed_limit()
   if #list == 0 then error("embed: no texts to embed", 2) end
   local lists = {}
   for i, x in ipairs(list) do
      local ids = x
      if type(x) == "string" then ids = self.tokenizer:encode(x)
      elseif type(x) ~= "table" then
         error(string.format("embed: input %d must be a text or a list of token ids, got %s", i, type(x)), 2)
      end
      if #ids == 0 then error(string.format("embed: input %d has no tokens", i), 2) end
      if limit and #ids > limit then
         if not (opts and opts.truncate) then
            error(string.format("embed: input %d has %d tokens but %s takes at most %d (pass truncate = "
               .. "true to cut it)", i, #ids, self.path, limit), 2)
         end
         ids = table.move(ids, 1, limit, 1, {})
      end
      lists[i] = ids
   end
   if one and not self.info.encoder then return self._h:embed(lists[1]) end
   local out = self._h:embed_batch(lists)
   return one and out[1] or out
end

-- The error generate/stream/chat give on an encoder file.
local function refuse_encoder(self)
   if self.info.encoder then
      error(string.format("generate: %s is an embedding model: use moonhub embed or /v1/embeddings",
         self.path), 4)
   end
end

-- ===== generating: the scheduler's loop, stepped on this thread =====
-- Every decoding feature (sampler chain, grammar, logits processor, stop
-- strings, logprobs, UTF-8-safe text) lives in that one C loop
-- (engine/sched); this file only turns options into a request and events
-- into text and stats. Defaults are the C ones (sched.defaults()).

local DEFAULTS = sched.defaults()
-- cache -> the synchronous scheduler that last ran on it: its slot knows
-- exactly which ids the cache holds, even after an interrupted stream
local cache_runs = setmetatable({}, { __mode = "k" })
-- cache -> the ids load_state put in it, until a generation takes them over
local cache_ids = setmetatable({}, { __mode = "k" })

local function check_opts(opts)
   opts = opts or {}
   local mt = opts.max_tokens or DEFAULTS.max_tokens
   if math.type(mt) ~= "integer" or mt < 0 then
      error("generate: max_tokens must be a non-negative integer, got " .. tostring(opts.max_tokens), 3)
   end
   return opts, mt
end

-- The grammar of opts: grammar = a grammar from mh.grammar (used up by this
-- generation), json_schema = a schema table or JSON text, json_object = true.
local function grammar_of(self, opts)
   if opts.grammar ~= nil then return opts.grammar end
   local g, err
   if opts.json_schema ~= nil then
      g, err = require("moonhub.grammar").json_schema(self, opts.json_schema)
   elseif opts.json_object then
      g = require("moonhub.grammar").json_object(self)
   end
   if err then error("generate: " .. err, 5) end
   return g
end

-- opts.lora (this call's own adapters: names, paths, {name | path =, scale =})
-- and opts.processors (named logits processors, docs/processors.md), run
-- through the scheduler's logits hook together with opts.logits_processor.
local function extras(self, opts)
   local lora, err = require("moonhub.adapters").for_request(self, opts.lora, { files = true })
   if err then error("generate: " .. err, 5) end
   local chain, perr = require("moonhub.processors").prepare(opts.processors, self)
   if perr then error("generate: " .. perr, 5) end
   local fn = opts.logits_processor
   if chain then
      local user = fn
      fn = function(logits, tokens)
         if user then user(logits, tokens) end
         chain:run(logits, tokens)
      end
   end
   return lora, fn
end

-- The request table for the scheduler (nil fields take the C defaults).
local function request(self, ids, opts, max_tokens, stops)
   local logprobs = opts.logprobs
   if logprobs ~= nil then logprobs = logprobs and true or false end
   local lora, processor = extras(self, opts)
   return {
      tokens = ids, max_tokens = max_tokens, temperature = opts.temperature or opts.temp,
      top_k = opts.top_k, top_p = opts.top_p, min_p = opts.min_p,
      repeat_penalty = opts.repeat_penalty, repeat_last_n = opts.repeat_last_n,
      presence_penalty = opts.presence_penalty, frequency_penalty = opts.frequency_penalty,
      seed = opts.seed, logit_bias = opts.logit_bias, stop = stops,
      logprobs = logprobs, top_logprobs = opts.top_logprobs,
      eog_ids = opts.ignore_eos and {} or sched_lua.eog_ids(self.tokenizer),
      grammar = grammar_of(self, opts), logits_processor = processor,
      speculative = opts.speculative, lora = lora,
   }
end

-- The identity of a call's adapters: a cache's rows are reused only under
-- the same ones.
local function lora_key(list)
   local parts = {}
   for i, a in ipairs(list or {}) do parts[i] = tostring(a.adapter) .. "*" .. string.format("%.9g", a.scale) end
   return table.concat(parts, ",")
end
local cache_lora = setmetatable({}, { __mode = "k" })

-- A one-slot scheduler over cache that reuses what the last one left there
-- (computed with the adapters of key: another key starts afresh), or the
-- tokens of a KV state loaded into it (computed without adapters).
local function run_on(self, cache, key)
   local prev, hist = cache_runs[cache], cache_ids[cache] or {}
   cache_ids[cache] = nil
   if key ~= "" and not prev then hist = {} end
   if prev then
      hist = cache_lora[cache] == key and prev:tokens() or {}
      prev:close()            -- an interrupted stream's request ends here
   end
   cache_lora[cache] = key
   local d = self.draft
   -- a draft model's step costs carry over from the last generation, so
   -- draft lengths are chosen by measured costs from the first step on
   local s = sched.new_sync(self._h, cache, hist, { tok = self.tokenizer._h,
      draft = type(d) == "table" and d._h or nil, draft_max = self.draft_max, draft_p_min = self.draft_p_min,
      ngram = d == "ngram" and 3 or nil, spec_costs = self:speculative_costs() })
   cache_runs[cache] = s
   return s
end

-- A generation in progress: call step() until it returns nil.
local function start(self, prompt, opts)
   refuse_encoder(self)
   local max_tokens
   opts, max_tokens = check_opts(opts)
   local t0 = sys.now()
   local ids, chat_stops = self:prompt_ids(prompt, opts)
   if #ids == 0 then error("generate: the prompt has no tokens", 3) end
   local cache = opts.cache or self:new_cache(math.min(self.ctx, #ids + max_tokens))
   if #ids + max_tokens > cache:n_ctx() then max_tokens = cache:n_ctx() - #ids end
   if max_tokens < 0 then
      error(string.format("generate: prompt of %d tokens does not fit the context of %d",
         #ids, cache:n_ctx()), 3)
   end
   local stops = type(opts.stop) == "string" and { opts.stop } or opts.stop or {}
   if chat_stops then   -- the template's stops after the caller's (copied: opts.stop is theirs)
      local all = table.move(stops, 1, #stops, 1, {})
      stops = table.move(chat_stops, 1, #chat_stops, #all + 1, all)
   end
   local req = request(self, ids, opts, max_tokens, stops)
   local s = run_on(self, cache, lora_key(req.lora))
   local ok, id, err = pcall(s.submit, s, req)
   if not ok then error("generate: " .. tostring(id):gsub("^sched:submit: ", ""), 3) end
   if not id then error("generate: " .. tostring(err):gsub("^sched: ", ""), 3) end
   local st = { prompt_tokens = #ids, prompt_processed = 0, generated = 0, tokens = {} }
   local t1
   local function finish(ev)
      local now = sys.now()
      t1 = t1 or now
      st.finish_reason = ev.reason
      st.settings = ev.settings
      st.prompt_processed = ev.usage.prompt_tokens - ev.usage.cached_tokens
      st.prompt_s = t1 - t0
      st.ttft_s = st.prompt_s
      st.gen_s = now - t1
      st.prompt_tps = st.prompt_processed / math.max(st.prompt_s, 1e-9)
      st.gen_tps = st.generated / math.max(st.gen_s, 1e-9)
      if ev.usage.draft_tokens then     -- speculation: how well the drafts did
         st.draft_tokens, st.accepted_tokens = ev.usage.draft_tokens, ev.usage.accepted_tokens
         st.acceptance_rate, st.tokens_per_step = ev.usage.acceptance_rate, ev.usage.tokens_per_step
         if type(self.draft) == "table" then       -- kept per draft model (weak keys)
            self._spec_costs = self._spec_costs or setmetatable({}, { __mode = "k" })
            self._spec_costs[self.draft] = s:stats().spec_costs or self._spec_costs[self.draft]
         end
      end
      if ev.reason == "error" then
         local msg = tostring(ev.error)
         error(msg:find("interrupted!$") and msg or "generate: " .. msg, 0)
      end
   end
   local function step()
      while not st.finish_reason do
         local ev = s:next()
         if not ev then return nil end
         if ev.done then
            finish(ev)
            return ev.text ~= "" and ev.text or nil
         end
         t1 = t1 or sys.now()
         st.generated = st.generated + 1
         st.tokens[#st.tokens + 1] = ev.token
         if ev.logprob then
            local top_ids, top_lps = {}, {}
            for i, t in ipairs(ev.top or {}) do top_ids[i], top_lps[i] = t[1], t[2] end
            st.logprobs = st.logprobs or {}
            st.logprobs[#st.logprobs + 1] = { id = ev.token, logprob = ev.logprob, top_ids = top_ids,
               top_logprobs = top_lps }
         end
         if ev.text ~= "" then return ev.text end
      end
      return nil
   end
   return step, st
end

-- ===== KV state on disk (docs/kv-state.md) =====

-- The ids cache holds: what the last generation on it left, or load_state put there.
function Model.cache_tokens(_, cache)
   local run = cache_runs[cache]
   return run and run:tokens() or cache_ids[cache] or {}
end

-- save_state(path, cache[, ids]) -> bytes | nil, msg: cache's KV rows and
-- ids (default: what the last generation on it left) as a state file,
-- written with temp-and-rename; the model's identity goes with them.
function Model:save_state(path, cache, ids)
   if type(path) ~= "string" or path == "" then
      error("model:save_state: path must be a non-empty string, got " .. type(path), 2)
   end
   if cache == nil then error("model:save_state: needs the cache a generation ran on ({cache = ...})", 2) end
   ids = ids or self:cache_tokens(cache)
   if #ids == 0 then return nil, "save_state: the cache holds no tokens yet (generate with {cache = cache} first)" end
   local bytes, err = kvstate.save(self._h, cache, ids, path)
   if not bytes then return nil, "save_state: " .. err end
   return bytes
end

-- load_state(path[, cache]) -> cache, ids | nil, msg: a state file saved by
-- this model (anything else is refused: another model, a truncated or
-- corrupt file) into cache (default: a new one of the model's context). The
-- next generation on cache reuses its ids as a cached prefix.
function Model:load_state(path, cache)
   if type(path) ~= "string" or path == "" then
      error("model:load_state: path must be a non-empty string, got " .. type(path), 2)
   end
   cache = cache or self:new_cache()
   local ids, err = kvstate.load(self._h, cache, path)
   if not ids then return nil, "load_state: " .. err end
   local prev = cache_runs[cache]
   if prev then prev:close() end
   cache_runs[cache], cache_ids[cache] = nil, ids
   return cache, ids
end

-- stream(prompt, opts) -> iterator of text pieces, stats table (filled as it
-- runs; st.settings, the effective settings, once it ends)
function Model:stream(prompt, opts)
   return start(self, prompt, opts)
end

-- generate(prompt, opts) -> text, stats
-- opts: max_tokens, temperature (0 = greedy), top_k, top_p, min_p,
-- repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty,
-- logit_bias {[id] = bias}, seed, stop (string or list), logprobs,
-- top_logprobs, ignore_eos, cache, logits_processor = function(logits,
-- tokens), processors = {{name =, args =}, ...} (docs/processors.md),
-- lora = {name | path | {name =, scale =}, ...} (this call's own adapters,
-- docs/lora.md), grammar (from mh.grammar), json_schema (table or JSON text),
-- json_object = true, speculative = false | "draft" | "ngram" | {n_max =,
-- ngram =} (docs/speculative.md; stats.acceptance_rate, .tokens_per_step).
-- Unset options take the shared defaults
-- (moonhub.model.defaults). stats.settings: what the loop ran with.
function Model:generate(prompt, opts)
   local step, st = start(self, prompt, opts)
   local parts = {}
   for piece in step do parts[#parts + 1] = piece end
   return table.concat(parts), st
end

-- The generation defaults every path shares (a copy).
function M.defaults()
   local t = {}
   for k, v in pairs(DEFAULTS) do t[k] = v end
   return t
end

-- perplexity(text, {ctx = 256}) -> ppl, {nll =, n =, chunks = {...}}
-- As llama-perplexity: chunks of ctx tokens, BOS replacing each chunk's
-- first token when the model adds one, scoring the second half of each.
function Model:perplexity(text, opts)
   local ctx = (opts and opts.ctx) or 256
   local ids = self.tokenizer:encode(text)
   local n_chunks = #ids // ctx
   if n_chunks < 1 then
      error(string.format("perplexity: text has %d tokens, fewer than ctx %d", #ids, ctx), 2)
   end
   local bos = self.tokenizer.add_bos and self.tokenizer.bos or nil
   local nll, count, chunks = 0.0, 0, {}
   for c = 0, n_chunks - 1 do
      local chunk = table.move(ids, c * ctx + 1, (c + 1) * ctx, 1, {})
      if bos then chunk[1] = bos end
      local cache = self:new_cache(ctx)
      local logits = self._h:forward(cache, chunk, true):log_softmax(2)
      for i = ctx // 2, ctx - 2 do          -- 0-based: logits at i predict token i + 1
         nll = nll - logits[{ i + 1, chunk[i + 2] + 1 }]
         count = count + 1
      end
      chunks[#chunks + 1] = math.exp(nll / count)
      cache:free()
   end
   return math.exp(nll / count), { nll = nll, n = count, chunks = chunks }
end

M.Model = Model   -- the class, for help() and its docs (moonhub.docs_table)
return M
