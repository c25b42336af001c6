-- moonhub.server.openai_adapter: the OpenAI protocol over the neutral
-- request (chat, text completions, embeddings): OpenAI bodies in, checked by
-- moonhub.openai; OpenAI responses and SSE chunks out. A new protocol is a
-- sibling of this file. Layer: lua/moonhub (uses moonhub.openai, .http
-- timers, .server.request).
local oa = require "moonhub.openai"
local http = require "moonhub.http"
local request = require "moonhub.server.request"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local SSE = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }

-- ===== OpenAI body -> neutral request =====

local function keep_alive(body)
   if oa.is_null(body.keep_alive) then return nil end
   local secs, err = request.keep_alive(body.keep_alive)
   if not secs then oa.fail(400, err, "keep_alive") end
   return secs
end

-- "moonhub": {"echo_settings": true}: our extension object (docs/server.md);
-- true asks each choice to carry the settings its sampler ran with.
local function echo_settings(body)
   local x = body.moonhub
   if oa.is_null(x) then return false end
   if not oa.is_object(x) then oa.wrong("moonhub", "an object", x) end
   for k in pairs(x) do
      if k ~= "echo_settings" then oa.fail(400, string.format("'moonhub.%s' is not an option; "
         .. "the moonhub object takes echo_settings", tostring(k)), "moonhub") end
   end
   local v = x.echo_settings
   if not oa.is_null(v) and type(v) ~= "boolean" then oa.wrong("moonhub.echo_settings", "true or false", v) end
   return v == true
end
M.echo_settings = echo_settings          -- the Responses and Messages adapters take the extension too

-- The settings a finished choice ran with, as the echo shows them.
local function echo(res)
   return res.settings and { settings = oa.object(res.settings) } or nil
end

-- "speculative": false | "off" | "draft" | "ngram" | {"n_max": 0..32,
-- "ngram": true | 1..8, "draft": true} (docs/speculative.md), and
-- "draft_model" (the name of the draft the server loaded with --draft):
-- both go to the scheduler's loop, checked here for their shape.
local function speculative(body)
   local v, dm = body.speculative, oa.opt_string(body, "draft_model")
   if oa.is_null(v) then return dm and "draft" or nil, dm end
   if type(v) == "boolean" then return v, dm end
   if type(v) == "string" then
      if v ~= "off" and v ~= "draft" and v ~= "ngram" then
         oa.fail(400, "'speculative' must be \"off\", \"draft\", \"ngram\" or an object, got \"" .. v .. "\"",
            "speculative")
      end
      return v, dm
   end
   if not oa.is_object(v) then oa.wrong("speculative", "a string or an object", v) end
   local out = {}
   for k in pairs(v) do
      if k ~= "n_max" and k ~= "ngram" and k ~= "draft" then
         oa.fail(400, string.format("'speculative.%s' is not an option; it takes n_max, ngram and draft",
            tostring(k)), "speculative")
      end
   end
   out.n_max = oa.opt_int(v, "n_max", 0, 32, nil)
   if type(v.ngram) == "boolean" then out.ngram = v.ngram
   else out.ngram = oa.opt_int(v, "ngram", 1, 8, nil) end
   out.draft = oa.opt_bool(v, "draft", nil) or (dm and true or nil)
   return out, dm
end

-- The fields chat and completions share.
local function generation(body, kind)
   oa.common(body)
   local p = oa.sampling(body)
   local spec, draft_model = speculative(body)
   return request.extensions(body, { kind = kind, model = oa.opt_string(body, "model"), keep_alive = keep_alive(body),
      sampling = { temperature = p.temperature, top_p = p.top_p, top_k = p.top_k, min_p = p.min_p,
         presence_penalty = p.presence_penalty, frequency_penalty = p.frequency_penalty,
         repeat_penalty = p.repeat_penalty, seed = p.seed, logit_bias = p.logit_bias,
         speculative = spec, draft_model = draft_model },
      max_tokens = p.max_tokens, stop = p.stop, n = p.n, stream = p.stream, include_usage = p.include_usage,
      store = oa.opt_bool(body, "store"), format = oa.response_format(body), echo = echo_settings(body) })
end

function M.chat_request(body)
   local r = generation(body, "chat")
   r.messages = oa.messages(body)
   r.tools, r.tool_choice = oa.tools(body)
   r.logprobs = oa.opt_bool(body, "logprobs", false)
   r.top_logprobs = oa.opt_int(body, "top_logprobs", 0, 20, nil)
   return r
end

