-- moonhub.server: the OpenAI-compatible HTTP application — routes, auth,
-- rate limits, metrics — over one model and its scheduler.
-- Layer: lua/moonhub (uses moonhub.http, .openai, .sched, .metrics,
-- .toolcall, .template). Each request runs in its own coroutine; waits
-- (next token, keep-alive timers) yield to the loop. See docs/server.md.
local http = require "moonhub.http"
local oa = require "moonhub.openai"
local metrics_mod = require "moonhub.metrics"
local sample = require "moonhub.core.sample"

local M = {}
local App = {}
local ROUTES                   -- path -> method of App, filled below
App.__index = App

local JSON = { ["Content-Type"] = "application/json" }
local SSE = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }

local function now() return require("moonhub.core.sys").now() end

-- ===== app =====

-- new{model_name =, api_key =, rate =, keepalive =} -> app; app:attach(model, sched) once loaded
function M.new(opts)
   local self = setmetatable({ opts = opts or {}, model = nil, sched = nil, seq = 0,
      buckets = {}, metrics = metrics_mod.new() }, App)
   self.name = self.opts.model_name or "model"
   return self
end

function App:attach(model, sched)
   self.model, self.sched = model, sched
   self.ctx = model.ctx
   self.created = os.time()
end

function App:next_id(prefix)
   self.seq = self.seq + 1
   return string.format("%s-%x%04x", prefix, os.time(), self.seq % 0x10000)
end

-- token bucket per API key (or client address): opts.rate requests per
-- second, burst 2x. Returns ok, seconds until the next request is allowed.
function App:allow(who)
   local rate = self.opts.rate
   if not rate or rate <= 0 then return true end
   local ip = (who or ""):match("^(.*):%d+$") or who or "?"
   local b = self.buckets[ip]
   local t = now()
   if not b then
      b = { tokens = rate * 2, at = t }
      self.buckets[ip] = b
   end
   b.tokens = math.min(rate * 2, b.tokens + (t - b.at) * rate)
   b.at = t
   if b.tokens < 1 then return false, (1 - b.tokens) / rate end
   b.tokens = b.tokens - 1
   return true
end

-- ===== generation through the scheduler =====

-- The text of a stream of token events: decoded with the tokenizer's
-- streaming decoder, stop strings held back and never emitted.
local function text_stream(tok, stops)
   local dec = tok:decoder()
   local stopper = sample.stop(stops or {})
   return {
      push = function(id)
         local out, stopped = stopper:push(dec:push(id))
         return out, stopped
      end,
      finish = function()
         local out = stopper:push(dec:flush())
         return out .. stopper:flush()
      end,
   }
end

