-- ChatML (Qwen2/2.5, SmolLM2, Hermes): <|im_start|>role\n...<|im_end|>
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- Renders what Qwen2.5's Jinja template renders when a system message is
-- given (Qwen injects a default system prompt otherwise; this does not),
-- tools and tool calls included (Hermes <tool_call> format).
local T = require "moonhub.template"

local function tools_block(system, tools)
   local out = { "<|im_start|>system\n", system or "",
      "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
      .. "You are provided with function signatures within <tools></tools> XML tags:\n<tools>" }
   for _, tool in ipairs(tools) do out[#out + 1] = "\n" .. T.tojson(tool) end
   out[#out + 1] = "\n</tools>\n\nFor each function call, return a json object with function name and "
      .. "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
      .. "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
   return table.concat(out)
end

local function tool_calls(out, calls)
   for _, call in ipairs(calls) do
      local f = call["function"] or call
      out[#out + 1] = '\n<tool_call>\n{"name": "' .. tostring(f.name) .. '", "arguments": '
         .. T.tojson(f.arguments) .. "}\n</tool_call>"
   end
end

local function render(messages, opts)
   local out, first = {}, 1
   local tools = opts.tools
   if tools ~= nil and tools ~= T.null and #tools > 0 then
      local sys = messages[1] and messages[1].role == "system" and T.text(messages[1].content) or nil
      out[1] = tools_block(sys, tools)
      if sys then first = 2 end
   end
   for i = first, #messages do
      local m = messages[i]
      local calls = m.tool_calls ~= T.null and m.tool_calls or nil
      if m.role == "assistant" and calls and #calls > 0 then
         out[#out + 1] = "<|im_start|>assistant"
         if T.text(m.content) ~= "" then out[#out + 1] = "\n" .. T.text(m.content) end
         tool_calls(out, calls)
         out[#out + 1] = "<|im_end|>\n"
      elseif m.role == "tool" then
         local prev, nxt = messages[i - 1], messages[i + 1]
         if not prev or prev.role ~= "tool" then out[#out + 1] = "<|im_start|>user" end
         out[#out + 1] = "\n<tool_response>\n" .. T.text(m.content) .. "\n</tool_response>"
         if not nxt or nxt.role ~= "tool" then out[#out + 1] = "<|im_end|>\n" end
      else
         out[#out + 1] = "<|im_start|>" .. m.role .. "\n" .. T.text(m.content) .. "<|im_end|>\n"
      end
   end
   if opts.add_generation_prompt then out[#out + 1] = "<|im_start|>assistant\n" end
   return table.concat(out)
end

return {
   name = "chatml",
   description = "ChatML <|im_start|>/<|im_end|> (Qwen2.5, SmolLM2, Hermes tool calls)",
   render = render,
   stop = { "<|im_end|>", "<|endoftext|>" },
   detect = function(src) return src:find("<|im_start|>", 1, true) ~= nil end,
}
