-- Specs for the scheduler's prefix store from Lua (cache_bytes): a prompt
-- sharing a finished request's prefix reloads its KV, stats and /metrics
-- report it, bad budgets raise. Layer: tests (stories260K).
local mh = require "moonhub"
local data = require "helpers.data"

local MODEL = "models/stories260K.gguf"

-- n ids in 2..501, distinct per seed (no BOS, so prompts share nothing).
local function prompt(n, seed)
   local t, x = {}, seed
   for i = 1, n do
      x = (x * 1103515245 + 12345) % 2147483648
      t[i] = 2 + x % 500
   end
   return t
end

describe("moonhub.sched prefix store", function()
   local path, model, s

   before_each(function()
      path = data.need(MODEL, pending)
      if path then model = assert(mh.load(path)) end
   end)
   after_each(function()
      if s then s:close() end
      s = nil
   end)

   local function run(p, n)
      local ids, fin = assert(s:submit{ tokens = p, max_tokens = n, temperature = 0, eog = false }):wait()
      return ids, fin
   end

   it("reuses a finished request's prefix after the slot moved on", function()
      if not path then return end
      local a, b = prompt(40, 1), prompt(30, 2)
      local a2 = prompt(36, 3)
      for i = 1, 24 do a2[i] = a[i] end
      s = assert(mh.sched.new(model, { parallel = 1, ctx = 128, cache_bytes = 0 }))
      local cold = run(a2, 8)
      s:close()
      s = assert(mh.sched.new(model, { parallel = 1, ctx = 128, cache_bytes = 2 ^ 20 }))
      run(a, 4)
      run(b, 4)
      local ids, fin = run(a2, 8)
      assert.equal(24, fin.usage.cached_tokens)
      assert.same(cold, ids)
      local st = s:stats()
      assert.equal(1, st.store_hits)
      assert.equal(24, st.store_tokens)
      assert.equal(3, st.store_entries)
      assert.equal(2 ^ 20, st.store_budget)
      assert.is_true(st.store_bytes > 0 and st.store_bytes <= st.store_budget)
      assert.equal(0, st.store_evictions)
      local text = require("moonhub.metrics").new():render(s)
      assert.truthy(text:find("moonhub_prefix_store_hits_total 1\n", 1, true))
      assert.truthy(text:find("moonhub_prefix_store_entries 3\n", 1, true))
      assert.truthy(text:find("moonhub_prefix_store_budget_bytes 1048576\n", 1, true))
   end)

   -- A slot whose history shares only BOS with a prompt must not be taken
   -- while a slot that loses less is free: that history is a later
   -- prompt's longer prefix (in the slot, or in the store for a copy).
   local function with_bos(n, seed)
      local t = prompt(n, seed)
      t[1] = 1
      return t
   end

   it("does not wipe a long history for a BOS-only match", function()
      if not path then return end
      local a, d, c = with_bos(40, 11), with_bos(8, 12), with_bos(36, 13)
      for i = 1, 31 do c[i] = a[i] end
      for _, budget in ipairs({ 0, 2 ^ 20 }) do
         s = assert(mh.sched.new(model, { parallel = 2, ctx = 128, cache_bytes = budget }))
         run(a, 4)
         run(d, 4)                       -- shares BOS with a: goes to the empty slot
         local _, fin = run(c, 4)
         assert.equal(31, fin.usage.cached_tokens)
         assert.equal(0, s:stats().store_hits)   -- from a's own slot, not a copy
         s:close()
         s = nil
      end
   end)

   it("overwrites the free slot that loses the least", function()
      if not path then return end
      local a, e, d, c = with_bos(40, 21), with_bos(6, 22), with_bos(8, 23), with_bos(36, 24)
      for i = 1, 31 do c[i] = a[i] end
      s = assert(mh.sched.new(model, { parallel = 2, ctx = 128 }))
      run(a, 4)
      run(e, 2)                         -- the empty slot: a's is kept
      run(d, 4)                         -- both share BOS only: e's short history goes
      local _, fin = run(c, 4)
      assert.equal(31, fin.usage.cached_tokens)
   end)

   it("keeps nothing without a budget", function()
      if not path then return end
      s = assert(mh.sched.new(model, { parallel = 1, ctx = 128 }))
      local a = prompt(40, 5)
      run(a, 2)
      run(prompt(30, 6), 2)
      local _, fin = run(a, 2)
      assert.equal(0, fin.usage.cached_tokens)
      assert.equal(0, s:stats().store_entries)
   end)

   it("rejects a bad budget", function()
      if not path then return end
      assert.has_error(function() mh.sched.new(model, { cache_bytes = -1 }) end,
         "sched.new: cache_bytes must be an integer in 0..9223372036854775807, got -1")
   end)
end)
