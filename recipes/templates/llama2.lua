-- Llama 2 chat: <s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] answer </s>
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- Follows the Llama-2-chat template of HF transformers: the system prompt
-- goes into the first user turn, contents are stripped.
local T = require "moonhub.template"

local function render(messages, opts)
   local bos, eos = T.opt(opts, "bos_token", "<s>"), T.opt(opts, "eos_token", "</s>")
   local first, sys = 1, nil
   if messages[1] and messages[1].role == "system" then sys, first = T.text(messages[1].content), 2 end
   local out = {}
   for i = first, #messages do
      local m = messages[i]
      if (m.role == "user") ~= ((i - first) % 2 == 0) then
         T.fail("Conversation roles must alternate user/assistant/user/assistant/...")
      end
      local content = T.text(m.content)
      if i == first and sys then content = "<<SYS>>\n" .. sys .. "\n<</SYS>>\n\n" .. content end
      if m.role == "user" then
         out[#out + 1] = bos .. "[INST] " .. T.trim(content) .. " [/INST]"
      else
         out[#out + 1] = " " .. T.trim(content) .. " " .. eos
      end
   end
   return table.concat(out)
end

return {
   name = "llama2",
   description = "Llama 2 chat [INST] <<SYS>> format",
   render = render,
   stop = { "</s>" },
   detect = function(src) return src:find("<<SYS>>", 1, true) ~= nil end,
}
