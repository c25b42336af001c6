-- Zephyr: <|system|>\n...</s>\n<|user|>\n...</s>\n<|assistant|>\n
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- As HuggingFaceH4/zephyr-7b-beta's template renders it (eos after every
-- turn, then a newline).
local T = require "moonhub.template"

local function render(messages, opts)
   local eos = T.opt(opts, "eos_token", "</s>")
   local out = {}
   for _, m in ipairs(messages) do
      out[#out + 1] = "<|" .. m.role .. "|>\n" .. T.text(m.content) .. eos .. "\n"
   end
   if opts.add_generation_prompt then out[#out + 1] = "<|assistant|>\n" end
   return table.concat(out)
end

return {
   name = "zephyr",
   description = "Zephyr <|user|> ... </s> turns",
   render = render,
   stop = { "</s>", "<|user|>" },
   detect = function(src)
      return src:find("<|user|>", 1, true) ~= nil and src:find("<|end|>", 1, true) == nil
   end,
}
