-- moonhub.server.request: the neutral generation request every protocol
-- adapter translates into (OpenAI now; Ollama, Anthropic next), binding it
-- to a loaded model and running its choices. Layer: lua/moonhub (uses
-- moonhub.openai for the error shape, .prompt, .grammar, .toolcall).

-- A request (built by an adapter, checked before any model is touched):
--   kind        "chat" | "text"
--   model       name the client asked for, or nil;  keep_alive  seconds | nil
--   messages    {{role, content, name?, tool_calls?, tool_call_id?}}  (chat)
--   prompts     {string | {ids}}                                      (text)
--   tools, tool_choice ("none" | "auto" | "required" | a function name)
--   format      nil | {type = "json_object"} | {type = "json_schema", schema =}
--   sampling    {temperature, top_p, top_k, min_p, presence_penalty,
--               frequency_penalty, repeat_penalty, seed, logit_bias}
--   max_tokens  integer | nil (the rest of the context);  stop {strings}
--   n, stream, include_usage, logprobs (bool), top_logprobs (int), store
--   echo        true: each choice carries the settings the sampler ran
--               with ("moonhub": {"echo_settings": true}, docs/server.md)
--   lora        {{name, scale?}} the request's own adapters (docs/lora.md)
--   processors  {{name, args}} Lua logits processors (docs/processors.md)
local oa = require "moonhub.openai"

local M = {}

-- ===== keep_alive =====

-- The longest keep_alive: far below the loop timer's limit, so a value
-- that passes here can never fail later when the timer is armed.
M.MAX_KEEP_ALIVE = 10 * 365 * 86400

-- keep_alive(v) -> seconds | nil, msg. As Ollama: seconds, or a duration
-- ("30s", "5m", "1h30m"); negative keeps the model loaded for good.
function M.keep_alive(v)
   local secs, err = require("moonhub.pool").parse_duration(v)
   if not secs then return nil, err end
   if secs ~= secs or secs > M.MAX_KEEP_ALIVE then
      return nil, string.format("keep_alive %s is out of range: at most %d seconds (10 years); "
         .. "a negative value keeps the model loaded", type(v) == "number" and string.format("%.15g", v)
         or string.format("%q", v), M.MAX_KEEP_ALIVE)
   end
   return secs < 0 and -1.0 or secs
end

-- ===== moonhub's extensions: adapters and processors per request =====

-- A list field of {"name": ..., KEY: ...} objects (or bare names) -> list | nil
local function named_list(body, field, extra, check)
   local v = body[field]
   if oa.is_null(v) then return nil end
   if not oa.is_array(v) then oa.wrong(field, string.format("an array of {\"name\", \"%s\"} objects", extra), v) end
   if #v > 8 then oa.fail(400, string.format("'%s' takes at most 8 entries, got %d", field, #v), field) end
   local out = {}
   for i, x in ipairs(v) do
      local where = string.format("%s[%d]", field, i - 1)
      if type(x) == "string" then x = { name = x } end
      if not oa.is_object(x) then oa.wrong(where, string.format("an object {\"name\", \"%s\"}", extra), x, field) end
      for k in pairs(x) do
         if k ~= "name" and k ~= extra then
            oa.fail(400, string.format("'%s.%s' is not an option; it takes name and %s", where, tostring(k), extra),
               field)
         end
      end
      if type(x.name) ~= "string" or x.name == "" then
         oa.wrong(where .. ".name", "a non-empty string", x.name, field)
      end
      out[i] = { name = x.name, [extra] = check(where .. "." .. extra, x[extra]) }
   end
   return out
end

-- extensions(body, r): "lora": [{"name", "scale"?}] and "processors":
-- [{"name", "args"?}] into r, checked for their shape (every protocol
-- adapter calls this; names are resolved against the model in prepare).
function M.extensions(body, r)
   r.lora = named_list(body, "lora", "scale", function(where, x)
      if oa.is_null(x) then return nil end
      if type(x) ~= "number" or x ~= x or math.abs(x) > 1e6 then oa.wrong(where, "a finite number", x, "lora") end
      return x
   end)
   r.processors = named_list(body, "processors", "args", function(where, x)
      if oa.is_null(x) then return {} end
      if not oa.is_object(x) and not (type(x) == "table" and next(x) == nil) then
         oa.wrong(where, "an object", x, "processors")
      end
      return x
   end)
   return r
end

-- The adapters and processors of r for view's model into params (400 for
-- an unknown name or bad processor args).
local function resolve_extensions(r, view, params)
   if r.lora then
      local list, err = require("moonhub.adapters").for_request(view.model, r.lora)
      if not list then oa.fail(400, err, "lora", "unknown_adapter") end
      params.lora = list
   end
   if r.processors then
      local chain, err, why = require("moonhub.processors").prepare(r.processors, view.model)
      if err then
         oa.fail(400, err, "processors", why == "unknown" and "unknown_processor" or "invalid_processor_args")
      end
      params.processors, params.chain = r.processors, chain
   end