-- Runs one generation: calls on_text(text, logprob_info) for each visible
-- piece; returns finish_reason, usage, timings. Cancels on a stop string
-- or when should_stop() says the client has gone.
function App:generate(ids, p, stops, on_text, should_stop, http_req)
   local tok = self.model.tokenizer
   if #ids >= self.ctx then
      oa.fail(400, string.format("the prompt has %d tokens but the context holds %d; shorten it", #ids, self.ctx),
         "messages", "exceed_context_size_error")
   end
   local max_queue = self.opts.max_queue or 64
   if self.sched:stats().waiting >= max_queue then
      oa.fail(503, "the server is busy: too many requests waiting", nil, "server_busy", { ["Retry-After"] = "1" })
   end
   local room = self.ctx - #ids
   local req, err = self.sched:submit({
      tokens = ids, max_tokens = math.min(p.max_tokens, room), temperature = p.temperature, top_k = p.top_k,
      top_p = p.top_p, min_p = p.min_p, repeat_penalty = p.repeat_penalty,
      presence_penalty = p.presence_penalty, frequency_penalty = p.frequency_penalty,
      seed = p.seed, logit_bias = p.logit_bias, logprobs = p.top_logprobs or (p.logprobs and 0 or nil),
      eog = true, grammar = p.grammar,
   })
   if not req then oa.fail(400, tostring(err)) end
   if http_req then http_req:on_close(function() req:cancel() end) end   -- frees the slot at once
   local ts = text_stream(tok, stops)
   local reason
   local t0, last = now(), nil
   while true do
      local ev = req:next()
      local t = now()
      if not ev.done then       -- latency metrics: first token, then each next one
         if last then self.metrics:observe("moonhub_time_per_output_token_seconds", t - last)
         else self.metrics:observe("moonhub_time_to_first_token_seconds", t - t0) end
         last = t
      end
      if ev.done then
         local tail = ts.finish()
         if tail ~= "" and not reason then on_text(tail, nil) end
         return reason or ev.reason, ev.usage, ev.timings, ev.error
      end
      if should_stop and should_stop() then
         req:cancel()
         reason = "cancel"
      elseif not reason then
         local text, stopped = ts.push(ev.token)
         local info = p.logprobs and { id = ev.token, logprob = ev.logprob, top = ev.top } or nil
         if text ~= "" or info then on_text(text, info) end
         if stopped then
            req:cancel()
            reason = "stop"
         end
      end
   end
end

-- ===== routes =====

local function respond_error(req, err)
   local headers = { ["Content-Type"] = "application/json" }
   for k, v in pairs(err.headers or {}) do headers[k] = v end
   return req:respond(err.status, headers, oa.error_body(err.status, err.message, err.param, err.code))
end

function App:require_model()
   if not self.sched then oa.fail(503, "the model is still loading; retry shortly") end
end

-- Prompt ids and stop strings for chat messages through the model's template.
-- Contents are plain text: a "<|im_start|>" inside a message is not a control token.
function App:chat_prompt(messages, tools)
   local m = self.model
   local ids, stops = require("moonhub.prompt").encode(m, messages, { tools = tools, template = self.opts.template })
   return ids, stops or m.chat_stops or {}
end

local function logprob_entries(tok, info, top_n)
   local top = {}
   for i, t in ipairs(info.top or {}) do
      if i > top_n then break end
      top[#top + 1] = { piece = tok:piece(t[1]), logprob = t[2] }
   end
   return oa.chat_logprob(tok:piece(info.id), info.logprob, top)
end

function App:chat(req)
   self:require_model()
   local body = oa.decode(req.body)
   local p = oa.sampling(body, self.model.info.n_vocab, self.ctx)
   local messages = oa.messages(body)
   local tools, tool_choice = oa.tools(body)
   p.logprobs = body.logprobs == true
   if p.logprobs then
      local n = body.top_logprobs
      if n ~= nil and n ~= oa.null and (math.type(n) ~= "integer" or n < 0 or n > 20) then
         oa.fail(400, "'top_logprobs' must be an integer from 0 to 20", "top_logprobs")
      end
      p.top_logprobs = n ~= oa.null and n or 0
   end
   p.grammar = self:grammar_for(oa.response_format(body), tools, tool_choice)
   local ids, tstops = self:chat_prompt(messages, tool_choice ~= "none" and tools or nil)
   local stops = {}
   for _, s in ipairs(p.stop) do stops[#stops + 1] = s end
   for _, s in ipairs(tstops) do stops[#stops + 1] = s end
   local id, created = self:next_id("chatcmpl"), os.time()
   local tok = self.model.tokenizer
   local with_tools = tools and tool_choice ~= "none"

   local function finish_message(text, reason)
      if not with_tools then return { role = "assistant", content = text }, reason end
      local calls, content = self:parse_tools(text, tool_choice)
      if #calls == 0 then return { role = "assistant", content = text }, reason end
      local out = oa.array()
      for i, c in ipairs(calls) do
         out[i] = { id = c.id or string.format("call_%s_%d", id:sub(-8), i), type = "function",
                    ["function"] = { name = c.name, arguments = c.arguments } }
      end
      return { role = "assistant", content = (content ~= "" and content) or oa.null, tool_calls = out },
         "tool_calls"
   end

   if not p.stream then
      local choices, total = {}, { prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0 }
      local timings
      for i = 1, p.n do
         local parts, lps = {}, oa.array()
         local q = setmetatable({ seed = p.seed and (p.seed + i - 1) }, { __index = p })
         local reason, u, tm, msg = self:generate(ids, q, stops, function(text, info)
            parts[#parts + 1] = text
            if info then lps[#lps + 1] = logprob_entries(tok, info, p.top_logprobs) end
         end, function() return req.closed end, req)
         if reason == "error" then oa.fail(500, "generation failed: " .. tostring(msg)) end
         self:count_usage(u)
         local message, fr = finish_message(table.concat(parts), reason)
         choices[i] = { index = i - 1, message = message, finish_reason = fr,
                        logprobs = p.logprobs and { content = lps } or oa.null }
         total.prompt_tokens = u.prompt_tokens
         total.cached_tokens = math.max(total.cached_tokens, u.cached_tokens or 0)
         total.completion_tokens = total.completion_tokens + u.completion_tokens
         timings = timings or tm
      end
      self:record_chat(body, messages, choices[1].message.content, total, timings, p)
      return 200, JSON, oa.chat_response(id, created, self.name, choices, total)
   end

   -- streaming: one id for all chunks, role only in the first delta
   req:start(200, SSE)
   local keep = http.timer(self.opts.keepalive or 5, function() req:write(": keep-alive\n\n") end)
   local total = { prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0 }
   local answer, timings = {}, nil          -- choice 0's text, for the history
   local ok, err = pcall(function()
      for i = 1, p.n do
         req:write(oa.sse(oa.chat_chunk(id, created, self.name, i - 1, { role = "assistant", content = "" })))
         local buffered = {}
         local q = setmetatable({ seed = p.seed and (p.seed + i - 1) }, { __index = p })
         local reason, u, tm, msg = self:generate(ids, q, stops, function(text, info)
            keep:cancel()
            if i == 1 then answer[#answer + 1] = text end
            if with_tools then buffered[#buffered + 1] = text return end
            local lp = info and { content = oa.array({ logprob_entries(tok, info, p.top_logprobs) }) }
            req:write(oa.sse(oa.chat_chunk(id, created, self.name, i - 1, { content = text }, nil, lp)))
         end, function() return req.closed end, req)
         if reason == "error" then error({ status = 500, message = "generation failed: " .. tostring(msg) }) end
         self:count_usage(u)
         local fr = reason
         if with_tools then
            local message
            message, fr = finish_message(table.concat(buffered), reason)
            local delta = message.tool_calls and { tool_calls = oa.array() } or { content = message.content }
            for k, c in ipairs(message.tool_calls or {}) do
               delta.tool_calls[k] = { index = k - 1, id = c.id, type = "function", ["function"] = c["function"] }
            end
            if message.tool_calls and message.content ~= oa.null then delta.content = message.content end
            req:write(oa.sse(oa.chat_chunk(id, created, self.name, i - 1, delta)))
         end
         req:write(oa.sse(oa.chat_chunk(id, created, self.name, i - 1, {}, fr)))
         total.prompt_tokens = u.prompt_tokens
         total.cached_tokens = math.max(total.cached_tokens, u.cached_tokens or 0)
         total.completion_tokens = total.completion_tokens + u.completion_tokens
         timings = timings or tm
      end
   end)
   keep:cancel()
   if ok then self:record_chat(body, messages, table.concat(answer), total, timings, p) end
   if not ok then
      local e = type(err) == "table" and err or { status = 500, message = tostring(err) }
      req:write("data: " .. oa.encode({ error = { message = e.message, type = "server_error" } }) .. "\n\n")
   elseif p.include_usage then
      req:write(oa.sse(oa.usage_chunk(id, created, self.name, "chat.completion.chunk", total)))
   end
   req:write(oa.sse("[DONE]"))
   req:finish()
end

-- prompt: a string, an array of strings, an array of ids, or an array of id arrays
local function prompts_of(body, tok)
   local pr = body.prompt
   if type(pr) == "string" then return { tok:encode(pr) } end
   if type(pr) ~= "table" or #pr == 0 then
      oa.fail(400, "'prompt' must be a string, an array of strings or an array of token ids", "prompt")
   end
   if math.type(pr[1]) == "integer" then return { pr } end
   local out = {}
   for _, x in ipairs(pr) do
      if type(x) == "string" then out[#out + 1] = tok:encode(x)
      elseif type(x) == "table" then out[#out + 1] = x
      else oa.fail(400, "'prompt' entries must be strings or arrays of token ids", "prompt") end
   end
   return out
end

function App:completions(req)
   self:require_model()
   local body = oa.decode(req.body)
   local p = oa.sampling(body, self.model.info.n_vocab, self.ctx)
   local tok = self.model.tokenizer
   local lp = body.logprobs
   if lp ~= nil and lp ~= oa.null then
      if math.type(lp) ~= "integer" or lp < 0 or lp > 5 then
         oa.fail(400, "'logprobs' must be an integer from 0 to 5", "logprobs")
      end
      p.logprobs, p.top_logprobs = true, lp
   end
   p.grammar = self:grammar_for(oa.response_format(body))
   local prompts = prompts_of(body, tok)
   for _, ids in ipairs(prompts) do
      if tok.add_bos and tok.bos and ids[1] ~= tok.bos then table.insert(ids, 1, tok.bos) end
   end
   local id, created = self:next_id("cmpl"), os.time()
   local total = { prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0 }
   local function lp_block(infos)
      local out = { tokens = oa.array(), token_logprobs = oa.array(), top_logprobs = oa.array(),
                    text_offset = oa.array() }
      local off = 0
      for i, info in ipairs(infos) do
         local piece = tok:piece(info.id)
         out.tokens[i], out.token_logprobs[i], out.text_offset[i] = piece, info.logprob, off
         local top = oa.object()
         for k, t in ipairs(info.top or {}) do
            if k > p.top_logprobs then break end
            top[tok:piece(t[1])] = t[2]
         end
         out.top_logprobs[i] = top
         off = off + #piece
      end
      return out
   end
   local function run(ids, q, on_text)
      local reason, u, _, msg = self:generate(ids, q, p.stop, on_text, function() return req.closed end, req)
      if reason == "error" then error({ status = 500, message = "generation failed: " .. tostring(msg) }) end
      self:count_usage(u)
      total.prompt_tokens = total.prompt_tokens + u.prompt_tokens
      total.cached_tokens = total.cached_tokens + (u.cached_tokens or 0)
      total.completion_tokens = total.completion_tokens + u.completion_tokens
      return reason
   end
   if not p.stream then
      local choices = {}
      for pi, ids in ipairs(prompts) do
         for i = 1, p.n do
            local parts, infos = {}, {}
            local q = setmetatable({ seed = p.seed and (p.seed + i - 1) }, { __index = p })
            local reason = run(ids, q, function(text, info)
               parts[#parts + 1] = text
               if info then infos[#infos + 1] = info end
            end)
            choices[#choices + 1] = { index = (pi - 1) * p.n + i - 1, text = table.concat(parts),
               finish_reason = reason, logprobs = p.logprobs and lp_block(infos) or oa.null }
         end
      end
      return 200, JSON, oa.completion_response(id, created, self.name, choices, total)
   end
   req:start(200, SSE)
   local ok, err = pcall(function()
      for pi, ids in ipairs(prompts) do
         for i = 1, p.n do
            local index = (pi - 1) * p.n + i - 1
            local q = setmetatable({ seed = p.seed and (p.seed + i - 1) }, { __index = p })
            local reason = run(ids, q, function(text, info)
               req:write(oa.sse(oa.completion_chunk(id, created, self.name, index, text, nil,
                  info and lp_block({ info }) or nil)))
            end)
            req:write(oa.sse(oa.completion_chunk(id, created, self.name, index, "", reason)))
         end
      end
   end)
   if not ok then
      local e = type(err) == "table" and err or { message = tostring(err) }
      req:write("data: " .. oa.encode({ error = { message = e.message, type = "server_error" } }) .. "\n\n")
   elseif p.include_usage then
      req:write(oa.sse(oa.usage_chunk(id, created, self.name, "text_completion", total)))
   end
   req:write(oa.sse("[DONE]"))
   req:finish()
end

function App:embeddings(req)
   self:require_model()
   local body = oa.decode(req.body)
   local input = body.input
   local tok = self.model.tokenizer
   local items = {}
   if type(input) == "string" then items = { tok:encode(input) }
   elseif type(input) == "table" and #input > 0 then
      if math.type(input[1]) == "integer" then items = { input }
      else
         for _, x in ipairs(input) do
            if type(x) == "string" then items[#items + 1] = tok:encode(x)
            elseif type(x) == "table" then items[#items + 1] = x
            else oa.fail(400, "'input' entries must be strings or arrays of token ids", "input") end
         end
      end
   else
      oa.fail(400, "'input' must be a string or a non-empty array", "input")
   end
   local fmt = body.encoding_format
   if fmt ~= nil and fmt ~= oa.null and fmt ~= "float" and fmt ~= "base64" then
      oa.fail(400, "'encoding_format' must be float or base64", "encoding_format")
   end
   local data, n_tokens = oa.array(), 0
   for i, ids in ipairs(items) do
      if #ids == 0 then oa.fail(400, string.format("input %d has no tokens", i - 1), "input") end
      local v = self.sched:embed(ids):totable()
      local emb
      if fmt == "base64" then
         emb = oa.base64(string.pack("<" .. string.rep("f", #v), table.unpack(v)))
      else
         emb = oa.array(v)
      end
      data[i] = { object = "embedding", index = i - 1, embedding = emb }
      n_tokens = n_tokens + #ids
   end
   return 200, JSON, oa.encode({ object = "list", data = data, model = self.name,
      usage = { prompt_tokens = n_tokens, total_tokens = n_tokens } })
end

function App:models(_, one)
   if self.pool then return require("moonhub.admin").v1_models(self, one) end
   local info = { id = self.name, object = "model", created = self.created or os.time(), owned_by = "moonhub" }
   if one then
      if one ~= self.name then oa.fail(404, "model '" .. one .. "' not found", "model", "model_not_found") end
      return 200, JSON, oa.encode(info)
   end
   return 200, JSON, oa.encode({ object = "list", data = oa.array({ info }) })
end

function App:tokenize(req)
   self:require_model()
   local body = oa.decode(req.body)
   if type(body.content) ~= "string" then oa.fail(400, "'content' must be a string", "content") end
   local tok = self.model.tokenizer
   local ids = tok:encode(body.content, { bos = body.add_special == true, special = body.parse_special == true })
   if body.with_pieces then
      local out = oa.array()
      for i, t in ipairs(ids) do out[i] = { id = t, piece = tok:piece(t) } end
      return 200, JSON, oa.encode({ tokens = out })
   end
   return 200, JSON, oa.encode({ tokens = oa.array(ids) })
end

function App:detokenize(req)
   self:require_model()
   local body = oa.decode(req.body)
   if type(body.tokens) ~= "table" then oa.fail(400, "'tokens' must be an array of token ids", "tokens") end
   for _, t in ipairs(body.tokens) do
      if math.type(t) ~= "integer" or t < 0 or t >= self.model.info.n_vocab then
         oa.fail(400, "'tokens' holds an id outside the vocabulary", "tokens")
      end
   end
   return 200, JSON, oa.encode({ content = self.model.tokenizer:decode(body.tokens) })
end

function App:count_usage(u)
   local m = self.metrics
   m:add("moonhub_prompt_tokens_total", u.prompt_tokens or 0)
   m:add("moonhub_generated_tokens_total", u.completion_tokens or 0)
   m:add("moonhub_prompt_cached_tokens_total", u.cached_tokens or 0)
end

-- Grammar for response_format / forced tool calls (nil when unconstrained).
function App:grammar_for(rf, tools, tool_choice)
   local forced = tools and (tool_choice == "required" or (tool_choice ~= "auto" and tool_choice ~= "none"))
   if not rf and not forced then return nil end
   local ok, grammar = pcall(require, "moonhub.grammar")
   if not ok then oa.fail(400, "constrained decoding is not available in this build", "response_format") end
   local tok = self.model.tokenizer
   local g, err
   if forced then
      g, err = grammar.tool_call(tok, tools, tool_choice ~= "required" and tool_choice or nil)
   elseif rf.type == "json_object" then
      g, err = grammar.json_object(tok)
   else
      g, err = grammar.json_schema(tok, rf.schema)
   end
   if not g then oa.fail(400, "response_format: " .. tostring(err), "response_format") end
   return g
end

function App:parse_tools(text, tool_choice)
   local toolcall = require "moonhub.toolcall"
   if tool_choice ~= "auto" then   -- forced calls were generated as bare {"name", "arguments"} JSON
      return toolcall.parse_llama3(text)
   end
   return toolcall.parse(text, self.model.tool_format)
end

-- ===== multiple models (moonhub.pool) and history (moonhub.history) =====

-- use_pool(pool, {default_ref =, history = bool}): requests name their model
-- ("model"), loaded on first use; default_ref (serve --model) answers
-- requests naming no model, self.name, or a model the registry lacks.
function App:use_pool(pool, opts)
   opts = opts or {}
   self.pool, self.default_ref = pool, opts.default_ref
   self.metrics.pool = pool          -- loaded/loading gauges in /metrics
   if opts.default_ref then pool:set_default(opts.default_ref, self.name) end
   self.created = self.created or os.time()
end

-- Runs handler(view, req) with the entry the body's "model" names; view is
-- the app with that entry's model, sched, ctx and name. keep_alive in the
-- body (Ollama's: seconds or "5m"; 0 unloads after the answer; negative keeps).
function App:with_entry(req, handler)
   local pool_mod = require "moonhub.pool"
   local okb, body = pcall(oa.decode, req.body)
   body = okb and body or {}
   local ka
   if body.keep_alive ~= nil and body.keep_alive ~= oa.null then
      local err
      ka, err = pool_mod.parse_duration(body.keep_alive)
      if not ka then oa.fail(400, err, "keep_alive") end
   end
   local ref = type(body.model) == "string" and body.model ~= "" and body.model or nil
   local e, err, status
   if ref then e, err, status = self.pool:acquire(ref) end
   if not e and (not ref or status == 404) and self.default_ref then
      e, err, status = self.pool:acquire(self.default_ref)
   end
   if not e then
      if not ref and not self.default_ref then oa.fail(400, "'model' is required: name a registered model", "model") end
      if status == 404 then
         oa.fail(404, "model '" .. tostring(ref) .. "' not found: " .. tostring(err), "model", "model_not_found")
      end
      oa.fail(status or 500, tostring(err), "model", nil, status == 503 and { ["Retry-After"] = "1" } or nil)
   end
   self.model, self.sched = e.model, e.sched        -- for /metrics: the latest used
   local view = setmetatable({ model = e.model, sched = e.sched, ctx = e.ctx, name = e.name, entry = e },
      { __index = self })
   local ok, a, b, c = pcall(handler, view, req)
   self.pool:release(e, ka)
   if not ok then error(a, 0) end
   return a, b, c
end

local STORED_OPTIONS = { "temperature", "top_p", "top_k", "min_p", "max_tokens", "seed", "stop", "n",
   "repeat_penalty", "presence_penalty", "frequency_penalty" }

-- Stores one chat exchange when --history is on or the body says "store": true.
function App:record_chat(body, messages, answer, usage, timings, p)
   if not (self.opts.history or body.store == true) or body.store == false then return end
   local options = {}
   for _, k in ipairs(STORED_OPTIONS) do options[k] = p[k] end
   local ok, err = pcall(function()
      local h = assert(require("moonhub.history").open())
      local stored_ok, serr = pcall(h.store, h, { model = self.name, source = "server", options = options,
         messages = messages, answer = type(answer) == "string" and answer or "", usage = usage,
         timings = timings })
      h:close()
      if not stored_ok then error(serr, 0) end
   end)
   if not ok then io.stderr:write("moonhub serve: history: ", tostring(err), "\n") end
end

-- ===== dispatch =====

ROUTES = {
   ["/v1/chat/completions"] = App.chat, ["/v1/completions"] = App.completions,
   ["/v1/embeddings"] = App.embeddings, ["/tokenize"] = App.tokenize, ["/detokenize"] = App.detokenize,
}

function App:route(req)
   local path, method = req.path:match("^[^?]*"), req.method
   if path == "/health" then
      if not self.sched and not self.ready then return 503, JSON, oa.encode({ status = "loading" }) end
      return 200, JSON, oa.encode({ status = "ok" })
   end
   if path == "/metrics" then
      return 200, { ["Content-Type"] = "text/plain; version=0.0.4" }, self.metrics:render(self.sched)
   end
   local one = path:match("^/v1/models/(.+)$")
   if path == "/v1/models" or one then         -- public, like /health
      if method ~= "GET" then oa.fail(405, "use GET for " .. path, nil, "method_not_allowed", { Allow = "GET" }) end
      return self:models(req, one)
   end
   if path:match("^/api/") then return require("moonhub.admin").route(self, req, path) end
   local handler = ROUTES[path]
   if not handler then oa.fail(404, string.format("no route for %s %s", method, path), nil, "not_found") end
   if method ~= "POST" then oa.fail(405, "use POST for " .. path, nil, "method_not_allowed", { Allow = "POST" }) end
   local key = self.opts.api_key
   if key and key ~= "" and req.headers.authorization ~= "Bearer " .. key then
      oa.fail(401, "invalid or missing API key: send 'Authorization: Bearer KEY'", nil, "invalid_api_key")
   end
   local ok, wait = self:allow(req.headers.authorization or req.remote)
   if not ok then
      oa.fail(429, "rate limit exceeded; slow down", nil, "rate_limit_exceeded",
         { ["Retry-After"] = tostring(math.max(1, math.ceil(wait))) })
   end
   if self.pool then return self:with_entry(req, handler) end
   return handler(self, req)
end

-- The handler for http.server: routes, turns raised {status=} errors into
-- OpenAI error bodies, records metrics.
function App:handler()
   return function(req)
      local t0 = now()
      local route = req.path:match("^[^?]*")
      local ok, status, headers, body = pcall(self.route, self, req)
      if not ok then
         local err = status
         if type(err) ~= "table" or not err.status then
            io.stderr:write("moonhub serve: ", tostring(err), "\n")
            err = { status = 500, message = "internal error: " .. tostring(err) }
         end
         status = err.status
         if req:state() == "new" then respond_error(req, err) end
      elseif status then
         req:respond(status, headers, body)
      end
      self.metrics:request(route, status or 200, now() - t0)
   end
end

return M
