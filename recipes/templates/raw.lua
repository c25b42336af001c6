-- raw: no template; the message contents concatenated as they are.
-- Layer: recipes/templates (uses moonhub.template helpers only).
-- For base models and for prompts that are already formatted.
local T = require "moonhub.template"

return {
   name = "raw",
   description = "no template: message contents concatenated",
   render = function(messages)
      local out = {}
      for _, m in ipairs(messages) do out[#out + 1] = T.text(m.content) end
      return table.concat(out)
   end,
   stop = {},
   detect = function() return false end,
}
