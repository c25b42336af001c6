-- Specs for /v1/messages (moonhub.server.messages_adapter): how an
-- Anthropic body maps onto the neutral request and renders, stop reasons,
-- content blocks, error bodies, then the real server's event order, tool
-- round trip, x-api-key and errors. Layer: tests (helpers.server, .data).
local ma = require "moonhub.server.messages_adapter"
local oa = require "moonhub.openai"
local S = require "helpers.server"
local data = require "helpers.data"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local KEY = "messages-spec-key"

local function req(text) return ma.request(oa.decode(text)) end

local function err_of(fn)
   local ok, e = pcall(fn)
   assert.is_false(ok)
   assert.is_table(e, tostring(e))
   return e
end

local ROUND_TRIP = [[{"max_tokens": 3, "system": [{"type": "text", "text": "sys"}],
   "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
   "messages": [
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
         {"type": "text", "text": "checking"},
         {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
         {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "no"}], "is_error": true},
         {"type": "text", "text": "and tomorrow?"}]}]}]]

describe("messages: body -> neutral request #unit", function()
   it("system, string content, max_tokens, stop_sequences and sampling", function()
      local r = req([[{"model": "m", "system": "be brief", "max_tokens": 9, "stop_sequences": ["END", "##"],
         "temperature": 0.25, "top_p": 0.5, "top_k": 7,
         "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                      {"role": "user", "content": "again"}]}]])
      assert.same({ { role = "system", content = "be brief" }, { role = "user", content = "hi" },
         { role = "assistant", content = "yo" }, { role = "user", content = "again" } }, r.messages)
      assert.equal("m", r.model)
      assert.equal(9, r.max_tokens)
      assert.same({ "END", "##" }, r.stop)
      assert.equal(0.25, r.sampling.temperature)
      assert.equal(0.5, r.sampling.top_p)
      assert.equal(7, r.sampling.top_k)
      assert.equal(1, r.n)
      assert.equal("none", r.tool_choice)
   end)

   it("content blocks: tool_use as tool_calls, tool_result as tool messages before the text", function()
      local r = req(ROUND_TRIP)
      local m = r.messages
      assert.equal(6, #m)
      assert.same({ role = "system", content = "sys" }, m[1])
      assert.equal("checking", m[3].content)                 -- the thinking block is left out
      local call = m[3].tool_calls[1]
      assert.equal("t1", call.id)
      assert.equal("get_weather", call["function"].name)
      assert.same({ city = "Paris" }, S.decode(call["function"].arguments))
      assert.same({ role = "tool", tool_call_id = "t1", content = "sunny" }, m[4])
      assert.same({ role = "tool", tool_call_id = "t2", content = "error: no" }, m[5])
      assert.same({ role = "user", content = "and tomorrow?" }, m[6])
      assert.equal("get_weather", r.tools[1]["function"].name)
      assert.same({ type = "object" }, r.tools[1]["function"].parameters)
      assert.equal("auto", r.tool_choice)
   end)

   it("tool_choice: auto, any (required), tool (by name), none", function()
      local function choice(c)
         return req('{"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": ' .. c
            .. ', "tools": [{"name": "f", "input_schema": {"type": "object"}}]}').tool_choice
      end
      assert.equal("auto", choice('{"type": "auto"}'))
      assert.equal("required", choice('{"type": "any"}'))
      assert.equal("f", choice('{"type": "tool", "name": "f"}'))
      assert.equal("none", choice('{"type": "none"}'))
   end)

   it("refuses what it cannot honour with Anthropic-shaped 400s naming the field", function()
      local M1 = '"messages": [{"role": "user", "content": "x"}]'
      local cases = {
         { '{' .. M1 .. '}', "max_tokens", "required" },
         { '{"max_tokens": 0, ' .. M1 .. '}', "max_tokens", "from 1" },
         { '{"max_tokens": 1, "temperature": 1.5, ' .. M1 .. '}', "temperature", "between 0 and 1" },
         { '{"max_tokens": 1, "messages": []}', "messages", "non%-empty" },
         { '{"max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}', "messages", "'system'" },
         { '{"max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}',
            "messages", "image blocks are not supported" },
         { '{"max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", '
            .. '"name": "f", "input": {}}]}]}', "messages", "text or tool_result" },
         { '{"max_tokens": 1, "messages": [{"role": "user", "content": "x"}, {"role": "assistant", '
            .. '"content": "The answer is"}]}', "messages", "prefill" },
         { '{"max_tokens": 1, "stop_sequences": [""], ' .. M1 .. '}', "stop_sequences", "non%-empty" },
         { '{"max_tokens": 1, "stop_sequences": "x", ' .. M1 .. '}', "stop_sequences", "array" },
         { '{"max_tokens": 1, "system": 3, ' .. M1 .. '}', "system", "string" },
         { '{"max_tokens": 1, "thinking": {"type": "enabled", "budget_tokens": 1024}, ' .. M1 .. '}', "thinking",
            "not supported" },
         { '{"max_tokens": 1, "tools": [{"type": "web_search_20250305", "name": "web_search"}], ' .. M1 .. '}',
            "tools", "only client tools" },
         { '{"max_tokens": 1, "tools": [{"name": "f"}], ' .. M1 .. '}', "tools", "input_schema" },
         { '{"max_tokens": 1, "tools": [{"name": "f", "description": 5, "input_schema": {}}], ' .. M1 .. '}', "tools",
            "'tools%[0%]%.description' must be a string" },
         { '{"max_tokens": 1, "thinking": 5, ' .. M1 .. '}', "thinking", "an object" },
         { '{"max_tokens": 1, "tool_choice": {"type": "sometimes"}, ' .. M1 .. '}', "tool_choice", "auto" },
         { '{"max_tokens": 1, "tool_choice": {"type": "tool", "name": "f"}, ' .. M1 .. '}', "tool_choice", "needs" },
      }
      for _, c in ipairs(cases) do
         local e = err_of(function() req(c[1]) end)
         assert.equal(400, e.status, c[1])
         assert.equal(c[2], e.param, c[1])
         assert.matches(c[3], e.message, 1, false, c[1])
         local body = S.decode(ma.error_body(e))
         assert.same({ type = "error", error = { type = "invalid_request_error", message = e.message } }, body)
      end
   end)

   it("error types by status, as Anthropic names them", function()
      local want = { [400] = "invalid_request_error", [401] = "authentication_error", [403] = "permission_error",
         [404] = "not_found_error", [413] = "request_too_large", [415] = "invalid_request_error",
         [429] = "rate_limit_error", [500] = "api_error", [503] = "overloaded_error" }
      for status, ty in pairs(want) do
         assert.equal(ty, S.decode(ma.error_body({ status = status, message = "m" })).error.type)
      end
   end)
end)

describe("messages: results -> stop reasons and content blocks #unit", function()
   local r = req('{"max_tokens": 5, "stop_sequences": ["END"], "messages": [{"role": "user", "content": "x"}]}')
   local st = { id = "msg_ab", hex = "ab", model = "m", n_prompt = 3 }

   it("maps finish reasons: length, the client's stop string, a template's stop, calls", function()
      assert.same({ "max_tokens", oa.null }, { ma.stop_reason(r, { reason = "length" }) })
      assert.same({ "stop_sequence", "END" }, { ma.stop_reason(r, { reason = "stop", stop = "END" }) })
      assert.same({ "end_turn", oa.null }, { ma.stop_reason(r, { reason = "stop", stop = "<|im_end|>" }) })
      assert.same({ "end_turn", oa.null }, { ma.stop_reason(r, { reason = "stop" }) })
      assert.same({ "tool_use", oa.null }, { ma.stop_reason(r, { reason = "tool_calls" }, true) })
   end)

   it("content: text, then tool_use blocks with decoded input; bad arguments stay text", function()
      local blocks, used = ma.content(st, { text = "hello", reason = "stop" })
      assert.same({ { type = "text", text = "hello" } }, blocks)
      assert.is_false(used)
      blocks, used = ma.content(st, { text = "raw", reason = "tool_calls", content = "",
         calls = { { name = "f", arguments = '{"a":[1,2]}' }, { name = "g", arguments = "{}", id = "own" } } })
      assert.is_true(used)
      assert.equal(2, #blocks)
      assert.same({ type = "tool_use", id = "toolu_ab_1", name = "f", input = { a = { 1, 2 } } }, blocks[1])
      assert.equal("own", blocks[2].id)
      assert.equal('{}', oa.encode(blocks[2].input))           -- an empty input stays an object
      blocks = ma.content(st, { text = "raw", reason = "tool_calls", content = "pre",
         calls = { { name = "f", arguments = "{}" } } })
      assert.same({ type = "text", text = "pre" }, blocks[1])
      blocks, used = ma.content(st, { text = "raw text", reason = "tool_calls", content = "",
         calls = { { name = "f", arguments = "not json" } } })
      assert.is_false(used)
      assert.same({ { type = "text", text = "raw text" } }, blocks)
   end)
end)

-- ===== the model's template and the real server =====

-- Events of a typed SSE body: {type, data} in order; pings (sent while
-- nothing is generated yet, at any point) are left out.
local function events(body)
   local out = {}
   for block in body:gmatch("(.-)\n\n") do
      local ty, payload = block:match("^event: ([^\n]+)\ndata: (.*)$")
      assert(ty, "bad SSE block: " .. block)
      if ty ~= "ping" then out[#out + 1] = { type = ty, data = assert(S.decode(payload), payload) } end
   end
   return out
end

local TOOLS = { { name = "get_weather", description = "weather",
   input_schema = { type = "object", properties = { city = { enum = { "Paris", "Rome" } } }, required = { "city" } } } }

describe("POST /v1/messages (mh-smol) #integration", function()
   local srv
   local auth = { headers = { ["x-api-key"] = KEY } }

   setup(function()
      local path = data.path(SMOL)
      if path then srv = S.start(path, "--parallel 2 --ctx 512 --threads 1 --api-key " .. KEY) end
   end)
   teardown(function() if srv then srv:stop() end end)
   local function need() return data.started(srv, SMOL, pending) end
   local function post(body, path) return srv:post(path or "/v1/messages", body, auth) end

   it("a tool round trip renders the call and its results through the model's template", function()
      local path = data.need(SMOL, pending)
      if not path then return end
      local m = assert(require("moonhub").load(path, { ctx = 64 }))
      local r = req(ROUND_TRIP)
      local text = require("moonhub.template").render_for_model(m, r.messages, { tools = r.tools })
      m:close()
      assert.matches("sys", text, 1, true)
      assert.matches('"name": "get_weather"', text, 1, true)
      assert.matches("Paris", text, 1, true)
      assert.matches("sunny", text, 1, true)
      assert.matches("error: no", text, 1, true)
      assert.is_true(text:find("sunny", 1, true) < text:find("and tomorrow?", 1, true))
   end)

   it("streams message_start .. message_stop with the non-streamed text and usage", function()
      if not need() then return end
      local body = { messages = { { role = "user", content = "Tell me a story" } }, max_tokens = 5, temperature = 0 }
      local plain = post(body)
      assert.equal(200, plain.status, plain.body)
      assert.equal("max_tokens", plain.json.stop_reason)
      body.stream = true
      local r = post(body)
      assert.equal(200, r.status)
      assert.matches("^text/event%-stream", r.headers["content-type"])
      local ev = events(r.body)
      local types, text = {}, {}
      for i, e in ipairs(ev) do
         types[i] = e.type
         assert.equal(e.type, e.data.type)
         if e.type == "content_block_delta" then
            assert.equal("text_delta", e.data.delta.type)
            assert.equal(0, e.data.index)
            text[#text + 1] = e.data.delta.text
         end
      end
      local want = { "message_start", "content_block_start" }
      for _ = 1, #text do want[#want + 1] = "content_block_delta" end
      for _, t in ipairs({ "content_block_stop", "message_delta", "message_stop" }) do want[#want + 1] = t end
      assert.same(want, types)
      local start = ev[1].data.message
      assert.same({}, start.content)
      assert.equal(S.null, start.stop_reason)
      assert.equal(plain.json.usage.input_tokens, start.usage.input_tokens)
      assert.equal(table.concat(text), plain.json.content[1].text)
      local delta = ev[#ev - 1].data
      assert.equal("max_tokens", delta.delta.stop_reason)
      assert.equal(5, delta.usage.output_tokens)
   end)

   it("stop_sequences end the text and are named; tool_use streams as input_json_delta", function()
      if not need() then return end
      local body = { messages = { { role = "user", content = "Hello" } }, max_tokens = 12, temperature = 0 }
      local text = post(body).json.content[1].text
      local at = text:find(" ", 3, true) or 3
      local seq = text:sub(at, at + 2)
      assert.equal(at, text:find(seq, 1, true), text)
      body.stop_sequences = { seq }
      local r = post(body)
      assert.equal("stop_sequence", r.json.stop_reason)
      assert.equal(seq, r.json.stop_sequence)
      assert.equal(text:sub(1, at - 1), r.json.content[1].text)
      -- forced tool: one tool_use block
      -- greedy: a sampled run may spend its 60 tokens on the whitespace the JSON grammar allows (CI saw it)
      local s = post({ messages = { { role = "user", content = "Weather?" } }, max_tokens = 60, tools = TOOLS,
         tool_choice = { type = "tool", name = "get_weather" }, stream = true, temperature = 0 })
      local ev = events(s.body)
      local types = {}
      for i, e in ipairs(ev) do types[i] = e.type end
      assert.same({ "message_start", "content_block_start", "content_block_delta", "content_block_stop",
         "message_delta", "message_stop" }, types)
      assert.equal("tool_use", ev[2].data.content_block.type)
      assert.equal("get_weather", ev[2].data.content_block.name)
      assert.equal("input_json_delta", ev[3].data.delta.type)
      assert.is_truthy(({ Paris = true, Rome = true })[S.decode(ev[3].data.delta.partial_json).city])
      assert.equal("tool_use", ev[5].data.delta.stop_reason)
   end)

   it("options reach the sampler (read back with moonhub.echo_settings), plain and streamed", function()
      if not need() then return end
      local body = { messages = { { role = "user", content = "hi" } }, max_tokens = 3, temperature = 0.4,
         top_p = 0.6, top_k = 5, moonhub = { echo_settings = true } }
      local plain = post(body).json.moonhub.settings
      assert.near(0.4, plain.temperature, 1e-6)
      assert.near(0.6, plain.top_p, 1e-6)
      assert.equal(5, plain.top_k)
      assert.equal(3, plain.max_tokens)
      body.stop_sequences, body.stream = { "xyz", "abc" }, true
      local ev = events(post(body).body)
      local s = ev[#ev - 1].data.moonhub.settings                 -- on message_delta
      assert.equal(plain.n_stop + 2, s.n_stop)                    -- the template's stops and these two
      assert.equal(5, s.top_k)
   end)

   it("every field given every wrong type: a 4xx in Anthropic's shape or a 200, never a 500", function()
      if not need() then return end
      local values = { 5, -1, 1e300, "x", true, S.null, {}, { 1 }, { {} }, { a = 1 }, { { type = 5 } },
         { { role = "user", content = { { type = "tool_result" } } } } }
      local fields = { "model", "max_tokens", "system", "messages", "stop_sequences", "temperature", "top_p", "top_k",
         "tools", "tool_choice", "stream", "metadata", "thinking", "mcp_servers" }
      for _, f in ipairs(fields) do
         for _, v in ipairs(values) do
            local body = { messages = { { role = "user", content = "hi" } }, max_tokens = 1 }
            body[f] = v
            local r = post(body)
            local what = f .. " = " .. S.encode(v)
            assert.is_true(r.status == 200 or (r.status >= 400 and r.status < 500), what .. ": " .. r.body)
            if r.status ~= 200 then
               assert.equal("error", r.json.type, what)
               assert.equal("string", type(r.json.error.message), what)
            end
         end
      end
   end)

   it("x-api-key or Bearer; errors in Anthropic's shape, before and inside a stream", function()
      if not need() then return end
      local msgs = { { role = "user", content = "x" } }
      local r = srv:post("/v1/messages", { messages = msgs, max_tokens = 1 }, { headers = { ["x-api-key"] = "no" } })
      assert.equal(401, r.status)
      assert.same({ type = "error", error = { type = "authentication_error", message = r.json.error.message } }, r.json)
      assert.matches("x%-api%-key", r.json.error.message)
      r = srv:post("/v1/messages", { messages = msgs, max_tokens = 1 },
         { headers = { Authorization = "Bearer " .. KEY } })
      assert.equal(200, r.status)
      -- the key header works on the OpenAI routes too
      assert.equal(200, post({ messages = msgs, max_tokens = 1 }, "/v1/chat/completions").status)
      r = post({ messages = msgs })
      assert.equal(400, r.status)
      assert.equal("invalid_request_error", r.json.error.type)
      assert.matches("max_tokens", r.json.error.message)
      r = post({ model = "no-such-model", messages = msgs, max_tokens = 1 })
      assert.equal(404, r.status)
      assert.equal("not_found_error", r.json.error.type)
      r = post({ messages = { { role = "user", content = string.rep("word ", 700) } }, max_tokens = 1, stream = true })
      assert.equal(200, r.status)
      local ev = events(r.body)
      assert.equal("message_start", ev[1].type)
      assert.equal("error", ev[#ev].type)
      assert.equal("invalid_request_error", ev[#ev].data.error.type)
      assert.matches("context", ev[#ev].data.error.message)
      -- count_tokens: the prompt's tokens
      local c = post({ messages = msgs }, "/v1/messages/count_tokens")
      assert.equal(200, c.status, c.body)
      assert.equal(post({ messages = msgs, max_tokens = 1 }).json.usage.input_tokens, c.json.input_tokens)
   end)
end)
