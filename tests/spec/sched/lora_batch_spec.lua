-- Per-request LoRA in the one generation loop: requests with different
-- adapters (and none) share the base weights and run in the same batched
-- batched forwards, each row applying its own A/B; each matches its
-- single-request output (greedy tokens identical, logprobs within
-- tolerance). A prefix is reused only under the same adapters. Layer: tests (mh.sched, mh.load;
-- stories260K from ../shared and a tiny model generated here).
local data = require "helpers.data"
local host = require "helpers.host"
local lora = require "helpers.lora"
local mh = require "moonhub"

local PROMPT = "Lily saw"
local N = 12

-- Greedy generation of prompt ids alone (model:generate, a one-slot loop
-- of its own) -> tokens, logprobs of each
local function alone(m, ids, l)
   local _, st = m:generate(ids, { max_tokens = N, temperature = 0, ignore_eos = true, logprobs = true, lora = l })
   local lps = {}
   for i, x in ipairs(st.logprobs) do lps[i] = x.logprob end
   return st.tokens, lps
end

local function drain(r)
   local toks, lps = {}, {}
   while true do
      local ev = r:next()
      if not ev or ev.done then return toks, lps, ev end
      toks[#toks + 1], lps[#lps + 1] = ev.token, ev.logprob
   end
end

local function close_all(a, b, tol, what)
   for i = 1, #a do
      assert.is_true(math.abs(a[i] - b[i]) <= tol, string.format("%s: logprob %d is %g alone, %g batched",
         what, i, a[i], b[i]))
   end
end

-- Two adapters on model path: alone vs one batch of three (A, B, none).
local function check(path, dir)
   local fa = lora.train(path, PROMPT, " a purple elephant.", dir .. "/a.gguf")
   local fb = lora.train(path, PROMPT, " a green frog.", dir .. "/b.gguf")
   local m = assert(mh.load(path, { ctx = 128 }))
   assert(m:add_lora("a", fa))
   assert(m:add_lora("b", fb))
   local ids = m.tokenizer:encode(PROMPT, { bos = true })
   local want = {}
   for i, l in ipairs({ { "a" }, { { name = "b", scale = 1.0 } }, false }) do
      local t, lp = alone(m, ids, l or nil)
      want[i] = { tokens = t, lps = lp, lora = l or nil }
   end
   -- the adapters change the answer (else nothing below would be shown)
   assert.are_not.same(want[3].tokens, want[1].tokens)
   assert.are_not.same(want[3].tokens, want[2].tokens)
   assert.are_not.same(want[1].tokens, want[2].tokens)

   local s = assert(mh.sched.new(m, { parallel = 3, ctx = 128 }))
   local reqs = {}
   for i, w in ipairs(want) do
      local l = w.lora and assert(mh.adapters.for_request(m, w.lora)) or nil
      reqs[i] = assert(s:submit({ tokens = ids, max_tokens = N, temperature = 0, eog = false, logprobs = true,
         lora = l }))
   end
   for i, r in ipairs(reqs) do
      local toks, lps, done = drain(r)
      assert.equal("length", done.reason)
      assert.same(want[i].tokens, toks)
      close_all(want[i].lps, lps, 2e-3, "request " .. i)
      if want[i].lora then assert.equal(1, done.settings.lora) end
   end
   -- (whether a given step mixed them depends on the threads' timing; that
   -- rows of one forward each apply their own adapter is test_lora's
   -- batch_rows_own_adapters)
   local st = s:stats()
   assert.is_true(st.lora_rows >= N, "rows with their own adapters: " .. st.lora_rows)
   s:close()
   return m, ids, want
end

describe("per-request LoRA adapters batched together #integration", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   it("stories260K: two adapters and the base in one batch each match their single-request output", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local m, ids, want = check(path, dir)
      assert.equal(" a purple", m.tokenizer:decode(want[1].tokens):sub(1, 9))
      assert.equal(" a green", m.tokenizer:decode(want[2].tokens):sub(1, 8))
      -- model:generate on one cache, call after call: the rows it keeps are
      -- reused only under the same adapters
      local cache = m:new_cache(64)
      for _, i in ipairs({ 1, 3, 2, 1 }) do
         local _, st = m:generate(ids, { max_tokens = N, temperature = 0, ignore_eos = true, lora = want[i].lora,
            cache = cache })
         assert.same(want[i].tokens, st.tokens)
      end
      -- one slot, same prompt: the next request must not reuse rows computed
      -- with another adapter, from the slot or the prefix store (which needs
      -- 16 tokens or more to step in)
      local long = m.tokenizer:encode("Lily saw a big dog in the park. She wanted to play with the dog, "
         .. "but the dog was", { bos = true })
      assert.is_true(#long > 17)
      local lwant = {}
      for i = 1, 3 do lwant[i] = (alone(m, long, want[i].lora)) end
      local s = assert(mh.sched.new(m, { parallel = 1, ctx = 128, cache_bytes = 1 << 20 }))
      local function run(i)
         local l = want[i].lora and assert(mh.adapters.for_request(m, want[i].lora)) or nil
         local r = assert(s:submit({ tokens = long, max_tokens = N, temperature = 0, eog = false, lora = l }))
         local toks, _, done = drain(r)
         assert.same(lwant[i], toks, "run " .. i .. " cached " .. done.usage.cached_tokens)
         return done
      end
      for _, i in ipairs({ 3, 1, 3, 2, 3, 1 }) do run(i) end
      -- the same adapter again does reuse its prefix
      assert.is_true(run(1).usage.cached_tokens > 0)
      -- a KV state file holds base-model rows: a slot that served an adapter is not saved
      local n, msg = s:save_slot(0, dir .. "/slot.kvstate")
      assert.is_nil(n)
      assert.matches("computed with LoRA adapters", msg)
      -- a base request after the base's rows went to the store: served from it
      run(3)
      assert.is_true(s:stats().store_hits > 0)
      assert.is_true(s:save_slot(0, dir .. "/slot.kvstate") > 0)
      s:close()
   end)

   it("a generated tiny model: the same, with ids only", function()
      local path = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny", seed = 3, out = path }))
      check(path, dir)
   end)

   it("refuses unknown adapters, one made for another model and a bad scale", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(mh.load(path, { ctx = 64 }))
      local ok, err = mh.adapters.for_request(m, { "nope" })
      assert.is_nil(ok)
      assert.matches("unknown adapter 'nope'", err)
      assert.error_matches(function() m:generate("x", { lora = { "nope" } }) end, "generate: unknown adapter 'nope'")
      local tiny = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny", seed = 3, out = tiny }))
      local t = assert(mh.load(tiny, { ctx = 64 }))
      local other = lora.train(tiny, "a", " b", dir .. "/t.gguf", 2)
      local ok2, err2 = m:add_lora("t", other)
      assert.is_nil(ok2)
      assert.matches("adapter 't'", err2)
      -- a handle loaded for another model is refused by the scheduler, not run
      local h = assert(t._h:load_lora(other))
      local s = assert(mh.sched.new(m, { parallel = 1, ctx = 64 }))
      local r, serr = s:submit({ tokens = { 1, 2 }, max_tokens = 2, lora = { h } })
      assert.is_nil(r)
      assert.matches("made for", serr)
      local fa = lora.train(path, PROMPT, " a purple elephant.", dir .. "/a.gguf", 2)
      local ha = assert(m._h:load_lora(fa))
      local r4, serr4 = s:submit({ tokens = { 1 }, lora = { { adapter = ha, scale = 0 / 0 } } })
      assert.is_nil(r4)
      assert.matches("scale must be a finite number", serr4)
      assert.error_matches(function() s:submit({ tokens = { 1 }, lora = { "a" } }) end,
         "lora%[1%] must be an adapter from load_lora")
      s:close()
   end)
end)
