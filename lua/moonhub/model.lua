-- moonhub.model: load a model, run it, generate and stream text, perplexity.
-- Layer: lua/moonhub (wraps moonhub.core.model, .sample, moonhub.tokenizer).
-- Token ids are the tokenizer's 0-based ids; logits are (n, n_vocab) f32
-- tensors. The sampler chain and its options are described in docs/sampling.md.
local core = require "moonhub.core.model"
local sample = require "moonhub.core.sample"
local sys = require "moonhub.core.sys"
local tokenizer = require "moonhub.tokenizer"

local M = {}
local Model = {}
Model.__index = Model

-- ===== memory check =====

local function mem_available()
   local f = io.open("/proc/meminfo", "r")
   if not f then return nil end
   local text = f:read("a")
   f:close()
   local kb = text:match("MemAvailable:%s*(%d+) kB")
   return kb and tonumber(kb) * 1024 or nil
end

local function gib(n) return string.format("%.2f GiB", n / 2^30) end

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
--   adapters = {path or {path =, scale =}, ...}})
--   -> model | nil, msg
function M.load(path, opts)
   if type(path) ~= "string" or path == "" then
      error("moonhub.load: path must be a non-empty string, got " .. type(path), 2)
   end
   opts = opts or {}
   -- not a file or folder: a registry name "name[:tag]" (moonhub.models)
   local resolved, rerr = require("moonhub.models").resolve(path)
   if not resolved then return nil, "moonhub.load: " .. rerr end
   path = resolved
   -- in a server coroutine the file is mapped and parsed on a worker thread
   local h, msg = require("moonhub.work").call(core, "load", path)
   if not h then return nil, msg end
   -- an HF checkpoint named by its config.json keeps tokenizer.json beside it
   local tok, terr = tokenizer.load(path:match("^(.*)/config%.json$")
      or (path == "config.json" and ".") or path)
   if not tok then
      h:close()
      return nil, "moonhub.load: " .. path .. ": tokenizer: " .. tostring(terr)
   end
   if opts.threads then sys.threads(opts.threads) end
   if opts.adapters then
      local ok, err = M.set_adapters(h, opts.adapters)
      if not ok then
         h:close()
         return nil, err
      end
   end
   local info = h:hparams()
   info.path = path
   local self = setmetatable({ _h = h, tokenizer = tok, info = info, path = path,
      kv_type = opts.kv_type or "f16" }, Model)
   self.ctx = opts.ctx or math.min(info.n_ctx_train, 4096)
   if math.type(self.ctx) ~= "integer" or self.ctx < 1 then
      h:close()
      error("moonhub.load: ctx must be a positive integer, got " .. tostring(opts.ctx), 2)
   end
   local need = self:memory_needed(self.ctx)
   local limit = opts.mem_limit or mem_available()
   if limit and need > limit then
      h:close()
      return nil, string.format("moonhub.load: %s needs %s at ctx %d but only %s %s; "
         .. "lower --ctx or raise --mem-limit", path, gib(need), self.ctx, gib(limit),
         opts.mem_limit and "is allowed (--mem-limit)" or "is available")
   end
   return self
end

-- set_adapters(list): replaces the model's LoRA adapters ({} removes them)
function Model:set_adapters(list)
   local ok, err = M.set_adapters(self._h, list)
   if not ok then error(err, 2) end
end

function Model:close()
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

local cache_tokens = setmetatable({}, { __mode = "k" })  -- cache -> ids it holds

-- embed(text_or_ids) -> f32 tensor (n_embd): mean-pooled final hidden
-- states, L2-normalized (sentence embeddings from a decoder model)
function Model:embed(input)
   local ids = type(input) == "table" and input or self.tokenizer:encode(input)
   if #ids == 0 then error("embed: the input has no tokens", 2) end
   return self._h:embed(ids)
end

