-- Specs for moonhub.openai: request checks and response shapes (pure functions).
local oa = require "moonhub.openai"
local json = require "dkjson"

local function err_of(fn)
   local ok, e = pcall(fn)
   assert.is_false(ok)
   assert.is_table(e)
   return e
end

describe("openai request checks #unit", function()
   it("decodes bodies and rejects what is not a JSON object", function()
      assert.are.equal(1, oa.decode('{"a": 1}').a)
      assert.are.equal(400, err_of(function() oa.decode("") end).status)
      assert.matches("not a JSON object", err_of(function() oa.decode("{oops") end).message)
      assert.matches("not a JSON object", err_of(function() oa.decode("[1,2]") end).message)
   end)

   it("maps sampling parameters with the engine's defaults and OpenAI's ranges", function()
      local p = oa.sampling(oa.decode('{"temperature": 0.5, "max_tokens": 7, "stop": "x", "seed": 3}'), 100, 512)
      assert.are.equal(0.5, p.temperature)
      assert.are.equal(7, p.max_tokens)
      assert.are.same({ "x" }, p.stop)
      assert.are.equal(3, p.seed)
      local d = oa.sampling({}, 100, 512)
      local D = require("moonhub").model.defaults()      -- the ones Lua and the CLI get
      for _, k in ipairs({ "temperature", "top_p", "top_k", "min_p" }) do assert.are.equal(D[k], d[k]) end
      assert.is_true(D.top_k > 0 and D.temperature < 1)  -- not OpenAI's 1 / off
      assert.are.equal(512, d.max_tokens)
      assert.are.equal(1, d.n)
      local both = oa.decode('{"max_completion_tokens": 9, "max_tokens": 3}')
      assert.are.equal(9, oa.sampling(both, 100, 512).max_tokens)
      local e = err_of(function() oa.sampling({ temperature = 3 }, 100, 512) end)
      assert.are.equal("temperature", e.param)
      assert.matches("between 0 and 2", e.message)
      assert.are.equal("max_tokens", err_of(function() oa.sampling({ max_tokens = 0 }, 100, 512) end).param)
      local too_many = { stop = { "a", "b", "c", "d", "e" } }
      assert.are.equal("stop", err_of(function() oa.sampling(too_many, 100, 512) end).param)
      local lb = oa.sampling(oa.decode('{"logit_bias": {"5": -100, "7": 2.5}}'), 100, 512).logit_bias
      assert.are.equal(-math.huge, lb[5])
      assert.are.equal(2.5, lb[7])
      assert.matches("not a token id", err_of(function()
         oa.sampling(oa.decode('{"logit_bias": {"500": 1}}'), 100, 512) end).message)
      assert.is_true(oa.sampling(oa.decode('{"stream": true, "stream_options": {"include_usage": true}}'),
         100, 512).include_usage)
   end)

   it("checks messages: roles, content parts, developer as system", function()
      local ms = oa.messages(oa.decode([[{"messages": [
         {"role": "developer", "content": "be brief"},
         {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}]]))
      assert.are.same({ role = "system", content = "be brief" }, ms[1])
      assert.are.equal("ab", ms[2].content)
      assert.matches("role must be one of", err_of(function()
         oa.messages(oa.decode('{"messages": [{"role": "wizard", "content": "x"}]}')) end).message)
      assert.matches("only parts of type 'text'", err_of(function()
         oa.messages(oa.decode('{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}')) end).message)
      assert.matches("non%-empty array", err_of(function() oa.messages(oa.decode('{"messages": []}')) end).message)
   end)

   it("checks tools, tool_choice and response_format", function()
      local body = oa.decode([[{"tools": [{"type": "function", "function": {"name": "get", "parameters": {}}}],
         "tool_choice": {"type": "function", "function": {"name": "get"}}}]])
      local tools, choice = oa.tools(body)
      assert.are.equal(1, #tools)
      assert.are.equal("get", choice)
      assert.are.equal("tool_choice", err_of(function()
         oa.tools(oa.decode([[{"tools": [{"type": "function", "function": {"name": "a"}}],
            "tool_choice": {"type": "function", "function": {"name": "b"}}}]])) end).param)
      local jo = oa.decode('{"response_format": {"type": "json_object"}}')
      assert.are.equal("json_object", oa.response_format(jo).type)
      local rf = oa.response_format(oa.decode([[{"response_format": {"type": "json_schema",
         "json_schema": {"name": "x", "strict": true, "schema": {"type": "object"}}}}]]))
      assert.are.equal("object", rf.schema.type)
      assert.is_true(rf.strict)
      assert.are.equal(400, err_of(function()
         oa.response_format(oa.decode('{"response_format": {"type": "xml"}}')) end).status)
   end)
end)

describe("openai response shapes #unit", function()
   it("writes [] for empty arrays and null for missing values", function()
      local chunk = oa.usage_chunk("id1", 1, "m", "chat.completion.chunk",
         { prompt_tokens = 3, completion_tokens = 2, cached_tokens = 1 })
      local text = json.encode(chunk)
      assert.matches('"choices":%[%]', text)
      assert.matches('"cached_tokens":1', text)
      assert.matches('"total_tokens":5', text)
      local c = json.decode(json.encode(oa.chat_chunk("id1", 1, "m", 0, { role = "assistant", content = "" })), 1,
         json.null)
      assert.are.equal(json.null, c.choices[1].finish_reason)
      assert.are.equal("assistant", c.choices[1].delta.role)
   end)

   it("frames SSE events", function()
      assert.are.equal("data: [DONE]\n\n", oa.sse("[DONE]"))
      assert.matches("^data: {.*}\n\n$", oa.sse({ a = 1 }))
   end)

   it("makes OpenAI error bodies", function()
      local e = json.decode(oa.error_body(400, "bad", "temperature"))
      assert.are.equal("invalid_request_error", e.error.type)
      assert.are.equal("temperature", e.error.param)
      assert.are.equal("authentication_error", json.decode(oa.error_body(401, "no")).error.type)
   end)

   it("encodes base64 like the standard", function()
      assert.are.equal("", oa.base64(""))
      assert.are.equal("Zg==", oa.base64("f"))
      assert.are.equal("Zm8=", oa.base64("fo"))
      assert.are.equal("Zm9v", oa.base64("foo"))
      assert.are.equal("AACAPw==", oa.base64(string.pack("<f", 1.0)))
   end)
end)

describe("openai schema checks #unit", function()
   local function param_of(fn) return err_of(fn).param end

   it("messages: content required (assistant: unless tool_calls), tool_calls shaped, names strings", function()
      local function ms(s) return function() return oa.messages(oa.decode('{"messages": [' .. s .. ']}')) end end
      assert.equal("messages", param_of(ms('{"role": "user"}')))
      assert.matches("content is required", err_of(ms('{"role": "system", "content": null}')).message)
      assert.equal("messages", param_of(ms('{"role": "assistant"}')))
      local ok = ms('{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", '
         .. '"function": {"name": "f", "arguments": "{}"}}]}')()
      assert.equal("", ok[1].content)
      assert.equal("f", ok[1].tool_calls[1]["function"].name)
      assert.matches("tool_calls%[0%]%.function' must be", err_of(ms('{"role": "assistant", "tool_calls": '
         .. '[{"function": null}]}')).message)
      assert.matches("arguments' must be a string", err_of(ms('{"role": "assistant", "tool_calls": '
         .. '[{"function": {"name": "f", "arguments": {}}}]}')).message)
      assert.matches("tool_call_id", err_of(ms('{"role": "tool", "content": "x"}')).message)
      assert.matches("name' must be a string", err_of(ms('{"role": "user", "content": "x", "name": 1}')).message)
      assert.equal("x", ms('{"role": "tool", "content": "x", "tool_call_id": "c1"}')()[1].content)
   end)

   it("tool_choice needs tools; empty tools are none", function()
      assert.equal("tool_choice", param_of(function() oa.tools(oa.decode('{"tool_choice": "required"}')) end))
      assert.equal("tool_choice", param_of(function() oa.tools(oa.decode('{"tool_choice": 5}')) end))
      assert.equal("tool_choice", param_of(function()
         oa.tools(oa.decode('{"tool_choice": {"type": "function", "function": {"name": "f"}}}')) end))
      local tools, choice = oa.tools(oa.decode('{"tools": [], "tool_choice": "auto"}'))
      assert.is_nil(tools)
      assert.equal("none", choice)
      assert.equal("tools", param_of(function()
         oa.tools(oa.decode('{"tools": [{"type": "function", "function": {"name": "bad name!"}}]}')) end))
   end)

   it("sampling: null is the default, empty stop and wrong stream_options are 400s", function()
      local p = oa.sampling(oa.decode('{"max_tokens": null, "stop": null, "seed": null}'), nil, 99)
      assert.equal(99, p.max_tokens)
      assert.same({}, p.stop)
      assert.equal("stop", param_of(function() oa.sampling(oa.decode('{"stop": ""}')) end))
      assert.equal("stop", param_of(function() oa.sampling(oa.decode('{"stop": {}}')) end))
      assert.equal("stream_options", param_of(function() oa.sampling(oa.decode('{"stream_options": true}')) end))
      assert.equal("top_k", param_of(function() oa.sampling(oa.decode('{"top_k": 2147483648}')) end))
      assert.equal("seed", param_of(function() oa.sampling(oa.decode('{"seed": 1e20}')) end))
      assert.equal("logit_bias", param_of(function() oa.sampling(oa.decode('{"logit_bias": {"x": 1}}')) end))
      assert.equal("model", param_of(function() oa.common(oa.decode('{"model": 5}')) end))
      assert.equal("store", param_of(function() oa.common(oa.decode('{"store": "yes"}')) end))
   end)

   it("prompts and token ids: every shape, no empty lists, ids in range", function()
      assert.same({ "a" }, oa.prompts("a", "prompt"))
      assert.same({ { 1, 2 } }, oa.prompts(oa.decode('{"p": [1, 2]}').p, "prompt"))
      assert.same({ "a", { 3 } }, oa.prompts(oa.decode('{"p": ["a", [3]]}').p, "prompt"))
      for _, bad in ipairs({ "[]", "[[]]", "[null]", "[-1]", "[1.5]", "[1e20]", '[1, "a"]', "[[1], 2]", "{}" }) do
         assert.equal("prompt", param_of(function() oa.prompts(oa.decode('{"p": ' .. bad .. '}').p, "prompt") end),
            bad)
      end
      assert.equal("input", param_of(function() oa.token_ids({ 0, 10 }, "input", "input", 10) end))
      assert.same({ 0, 9 }, oa.token_ids({ 0, 9 }, "input", "input", 10))
   end)
end)
