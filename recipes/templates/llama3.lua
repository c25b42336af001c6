-- Llama 3.1 / 3.2 instruct: <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- Always writes the "Cutting Knowledge Date / Today Date" system header of
-- the 3.1/3.2 templates; the date is opts.date_string, default "26 Jul 2024"
-- (Llama-3.1's default; 3.2's template reads the clock). Tools go into the
-- first user message as in Meta's default (tools_in_user_message=true).
local T = require "moonhub.template"

local function header(role) return "<|start_header_id|>" .. role .. "<|end_header_id|>\n\n" end

local TOOL_INTRO = 'Respond in the format {"name": function name, "parameters": dictionary of argument '
   .. 'name and its value}.Do not use variables.\n\n'

local function tool_list(tools)
   local out = {}
   for _, t in ipairs(tools) do out[#out + 1] = T.tojson(t, { indent = 4 }) .. "\n\n" end
   return table.concat(out)
end

local function message(m)
   local calls = m.tool_calls ~= T.null and m.tool_calls or nil
   if m.role == "tool" or m.role == "ipython" then
      local c = m.content
      if type(c) == "table" and c ~= T.null then c = T.tojson(c)
      elseif type(c) == "string" then c = T.tojson(c) end   -- the template's `is iterable` quirk
      return header("ipython") .. tostring(c) .. "<|eot_id|>"
   elseif calls then
      if #calls ~= 1 then T.fail("This model only supports single tool-calls at once!") end
      local f = calls[1]["function"]
      return header("assistant") .. '{"name": "' .. f.name .. '", "parameters": '
         .. T.tojson(f.arguments) .. "}<|eot_id|>"
   end
   return header(m.role) .. T.trim(m.content) .. "<|eot_id|>"
end

local function render(messages, opts)
   local tools = T.opt(opts, "tools", nil)
   local rest, sys = 1, ""
   if messages[1] and messages[1].role == "system" then sys, rest = T.trim(messages[1].content), 2 end
   local out = { T.opt(opts, "bos_token", "<|begin_of_text|>"), header("system") }
   if tools then out[#out + 1] = "Environment: ipython\n" end
   out[#out + 1] = "Cutting Knowledge Date: December 2023\nToday Date: "
      .. T.opt(opts, "date_string", "26 Jul 2024") .. "\n\n" .. sys .. "<|eot_id|>"
   if tools then
      local first = messages[rest]
      if not first then
         T.fail("Cannot put tools in the first user message when there's no first user message!")
      end
      out[#out + 1] = header("user") .. "Given the following functions, please respond with a JSON for a "
         .. "function call with its proper arguments that best answers the given prompt.\n\n"
         .. TOOL_INTRO .. tool_list(tools) .. T.trim(first.content) .. "<|eot_id|>"
      rest = rest + 1
   end
   for i = rest, #messages do out[#out + 1] = message(messages[i]) end
   if opts.add_generation_prompt then out[#out + 1] = header("assistant") end
   return table.concat(out)
end

return {
   name = "llama3",
   description = "Llama 3.1/3.2 instruct headers, <|eot_id|>, JSON tool calls",
   render = render,
   stop = { "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>" },
   detect = function(src) return src:find("<|start_header_id|>", 1, true) ~= nil end,
}
