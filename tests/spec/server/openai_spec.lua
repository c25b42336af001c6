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

   it("maps sampling parameters with OpenAI's defaults and ranges", function()
      local p = oa.sampling(oa.decode('{"temperature": 0.5, "max_tokens": 7, "stop": "x", "seed": 3}'), 100, 512)
      assert.are.equal(0.5, p.temperature)
      assert.are.equal(7, p.max_tokens)
      assert.are.same({ "x" }, p.stop)
      assert.are.equal(3, p.seed)
      local d = oa.sampling({}, 100, 512)
      assert.are.equal(1.0, d.temperature)
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
