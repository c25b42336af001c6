-- Specs for moonhub.train: LoRA overfitting on stories260K, determinism,
-- the NaN guard, training a fresh `tiny` model from scratch, checkpoints,
-- adapters and merged export. The tiny-model specs need no test data.
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

local names = { "Lily", "Tom", "Ben", "Sue", "Max" }
local things = { "a red ball", "a big dog", "a small cat", "a blue kite" }
local verbs = { "saw", "liked", "found", "had" }

-- The 20 short stories the overfitting spec learns by heart.
local function examples(tok)
   local out = {}
   for i = 1, 20 do
      local s = string.format("%s %s %s.", names[(i - 1) % 5 + 1], verbs[(i - 1) % 4 + 1],
         things[(i * 3 - 1) % 4 + 1])
      out[i] = tok:encode(s, { bos = true })
   end
   return out
end

describe("moonhub.train #integration", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   it("LoRA on stories260K overfits 20 examples (loss < 0.1)", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(mh.load(path))
      local tr = mh.train.trainer(m, { method = "lora", seed = 1,
         lora = { rank = 8, alpha = 16, targets = { "q", "k", "v", "o", "gate", "up", "down" } },
         optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
      local batch = { tokens = examples(m.tokenizer) }
      local first = tr:evaluate(batch).loss
      local r
      for _ = 1, 150 do
         r = tr:step(batch)
         assert.equal("ok", r.status)
         if r.loss < 0.1 then break end
      end
      assert.is_true(first > 1.0)
      assert.is_true(tr:evaluate(batch).loss < 0.1, "final loss " .. r.loss)
      m:close()
   end)
end)
