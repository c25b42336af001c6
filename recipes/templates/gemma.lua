-- Gemma / Gemma 2 instruct: <start_of_turn>user|model\n...<end_of_turn>
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- Gemma has no system role: where the Jinja template raises, this recipe
-- prepends the system text to the first user turn (as Ollama does).
-- Roles must alternate user/assistant, as the template demands.
local T = require "moonhub.template"

local function render(messages, opts)
   local out = { T.opt(opts, "bos_token", "<bos>") }
   local first, sys = 1, nil
   if messages[1] and messages[1].role == "system" then sys, first = T.trim(messages[1].content), 2 end
   for i = first, #messages do
      local m = messages[i]
      if (m.role == "user") ~= ((i - first) % 2 == 0) then
         T.fail("Conversation roles must alternate user/assistant/user/assistant/...")
      end
      local text = T.trim(m.content)
      if sys and i == first and sys ~= "" then text = sys .. "\n\n" .. text end
      local role = m.role == "assistant" and "model" or m.role
      out[#out + 1] = "<start_of_turn>" .. role .. "\n" .. text .. "<end_of_turn>\n"
   end
   if opts.add_generation_prompt then out[#out + 1] = "<start_of_turn>model\n" end
   return table.concat(out)
end

return {
   name = "gemma",
   description = "Gemma/Gemma 2 <start_of_turn> turns (system text folded into the first user turn)",
   render = render,
   stop = { "<end_of_turn>", "<eos>" },
   detect = function(src) return src:find("<start_of_turn>", 1, true) ~= nil end,
}
