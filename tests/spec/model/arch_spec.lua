-- Specs for the newer architectures (qwen3, gemma2, gemma3, phi3, llama3
-- rope scaling, mistral sliding window) through moonhub.sched: continuous
-- batching and the prefix cache give the ids model:generate gives alone, on
-- f16 and q8_0 KV caches. Models come from `moonhub create`'s tiny presets
-- (their logits are checked against references in tests/c/test_arch.c).
local host = require "helpers.host"
local mh = require "moonhub"

local PRESETS = { "tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3", "tiny-llama3",
   "tiny-llama-yarn", "tiny-mistral-swa" }
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

describe("create.from_hf for the new architectures #unit", function()
   local base = { num_hidden_layers = 2, hidden_size = 64, intermediate_size = 128,
      num_attention_heads = 2, num_key_value_heads = 1, vocab_size = 259 }
   local function cfg(t)
      local c = {}
      for k, v in pairs(base) do c[k] = v end
      for k, v in pairs(t) do c[k] = v end
      return c
   end

   it("reads each family's fields", function()
      local q = assert(mh.create.from_hf(cfg({ model_type = "qwen3", head_dim = 64,
         sliding_window = 4096, use_sliding_window = false })))
      assert.same({ "qwen3", 64 }, { q.arch, q.head_dim })
      assert.is_nil(q.n_swa)
      local g2 = assert(mh.create.from_hf(cfg({ model_type = "gemma2", head_dim = 32,
         sliding_window = 4096, attn_logit_softcapping = 50, final_logit_softcapping = 30 })))
      assert.same({ "gemma2", 4096, 50, 30, true }, { g2.arch, g2.n_swa, g2.attn_softcap,
         g2.final_softcap, g2.tied })
      local g3 = assert(mh.create.from_hf({ model_type = "gemma3", text_config = cfg({
         model_type = "gemma3_text", sliding_window = 1024, rope_local_base_freq = 10000,
         rope_theta = 1e6, rope_scaling = { rope_type = "linear", factor = 8 } }) }))
      assert.same({ "gemma3", 1024, 10000, 8 }, { g3.arch, g3.n_swa, g3.rope_base_swa,
         g3.rope_scale_linear })
      local p = assert(mh.create.from_hf(cfg({ model_type = "phi3", max_position_embeddings = 131072,
         original_max_position_embeddings = 4096, sliding_window = 262144,
         rope_scaling = { type = "longrope", long_factor = {}, short_factor = {} } })))
      assert.same({ "phi3", true, 4096, 262144 }, { p.arch, p.longrope, p.rope_orig_ctx, p.n_swa })
      local mi = assert(mh.create.from_hf(cfg({ model_type = "mistral", sliding_window = 4096 })))
      assert.same({ "llama", 4096 }, { mi.arch, mi.n_swa })
   end)

   it("refuses what it cannot write", function()
      local c, err = mh.create.from_hf(cfg({ model_type = "qwen3",
         rope_scaling = { rope_type = "dynamic", factor = 4 } }))
      assert.is_nil(c)
      assert.matches("rope_scaling type 'dynamic' is not supported", err)
      local y = assert(mh.create.from_hf(cfg({ model_type = "qwen2", rope_scaling = { type = "yarn",
         factor = 4, original_max_position_embeddings = 32768 } })))
      assert.same({ 4, 32768 }, { y.rope_scale_yarn, y.rope_orig_ctx })
      c, err = mh.create.from_hf(cfg({ model_type = "gemma4" }))
      assert.is_nil(c)
      assert.matches("model_type 'gemma4' is not supported", err)
   end)

   it("writes files the loader reads back as the same architecture", function()
      local dir = host.tmpdir()
      local out = dir .. "/p.gguf"
      local c = assert(mh.create.from_hf(cfg({ model_type = "phi3", max_position_embeddings = 512,
         original_max_position_embeddings = 256, sliding_window = 8,
         rope_scaling = { type = "longrope" } })))
      assert(mh.create.model({ config = c, type = "F16", out = out }))
      local f = assert(mh.gguf.open(out))
      local md = f.metadata
      f:close()
      assert.equal(256, md["phi3.rope.scaling.original_context_length"])
      assert.near(math.sqrt(1 + math.log(2) / math.log(256)), md["phi3.rope.scaling.attn_factor"], 1e-6)
      local m = assert(mh.load(out))
      assert.equal("phi3", m.info.arch)
      host.rmdir(dir)
   end)
end)