-- Feeds ids into cache, reusing the longest prefix it already holds; returns
-- the logits of the last id and how many prompt tokens were processed.
local function prefill(self, cache, ids)
   local held = cache_tokens[cache] or {}
   -- An interrupted stream can leave held one token ahead of the cache (or
   -- behind it): only positions the cache really has count as reusable.
   local keep, limit = 0, math.min(#held, cache:n_past())
   while keep < limit and keep < #ids and held[keep + 1] == ids[keep + 1] do keep = keep + 1 end
   if keep == #ids then keep = keep - 1 end             -- need the last token's logits
   if keep < cache:n_past() then cache:truncate(keep) end
   local rest = table.move(ids, keep + 1, #ids, 1, {})
   local logits = self._h:forward(cache, rest, false)
   local now = table.move(ids, 1, #ids, 1, {})
   cache_tokens[cache] = now
   return logits, #rest, now
end

local function check_opts(opts)
   opts = opts or {}
   local mt = opts.max_tokens or 256
   if math.type(mt) ~= "integer" or mt < 0 then
      error("generate: max_tokens must be a non-negative integer, got " .. tostring(opts.max_tokens), 3)
   end
   return opts, mt
end

-- A generation in progress: call step() until it returns nil.
local function start(self, prompt, opts)
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
   local temperature = opts.temperature or opts.temp or 0.8
   local sampler = sample.sampler(self.info.n_vocab, {
      temperature = temperature, top_k = opts.top_k or 40, top_p = opts.top_p or 0.95,
      min_p = opts.min_p or 0.05, repeat_penalty = opts.repeat_penalty or 1.0,
      repeat_last_n = opts.repeat_last_n or 64, presence_penalty = opts.presence_penalty,
      frequency_penalty = opts.frequency_penalty, seed = opts.seed, logit_bias = opts.logit_bias,
   })
   local stops = type(opts.stop) == "string" and { opts.stop } or opts.stop or {}
   if chat_stops then   -- the template's stops after the caller's (copied: opts.stop is theirs)
      local all = table.move(stops, 1, #stops, 1, {})
      stops = table.move(chat_stops, 1, #chat_stops, #all + 1, all)
   end
   local stopper = sample.stop(stops)
   local decoder = self.tokenizer:decoder()
   local logits, processed, held = prefill(self, cache, ids)
   local st = {
      prompt_tokens = #ids, prompt_processed = processed, generated = 0,
      prompt_s = sys.now() - t0, finish_reason = nil, tokens = {},
   }
   st.ttft_s = st.prompt_s
   local t1 = sys.now()
   local pending_out = nil
   local function finish(reason)
      st.finish_reason = st.finish_reason or reason
      st.gen_s = sys.now() - t1
      st.prompt_tps = st.prompt_processed / math.max(st.prompt_s, 1e-9)
      st.gen_tps = st.generated / math.max(st.gen_s, 1e-9)
   end
   local function step()
      if pending_out then
         local s = pending_out
         pending_out = nil
         return s
      end
      if st.finish_reason then return nil end
      if st.generated >= max_tokens then
         local rest = decoder:flush() .. ""
         local out = stopper:push(rest)
         out = out .. stopper:flush()
         finish("length")
         return out ~= "" and out or nil
      end
      if opts.logits_processor then opts.logits_processor(logits, st.tokens) end
      local id = sampler:sample(logits)
      sampler:accept(id)
      st.generated = st.generated + 1
      st.tokens[#st.tokens + 1] = id
      if opts.logprobs then
         local lp, top_ids, top_lps = sample.logprobs(logits, opts.top_logprobs or 0, id)
         st.logprobs = st.logprobs or {}
         st.logprobs[#st.logprobs + 1] = { id = id, logprob = lp, top_ids = top_ids, top_logprobs = top_lps }
      end
      if self.tokenizer:is_eog(id) and not opts.ignore_eos then
         local out = stopper:push(decoder:flush()) .. stopper:flush()
         finish("stop")
         return out ~= "" and out or nil
      end
      local out, stopped = stopper:push(decoder:push(id))
      if stopped then
         finish("stop")
         return out ~= "" and out or nil
      end
      if st.generated < max_tokens then
         held[#held + 1] = id
         logits = self._h:forward(cache, { id }, false)
      end
      if out == "" then return step() end
      return out
   end
   return step, st
end

-- stream(prompt, opts) -> iterator of text pieces, stats table (filled as it runs)
function Model:stream(prompt, opts)
   return start(self, prompt, opts)
end

-- generate(prompt, opts) -> text, stats
-- opts: max_tokens, temperature (0 = greedy), top_k, top_p, min_p,
-- repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty,
-- logit_bias {[id] = bias}, seed, stop (string or list), logprobs,
-- top_logprobs, cache, logits_processor = function(logits, tokens).
function Model:generate(prompt, opts)
   local step, st = start(self, prompt, opts)
   local parts = {}
   for piece in step do parts[#parts + 1] = piece end
   return table.concat(parts), st
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

return M