function M.completion_request(body)
   local r = generation(body, "text")
   if oa.is_null(body.prompt) then oa.fail(400, "'prompt' is required", "prompt") end
   r.prompts = oa.prompts(body.prompt, "prompt")
   local lp = oa.opt_int(body, "logprobs", 0, 5, nil)
   r.logprobs, r.top_logprobs = lp ~= nil, lp
   oa.opt_bool(body, "echo")
   oa.opt_string(body, "suffix")
   oa.opt_int(body, "best_of", 1, 20, nil)
   r.tool_choice = "none"
   return r
end

-- ===== streams =====

-- Runs fn(cancel_keepalive) inside an SSE response: ": keep-alive"
-- comments until the first piece, an error event if fn fails (the status
-- is already 200), then [DONE].
local function sse(view, req, fn)
   req:start(200, SSE)
   local keep = http.timer(view.opts.keepalive or 5, function() req:write(": keep-alive\n\n") end)
   local ok, err = pcall(fn, function() keep:cancel() end)
   keep:cancel()
   if not ok then
      local e = view:error_of(err, req)
      req:write(oa.sse({ error = { message = e.message, type = "server_error", code = e.code or oa.null } }))
   end
   req:write(oa.sse("[DONE]"))
   req:finish()
end

-- ===== chat =====

