-- Specs for moonhub.quantize and `moonhub quantize`: llama-quantize's type
-- choices, perplexity next to the reference files, loading the result.
-- Byte identity with llama-quantize is asserted in tests/c/test_quantize.c.
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

local function ref_ppl(name)
   local p = data.path("vectors/reference/" .. name .. ".json")
   if not p then return nil end
   local f = assert(io.open(p, "rb"))
   local obj = require("dkjson").decode(f:read("a"))
   f:close()
   return obj.perplexity.value
end

local function read_text()
   local p = data.need("vectors/reference/text.txt", pending)
   if not p then return nil end
   local f = assert(io.open(p, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local function type_counts(path)
   local f = assert(mh.gguf.open(path))
   local c = {}
   for _, t in ipairs(f:tensors()) do c[t.dtype] = (c[t.dtype] or 0) + 1 end
   local meta = f.metadata
   f:close()
   return c, meta
end

describe("moonhub.quantize #integration", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   it("quantizes to Q4_K_M with llama-quantize's mix and keeps perplexity", function()
      local src = data.need("models/mh-smol-llama-17m-F16.gguf", pending)
      local ref = data.need("models/mh-smol-llama-17m-Q4_K_M.gguf", pending)
      local text = read_text()
      if not (src and ref and text) then return end
      local out = dir .. "/q4km.gguf"
      local st = assert(mh.quantize.file(src, out, "Q4_K_M"))
      assert.are.same({ q4_K = 24, q6_K = 5, f32 = 9 }, st.types)
      assert.are.equal(38, st.tensors)
      assert.is_true(st.bytes_out < st.bytes_in * 0.45)
      local counts, meta = type_counts(out)
      assert.are.same(type_counts(ref), counts)
      assert.are.equal(15, meta["general.file_type"])
      assert.are.equal(2, meta["general.quantization_version"])
      assert.are.equal("mh-smol-llama-17m", meta["general.name"])
      assert.are.equal(48900, meta["tokenizer.ggml.merges"].n)
      -- per-tensor order is kept
      local a, b = mh.gguf.open(src), mh.gguf.open(out)
      for i, t in ipairs(a:tensors()) do assert.are.equal(t.name, b:tensors()[i].name) end
      a:close(); b:close()
      local ours = mh.load(out):perplexity(text, { ctx = 128 })
      local theirs = mh.load(ref):perplexity(text, { ctx = 128 })
      local llama = ref_ppl("mh-smol-llama-17m-Q4_K_M")
      print(string.format("\n  Q4_K_M perplexity (ctx 128): ours %.6g, reference file %.6g, llama.cpp %.6g",
         ours, theirs, llama))
      assert.are.equal(theirs, ours)               -- same bytes, same numbers
      assert.is_true(math.abs(ours / llama - 1) < 3e-5)   -- measured 2.7e-6
   end)

   it("quantizes to Q8_0 and Q4_0 as llama-quantize does; the results load and generate", function()
      local src = data.need("models/mh-smol-llama-17m-F16.gguf", pending)
      local text = read_text()
      if not (src and text) then return end
      for _, q in ipairs({ { "Q8_0", { q8_0 = 29, f32 = 9 } }, { "Q4_0", { q4_0 = 28, q6_K = 1, f32 = 9 } } }) do
         local out = dir .. "/" .. q[1] .. ".gguf"
         local st = assert(mh.quantize(src, out, q[1]))
         assert.are.same(q[2], st.types)
         local m = assert(mh.load(out))
         local ppl = m:perplexity(text, { ctx = 128 })
         local llama = ref_ppl("mh-smol-llama-17m-" .. q[1])
         print(string.format("\n  %s perplexity (ctx 128): ours %.6g, llama.cpp %.6g", q[1], ppl, llama))
         assert.is_true(math.abs(ppl / llama - 1) < 3e-5)   -- measured 2.6e-6 (Q8_0), 2.7e-6 (Q4_0)
         local s = m:generate("Hello", { max_tokens = 8, seed = 1, temperature = 0 })
         assert.is_true(#s > 0)
      end
   end)

   it("keeps 1-D tensors and falls back on odd row lengths (stories260K)", function()
      local src = data.need("models/stories260K.gguf", pending)
      if not src then return end
      local out = dir .. "/s.gguf"
      local st = assert(mh.quantize.file(src, out, "q4_k_m"))
      -- 64-wide rows cannot hold 256-blocks: q4_K -> q5_0, q6_K (output,
      -- attn_v of layers 2 and 4) -> q8_0; ffn_down (172 wide) -> f16
      assert.are.same({ f32 = 11, q5_0 = 29, q8_0 = 3, f16 = 5 }, st.types)
      assert.is_true(st.fallbacks > 0)
      local m = assert(mh.load(out))
      assert.is_true(#m:generate("Once", { max_tokens = 8, seed = 1 }) > 0)
   end)

   it("rejects misuse and reports file errors without leaving files", function()
      assert.has_error(function() mh.quantize.file("a.gguf", "b.gguf", "Q3_X") end,
         "quantize.file: type must be one of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q4_K_M, "
         .. "Q5_K_S, Q5_K_M, Q6_K, F16, BF16, F32, got Q3_X")
      assert.has_error(function() mh.quantize.file(nil, "b.gguf", "Q8_0") end)
      local st, err = mh.quantize.file("/nonexistent.gguf", dir .. "/x.gguf", "Q8_0")
      assert.is_nil(st)
      assert.matches("cannot open /nonexistent.gguf", err)
      local notgguf = dir .. "/bad.gguf"
      host.write(notgguf, string.rep("x", 100))
      st, err = mh.quantize.file(notgguf, dir .. "/x.gguf", "Q8_0")
      assert.is_nil(st)
      assert.matches("not a GGUF file", err)
      assert.is_nil(io.open(dir .. "/x.gguf"))
   end)

   it("refuses to write over its own input (same path, symlink, hard link) and leaves it intact", function()
      local src = data.need("models/stories260K.gguf", pending)
      if not src then return end
      local model = dir .. "/m.gguf"
      assert(os.execute("cp " .. host.q(src) .. " " .. host.q(model)))
      local before = host.read(model)
      assert(os.execute("ln -s m.gguf " .. host.q(dir .. "/sym.gguf")))
      assert(os.execute("ln " .. host.q(model) .. " " .. host.q(dir .. "/hard.gguf")))
      for _, out in ipairs({ model, dir .. "/./m.gguf", dir .. "/sym.gguf", dir .. "/hard.gguf" }) do
         local st, err = mh.quantize.file(model, out, "Q8_0")
         assert.is_nil(st, out)
         assert.matches("is the input model itself; choose another output file", err)
      end
      local _, err, code = host.run(dir, "quantize " .. host.q(model) .. " " .. host.q(model) .. " Q4_0")
      assert.are.equal(1, code)
      assert.matches("moonhub quantize: .-m%.gguf is the input model itself", err)
      assert.are.equal(before, host.read(model))
      -- no temp file was left next to it
      local p = io.popen("ls -A " .. host.q(dir))
      local names = p:read("a")
      p:close()
      assert.matches("hard.gguf\nm.gguf\n", names)
      assert.not_matches("tmp", names)
   end)

   it("a trainer's export refuses to write over its base model", function()
      local base = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny", seed = 1, out = base }))
      local before = host.read(base)
      assert(os.execute("ln -s tiny.gguf " .. host.q(dir .. "/alias.gguf")))
      local m = assert(mh.load(dir .. "/alias.gguf"))
      local tr = mh.train.trainer(m, { seed = 1 })
      for _, out in ipairs({ base, dir .. "/alias.gguf" }) do
         local ok, err = tr:export(out, { type = "Q8_0" })
         assert.is_nil(ok)
         assert.matches("is the base model itself; choose another output file", err)
      end
      assert.are.equal(before, host.read(base))
      assert.is_true(tr:export(dir .. "/out.gguf", { type = "Q8_0" }))
      tr:close()
      m:close()
   end)

   it("the quantize verb prints a summary and exits with clear codes", function()
      local src = data.need("models/stories260K.gguf", pending)
      if not src then return end
      local _, out, err, code
      out, err, code = host.run(dir, "quantize " .. host.q(src) .. " " .. host.q(dir .. "/q8.gguf") .. " Q8_0")
      assert.are.equal(0, code, err)
      assert.matches("tensors%s+48: q8_0 x32, f32 x11, f16 x5", out)
      assert.matches("size%s+[%d.]+ MiB %-> [%d.]+ MiB", out)
      assert.matches("time%s+[%d.]+ s", out)
      _, err, code = host.run(dir, "quantize " .. host.q(src) .. " " .. host.q(dir .. "/x.gguf") .. " Q9")
      assert.are.equal(2, code)
      assert.matches("unknown type 'Q9'", err)
      _, err, code = host.run(dir, "quantize /nonexistent.gguf " .. host.q(dir .. "/x.gguf") .. " Q4_0")
      assert.are.equal(1, code)
      assert.matches("cannot open /nonexistent.gguf", err)
      _, err, code = host.run(dir, "quantize " .. host.q(src) .. " /nonexistent-dir/x.gguf Q4_0")
      assert.are.equal(1, code)
      assert.matches("cannot create /nonexistent%-dir/x.gguf", err)
   end)
end)
