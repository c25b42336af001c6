-- Specs for moonhub.create and `moonhub create`: deterministic random
-- models that load and generate. Self-contained (built-in byte vocabulary)
-- except where a shared tokenizer is copied.
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

local function slurp(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

-- The values of an f32 tensor, read straight from the file.
local function read_f32(path, name)
   local f = assert(mh.gguf.open(path))
   local t = assert(f:tensor(name))
   local base = f.data_offset
   f:close()
   local fh = assert(io.open(path, "rb"))
   fh:seek("set", base + t.offset)
   local bytes = fh:read(t.nbytes)
   fh:close()
   local out, pos = {}, 1
   while pos <= #bytes do
      out[#out + 1], pos = string.unpack("<f", bytes, pos)
   end
   return out
end

describe("moonhub.create #integration", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   it("same seed gives the same bytes; another seed other bytes", function()
      local a, b, c = dir .. "/a.gguf", dir .. "/b.gguf", dir .. "/c.gguf"
      assert(mh.create.model({ preset = "tiny", seed = 7, out = a }))
      assert(mh.create.model({ preset = "tiny", seed = 7, out = b }))
      assert(mh.create.model({ preset = "tiny", seed = 8, out = c }))
      assert.are.equal(slurp(a), slurp(b))
      assert.are_not.equal(slurp(a), slurp(c))
      assert.are.equal(#slurp(a), #slurp(c))
   end)

   it("a tiny model loads with its shape and generates", function()
      local out = dir .. "/tiny.gguf"
      local st = assert(mh.create.model({ preset = "tiny", seed = 1, out = out, type = "F16" }))
      assert.are.equal(259, st.vocab)
      assert.is_false(st.vocab_changed)
      assert.are.same({ f16 = 15, f32 = 5 }, st.types)
      local m = assert(mh.load(out))
      assert.are.equal("llama", m.info.arch)
      assert.are.equal(2, m.info.n_layer)
      assert.are.equal(64, m.info.n_embd)
      assert.are.equal(2, m.info.n_head_kv)
      assert.is_true(m.info.tied_embeddings)
      local ids = m.tokenizer:encode("héllo")
      assert.matches("héllo$", m.tokenizer:decode(ids))   -- byte fallback round trip
      local _, stats = m:generate("Hi", { max_tokens = 12, seed = 3, ignore_eos = true })
      assert.are.equal(12, stats.generated)
      local meta = mh.gguf.open(out).metadata
      assert.are.equal("tiny-random", meta["general.name"])
      assert.are.equal(1, meta["general.file_type"])
      assert.are.equal(16, meta["llama.rope.dimension_count"])
      assert.are.equal(259, meta["llama.vocab_size"])
   end)

   it("weights are N(0, std) and norms are one", function()
      local out = dir .. "/t.gguf"
      assert(mh.create.model({ preset = "tiny", seed = 5, out = out, type = "F32" }))
      local n, s, s2 = 0, 0, 0
      for _, v in ipairs(read_f32(out, "blk.0.ffn_up.weight")) do n = n + 1; s = s + v; s2 = s2 + v * v end
      assert.are.equal(64 * 128, n)
      assert.is_true(math.abs(s / n) < 0.002)
      assert.is_true(math.abs(math.sqrt(s2 / n) - 0.02) < 0.001)
      local norm = read_f32(out, "blk.1.attn_norm.weight")
      assert.are.equal(64, #norm)
      for _, v in ipairs(norm) do assert.are.equal(1, v) end
   end)

   it("the RNG is counter-based: any slice is the same numbers", function()
      local core = require "moonhub.core.gguf_write"
      local whole, part = core.randn(42, 3, 0, 20), core.randn(42, 3, 5, 10)
      for i = 1, 10 do assert.are.equal(whole[5 + i], part[i]) end
      local x = core.randn(42, 4, 0, 20000)
      local s, s2 = 0, 0
      for _, v in ipairs(x) do s = s + v; s2 = s2 + v * v end
      assert.is_true(math.abs(s / #x) < 0.03 and math.abs(s2 / #x - 1) < 0.05)
      assert.are_not.equal(whole[1], x[1])
   end)

   it("qwen2 shapes with biases, llama3 rope factors and K-quant mixes load and generate", function()
      local cfg = { model_type = "qwen2", num_hidden_layers = 3, hidden_size = 256,
         intermediate_size = 512, num_attention_heads = 4, num_key_value_heads = 2,
         vocab_size = 259, rope_theta = 1e6, rms_norm_eps = 1e-6, tie_word_embeddings = false }
      local out = dir .. "/q.gguf"
      local st = assert(mh.create.model({ config = cfg, type = "Q4_K_M", seed = 2, out = out }))
      assert.are.equal(3, st.types.q6_K)    -- output + attn_v, ffn_down of layer 2 (of 3)
      assert.are.equal(20, st.types.q4_K)    -- token_embd + 21 layer matrices - 2
      assert.are.equal(16, st.types.f32)     -- 7 norms and 3 biases per layer
      local m = assert(mh.load(out))
      assert.are.equal("qwen2", m.info.arch)
      assert.is_true(#m:generate("ab", { max_tokens = 4, seed = 1 }) >= 0)
      local llama3 = { num_hidden_layers = 2, hidden_size = 128, intermediate_size = 256,
         num_attention_heads = 2, vocab_size = 259, rope_theta = 5e5, tie_word_embeddings = true,
         rope_scaling = { rope_type = "llama3", factor = 32, low_freq_factor = 1,
            high_freq_factor = 4, original_max_position_embeddings = 8192 } }
      local path = dir .. "/cfg.json"
      host.write(path, require("dkjson").encode(llama3))
      out = dir .. "/l3.gguf"
      assert(mh.create.model({ config = path, type = "Q8_0", out = out }))
      local f = mh.gguf.open(out)
      local rf = f:tensor("rope_freqs.weight")
      assert.are.same({ 32 }, rf.shape)
      f:close()
      m = assert(mh.load(out))
      local factors = read_f32(out, "rope_freqs.weight")
      assert.are.equal(1, factors[1])          -- high frequencies unscaled
      assert.are.equal(32, factors[32])        -- the lowest scaled by the factor
      local _, stats = m:generate("x", { max_tokens = 3, seed = 1, ignore_eos = true })
      assert.are.equal(3, stats.generated)
   end)

   it("copies a tokenizer from a vocab GGUF and takes its vocab size", function()
      local vocab = data.need("models/mh-smol-llama-17m-F16.gguf", pending)
      if not vocab then return end
      local out = dir .. "/v.gguf"
      local st = assert(mh.create.model({ preset = "tiny", seed = 1, out = out, tokenizer = vocab }))
      assert.are.equal(49152, st.vocab)
      assert.is_true(st.vocab_changed)
      local a, b = mh.gguf.open(out).metadata, mh.gguf.open(vocab).metadata
      for _, k in ipairs({ "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template",
         "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id" }) do
         assert.are.same(b[k], a[k])
      end
      assert.are.same(b["tokenizer.ggml.merges"], a["tokenizer.ggml.merges"])
      local m = assert(mh.load(out))
      local ref = assert(mh.load(vocab))
      local text = "Hello world, 123 don't!"
      assert.are.same(ref.tokenizer:encode(text), m.tokenizer:encode(text))
   end)

   it("rejects misuse; the verb reports errors with exit codes", function()
      -- every preset, sorted (the list grows as architectures are added)
      local names = mh.create.preset_names()
      assert.is_true(#names >= 19)
      assert.has_error(function() mh.create.model({ preset = "nope", out = "x" }) end,
         "create.model: unknown preset 'nope' (have: " .. table.concat(names, ", ") .. ")")
      assert.has_error(function() mh.create.model({ preset = "tiny" }) end,
         "create.model: opts.out must be the output path")
      local st, err = mh.create.model({ config = { num_hidden_layers = 2, hidden_size = 60,
         intermediate_size = 64, num_attention_heads = 7, vocab_size = 10 }, out = dir .. "/x.gguf" })
      assert.is_nil(st)
      assert.matches("n_embd 60 must split into 7 heads", err)
      st, err = mh.create.model({ preset = "tiny", out = dir .. "/x.gguf", tokenizer = "/nonexistent.gguf" })
      assert.is_nil(st)
      assert.matches("cannot open /nonexistent.gguf", err)
      assert.is_nil(io.open(dir .. "/x.gguf"))
      local _, out, e2, code
      out, e2, code = host.run(dir, "create --preset tiny --seed 4 --type Q4_0 --out "
         .. host.q(dir .. "/v.gguf"))
      assert.are.equal(0, code, e2)
      assert.matches("created .*v.gguf: 0.1M params, vocab 259, f32 x5, q4_0 x14, q8_0 x1", out)
      _, e2, code = host.run(dir, "create --preset huge --out x.gguf")
      assert.are.equal(2, code)
      assert.matches("unknown preset 'huge'", e2)
      _, e2, code = host.run(dir, "create --preset tiny")
      assert.are.equal(2, code)
      assert.matches("%-%-out FILE.gguf is required", e2)
   end)
end)
