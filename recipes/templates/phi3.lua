-- Phi-3 / Phi-3.5 instruct: <|system|>, <|user|>, <|assistant|> ... <|end|>
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- Matches microsoft/Phi-3.5-mini-instruct's template: empty system
-- messages are dropped; without a generation prompt it ends with eos.
local T = require "moonhub.template"

local function render(messages, opts)
   local out = {}
   for _, m in ipairs(messages) do
      local text = T.text(m.content)
      if (m.role == "system" and text ~= "") or m.role == "user" or m.role == "assistant" then
         out[#out + 1] = "<|" .. m.role .. "|>\n" .. text .. "<|end|>\n"
      end
   end
   if opts.add_generation_prompt then
      out[#out + 1] = "<|assistant|>\n"
   else
      out[#out + 1] = T.opt(opts, "eos_token", "<|endoftext|>")
   end
   return table.concat(out)
end

return {
   name = "phi3",
   description = "Phi-3/3.5 <|user|> ... <|end|> turns",
   render = render,
   stop = { "<|end|>", "<|endoftext|>" },
   detect = function(src)
      return src:find("<|end|>", 1, true) ~= nil and src:find("<|assistant|>", 1, true) ~= nil
   end,
}
