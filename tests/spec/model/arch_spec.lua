-- Specs for the newer architectures (qwen3, gemma2, gemma3, phi3, llama3
-- rope scaling, mistral sliding window) through moonhub.sched: continuous
-- batching and the prefix cache give the ids model:generate gives alone, on
-- f16 and q8_0 KV caches. Models come from `moonhub create`'s tiny presets
-- (their logits are checked against references in tests/c/test_arch.c).
local host = require "helpers.host"
local mh = require "moonhub"

local PRESETS = { "tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3", "tiny-llama3",
   "tiny-mistral-swa" }
-- P1 is longer than the presets' sliding windows (4 to 8), so chunked prefill,
-- batched decode and cached prefixes all cross a window edge
local P1 = { 1, 87, 107, 104, 35, 116, 120, 108, 102, 110, 35, 101, 117, 114, 122 }
-- P2 and P3 share no first token with P1: a free slot still holding a
-- one-token match is taken before the prefix store's longer one
local P2 = { 76, 76, 104, 111, 111, 114 }
local P3 = { 40, 40, 35, 115, 100, 122, 35, 107, 104, 111, 111, 114 }

local function greedy(model, prompt, n)
   local _, st = model:generate(prompt, { temperature = 0, max_tokens = n, eog = false })
   return st.tokens
end

-- The ids of each prompt run alone: one slot, no prefix store, the same
-- prefill chunks. With an f16 cache the attention arithmetic does not depend
-- on the chunking, so these are model:generate's ids too; a q8_0 cache
-- attends through another kernel for 8+ rows than for fewer (see llama.c),
-- so there the reference is the scheduler run serially.
local function alone(model, prompts, n, chunk)
   local s = assert(mh.sched.new(model, { parallel = 1, ctx = 128, prefill_chunk = chunk,
      prefix_cache = false }))
   local out = {}
   for i, p in ipairs(prompts) do
      out[i] = assert(s:submit{ tokens = p, max_tokens = n, temperature = 0, eog = false }):wait()
   end
   s:close()
   return out
end

describe("new architectures in the scheduler #integration", function()
   local dir
   setup(function() dir = host.tmpdir() end)
   teardown(function() host.rmdir(dir) end)

   for _, preset in ipairs(PRESETS) do
      for _, kv in ipairs({ "f16", "q8_0" }) do
         it(preset .. " batches and reuses prefixes like generate (kv " .. kv .. ")", function()
            local path = dir .. "/" .. preset .. ".gguf"
            assert(mh.create.model({ preset = preset, type = "Q8_0", seed = 3, out = path }))
            local model = assert(mh.load(path, { ctx = 128, kv_type = kv }))
            assert.equal(mh.create.presets[preset].arch, model.info.arch)
            local follow = { table.unpack(P1, 1, 12) }   -- P1's start, another ending
            follow[13], follow[14] = 50, 51
            local prompts = { P1, P2, P3, follow }
            local want = alone(model, prompts, 10, 4)
            if kv == "f16" then
               for i, p in ipairs(prompts) do assert.same(greedy(model, p, 10), want[i]) end
            end
            local s = assert(mh.sched.new(model, { parallel = 3, ctx = 128, prefill_chunk = 4 }))
            local rs = {}
            for i = 1, 3 do
               rs[i] = assert(s:submit{ tokens = prompts[i], max_tokens = 10, temperature = 0,
                  eog = false })
            end
            for i, r in ipairs(rs) do assert.same(want[i], (r:wait())) end
            -- served from the prefix store: P1's first 12 positions come back
            local ids, fin = assert(s:submit{ tokens = follow, max_tokens = 10, temperature = 0,
               eog = false }):wait()
            s:close()
            assert.equal(12, fin.usage.cached_tokens)
            assert.same(want[4], ids)
         end)
      end
   end
end)