local function chat_logprob(tok, info, top_n)
   local top = {}
   for i, t in ipairs(info.top or {}) do
      if i > top_n then break end
      top[#top + 1] = { piece = tok:piece(t[1]), logprob = t[2] }
   end
   return oa.chat_logprob(tok:piece(info.id), info.logprob, top)
end

-- The assistant message of a finished choice (tool calls when parsed).
local function chat_message(id, index, res)
   if not res.calls then return { role = "assistant", content = res.text } end
   local out = oa.array()
   for k, c in ipairs(res.calls) do
      out[k] = { id = c.id or string.format("call_%s_%d_%d", id:sub(-8), index, k), type = "function",
                 ["function"] = { name = c.name, arguments = c.arguments } }
   end
   return { role = "assistant", content = (res.content ~= "" and res.content) or oa.null, tool_calls = out }
end

local function history_answer(res) return res.calls and (res.content or "") or res.text end

local function chat_stream(view, req, r, job, id, created)
   local tok, total, timings, answer = view.model.tokenizer, nil, nil, nil
   local function chunk(index, delta, reason, lp, extra)
      local c = oa.chat_chunk(id, created, view.name, index, delta, reason, lp)
      c.choices[1].moonhub = extra
      req:write(oa.sse(c))
   end
   sse(view, req, function(quiet)
      total, timings = request.run(view, r, job, {
         begin = function(index) chunk(index, { role = "assistant", content = "" }) end,
         text = function(index, text, info)
            quiet()
            local lp = info and { content = oa.array({ chat_logprob(tok, info, r.top_logprobs or 0) }) }
            chunk(index, { content = text }, nil, lp)
         end,
         choice = function(index, res)
            quiet()
            if index == 0 then answer = history_answer(res) end
            if job.with_tools then
               local m = chat_message(id, index, res)
               local delta = m.tool_calls and { tool_calls = oa.array() } or { content = m.content }
               for k, c in ipairs(m.tool_calls or {}) do
                  delta.tool_calls[k] = { index = k - 1, id = c.id, type = "function", ["function"] = c["function"] }
               end
               if m.tool_calls and m.content ~= oa.null then delta.content = m.content end
               chunk(index, delta)
            end
            chunk(index, {}, res.reason, nil, echo(res))
         end,
      }, req)
      if r.include_usage then
         req:write(oa.sse(oa.usage_chunk(id, created, view.name, "chat.completion.chunk", total)))
      end
   end)
   if total then view:record_chat(r, answer, total, timings) end
end

-- POST /v1/chat/completions
function M.chat(app, req)
   local r = M.chat_request(oa.decode(req.body))
   return app:with_model(r, function(view)
      local job = request.prepare(r, view)
      local id, created = view:next_id("chatcmpl"), os.time()
      if r.stream then return chat_stream(view, req, r, job, id, created) end
      local choices, answer = {}, nil
      local tok = view.model.tokenizer
      local total, timings = request.run(view, r, job, { choice = function(index, res)
         local lps = oa.array()
         for k, info in ipairs(res.infos) do lps[k] = chat_logprob(tok, info, r.top_logprobs or 0) end
         choices[index + 1] = { index = index, message = chat_message(id, index, res), finish_reason = res.reason,
            logprobs = r.logprobs and { content = lps } or oa.null, moonhub = echo(res) }
         if index == 0 then answer = history_answer(res) end
      end }, req)
      view:record_chat(r, answer, total, timings)
      return 200, JSON, oa.chat_response(id, created, view.name, choices, total)
   end)
end

-- ===== text completions =====

-- {tokens, token_logprobs, top_logprobs: [{piece: logprob}], text_offset}
local function completion_logprobs(tok, infos, top_n)
   local out = { tokens = oa.array(), token_logprobs = oa.array(), top_logprobs = oa.array(),
                 text_offset = oa.array() }
   local off = 0
   for i, info in ipairs(infos) do
      local piece = tok:piece(info.id)
      out.tokens[i], out.token_logprobs[i], out.text_offset[i] = oa.valid_utf8(piece), info.logprob, off
      local top = oa.object()
      for k, t in ipairs(info.top or {}) do
         if k > top_n then break end
         top[oa.valid_utf8(tok:piece(t[1]))] = t[2]
      end
      out.top_logprobs[i] = top
      off = off + #piece
   end
   return out
end

-- POST /v1/completions
function M.completions(app, req)
   local r = M.completion_request(oa.decode(req.body))
   return app:with_model(r, function(view)
      local job = request.prepare(r, view)
      local id, created = view:next_id("cmpl"), os.time()
      local tok = view.model.tokenizer
      local function lp(infos) return completion_logprobs(tok, infos, r.top_logprobs or 0) end
      if not r.stream then
         local choices = {}
         local total = request.run(view, r, job, { choice = function(index, res)
            choices[index + 1] = { index = index, text = res.text, finish_reason = res.reason,
               logprobs = r.logprobs and lp(res.infos) or oa.null, moonhub = echo(res) }
         end }, req)
         return 200, JSON, oa.completion_response(id, created, view.name, choices, total)
      end
      sse(view, req, function(quiet)
         local function chunk(index, text, reason, lps, extra)
            local c = oa.completion_chunk(id, created, view.name, index, text, reason, lps)
            c.choices[1].moonhub = extra
            req:write(oa.sse(c))
         end
         local total = request.run(view, r, job, {
            text = function(index, text, info)
               quiet()
               chunk(index, text, nil, info and lp({ info }) or nil)
            end,
            choice = function(index, res) chunk(index, "", res.reason, nil, echo(res)) end,
         }, req)
         if r.include_usage then
            req:write(oa.sse(oa.usage_chunk(id, created, view.name, "text_completion", total)))
         end
      end)
   end)
end

-- ===== embeddings =====

-- POST /v1/embeddings {"model", "input": string | [strings] | ids | [ids],
-- "encoding_format": float | base64, "dimensions", "truncate" (ours)}.
-- Encoder files (bert, nomic-bert) embed the inputs in batched forwards.
function M.embeddings(app, req)
   local body = oa.decode(req.body)
   oa.common(body)
   if oa.is_null(body.input) then oa.fail(400, "'input' is required", "input") end
   local inputs = oa.prompts(body.input, "input")
   local fmt = oa.opt_string(body, "encoding_format", "float")
   if fmt ~= "float" and fmt ~= "base64" then
      oa.fail(400, "'encoding_format' must be float or base64", "encoding_format")
   end
   local dims = oa.opt_int(body, "dimensions", 1, nil, nil)
   -- extension: cut inputs longer than the model takes instead of refusing them
   local truncate = oa.opt_bool(body, "truncate", false)
   local r = { model = oa.opt_string(body, "model"), keep_alive = keep_alive(body) }
   return app:with_model(r, function(view)
      local vecs, n_tokens = request.embed(view, inputs, truncate, " (or send truncate: true)")
      if dims and dims ~= #vecs[1] then
         oa.fail(400, string.format("'dimensions' must be this model's embedding size, %d", #vecs[1]), "dimensions")
      end
      local data = oa.array()
      for i, v in ipairs(vecs) do
         local emb = fmt == "base64" and oa.base64(string.pack("<" .. string.rep("f", #v), table.unpack(v)))
            or oa.array(v)
         data[i] = { object = "embedding", index = i - 1, embedding = emb }
      end
      req.tokens = { prompt_tokens = n_tokens, completion_tokens = 0 }
      return 200, JSON, oa.encode({ object = "list", data = data, model = view.name,
         usage = { prompt_tokens = n_tokens, total_tokens = n_tokens } })
   end)
end

return M