end

-- chain(model, params) -> the processors of one generation: the chain
-- prepare checked for the first, a fresh one (own state) for each other.
function M.chain(model, params)
   if not params.processors then return nil end
   local c = params.chain
   if c and not c.used then
      c.used = true
      return c
   end
   return (require("moonhub.processors").prepare(params.processors, model))
end

-- ===== binding to a model =====

-- Prompt ids and stop strings for chat messages through the model's
-- template. Contents are plain text: "<|im_start|>" in a message is not a
-- control token.
local function chat_prompt(view, messages, tools)
   local m = view.model
   local ok, ids, stops = pcall(require("moonhub.prompt").encode, m, messages,
      { tools = tools, template = view.opts.template })
   if not ok then
      if type(ids) == "table" then error(ids, 0) end
      -- a template that refuses the messages (raise_exception: roles must
      -- alternate...): the client's to fix; the message without its source location
      local msg = tostring(ids):gsub("^[^\n]-%.lua:%d+: ", "")
      oa.fail(400, "the chat template cannot render these messages: " .. msg, "messages")
   end
   return ids, stops or m.chat_stops or {}
end

-- Grammar for a format / forced tool call (nil when unconstrained).
local function grammar_for(view, format, tools, tool_choice)
   local forced = tools and tool_choice ~= "auto" and tool_choice ~= "none"
   if not format and not forced then return nil end
   local ok, grammar = pcall(require, "moonhub.grammar")
   if not ok then oa.fail(400, "constrained decoding is not available in this build", "response_format") end
   local tok = view.model.tokenizer
   local g, err
   if forced then
      g, err = grammar.tool_call(tok, tools, tool_choice ~= "required" and tool_choice or nil)
   elseif format.type == "json_object" then
      g, err = grammar.json_object(tok)
   else
      g, err = grammar.json_schema(tok, format.schema)
   end
   if not g then oa.fail(400, "response_format: " .. tostring(err), "response_format") end
   return g
end

