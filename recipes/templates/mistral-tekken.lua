-- Mistral v3 / tekken (Mistral-Nemo, Small): [INST]user[/INST]answer</s>
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- Mirrors mistralai/Mistral-Nemo-Instruct-2407's template: the system text
-- joins the final user turn; tools are listed before the last user turn;
-- tool calls and results use [TOOL_CALLS] / [TOOL_RESULTS] with 9-char ids.
local T = require "moonhub.template"

local ALTERNATE = "After the optional system message, conversation roles must alternate "
   .. "user/assistant/user/assistant/..."
local BAD_ID = "Tool call IDs should be alphanumeric strings with length 9!"

local function calls_of(m)
   if m.tool_calls == nil or m.tool_calls == T.null then return nil end
   return m.tool_calls
end

local function available_tools(tools)
   local items = {}
   for _, tool in ipairs(tools) do
      local f = tool["function"]
      local fields = {}
      for _, key in ipairs(T.keys(f)) do
         local val = f[key]
         if key ~= "return" then
            if type(val) == "string" then fields[#fields + 1] = '"' .. key .. '": "' .. val .. '"'
            else fields[#fields + 1] = '"' .. key .. '": ' .. T.tojson(val) end
         end
      end
      items[#items + 1] = '{"type": "function", "function": {' .. table.concat(fields, ", ") .. "}}"
   end
   return "[AVAILABLE_TOOLS][" .. table.concat(items, ", ") .. "][/AVAILABLE_TOOLS]"
end

local function check_id(id)
   if type(id) ~= "string" or utf8.len(id) ~= 9 then T.fail(BAD_ID) end
   return id
end

local function render(messages, opts)
   local eos = T.opt(opts, "eos_token", "</s>")
   local tools = T.opt(opts, "tools", nil)
   local first, sys = 1, nil
   if messages[1] and messages[1].role == "system" then sys, first = T.text(messages[1].content), 2 end
   local n, last_user = 0, nil
   for i = first, #messages do
      local m = messages[i]
      if m.role == "user" then last_user = i end
      if not (m.role == "tool" or m.role == "tool_results" or calls_of(m)) then
         if (m.role == "user") ~= (n % 2 == 0) then T.fail(ALTERNATE) end
         n = n + 1
      end
   end
   local out = { T.opt(opts, "bos_token", "<s>") }
   for i = first, #messages do
      local m = messages[i]
      if m.role == "user" then
         if tools and i == last_user then out[#out + 1] = available_tools(tools) end
         local text = T.text(m.content)
         if i == #messages and sys then text = sys .. "\n\n" .. text end
         out[#out + 1] = "[INST]" .. text .. "[/INST]"
      elseif calls_of(m) then
         local parts = {}
         for _, call in ipairs(calls_of(m)) do
            local f = T.tojson(call["function"])
            parts[#parts + 1] = f:sub(1, -2) .. ', "id": "' .. check_id(call.id) .. '"}'
         end
         out[#out + 1] = "[TOOL_CALLS][" .. table.concat(parts, ", ") .. "]" .. eos
      elseif m.role == "assistant" then
         out[#out + 1] = T.text(m.content) .. eos
      elseif m.role == "tool" or m.role == "tool_results" then
         local c = m.content
         if type(c) == "table" and c ~= T.null and c.content ~= nil then c = c.content end
         out[#out + 1] = '[TOOL_RESULTS]{"content": ' .. T.str(c) .. ", "
            .. '"call_id": "' .. check_id(m.tool_call_id) .. '"}[/TOOL_RESULTS]'
      else
         T.fail("Only user and assistant roles are supported, with the exception of an initial "
                .. "optional system message!")
      end
   end
   return table.concat(out)
end

return {
   name = "mistral-tekken",
   description = "Mistral v3/tekken '[INST]...[/INST]' with tools (Mistral-Nemo, Small)",
   render = render,
   stop = { "</s>" },
   detect = function(src)
      return src:find("[INST]", 1, true) ~= nil and src:find("[INST] ", 1, true) == nil
   end,
}
