-- Mistral instruct v1 (7B v0.1/v0.2, Mixtral): <s>[INST] user [/INST]answer</s>
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- A system message is put before the first user message, separated by a
-- blank line (v1 has no system role). For Nemo/tekken see mistral-tekken.
local T = require "moonhub.template"

local function render(messages, opts)
   local eos = T.opt(opts, "eos_token", "</s>")
   local out = { T.opt(opts, "bos_token", "<s>") }
   local first, sys = 1, nil
   if messages[1] and messages[1].role == "system" then sys, first = T.text(messages[1].content), 2 end
   for i = first, #messages do
      local m = messages[i]
      if (m.role == "user") ~= ((i - first) % 2 == 0) then
         T.fail("Conversation roles must alternate user/assistant/user/assistant/...")
      end
      if m.role == "user" then
         local text = T.text(m.content)
         if i == first and sys then text = sys .. "\n\n" .. text end
         out[#out + 1] = "[INST] " .. text .. " [/INST]"
      else
         out[#out + 1] = T.text(m.content) .. eos
      end
   end
   return table.concat(out)
end

return {
   name = "mistral-instruct",
   description = "Mistral instruct v1 '[INST] ... [/INST]' (7B v0.1/v0.2, Mixtral)",
   render = render,
   stop = { "</s>" },
   detect = function(src) return src:find("[INST] ", 1, true) ~= nil end,
}
