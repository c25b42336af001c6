-- Specs: a trainer learns the final target token of a row (position T-1
-- predicts token T) on stories260K, under LoRA and full training, and the
-- chat row data.encode ends with EOS under full training. Needs shared data.
local data = require "helpers.data"
local mh = require "moonhub"
local encode = require("moonhub.data").encode

-- loss of the row's last token alone, after 100 steps on that row
local function last_token_loss(m, method, ids, mask)
   local tr = mh.train.trainer(m, { method = method, optimizer = { lr = 1e-2 }, batch = 1, seq = 128 })
   local only = {}
   for i = 1, #ids do only[i] = 0 end
   only[#ids] = 1
   local before = tr:evaluate({ tokens = { ids }, mask = { only } }).loss
   for _ = 1, 100 do assert.equal("ok", tr:step({ tokens = { ids }, mask = { mask } }).status) end
   local after = tr:evaluate({ tokens = { ids }, mask = { only } }).loss
   tr:close()
   return before, after
end

describe("moonhub.train final token #integration", function()
   local m
   setup(function()
      local path = data.need("models/stories260K.gguf", pending)
      if path then m = assert(mh.load(path, { ctx = 128 })) end
   end)
   teardown(function() if m then m:close() end end)

   it("LoRA (default targets) learns the last token of a text row", function()
      if not m then return end
      local ids = m.tokenizer:encode("The secret word is moonhub.", { bos = true, eos = false })
      local mask = {}
      for i = 1, #ids do mask[i] = i > 1 and 1 or 0 end
      local before, after = last_token_loss(m, "lora", ids, mask)
      assert.is_true(before > 1.0, "before " .. before)
      assert.is_true(after < 1.0, "after " .. after)
      -- the same row ending in BOS, the story separator stories260K predicts
      ids[#ids + 1], mask[#mask + 1] = m.tokenizer.bos, 1
      before, after = last_token_loss(m, "lora", ids, mask)
      assert.is_true(before > 1.0 and after < 1.0, before .. " -> " .. after)
   end)

   it("full training learns the EOS that data.encode ends a chat row with", function()
      if not m then return end
      local ids, mask = encode(m, { messages = { { role = "user", content = "What is the secret word?" },
         { role = "assistant", content = "The secret word is moonhub." } } })
      assert.equal(m.tokenizer.eos, ids[#ids])
      assert.equal(1, mask[#ids])
      local before, after = last_token_loss(m, "full", ids, mask)
      assert.is_true(before > 1.0, "before " .. before)
      assert.is_true(after < 1.0, "after " .. after)
   end)
end)
