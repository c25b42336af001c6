-- Acceptance specs for `moonhub serve` against the real server: every
-- route, chat/completions (plain and SSE), sampling options, logprobs,
-- constrained output, tools, prefix cache, metrics, embeddings and the
-- 4xx errors. One server per describe block. Layer: tests (helpers.server).
local S = require "helpers.server"
local data = require "helpers.data"
local mh = require "moonhub"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local STORIES = "models/stories260K.gguf"

local function msgs(text) return { { role = "user", content = text or "Hello there" } } end

local function chat(srv, body)
   body.messages = body.messages or msgs()
   return srv:post("/v1/chat/completions", body)
end

-- Every error response: the status and the OpenAI error object.
local function assert_error(r, status, code, param)
   assert.equal(status, r.status, r.body)
   assert.equal("application/json", r.headers["content-type"])
   local e = assert(r.json and r.json.error, r.body)
   assert.equal("string", type(e.message))
   assert.is_true(#e.message > 0)
   assert.equal("string", type(e.type))
   if code then assert.equal(code, e.code) end
   if param then assert.equal(param, e.param) end
end

-- Biases favouring JSON punctuation and banning whitespace-only pieces, so a
-- random model closes its JSON within a few dozen tokens (as in the grammar
-- specs). Keys are strings: logit_bias is a JSON object of token ids.
local function closing_bias(path)
   local m = assert(mh.load(path, { ctx = 64 }))
   local tok, bias = m.tokenizer, {}
   for id = 0, tok.vocab_size - 1 do
      local p = tok:piece(id, false)
      if p and p:match('^[%s"}%],:]+$') and p:match('[}"%]]') then bias[tostring(id)] = 8 end
      if p and p:match("^%s+$") then bias[tostring(id)] = -100 end
   end
   m:close()
   return bias
end

local SCHEMA = {
   type = "object",
   properties = { name = { type = "string", maxLength = 8 }, age = { type = "integer" },
                  pet = { enum = { "cat", "dog" } } },
   required = { "name", "age", "pet" },
   additionalProperties = false,
}

local function valid_person(v)
   if type(v) ~= "table" or type(v.name) ~= "string" or utf8.len(v.name) > 8 then return false end
   if math.type(v.age) ~= "integer" or (v.pet ~= "cat" and v.pet ~= "dog") then return false end
   for k in pairs(v) do if k ~= "name" and k ~= "age" and k ~= "pet" then return false end end
   return true
end

describe("moonhub serve (mh-smol) #integration", function()
   local srv, path

   setup(function()
      path = data.path(SMOL)
      if path then srv = S.start(path, "--parallel 4 --ctx 512 --threads 1") end
   end)
   teardown(function() if srv then srv:stop() end end)

   local function need() return data.started(srv, SMOL, pending) end

   it("GET /health, /v1/models and /v1/models/{id}", function()
      if not need() then return end
      local r = srv:request("/health")
      assert.equal(200, r.status)
      assert.same({ status = "ok" }, r.json)
      r = srv:request("/v1/models")
      assert.equal(200, r.status)
      assert.equal("list", r.json.object)
      assert.equal(1, #r.json.data)
      local m = r.json.data[1]
      assert.equal(srv.name, m.id)
      assert.equal("model", m.object)
      assert.equal("moonhub", m.owned_by)
      assert.equal("integer", math.type(m.created))
      r = srv:request("/v1/models/" .. srv.name)
      assert.equal(200, r.status)
      assert.same(m, r.json)
      assert_error(srv:request("/v1/models/no-such-model"), 404, "model_not_found")
   end)

   it("chat: non-streaming response shape, max_tokens -> length", function()
      if not need() then return end
      local r = chat(srv, { max_tokens = 5, seed = 1 })
      assert.equal(200, r.status, r.body)
      local b = r.json
      assert.matches("^chatcmpl%-", b.id)
      assert.equal("chat.completion", b.object)
      assert.equal(srv.name, b.model)
      assert.equal("integer", math.type(b.created))
      assert.equal(1, #b.choices)
      local c = b.choices[1]
      assert.equal(0, c.index)
      assert.equal("assistant", c.message.role)
      assert.equal("string", type(c.message.content))
      assert.equal("length", c.finish_reason)
      assert.equal(S.null, c.logprobs)
      assert.equal(5, b.usage.completion_tokens)
      assert.is_true(b.usage.prompt_tokens > 0)
      assert.equal(b.usage.prompt_tokens + 5, b.usage.total_tokens)
      assert.equal("number", type(b.usage.prompt_tokens_details.cached_tokens))
   end)

   it("chat: SSE framing like OpenAI, include_usage, same text as non-streamed", function()
      if not need() then return end
      local body = { max_tokens = 6, seed = 3, stream = true, stream_options = { include_usage = true } }
      local r = chat(srv, body)
      assert.equal(200, r.status)
      assert.matches("^text/event%-stream", r.headers["content-type"])
      local ev = S.sse(r.body)
      assert.equal("[DONE]", ev[#ev])
      local usage = ev[#ev - 1]
      assert.same({}, usage.choices)
      assert.equal(6, usage.usage.completion_tokens)
      local id, text = ev[1].id, {}
      assert.matches("^chatcmpl%-", id)
      for i = 1, #ev - 1 do
         local e = ev[i]
         assert.equal(id, e.id)
         assert.equal("chat.completion.chunk", e.object)
         if i < #ev - 1 then
            local ch = e.choices[1]
            assert.equal(0, ch.index)
            if i == 1 then assert.equal("assistant", ch.delta.role) else assert.is_nil(ch.delta.role) end
            if i == #ev - 2 then
               assert.equal("length", ch.finish_reason)
               assert.same({}, ch.delta)
            else
               assert.equal(S.null, ch.finish_reason)
            end
            text[#text + 1] = ch.delta.content or ""
         end
      end
      body.stream, body.stream_options = nil, nil
      local plain = chat(srv, body)
      assert.equal(plain.json.choices[1].message.content, table.concat(text))
   end)

   it("completions: string and array prompts, n > 1, logprobs", function()
      if not need() then return end
      local r = srv:post("/v1/completions", { prompt = "The cat", max_tokens = 4, seed = 5 })
      assert.equal(200, r.status, r.body)
      assert.equal("text_completion", r.json.object)
      assert.matches("^cmpl%-", r.json.id)
      assert.equal("length", r.json.choices[1].finish_reason)
      local one = r.json.choices[1].text
      r = srv:post("/v1/completions", { prompt = { "The cat", "A dog" }, max_tokens = 4, seed = 5, n = 2,
                                         logprobs = 2 })
      assert.equal(200, r.status, r.body)
      local cs = r.json.choices
      assert.equal(4, #cs)
      for i, c in ipairs(cs) do
         assert.equal(i - 1, c.index)
         local lp = c.logprobs
         assert.equal(4, #lp.tokens)
         assert.equal(table.concat(lp.tokens), c.text)
         assert.equal(4, #lp.token_logprobs)
         assert.equal(0, lp.text_offset[1])
         for k, t in ipairs(lp.top_logprobs) do
            local n = 0
            for _, v in pairs(t) do n = n + 1 assert.is_true(v <= 0) end
            assert.is_true(n >= 1 and n <= 2)
            assert.is_true(lp.token_logprobs[k] <= 0)
         end
      end
      assert.equal(one, cs[1].text)            -- prompt 1, seed 5
      assert.equal(16, r.json.usage.completion_tokens)
      -- a prompt of token ids
      local ids = srv:post("/tokenize", { content = "The cat" }).json.tokens
      r = srv:post("/v1/completions", { prompt = ids, max_tokens = 4, seed = 5 })
      assert.equal(200, r.status, r.body)
      assert.equal(one, r.json.choices[1].text)
   end)

   it("chat: n > 1 gives n choices with their own indexes", function()
      if not need() then return end
      local r = chat(srv, { max_tokens = 3, n = 3, seed = 11 })
      assert.equal(200, r.status, r.body)
      assert.equal(3, #r.json.choices)
      for i, c in ipairs(r.json.choices) do assert.equal(i - 1, c.index) end
      assert.equal(9, r.json.usage.completion_tokens)
      r = chat(srv, { max_tokens = 2, n = 2, seed = 11, stream = true })
      local seen = {}
      for _, e in ipairs(S.sse(r.body)) do
         if e ~= "[DONE]" then seen[e.choices[1].index] = true end
      end
      assert.same({ [0] = true, [1] = true }, seen)
   end)

   it("seed: same text alone, batched with other requests, and streamed", function()
      if not need() then return end
      local body = { messages = msgs("Tell me a story"), max_tokens = 12, seed = 42, temperature = 1 }
      local alone = chat(srv, body).json.choices[1].message.content
      assert.equal(alone, chat(srv, body).json.choices[1].message.content)
      local reqs = {}
      for i = 1, 4 do
         local b = { messages = msgs(i == 2 and "Tell me a story" or ("other prompt " .. i)),
                     max_tokens = i == 2 and 12 or 12 + i, seed = i == 2 and 42 or i, temperature = 1 }
         reqs[i] = { "/v1/chat/completions", { body = b } }
      end
      local rs = srv:many(reqs)
      for _, r in ipairs(rs) do assert.equal(200, r.status, r.body) end
      assert.equal(alone, rs[2].json.choices[1].message.content)
      body.stream = true
      local parts = {}
      for _, e in ipairs(S.sse(chat(srv, body).body)) do
         if e ~= "[DONE]" then parts[#parts + 1] = e.choices[1].delta.content or "" end
      end
      assert.equal(alone, table.concat(parts))
   end)

   it("logit_bias -100 bans the greedy first token", function()
      if not need() then return end
      local body = { prompt = "The cat", max_tokens = 1, temperature = 0, logprobs = 1 }
      local first = srv:post("/v1/completions", body).json.choices[1].logprobs.tokens[1]
      local ids = srv:post("/tokenize", { content = first }).json.tokens
      assert.equal(1, #ids, first)
      body.logit_bias = { [tostring(ids[1])] = -100 }
      local r = srv:post("/v1/completions", body)
      assert.equal(200, r.status, r.body)
      assert.are_not.equal(first, r.json.choices[1].logprobs.tokens[1])
   end)

   it("chat logprobs / top_logprobs shapes", function()
      if not need() then return end
      local r = chat(srv, { max_tokens = 3, logprobs = true, top_logprobs = 2, seed = 2 })
      assert.equal(200, r.status, r.body)
      local c = r.json.choices[1]
      local lp = c.logprobs.content
      assert.equal(3, #lp)
      local text = {}
      for _, e in ipairs(lp) do
         assert.equal("string", type(e.token))
         assert.is_true(e.logprob <= 0)
         assert.equal(#e.token, #e.bytes)
         assert.equal(2, #e.top_logprobs)
         for _, t in ipairs(e.top_logprobs) do
            assert.equal("string", type(t.token))
            assert.is_true(t.logprob <= 0)
            assert.equal(#t.token, #t.bytes)
         end
         assert.is_true(e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob)
         text[#text + 1] = e.token
      end
      assert.equal(c.message.content, table.concat(text))
      -- streamed: one logprobs entry per content chunk
      r = chat(srv, { max_tokens = 2, logprobs = true, top_logprobs = 1, stream = true })
      local n = 0
      for _, e in ipairs(S.sse(r.body)) do
         if e ~= "[DONE]" and e.choices[1].delta.content and e.choices[1].logprobs ~= S.null then
            n = n + 1
            assert.equal(1, #e.choices[1].logprobs.content)
         end
      end
      assert.equal(2, n)
      assert_error(chat(srv, { max_tokens = 1, logprobs = true, top_logprobs = 21 }), 400, nil, "top_logprobs")
   end)

   describe("response_format", function()
      local bias
      setup(function() if path then bias = closing_bias(path) end end)

      it("json_object: finished outputs parse as objects", function()
         if not need() then return end
         local stops = 0
         for seed = 1, 8 do   -- a random model: some seeds wander past max_tokens
            local r = chat(srv, { messages = msgs("Reply in JSON"), max_tokens = 200, seed = seed,
                                  logit_bias = bias, response_format = { type = "json_object" } })
            assert.equal(200, r.status, r.body)
            local c = r.json.choices[1]
            if c.finish_reason == "stop" then
               stops = stops + 1
               local v = S.decode(c.message.content)
               assert.equal("table", type(v), c.message.content)
            else
               assert.equal("length", c.finish_reason)
            end
         end
         assert.is_true(stops > 0)
      end)

      it("json_schema: finished outputs validate across seeds", function()
         if not need() then return end
         local stops = 0
         for seed = 1, 4 do
            local r = chat(srv, { messages = msgs("A person"), max_tokens = 80, seed = seed, logit_bias = bias,
               response_format = { type = "json_schema", json_schema = { name = "person", schema = SCHEMA } } })
            assert.equal(200, r.status, r.body)
            local c = r.json.choices[1]
            if c.finish_reason == "stop" then
               stops = stops + 1
               assert.is_true(valid_person(S.decode(c.message.content)), c.message.content)
            end
         end
         assert.is_true(stops > 0)
      end)

      it("an unsupported or malformed schema is a 400", function()
         if not need() then return end
         assert_error(chat(srv, { max_tokens = 4, response_format = { type = "json_schema",
            json_schema = { name = "x", schema = { type = "object", patternProperties = { a = {} } } } } }),
            400, nil, "response_format")
         assert_error(chat(srv, { max_tokens = 4, response_format = { type = "json_schema",
            json_schema = { name = "x" } } }), 400, nil, "response_format")
         assert_error(chat(srv, { max_tokens = 4, response_format = { type = "yaml" } }), 400, nil,
            "response_format")
         assert.equal(200, chat(srv, { max_tokens = 2 }).status)
      end)
   end)

   it("tools with tool_choice required -> tool_calls with JSON arguments", function()
      if not need() then return end
      local tools = { { type = "function", ["function"] = { name = "get_weather", description = "weather",
         parameters = { type = "object", properties = { city = { type = "string", maxLength = 10 } },
                        required = { "city" } } } } }
      local calls = 0
      for seed = 1, 3 do
         local r = chat(srv, { messages = msgs("Weather in Paris?"), max_tokens = 60, seed = seed,
                               tools = tools, tool_choice = "required" })
         assert.equal(200, r.status, r.body)
         local c = r.json.choices[1]
         if c.finish_reason == "tool_calls" then
            calls = calls + 1
            local tc = c.message.tool_calls
            assert.equal(1, #tc)
            assert.equal("function", tc[1].type)
            assert.equal("string", type(tc[1].id))
            assert.equal("get_weather", tc[1]["function"].name)
            local args = S.decode(tc[1]["function"].arguments)
            assert.equal("string", type(args.city), tc[1]["function"].arguments)
         else
            assert.equal("length", c.finish_reason)
         end
      end
      assert.is_true(calls > 0)
      assert_error(chat(srv, { max_tokens = 4, tools = tools,
         tool_choice = { type = "function", ["function"] = { name = "nope" } } }), 400, nil, "tool_choice")
   end)

   -- The exact reusable prefix: all of a repeated prompt but its last token
   -- (fed again for its logits); of a prompt sharing a prefix, the shared ids.
   it("a repeated prompt reports cached tokens: the exact reusable prefix", function()
      if not need() then return end
      local body = { messages = msgs("A long shared prefix for the cache test, repeated twice."), max_tokens = 2 }
      chat(srv, body)
      local r = chat(srv, body)
      assert.equal(200, r.status)
      local u = r.json.usage
      assert.equal(u.prompt_tokens - 1, u.prompt_tokens_details.cached_tokens)
      -- completions: a first prompt, then one that shares its start (ids as
      -- /tokenize gives them: this model adds no BOS, prompt_tokens checks it)
      local a = "Quantum kittens juggle seventeen purple violins under"
      local b = a .. " a sleepy orange moon tonight"
      local ids = {}
      for i, text in ipairs({ a, b }) do
         local t = srv:post("/tokenize", { content = text })
         assert.equal(200, t.status, t.body)
         ids[i] = t.json.tokens
      end
      local common = 0
      while ids[1][common + 1] ~= nil and ids[1][common + 1] == ids[2][common + 1] do common = common + 1 end
      assert.is_true(common > 4 and common < #ids[2] - 1)
      assert.equal(200, srv:post("/v1/completions", { prompt = a, max_tokens = 1, temperature = 0 }).status)
      r = srv:post("/v1/completions", { prompt = b, max_tokens = 1, temperature = 0 })
      assert.equal(200, r.status, r.body)
      assert.equal(#ids[2], r.json.usage.prompt_tokens)
      assert.equal(common, r.json.usage.prompt_tokens_details.cached_tokens)
   end)

   it("GET /metrics: counters, histograms and gauges", function()
      if not need() then return end
      chat(srv, { max_tokens = 3 })
      local r = srv:request("/metrics")
      assert.equal(200, r.status)
      assert.matches("^text/plain", r.headers["content-type"])
      local t = r.body
      assert.is_true(S.metric(t, "moonhub_requests_total", 'route="/v1/chat/completions",status="200"') > 0)
      assert.is_true(S.metric(t, "moonhub_generated_tokens_total") > 0)
      assert.is_true(S.metric(t, "moonhub_prompt_tokens_total") > 0)
      assert.is_not_nil(S.metric(t, "moonhub_prompt_cached_tokens_total"))
      for _, h in ipairs({ "moonhub_request_duration_seconds", "moonhub_time_to_first_token_seconds",
                           "moonhub_time_per_output_token_seconds" }) do
         assert.matches("# TYPE " .. h .. " histogram", t, 1, true)
         local n = S.metric(t, h .. "_count")
         assert.is_true(n > 0, h)
         assert.equal(n, S.metric(t, h .. "_bucket", 'le="+Inf"'))
         assert.is_not_nil(S.metric(t, h .. "_sum"))
      end
      assert.equal(0, S.metric(t, "moonhub_requests_running"))
      assert.equal(0, S.metric(t, "moonhub_requests_waiting"))
      assert.is_true(S.metric(t, "moonhub_kv_cells_total") > 0)
   end)

   it("embeddings: float and base64 agree", function()
      if not need() then return end
      local r = srv:post("/v1/embeddings", { input = { "hello world", "second" } })
      assert.equal(200, r.status, r.body)
      assert.equal("list", r.json.object)
      assert.equal(2, #r.json.data)
      local f = r.json.data[1]
      assert.equal("embedding", f.object)
      assert.equal(0, f.index)
      assert.is_true(#f.embedding > 8)
      assert.is_true(r.json.usage.prompt_tokens > 0)
      local b = srv:post("/v1/embeddings", { input = "hello world", encoding_format = "base64" })
      assert.equal(200, b.status, b.body)
      local bytes = S.base64_decode(b.json.data[1].embedding)
      assert.equal(4 * #f.embedding, #bytes)
      for i = 1, #f.embedding do
         local v = string.unpack("<f", bytes, 4 * i - 3)
         assert.is_true(math.abs(v - f.embedding[i]) <= 1e-6 * math.max(1, math.abs(v)), i)
      end
      assert_error(srv:post("/v1/embeddings", { input = "x", encoding_format = "int8" }), 400, nil,
         "encoding_format")
      assert_error(srv:post("/v1/embeddings", { input = 5 }), 400, nil, "input")
   end)

   it("/tokenize and /detokenize round trip", function()
      if not need() then return end
      local text = "Hello world, round trip!"
      local r = srv:post("/tokenize", { content = text })
      assert.equal(200, r.status, r.body)
      assert.is_true(#r.json.tokens > 1)
      local d = srv:post("/detokenize", { tokens = r.json.tokens })
      assert.equal(200, d.status, d.body)
      assert.equal(text, d.json.content)
      local p = srv:post("/tokenize", { content = text, with_pieces = true })
      local pieces = {}
      for i, t in ipairs(p.json.tokens) do
         assert.equal(r.json.tokens[i], t.id)
         pieces[i] = t.piece
      end
      assert.equal(text, table.concat(pieces))
      assert_error(srv:post("/detokenize", { tokens = { -1 } }), 400, nil, "tokens")
      assert_error(srv:post("/tokenize", { content = 3 }), 400, nil, "content")
   end)

   it("400s: invalid JSON, wrong types, out-of-range values, context overflow", function()
      if not need() then return end
      assert_error(srv:request("/v1/chat/completions", { body = "{not json" }), 400, "invalid_request_error")
      assert_error(srv:request("/v1/chat/completions", { body = "[1,2]" }), 400)
      assert_error(srv:request("/v1/completions", { method = "POST" }), 400)
      assert_error(chat(srv, { messages = "hi" }), 400, nil, "messages")
      assert_error(chat(srv, { messages = { { role = "wizard", content = "x" } } }), 400, nil, "messages")
      assert_error(chat(srv, { max_tokens = "ten" }), 400, nil, "max_tokens")
      assert_error(chat(srv, { temperature = "hot" }), 400, nil, "temperature")
      assert_error(chat(srv, { stream = "yes" }), 400, nil, "stream")
      assert_error(chat(srv, { temperature = -0.5 }), 400, nil, "temperature")
      assert_error(chat(srv, { top_p = 1.5 }), 400, nil, "top_p")
      assert_error(chat(srv, { top_p = -0.1 }), 400, nil, "top_p")
      assert_error(chat(srv, { n = 0 }), 400, nil, "n")
      assert_error(chat(srv, { max_tokens = -3 }), 400, nil, "max_tokens")
      assert_error(chat(srv, { stop = { 1, 2 } }), 400, nil, "stop")
      assert_error(chat(srv, { logit_bias = { ["99999999"] = 1 } }), 400, nil, "logit_bias")
      assert_error(srv:post("/v1/completions", { prompt = 12 }), 400, nil, "prompt")
      assert_error(srv:post("/v1/completions", { prompt = "x", logprobs = 9 }), 400, nil, "logprobs")
      local long = string.rep("word ", 700)
      assert_error(chat(srv, { messages = msgs(long), max_tokens = 2 }), 400, "exceed_context_size_error")
      assert_error(srv:post("/v1/completions", { prompt = long, max_tokens = 2 }), 400,
         "exceed_context_size_error")
      assert.equal(200, chat(srv, { max_tokens = 2 }).status)
   end)

   it("404 for unknown routes, 405 for the wrong method", function()
      if not need() then return end
      assert_error(srv:post("/v1/nothing", {}), 404, "not_found")
      assert_error(srv:request("/v2/chat/completions"), 404)
      local r = srv:request("/v1/chat/completions")
      assert_error(r, 405, "method_not_allowed")
      assert.equal("POST", r.headers.allow)
      r = srv:post("/v1/models", {})
      assert_error(r, 405, "method_not_allowed")
      assert.equal("GET", r.headers.allow)
      assert.equal(200, chat(srv, { max_tokens = 2 }).status)
   end)
end)

describe("moonhub serve (stories260K) #integration", function()
   local srv

   setup(function()
      local path = data.path(STORIES)
      if path then srv = S.start(path, "--parallel 2 --ctx 256 --threads 1") end
   end)
   teardown(function() if srv then srv:stop() end end)

   it("a stop string ends the text before it and is never emitted", function()
      if not srv then return data.need(STORIES, pending) end
      local body = { prompt = "Once upon a time", max_tokens = 40, temperature = 0 }
      local full = srv:post("/v1/completions", body).json.choices[1].text
      assert.is_true(#full > 30, full)
      -- a word from the middle of the greedy text
      local stop = full:match("^.-%s(%a+)%s", 12) or full:sub(15, 18)
      local cut = full:find(stop, 1, true)
      body.stop = { stop, "zzzz-never" }
      local r = srv:post("/v1/completions", body)
      assert.equal(200, r.status, r.body)
      assert.equal("stop", r.json.choices[1].finish_reason)
      assert.equal(full:sub(1, cut - 1), r.json.choices[1].text)
      -- streamed: the stop string never appears in any chunk
      body.stream = true
      local parts = {}
      for _, e in ipairs(S.sse(srv:post("/v1/completions", body).body)) do
         if e ~= "[DONE]" then parts[#parts + 1] = e.choices[1].text end
      end
      assert.equal(full:sub(1, cut - 1), table.concat(parts))
   end)

   it("completions stream with include_usage ends with a usage chunk", function()
      if not srv then return data.need(STORIES, pending) end
      local r = srv:post("/v1/completions", { prompt = "Once", max_tokens = 3, stream = true,
                                              stream_options = { include_usage = true } })
      local ev = S.sse(r.body)
      assert.equal("[DONE]", ev[#ev])
      assert.same({}, ev[#ev - 1].choices)
      assert.equal(3, ev[#ev - 1].usage.completion_tokens)
      assert.equal("length", ev[#ev - 2].choices[1].finish_reason)
      for i = 1, #ev - 3 do assert.equal(S.null, ev[i].choices[1].finish_reason) end
   end)
end)
