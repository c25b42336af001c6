-- DeepSeek-R1 (and its Llama/Qwen distills): <｜User｜>...<｜Assistant｜>...
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- Mirrors deepseek-ai/DeepSeek-R1-Distill-Llama-8B's template: the last
-- system message goes first, earlier reasoning (up to </think>) is cut from
-- assistant turns, the generation prompt opens <think>.
local T = require "moonhub.template"

local EOS = "<｜end▁of▁sentence｜>"

local function tool_call(call, first)
   local f = call["function"]
   local args = f.arguments
   if type(args) ~= "string" then args = T.tojson(args) end
   local body = "<｜tool▁call▁begin｜>" .. (call.type or "function") .. "<｜tool▁sep｜>" .. f.name
      .. "\n```json\n" .. args .. "\n```<｜tool▁call▁end｜>"
   if first then return "<｜Assistant｜><｜tool▁calls▁begin｜>" .. body end
   return "\n" .. body .. "<｜tool▁calls▁end｜>" .. EOS
end

local function render(messages, opts)
   local st = { first_call = true, is_tool = false, first_output = true }
   local sys = ""
   for _, m in ipairs(messages) do
      if m.role == "system" then sys = T.text(m.content) end
   end
   local out = { T.opt(opts, "bos_token", "<｜begin▁of▁sentence｜>"), sys }
   for _, m in ipairs(messages) do
      local content = m.content ~= T.null and m.content or nil
      if m.role == "user" then
         st.is_tool = false
         out[#out + 1] = "<｜User｜>" .. T.text(content)
      elseif m.role == "assistant" and content == nil then
         st.is_tool = false
         for _, call in ipairs(m.tool_calls ~= T.null and m.tool_calls or {}) do
            out[#out + 1] = tool_call(call, st.first_call)
            st.first_call = false
         end
      elseif m.role == "assistant" then
         local text = T.text(content)
         if st.is_tool then
            out[#out + 1] = "<｜tool▁outputs▁end｜>" .. text .. EOS
            st.is_tool = false
         else
            text = text:match(".*</think>(.*)$") or text
            out[#out + 1] = "<｜Assistant｜>" .. text .. EOS
         end
      elseif m.role == "tool" then
         st.is_tool = true
         local body = "<｜tool▁output▁begin｜>" .. T.text(content) .. "<｜tool▁output▁end｜>"
         out[#out + 1] = st.first_output and ("<｜tool▁outputs▁begin｜>" .. body) or ("\n" .. body)
         st.first_output = false
      end
   end
   if st.is_tool then out[#out + 1] = "<｜tool▁outputs▁end｜>" end
   if opts.add_generation_prompt and not st.is_tool then out[#out + 1] = "<｜Assistant｜><think>\n" end
   return table.concat(out)
end

return {
   name = "deepseek",
   description = "DeepSeek-R1 <｜User｜>/<｜Assistant｜> with <think> (R1 distills)",
   render = render,
   stop = { EOS, "<｜User｜>" },
   detect = function(src) return src:find("<｜User｜>", 1, true) ~= nil end,
}
