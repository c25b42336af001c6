-- Specs for /v1/responses (moonhub.server.responses_adapter): how a
-- Responses body maps onto the neutral request, the output items and
-- response object, then the real server's event order, tool round trip
-- and errors. Layer: tests (helpers.server for the #integration block).
local ra = require "moonhub.server.responses_adapter"
local oa = require "moonhub.openai"
local S = require "helpers.server"
local data = require "helpers.data"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local KEY = "responses-spec-key"

local function req(text) return ra.request(oa.decode(text)) end

local function err_of(fn)
   local ok, e = pcall(fn)
   assert.is_false(ok)
   assert.is_table(e, tostring(e))
   return e
end

describe("responses: body -> neutral request #unit", function()
   it("a string input with instructions is a system and a user message", function()
      local r = req('{"model": "m", "input": "hi", "instructions": "be brief", "max_output_tokens": 7,'
         .. ' "temperature": 0.5, "top_p": 0.9}')
      assert.same({ { role = "system", content = "be brief" }, { role = "user", content = "hi" } }, r.messages)
      assert.equal("chat", r.kind)
      assert.equal("m", r.model)
      assert.equal(7, r.max_tokens)
      assert.equal(0.5, r.sampling.temperature)
      assert.equal(0.9, r.sampling.top_p)
      assert.equal(1, r.n)
      assert.same({}, r.stop)
      assert.is_nil(r.tools)
      assert.equal("none", r.tool_choice)
      assert.is_nil(req('{"input": "hi"}').max_tokens)           -- the rest of the context
   end)

   it("input items: roles, text parts, calls joined to their turn, call outputs as tool messages", function()
      local r = req([[{"input": [
         {"role": "developer", "content": "rules"},
         {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"},
                                                          {"type": "input_text", "text": "b"}]},
         {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "let me see"}]},
         {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\":1}"},
         {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
         {"type": "function_call_output", "call_id": "c1", "output": "one"},
         {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
         {"type": "function_call", "call_id": "c3", "name": "f", "arguments": "{}"}]}]])
      local m = r.messages
      assert.equal(6, #m)
      assert.same({ role = "system", content = "rules" }, m[1])
      assert.same({ role = "user", content = "ab" }, m[2])
      assert.equal("assistant", m[3].role)
      assert.equal("let me see", m[3].content)
      assert.same({ { id = "c1", type = "function", ["function"] = { name = "f", arguments = '{"x":1}' } },
                    { id = "c2", type = "function", ["function"] = { name = "g", arguments = "{}" } } },
         m[3].tool_calls)
      assert.same({ role = "tool", tool_call_id = "c1", content = "one" }, m[4])
      assert.same({ role = "tool", tool_call_id = "c2", content = "two" }, m[5])
      -- a call after tool output starts a new assistant turn
      assert.same({ role = "assistant", content = "", tool_calls = {
         { id = "c3", type = "function", ["function"] = { name = "f", arguments = "{}" } } } }, m[6])
   end)

   it("function tools and tool_choice map to chat's form; text.format to the format", function()
      local r = req([[{"input": "x", "tools": [{"type": "function", "name": "get", "description": "d",
         "parameters": {"type": "object"}}], "tool_choice": {"type": "function", "name": "get"},
         "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": true}}}]])
      assert.equal(1, #r.tools)
      assert.same({ name = "get", description = "d", parameters = { type = "object" } }, r.tools[1]["function"])
      assert.equal("get", r.tool_choice)
      assert.equal("json_schema", r.format.type)
      assert.equal("object", r.format.schema.type)
      assert.equal("required", req('{"input": "x", "tools": [{"type": "function", "name": "a"}],'
         .. ' "tool_choice": "required"}').tool_choice)
      assert.equal("auto", req('{"input": "x", "tools": [{"type": "function", "name": "a"}]}').tool_choice)
      assert.equal("json_object", req('{"input": "x", "text": {"format": {"type": "json_object"}}}').format.type)
      assert.is_nil(req('{"input": "x", "text": {"format": {"type": "text"}}}').format)
   end)

   it("refuses what it cannot honour, naming the field", function()
      local cases = {
         { '{"input": "x", "previous_response_id": "resp_1"}', "previous_response_id", "does not store" },
         { '{"input": "x", "conversation": "c"}', "conversation", "conversation" },
         { '{"input": "x", "background": true}', "background", "stream" },
         { '{"input": "x", "tools": [{"type": "web_search"}]}', "tools", "only function tools" },
         { '{"input": "x", "tools": [{"type": "function", "name": "a b"}]}', "tools", "name" },
         { '{"input": "x", "tools": [{"type": "function", "name": "a", "parameters": 5}]}', "tools",
            "'tools%[0%]%.parameters' must be an object" },
         { '{"input": "x", "tools": [{"type": "function", "name": "a", "description": 5}]}', "tools",
            "'tools%[0%]%.description' must be a string" },
         { '{"input": "x", "tool_choice": {"type": "function", "name": "nope"}}', "tool_choice", "needs" },
         { '{"input": "x", "tool_choice": {"type": "file_search"}}', "tool_choice", "tool_choice" },
         { '{"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]}', "input",
            "input_image parts are not supported" },
         { '{"input": [{"type": "item_reference", "id": "x"}]}', "input", "item_reference" },
         { '{"input": [{"type": "reasoning"}]}', "input", "not supported" },
         { '{"input": [{"role": "tool", "content": "x"}]}', "input", "role must be" },
         { '{"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}', "input",
            "arguments" },
         { '{"input": [{"type": "function_call_output", "output": "x"}]}', "input", "call_id" },
         { '{"input": []}', "input", "non%-empty" },
         { '{}', "input", "required" },
         { '{"input": "x", "max_output_tokens": 0}', "max_output_tokens", "from 1" },
         { '{"input": "x", "temperature": 3}', "temperature", "between" },
         { '{"input": "x", "instructions": 5}', "instructions", "a string" },
         { '{"input": "x", "text": {"format": {"type": "xml"}}}', "text", "json_schema" },
      }
      for _, c in ipairs(cases) do
         local e = err_of(function() req(c[1]) end)
         assert.equal(400, e.status, c[1])
         assert.equal(c[2], e.param, c[1])
         assert.matches(c[3], e.message, 1, false, c[1])
      end
   end)
end)

