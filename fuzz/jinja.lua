-- jinja.lua: fuzz harness (run by fuzz_jinja) for the chat-template engine:
-- the input is a template source; it is compiled and rendered with a chat
-- context as the server builds it. Layer: fuzz.
-- Templates may fail (syntax errors, raise_exception, type errors): those
-- are clean errors without a source position. A finding: an error that
-- carries a Lua source position ("render.lua:12: attempt to index...") —
-- an internal error a user would see as a 500 — or a render that returns
-- something other than a string.
local jinja = require "moonhub.jinja"

local function ctx()
   local msgs = jinja.decode([[
[{"role": "system", "content": "You are helpful."},
 {"role": "user", "content": "Hi <b>there</b> \u00e9"},
 {"role": "assistant", "content": "Hello!", "tool_calls": [{"type": "function",
   "function": {"name": "get", "arguments": {"city": "Paris", "n": 2}}}]},
 {"role": "tool", "content": "{\"t\": 21}"},
 {"role": "user", "content": [{"type": "text", "text": "and now?"}]}]
]])
   local tools = jinja.decode([[
[{"type": "function", "function": {"name": "get", "description": "weather",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
]])
   return { messages = msgs, tools = tools, add_generation_prompt = true,
      bos_token = "<s>", eos_token = "</s>", documents = jinja.null }
end

local function internal(e)
   if type(e) == "table" then return e.jinja_raise ~= true end
   local s = tostring(e)
   if s:find("stack overflow", 1, true) or s:find("not enough memory", 1, true) then return false end
   return s:find("%.lua:%d+:") ~= nil
end

return function(data)
   local ok, t = pcall(jinja.compile, data)
   if not ok then
      if internal(t) then error("compile: internal error: " .. tostring(t), 0) end
      return
   end
   local ok2, out = pcall(t.render, t, ctx())
   if not ok2 then
      if internal(out) then
         error("render: internal error: " .. tostring(type(out) == "table" and out.message or out), 0)
      end
   elseif type(out) ~= "string" then
      error("render returned a " .. type(out), 0)
   end
end
