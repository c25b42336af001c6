-- Spec: the stop-string rule (docs/sampling.md) where users meet it, in
-- model:generate on a real model: the stop that ends first wins, the longer
-- one on a tie, whatever the list order, with stops that span tokens.
-- Layer: tests (moonhub.model over engine/sample's matcher).
local data = require "helpers.data"
local mh = require "moonhub"

local PROMPT, N = "Once upon a time", 48

describe("stop strings in model:generate #integration", function()
   local m, full
   setup(function()
      local p = data.path("models/stories260K.gguf")
      if p then
         m = assert(mh.load(p, { ctx = 256 }))
         full = m:generate(PROMPT, { max_tokens = N, temperature = 0 })
      end
   end)

   local function gen(stops)
      return m:generate(PROMPT, { max_tokens = N, temperature = 0, stop = stops })
   end

   -- first j >= 4 whose letter does not occur before it: stops ending there
   -- have no earlier match
   local function first_new_letter()
      for j = 4, #full do
         local c = full:sub(j, j)
         if c:match("%a") and not full:sub(1, j - 1):find(c, 1, true) then return j end
      end
   end

   it("same end: the longer stop wins in either list order", function()
      if not m then return data.skip("models/stories260K.gguf missing", pending) end
      local j = assert(first_new_letter(), "no usable letter in: " .. full)
      local long, short = full:sub(j - 3, j), full:sub(j, j)
      local want = full:sub(1, j - 4)
      for _, stops in ipairs({ { long, short }, { short, long } }) do
         local text, st = gen(stops)
         assert.are.equal(want, text, string.format("stops %q %q", stops[1], stops[2]))
         assert.are.equal("stop", st.finish_reason)
      end
   end)

   it("the stop that ends first wins over a longer one that starts earlier", function()
      if not m then return data.skip("models/stories260K.gguf missing", pending) end
      local j = assert(first_new_letter(), "no usable letter in: " .. full)
      assert(j + 2 <= #full, "text too short: " .. full)
      local early = full:sub(j - 1, j)          -- ends at j
      local long = full:sub(j - 3, j + 2)       -- starts before it, ends later
      for _, stops in ipairs({ { long, early }, { early, long } }) do
         local text = gen(stops)
         assert.are.equal(full:sub(1, j - 2), text, string.format("stops %q %q", stops[1], stops[2]))
      end
   end)

   it("a stop spanning several tokens is never emitted, streamed or not", function()
      if not m then return data.skip("models/stories260K.gguf missing", pending) end
      local a = #full // 2
      local stop = full:sub(a, a + 11)          -- 12 bytes: several stories260K tokens
      local cut = full:find(stop, 1, true)
      local text = gen({ stop })
      assert.are.equal(full:sub(1, cut - 1), text)
      local parts = {}
      for piece in m:stream(PROMPT, { max_tokens = N, temperature = 0, stop = { stop } }) do
         parts[#parts + 1] = piece
         assert.is_nil(table.concat(parts):find(stop, 1, true))
      end
      assert.are.equal(text, table.concat(parts))
   end)
end)