describe("responses: output items and the response object #unit", function()
   local st = { id = "resp_ab", hex = "ab", created = 5, model = "m", body = { instructions = "i" },
                r = req('{"input": "x", "instructions": "i", "max_output_tokens": 4}') }
   local u = { prompt_tokens = 10, completion_tokens = 4, cached_tokens = 3 }

   it("a text result is one message item; length makes it incomplete", function()
      local out, status = ra.output(st, { text = "hello", reason = "length" })
      assert.equal("incomplete", status)
      assert.equal(1, #out)
      assert.equal("message", out[1].type)
      assert.equal("msg_ab", out[1].id)
      assert.equal("incomplete", out[1].status)
      assert.equal("output_text", out[1].content[1].type)
      assert.equal("hello", out[1].content[1].text)
      local resp = ra.response(st, status, out, u)
      assert.equal("response", resp.object)
      assert.equal("incomplete", resp.status)
      assert.same({ reason = "max_output_tokens" }, resp.incomplete_details)
      assert.equal("i", resp.instructions)
      assert.equal(4, resp.max_output_tokens)
      assert.same({ input_tokens = 10, input_tokens_details = { cached_tokens = 3 }, output_tokens = 4,
         output_tokens_details = { reasoning_tokens = 0 }, total_tokens = 14 }, resp.usage)
      assert.equal("completed", select(2, ra.output(st, { text = "x", reason = "stop" })))
      assert.equal(oa.null, ra.response(st, "completed", {}, u).incomplete_details)
   end)

   it("calls are function_call items after the text, ids derived from the response's", function()
      local calls = { { name = "f", arguments = '{"a":1}' }, { name = "g", arguments = "{}", id = "own" } }
      local out = ra.output(st, { text = "raw", reason = "tool_calls", calls = calls, content = "" })
      assert.equal(2, #out)
      assert.same({ type = "function_call", id = "fc_ab_1", call_id = "call_ab_1", name = "f",
         arguments = '{"a":1}', status = "completed" }, out[1])
      assert.equal("own", out[2].call_id)
      out = ra.output(st, { text = "raw", reason = "tool_calls", calls = calls, content = "first" })
      assert.equal(3, #out)
      assert.equal("message", out[1].type)
      assert.equal("first", out[1].content[1].text)
      assert.equal("function_call", out[3].type)
   end)
end)

-- ===== the real server =====

-- Events of a typed SSE body: {type, data} in order (keep-alive comments skipped).
local function events(body)
   local out = {}
   for block in body:gmatch("(.-)\n\n") do
      if not block:match("^:") then
         local ty, payload = block:match("^event: ([^\n]+)\ndata: (.*)$")
         assert(ty, "bad SSE block: " .. block)
         out[#out + 1] = { type = ty, data = assert(S.decode(payload), payload) }
      end
   end
   return out
end

local TOOLS = { { type = "function", name = "get_weather", description = "weather",
   parameters = { type = "object", properties = { city = { enum = { "Paris", "Rome" } } }, required = { "city" } } } }

describe("POST /v1/responses (mh-smol) #integration", function()
   local srv
   local auth = { headers = { Authorization = "Bearer " .. KEY } }

   setup(function()
      local path = data.path(SMOL)
      if path then srv = S.start(path, "--parallel 2 --ctx 512 --threads 1 --api-key " .. KEY) end
   end)
   teardown(function() if srv then srv:stop() end end)
   local function need() return data.started(srv, SMOL, pending) end
   local function post(body) return srv:post("/v1/responses", body, auth) end

   it("streams the typed events in order, numbered, with the non-streamed text", function()
      if not need() then return end
      local body = { input = "Tell me a story", max_output_tokens = 5, temperature = 0 }
      local plain = post(body)
      assert.equal(200, plain.status, plain.body)
      assert.not_equal(plain.json.id, post(body).json.id)    -- ids differ, within one second too
      body.stream = true
      local r = post(body)
      assert.equal(200, r.status)
      assert.matches("^text/event%-stream", r.headers["content-type"])
      local ev = events(r.body)
      local types, text = {}, {}
      for i, e in ipairs(ev) do
         types[i] = e.type
         assert.equal(e.type, e.data.type)
         assert.equal(i - 1, e.data.sequence_number)
         if e.type == "response.output_text.delta" then text[#text + 1] = e.data.delta end
      end
      local want = { "response.created", "response.in_progress", "response.output_item.added",
         "response.content_part.added" }
      for _ = 1, #text do want[#want + 1] = "response.output_text.delta" end
      for _, t in ipairs({ "response.output_text.done", "response.content_part.done", "response.output_item.done",
         "response.incomplete" }) do want[#want + 1] = t end
      assert.same(want, types)
      assert.equal("in_progress", ev[1].data.response.status)
      local final = ev[#ev].data.response
      assert.equal(plain.json.id:sub(1, 5), final.id:sub(1, 5))
      assert.equal(table.concat(text), plain.json.output[1].content[1].text)
      assert.equal(table.concat(text), final.output[1].content[1].text)
      assert.equal(5, final.usage.output_tokens)
   end)

   it("tools: a forced call, then the call and its output sent back render into the prompt", function()
      if not need() then return end
      local r = post({ input = "Weather in Paris?", max_output_tokens = 60, tools = TOOLS, tool_choice = "required" })
      assert.equal(200, r.status, r.body)
      assert.equal("completed", r.json.status)
      local call = r.json.output[1]
      assert.equal("function_call", call.type)
      assert.equal("get_weather", call.name)
      assert.is_truthy(({ Paris = true, Rome = true })[S.decode(call.arguments).city])
      local input = { { role = "user", content = "Weather in Paris?" }, call,
         { type = "function_call_output", call_id = call.call_id, output = "sunny" } }
      local back = post({ input = input, max_output_tokens = 2, tools = TOOLS })
      assert.equal(200, back.status, back.body)
      local without = post({ input = { input[1] }, max_output_tokens = 2, tools = TOOLS })
      assert.is_true(back.json.usage.input_tokens > without.json.usage.input_tokens + 5)
      -- streamed: the function_call item's events, then response.completed
      local s = post({ input = "Weather?", max_output_tokens = 60, tools = TOOLS, stream = true,
         tool_choice = { type = "function", name = "get_weather" } })
      local types = {}
      for i, e in ipairs(events(s.body)) do types[i] = e.type end
      assert.same({ "response.created", "response.in_progress", "response.output_item.added",
         "response.function_call_arguments.delta", "response.function_call_arguments.done",
         "response.output_item.done", "response.completed" }, types)
   end)

   it("options reach the sampler (read back with moonhub.echo_settings), plain and streamed", function()
      if not need() then return end
      local body = { input = "hi", temperature = 0.3, top_p = 0.7, max_output_tokens = 3, seed = 11,
         moonhub = { echo_settings = true } }
      local s = post(body).json.moonhub.settings
      assert.near(0.3, s.temperature, 1e-6)
      assert.near(0.7, s.top_p, 1e-6)
      assert.equal(3, s.max_tokens)
      assert.equal(11, s.seed)
      assert.is_false(s.grammar)
      body.stream, body.tools, body.tool_choice = true, TOOLS, "required"
      local ev = events(post(body).body)
      s = ev[#ev].data.response.moonhub.settings
      assert.is_true(s.grammar)                                   -- a forced call runs under the grammar
      assert.near(0.3, s.temperature, 1e-6)
      assert.is_nil(post({ input = "hi", max_output_tokens = 1 }).json.moonhub)
   end)

   it("every field given every wrong type: a 4xx OpenAI error or a 200, never a 500", function()
      if not need() then return end
      local values = { 5, -1, 1e300, "x", true, S.null, {}, { 1 }, { {} }, { a = 1 }, { { type = 5 } } }
      local fields = { "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools",
         "tool_choice", "text", "stream", "store", "metadata", "user", "parallel_tool_calls", "keep_alive", "seed",
         "background", "previous_response_id" }
      for _, f in ipairs(fields) do
         for _, v in ipairs(values) do
            local body = { input = "hi", max_output_tokens = 1 }
            body[f] = v
            local r = post(body)
            local what = f .. " = " .. S.encode(v)
            assert.is_true(r.status == 200 or (r.status >= 400 and r.status < 500), what .. ": " .. r.body)
            if r.status ~= 200 then assert.equal("string", type(r.json.error.message), what) end
         end
      end
   end)

   it("errors: OpenAI's shape before the stream, an error event inside it", function()
      if not need() then return end
      local r = post({ input = "x", previous_response_id = "resp_1" })
      assert.equal(400, r.status)
      assert.equal("previous_response_id", r.json.error.param)
      assert.equal("invalid_request_error", r.json.error.type)
      r = srv:post("/v1/responses", { input = "x" })
      assert.equal(401, r.status)
      assert.equal("invalid_api_key", r.json.error.code)
      -- too long for the context: found once the stream has begun
      r = post({ input = string.rep("word ", 700), stream = true })
      assert.equal(200, r.status)
      local ev = events(r.body)
      assert.equal("response.created", ev[1].type)
      assert.equal("error", ev[#ev].type)
      assert.equal("exceed_context_size_error", ev[#ev].data.code)
      assert.matches("context", ev[#ev].data.message)
   end)
end)