-- prepare(r, view) -> job {prompts = {ids}, stops, params, with_tools}:
-- the checks that need the model (vocabulary, context), then prompt ids.
function M.prepare(r, view)
   if view.model.info.encoder then
      oa.fail(400, string.format("%s is an embedding model: use moonhub embed or /v1/embeddings", view.name),
         "model", "invalid_request_error")
   end
   local tok, n_vocab = view.model.tokenizer, view.model.info.n_vocab
   local s = r.sampling
   for id in pairs(s.logit_bias or {}) do
      if id >= n_vocab then
         oa.fail(400, string.format("'logit_bias' key %d is not a token id of this model (0..%d)", id, n_vocab - 1),
            "logit_bias")
      end
   end
   local params = {}
   for k, v in pairs(s) do params[k] = v end
   params.max_tokens = r.max_tokens or view.ctx
   params.logprobs = r.logprobs
   params.top_logprobs = r.logprobs and (r.top_logprobs or 0) or nil
   local with_tools = r.tools ~= nil and r.tool_choice ~= "none"
   params.grammar = grammar_for(view, r.format, r.tools, r.tool_choice)
   resolve_extensions(r, view, params)
   local job = { prompts = {}, stops = {}, params = params, with_tools = with_tools }
   for _, x in ipairs(r.stop or {}) do job.stops[#job.stops + 1] = x end
   if r.kind == "chat" then
      local ids, tstops = chat_prompt(view, r.messages, with_tools and r.tools or nil)
      job.prompts[1] = ids
      for _, x in ipairs(tstops) do job.stops[#job.stops + 1] = x end
   else
      for i, p in ipairs(r.prompts) do
         local ids
         if type(p) == "string" then ids = tok:encode(p)
         else
            oa.token_ids(p, string.format("prompt[%d]", i - 1), "prompt", n_vocab)
            ids = table.move(p, 1, #p, 1, {})
         end
         if tok.add_bos and tok.bos and ids[1] ~= tok.bos then table.insert(ids, 1, tok.bos) end
         if #ids == 0 then oa.fail(400, string.format("prompt %d has no tokens", i - 1), "prompt") end
         job.prompts[i] = ids
      end
   end
   return job
end

-- ===== running =====

-- Tool calls in a finished choice's text: forced calls were generated as
-- bare {"name", "arguments"} JSON, "auto" ones in the model's own format.
local function parse_tools(view, text, tool_choice)
   local toolcall = require "moonhub.toolcall"
   if tool_choice ~= "auto" then return toolcall.parse_llama3(text) end
   return toolcall.parse(text, view.model.tool_format)
end

-- run(view, r, job, sink, req) -> usage {prompt_tokens, completion_tokens,
-- cached_tokens}, timings of the first choice. Every prompt gets r.n
-- choices (seed + i for choice i), indexed prompt * n + i. The sink sees
--   sink.text(index, text, info)   each visible piece (not with tools:
--                                  the text is parsed for calls at the end)
--   sink.choice(index, result)     result = {text, reason, infos, calls?,
--                                  content?, settings? (r.echo), stop? (the
--                                  stop string that ended it)} once a
--                                  choice ends
function M.run(view, r, job, sink, req)
   local total = { prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0 }
   local timings
   for pi, ids in ipairs(job.prompts) do
      local cached = 0
      for i = 1, r.n do
         local index = (pi - 1) * r.n + i - 1
         local q = setmetatable({ seed = job.params.seed and (job.params.seed + i - 1) }, { __index = job.params })
         local parts, infos = {}, {}
         if sink.begin then sink.begin(index) end
         local reason, u, tm, msg, settings, stop_index = view:generate(ids, q, job.stops, function(text, info)
            parts[#parts + 1] = text
            if info then infos[#infos + 1] = info end
            if not job.with_tools and sink.text then sink.text(index, text, info) end
         end, function() return req.closed end, req)
         if reason == "error" then oa.fail(500, "generation failed: " .. tostring(msg), nil, "generation_failed") end
         view:count_usage(u)
         local result = { text = table.concat(parts), reason = reason, infos = infos,
            settings = r.echo and settings or nil, stop = stop_index and job.stops[stop_index] }
         if job.with_tools then
            local calls, content = parse_tools(view, result.text, r.tool_choice)
            if #calls > 0 then result.calls, result.content, result.reason = calls, content, "tool_calls" end
         end
         sink.choice(index, result)
         if i == 1 then total.prompt_tokens = total.prompt_tokens + u.prompt_tokens end
         cached = math.max(cached, u.cached_tokens or 0)
         total.completion_tokens = total.completion_tokens + u.completion_tokens
         if u.draft_tokens then       -- speculation (docs/speculative.md)
            total.draft_tokens = (total.draft_tokens or 0) + u.draft_tokens
            total.accepted_tokens = (total.accepted_tokens or 0) + u.accepted_tokens
            total.target_steps = (total.target_steps or 0) + u.target_steps
         end
         timings = timings or tm
      end
      total.cached_tokens = total.cached_tokens + cached
   end
   req.tokens = total                       -- for the request log
   return total, timings
end

-- The most tokens one input may have: an encoder's trained context (its
-- positions end there), else the server's context.
function M.embed_limit(view)
   return view.model:embed_limit() or view.ctx
end

-- Tokens per encoder forward: bounds the activations of a large request
-- (~n_ff floats a token) while short texts still share one forward.
local EMBED_BATCH_TOKENS = 8192

-- embed(view, inputs, truncate, hint) -> vectors (tables of floats), token
-- count. inputs: strings or id lists, checked against the model's
-- vocabulary; one longer than the limit is cut when truncate, refused
-- otherwise (hint: what the protocol offers instead). Encoders embed
-- several inputs per forward (sched:embed_batch).
function M.embed(view, inputs, truncate, hint)
   local tok, n_vocab, limit = view.model.tokenizer, view.model.info.n_vocab, M.embed_limit(view)
   local lists, n = {}, 0
   for i, x in ipairs(inputs) do
      local ids = type(x) == "string" and tok:encode(x)
         or oa.token_ids(x, string.format("input[%d]", i - 1), "input", n_vocab)
      if #ids == 0 then oa.fail(400, string.format("input %d has no tokens", i - 1), "input") end
      if #ids > limit then
         if not truncate then
            oa.fail(400, string.format("input %d has %d tokens but the model takes at most %d%s", i - 1, #ids,
               limit, hint or ""), "input", "exceed_context_size_error")
         end
         ids = table.move(ids, 1, limit, 1, {})
      end
      lists[i] = ids
      n = n + #ids
   end
   local out = {}
   if not view.model.info.encoder then
      for i, ids in ipairs(lists) do out[i] = view.sched:embed(ids):totable() end
      return out, n
   end
   local i = 1
   while i <= #lists do                    -- batches of up to EMBED_BATCH_TOKENS tokens
      local batch, tokens = {}, 0
      repeat
         batch[#batch + 1] = lists[i]
         tokens = tokens + #lists[i]
         i = i + 1
      until i > #lists or tokens + #lists[i] > EMBED_BATCH_TOKENS
      for _, v in ipairs(view.sched:embed_batch(batch)) do out[#out + 1] = v:totable() end
   end
   return out, n
end

return M
