-- tests/helpers/lora.lua: small LoRA adapters for specs, trained with
-- mh.train until a base answers a prompt with a given text, saved as GGUF.
-- Pure module: does nothing on require. Layer: tests (public Lua API only).
local M = {}

-- train(base_path, prompt, answer, file[, steps]) -> file: a rank-4 LoRA
-- on q, v and down (seed 1), so adapters for other answers differ.
function M.train(base_path, prompt, answer, file, steps)
   local mh = require "moonhub"
   local m = assert(mh.load(base_path, { ctx = 128 }))
   local tok = m.tokenizer
   local row, mask = {}, {}
   for _, id in ipairs(tok:encode(prompt, { bos = true })) do row[#row + 1] = id; mask[#mask + 1] = 0 end
   for _, id in ipairs(tok:encode(answer, { bos = false })) do row[#row + 1] = id; mask[#mask + 1] = 1 end
   local tr = mh.train.trainer(m, { method = "lora", seed = 1,
      lora = { rank = 4, alpha = 8, dropout = 0, targets = { "q", "v", "down" } },
      optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
   for _ = 1, steps or 40 do tr:step({ tokens = { row }, mask = { mask } }) end
   assert(tr:save(file))
   tr:close()
   m:close()
   return file
end

return M
