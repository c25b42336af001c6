-- moonhub.toolcall: tool calls out of generated text for the Hermes/Qwen,
-- Llama 3.1 and Mistral formats: valid, cut off mid-JSON and malformed. Layer: tests for moonhub.toolcall.
local toolcall = require "moonhub.toolcall"

describe("toolcall #unit", function()
   it("parses Hermes/Qwen <tool_call> blocks, keeping argument order", function()
      local text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n'
         .. '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
      local calls, content = toolcall.parse(text, "hermes")
      assert.are.same({ { name = "get_weather", arguments = '{"city":"Paris","unit":"c"}' },
                        { name = "get_time", arguments = "{}" } }, calls)
      assert.are.equal("Let me check.", content)
      assert.are.same(calls, (toolcall.parse(text)))
      assert.are.same(calls, (toolcall.parse(text, "chatml")))
   end)

   it("accepts an unclosed last block and keeps bad JSON as content", function()
      local calls = toolcall.parse('<tool_call>\n{"name": "f", "arguments": {"x": [1, 2.5, null]}}')
      assert.are.same({ { name = "f", arguments = '{"x":[1,2.5,null]}' } }, calls)
      local calls2, content2 = toolcall.parse("<tool_call>{not json}</tool_call> ok", "hermes")
      assert.are.same({}, calls2)
      assert.are.equal("<tool_call>{not json}</tool_call> ok", content2)
   end)

   it("parses Llama 3.1 JSON calls with parameters", function()
      local calls, content = toolcall.parse('{"name": "get_weather", "parameters": {"city": "Paris"}}', "llama3")
      assert.are.same({ { name = "get_weather", arguments = '{"city":"Paris"}' } }, calls)
      assert.are.equal("", content)
      local two = toolcall.parse('{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"k": 1}}', "llama3")
      assert.are.same({ { name = "a", arguments = "{}" }, { name = "b", arguments = '{"k":1}' } }, two)
   end)

   it("parses <|python_tag|> JSON and built-in call syntax", function()
      local calls = toolcall.parse('<|python_tag|>{"name": "f", "parameters": {"q": "x"}}', "llama3")
      assert.are.same({ { name = "f", arguments = '{"q":"x"}' } }, calls)
      local b = toolcall.parse('<|python_tag|>brave_search.call(query="moon hub", count="3")', "llama3")
      assert.are.same({ { name = "brave_search", arguments = '{"query":"moon hub","count":"3"}' } }, b)
   end)

   it("leaves plain Llama text alone", function()
      local calls, content = toolcall.parse("The answer is {probably} 4.", "llama3")
      assert.are.same({}, calls)
      assert.are.equal("The answer is {probably} 4.", content)
   end)

   it("parses Mistral [TOOL_CALLS] lists with ids", function()
      local text = 'Sure. [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123def"}, '
         .. '{"name": "noop", "arguments": "{\\"a\\": 1}"}]'
      local calls, content = toolcall.parse(text, "mistral")
      assert.are.same({ { name = "get_weather", arguments = '{"city":"Paris"}', id = "abc123def" },
                        { name = "noop", arguments = '{"a": 1}' } }, calls)
      assert.are.equal("Sure.", content)
      assert.are.same(calls, (toolcall.parse(text)))
   end)

   it("accepts OpenAI-shaped {function = {...}} objects", function()
      local calls = toolcall.parse('<tool_call>{"type": "function", "function": '
                                   .. '{"name": "f", "arguments": {"a": true}}}</tool_call>')
      assert.are.same({ { name = "f", arguments = '{"a":true}' } }, calls)
   end)

   it("returns no calls and the text unchanged when there are none", function()
      local calls, content = toolcall.parse("  just text\n")
      assert.are.same({}, calls)
      assert.are.equal("  just text\n", content)
   end)

   -- Text cut off mid-call (max_tokens, a stop string) or not JSON at all:
   -- no call, and the reply comes back unchanged as content, never an error.
   local NOT_CALLS = {
      hermes = {
         partial = { 'Hi <tool_call>\n{"name": "get_weather", "argum',
                     '<tool_call>\n{"name": "f", "arguments": {"x": 1}', "<tool_call>",
                     '<tool_call>{"name": "f", "arguments": {"x": "unterminated' },
         malformed = { "<tool_call>{not json}</tool_call>", '<tool_call>{"arguments": {}}</tool_call>',
                       "<tool_call>[1, 2]</tool_call>", '<tool_call>{"name": 5}</tool_call>' },
      },
      llama3 = {
         partial = { '{"name": "get_weather", "parameters": {"city": "Par', '<|python_tag|>{"name": "f", "param',
                     '<|python_tag|>brave_search.call(query="x"', '{"name": "a", "parameters": {}}; {"name": "b"' },
         malformed = { '{"name": "f", "parameters": {}} trailing words', '{"parameters": {}}', "[1, 2]",
                       "{name: f}" },
      },
      mistral = {
         partial = { '[TOOL_CALLS][{"name": "get_weather", "arguments": {"ci', "[TOOL_CALLS]",
                     '[TOOL_CALLS][{"name": "a", "arguments": {}}, {"name"' },
         malformed = { "[TOOL_CALLS] not json", '[TOOL_CALLS][{"name": "a", "arguments": {}}, {"argu": 1}]',
                       '[TOOL_CALLS]["x"]', "[TOOL_CALLS][]" },
      },
   }
   for _, format in ipairs({ "hermes", "llama3", "mistral" }) do
      for _, kind in ipairs({ "partial", "malformed" }) do
         it(format .. ": " .. kind .. " calls come back as the raw text", function()
            for _, text in ipairs(NOT_CALLS[format][kind]) do
               for _, f in ipairs({ format, false }) do     -- the format named, and guessed
                  local ok, calls, content = pcall(toolcall.parse, text, f or nil)
                  assert.is_true(ok, calls)
                  assert.are.same({}, calls, text)
                  assert.are.equal(text, content)
               end
            end
         end)
      end
   end

   it("keeps the calls before a cut-off Hermes block and the rest as content", function()
      local calls, content = toolcall.parse('<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call> and '
         .. '<tool_call>{"name": "g", "argu', "hermes")
      assert.are.same({ { name = "f", arguments = '{"x":1}' } }, calls)
      assert.are.equal('and <tool_call>{"name": "g", "argu', content)
   end)

   it("checks its arguments", function()
      assert.has_error(function() toolcall.parse(nil) end, "toolcall.parse: text must be a string, got nil")
      assert.has_error(function() toolcall.parse("x", "xml") end, "toolcall.parse: unknown format 'xml'")
   end)
end)
