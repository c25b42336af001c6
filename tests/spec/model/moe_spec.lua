-- Specs for mixture-of-experts models (Mixtral-style llama, qwen2moe) end to
-- end: `moonhub create --preset` writes the file, `moonhub generate` runs it,
-- and the scheduler's continuous batching and prefix cache give the ids
-- model:generate gives alone. The logits themselves are checked against
-- llama.cpp in tests/c/test_arch.c (tiny-mixtral / tiny-qwen2moe fixtures).
local host = require "helpers.host"
local mh = require "moonhub"

local PRESETS = { ["tiny-mixtral"] = "llama", ["tiny-qwen2moe"] = "qwen2moe" }
local P1 = { 1, 87, 107, 104, 35, 116, 120, 108, 102, 110, 35, 101, 117, 114, 122 }
local P2 = { 76, 76, 104, 111, 111, 114 }
local P3 = { 40, 40, 35, 115, 100, 122, 35, 107, 104, 111, 111, 114 }

local function greedy(model, prompt, n)
   local _, st = model:generate(prompt, { temperature = 0, max_tokens = n, eog = false })
   return st.tokens
end

describe("mixture-of-experts models #integration", function()
   local dir
   setup(function() dir = host.tmpdir() end)
   teardown(function() host.rmdir(dir) end)

   for preset, arch in pairs(PRESETS) do
      it(preset .. ": create and generate from the CLI", function()
         local path = dir .. "/" .. preset .. ".gguf"
         local out, err, code = host.run(dir, "create --preset " .. preset
            .. " --type Q8_0 --seed 2 --out " .. host.q(path))
         assert.are.equal(0, code, err)
         assert.matches("q8_0 x", out)
         local f = assert(mh.gguf.open(path))
         local md = f.metadata
         f:close()
         assert.same({ arch, 4, 2 }, { md["general.architecture"], md[arch .. ".expert_count"],
            md[arch .. ".expert_used_count"] })
         out, err, code = host.run(dir, "generate " .. host.q(path)
            .. " 'The quick brown fox' -n 12 --temp 0 --ignore-eos")
         assert.are.equal(0, code, err)
         assert.matches("generated 12 tokens", err)
         -- the CLI's text is the API's greedy continuation
         local model = assert(mh.load(path))
         assert.equal(arch, model.info.arch)
         local text = model:generate("The quick brown fox", { temperature = 0, max_tokens = 12,
            eog = false })
         assert.equal(text, (out:gsub("\n$", "")))
      end)

      it(preset .. ": batches and reuses prefixes like generate (kv f16, q8_0)", function()
         local path = dir .. "/" .. preset .. "-s.gguf"
         assert(mh.create.model({ preset = preset, type = "Q8_0", seed = 3, out = path }))
         for _, kv in ipairs({ "f16", "q8_0" }) do
            local model = assert(mh.load(path, { ctx = 128, kv_type = kv }))
            local follow = { table.unpack(P1, 1, 12) }
            follow[13], follow[14] = 50, 51
            local prompts = { P1, P2, P3, follow }
            -- the reference: each prompt alone, in the same prefill chunks
            local s = assert(mh.sched.new(model, { parallel = 1, ctx = 128, prefill_chunk = 4,
               prefix_cache = false }))
            local want = {}
            for i, p in ipairs(prompts) do
               want[i] = assert(s:submit{ tokens = p, max_tokens = 10, temperature = 0,
                  eog = false }):wait()
            end
            s:close()
            if kv == "f16" then
               for i, p in ipairs(prompts) do assert.same(greedy(model, p, 10), want[i]) end
            end
            s = assert(mh.sched.new(model, { parallel = 3, ctx = 128, prefill_chunk = 4 }))
            local rs = {}
            for i = 1, 3 do
               rs[i] = assert(s:submit{ tokens = prompts[i], max_tokens = 10, temperature = 0,
                  eog = false })
            end
            for i, r in ipairs(rs) do assert.same(want[i], (r:wait())) end
            local ids, fin = assert(s:submit{ tokens = follow, max_tokens = 10, temperature = 0,
               eog = false }):wait()
            s:close()
            assert.equal(12, fin.usage.cached_tokens)
            assert.same(want[4], ids)
         end
      end)
   end

   it("create --config reads Mixtral and Qwen2-MoE configs", function()
      local base = { num_hidden_layers = 2, hidden_size = 64, num_attention_heads = 2,
         num_key_value_heads = 1, vocab_size = 259 }
      local function cfg(t)
         local c = {}
         for k, v in pairs(base) do c[k] = v end
         for k, v in pairs(t) do c[k] = v end
         return c
      end
      local mx = assert(mh.create.from_hf(cfg({ model_type = "mixtral", intermediate_size = 64,
         num_local_experts = 4, num_experts_per_tok = 2 })))
      assert.same({ "llama", 4, 2, 64 }, { mx.arch, mx.n_expert, mx.n_expert_used, mx.n_ff })
      local q = assert(mh.create.from_hf(cfg({ model_type = "qwen2_moe", intermediate_size = 128,
         num_experts = 4, num_experts_per_tok = 2, moe_intermediate_size = 32,
         shared_expert_intermediate_size = 64, sliding_window = 4096, use_sliding_window = false })))
      assert.same({ "qwen2moe", 4, 2, 32, 64, true }, { q.arch, q.n_expert, q.n_expert_used,
         q.n_ff_exp, q.n_ff_shexp, q.qkv_bias })
      assert.is_nil(q.n_swa)
      local path = dir .. "/hf.gguf"
      assert(mh.create.model({ config = q, type = "F16", out = path }))
      local f = assert(mh.gguf.open(path))
      local md = f.metadata
      f:close()
      assert.same({ 32, 64 }, { md["qwen2moe.expert_feed_forward_length"],
         md["qwen2moe.expert_shared_feed_forward_length"] })
      assert.equal("qwen2moe", assert(mh.load(path)).info.arch)
   end)

   it("create refuses more experts used than there are", function()
      local path = dir .. "/bad.gguf"
      local cfg = {}
      for k, v in pairs(mh.create.presets["tiny-mixtral"]) do cfg[k] = v end
      cfg.n_expert_used = 5
      local st, err = mh.create.model({ config = cfg, out = path })
      assert.is_nil(st)
      assert.matches("n_expert_used in 1%.%.n_expert, got 5 of 4", err)
      assert.is_nil(io.open(path))
   end)
end)
