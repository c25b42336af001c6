-- Specs for moonhub convert (mh.convert) and Hugging Face folders of each
-- dense architecture: the shared mh-smol-llama-17m folder against its GGUF
-- twin (tensors, keys, tokens, logits), tiny folders exported from
-- `moonhub create` presets (helpers.hf_folder) loaded directly and converted
-- back, quantized output against `moonhub quantize`, and bad folders.
local data = require "helpers.data"
local H = require "helpers.hf_folder"
local host = require "helpers.host"
local mh = require "moonhub"

local HF = "models/hf/mh-smol-llama-17m"
local TWIN = "models/mh-smol-llama-17m-F16.gguf"

local function q(s) return host.q(s) end

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local function files_in(dir)
   local p = io.popen("ls -A " .. q(dir))
   local out = {}
   for l in p:lines() do out[#out + 1] = l end
   p:close()
   table.sort(out)
   return out
end

local PROMPT = "the whale then went to the water in the wind <|im_end|>"

describe("moonhub convert: the shared HF twin #integration", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   it("writes the F16 twin's tensors byte for byte, its keys, tokens and logits", function()
      local folder, twin = data.need(HF .. "/config.json", pending), data.need(TWIN, pending)
      if not (folder and twin) then return end
      folder = folder:match("^(.*)/config%.json$")
      local out = dir .. "/smol-F16.gguf"
      local st = assert(mh.convert(folder, out, { type = "F16" }))
      assert.same({ "llama", 38, 49152 }, { st.arch, st.tensors, st.vocab })
      assert.same({}, H.tensor_diff(out, twin))
      local _, ma = H.gguf_tensors(out)
      local _, mb = H.gguf_tensors(twin)
      -- every key of the twin (made with gguf-py from the same recipe) with
      -- its value, but general.description, which only the twin has; the
      -- converter's own add_eos_token / add_space_prefix come on top
      for k, v in pairs(mb) do
         if k ~= "general.description" then assert.same(v, ma[k], k) end
      end
      for k in pairs(ma) do
         assert.is_true(mb[k] ~= nil or k == "tokenizer.ggml.add_eos_token"
            or k == "tokenizer.ggml.add_space_prefix", k)
      end
      assert.equal(read(folder .. "/tokenizer_config.json"):match('"chat_template": "([^"]+)'):sub(1, 20),
         ma["tokenizer.chat_template"]:sub(1, 20))
      local a, b = assert(mh.load(out)), assert(mh.load(twin))
      local ref = require("dkjson").decode(read(data.need("vectors/reference/mh-smol-llama-17m-F16.json", pending)))
      for _, p in ipairs(ref.prompts) do
         assert.same(p.tokens, a.tokenizer:encode(p.text, { special = true }), p.kind)
         assert.same(b.tokenizer:encode(p.text, { special = true }), a.tokenizer:encode(p.text, { special = true }))
      end
      assert.equal(0, H.logits_diff(a, b, ref.prompts[1].tokens))
      a:close(); b:close()
   end)

   it("writes Q8_0 as `moonhub quantize` writes it from the F32 conversion", function()
      local folder = data.need(HF .. "/config.json", pending)
      if not folder then return end
      folder = folder:match("^(.*)/config%.json$")
      local f32, q8, ref = dir .. "/f32.gguf", dir .. "/q8.gguf", dir .. "/ref.gguf"
      local _, err, code = host.run(dir, "convert " .. q(folder) .. " " .. q(q8) .. " --type Q8_0 -q")
      assert.equal(0, code, err)
      assert(mh.convert(folder, f32, { type = "F32" }))
      assert(mh.quantize.file(f32, ref, "Q8_0"))
      assert.is_true(read(q8) == read(ref), "convert Q8_0 and quantize(F32 conversion) differ")
   end)
end)

-- Presets, the extra config.json keys a GGUF cannot carry, and the class.
local ARCHS = {
   { "tiny", nil, "LlamaForCausalLM" },
   { "tiny-mistral-swa", nil, "MistralForCausalLM" },
   { "tiny-qwen3", nil, "Qwen3ForCausalLM" },
   { "tiny-gemma2", nil, "Gemma2ForCausalLM" },
   { "tiny-gemma3", nil, "Gemma3ForCausalLM" },
   { "tiny-phi3", nil, "Phi3ForCausalLM" },
   { "tiny-llama3", { rope_scaling = { rope_type = "llama3", factor = 8, low_freq_factor = 1,
      high_freq_factor = 4, original_max_position_embeddings = 64 } }, "LlamaForCausalLM" },
}

describe("HF folders of each dense architecture #integration", function()
   local dir, tok
   setup(function()
      dir = host.tmpdir()
      tok = dir .. "/tokenizer.json"
      H.write_tokenizer(tok)
   end)
   teardown(function() host.rmdir(dir) end)

   local function make(preset, extra)
      local g = dir .. "/" .. preset .. ".gguf"
      assert(mh.create.model({ preset = preset, type = "F32", out = g, tokenizer = tok, seed = 5 }))
      return g, H.export(g, dir .. "/" .. preset, { tokenizer = tok, config = extra })
   end

   for _, a in ipairs(ARCHS) do
      local preset, extra, cls = a[1], a[2], a[3]
      it(preset .. ": the folder loads with the GGUF's logits and converts back to its tensors", function()
         local g, folder = make(preset, extra)
         assert.matches(cls, read(folder .. "/config.json"), 1, true)
         local m, f = assert(mh.load(g)), assert(mh.load(folder))
         local ids = m.tokenizer:encode(PROMPT, { special = true })
         assert.same(ids, f.tokenizer:encode(PROMPT, { special = true }))
         for _, k in ipairs({ "n_layer", "n_embd", "n_head", "n_head_kv", "head_dim", "n_ff", "n_vocab",
                              "tied_embeddings" }) do
            assert.equal(m.info[k], f.info[k], k)
         end
         -- llama3 alone is not bit-equal between folder and GGUF (1.8e-5 with
         -- sgemm f32 matmuls, 1.4e-4 with the tiled float kernels): its rope
         -- factors reach the model by two routes; the cause is not yet found
         assert.is_true(H.logits_diff(m, f, ids) < (preset == "tiny-llama3" and 1e-3 or 1e-4))
         local out = dir .. "/" .. preset .. "-back.gguf"
         local st = assert(mh.convert(folder, out, { type = "F32" }))
         assert.equal(m.info.arch, st.arch)
         assert.same({}, H.tensor_diff(g, out))
         local c = assert(mh.load(out))
         assert.equal(0, H.logits_diff(m, c, ids))
         m:close(); f:close(); c:close()
      end)
   end

   it("writes a SentencePiece-style tokenizer.json as a llama vocabulary that tokenizes alike", function()
      local g, folder = make("tiny")
      local n = H.write_spm_tokenizer(folder .. "/tokenizer.json")
      assert.is_true(n <= 267)
      local f = assert(io.open(folder .. "/tokenizer_config.json", "wb"))
      f:write('{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", '
         .. '"unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}')
      f:close()
      local out = dir .. "/spm.gguf"
      assert(mh.convert(folder, out, { type = "F32" }))
      local _, md = H.gguf_tensors(out)
      assert.same({ "llama", "default", 1, 2, 0, true, true }, { md["tokenizer.ggml.model"],
         md["tokenizer.ggml.pre"], md["tokenizer.ggml.bos_token_id"], md["tokenizer.ggml.eos_token_id"],
         md["tokenizer.ggml.unknown_token_id"], md["tokenizer.ggml.add_bos_token"],
         md["tokenizer.ggml.add_space_prefix"] })
      local a, b = assert(mh.load(folder)), assert(mh.load(out))
      for _, text in ipairs({ "the whale then went", "  the\nthe  x", "héllo thethe", "xthe", "" }) do
         assert.same(a.tokenizer:encode(text), b.tokenizer:encode(text), text)
      end
      -- byte pieces decode to their bytes (the folder's own tokenizer.json
      -- decoder prints them as <0xNN>: its ByteFallback step is not read)
      assert.equal("<s> the whale then went", b.tokenizer:decode(b.tokenizer:encode("the whale then went")))
      assert.same({ 1, 265 }, { table.unpack(a.tokenizer:encode("the"), 1, 2) })   -- <s> ▁the
      assert.same({ 1, 259, 123, 260, 264 }, a.tokenizer:encode("xthe"))         -- <s> ▁ x t he
      a:close(); b:close()
      assert.is_string(g)
   end)

   it("writes F16 and Q8_0 as `moonhub quantize` writes them from the F32 conversion", function()
      for _, preset in ipairs({ "tiny", "tiny-phi3", "tiny-gemma3" }) do
         local _, folder = make(preset)
         local f32 = dir .. "/" .. preset .. "-f32.gguf"
         assert(mh.convert(folder, f32, { type = "F32" }))
         for _, t in ipairs({ "F16", "Q8_0" }) do
            local a, b = dir .. "/a.gguf", dir .. "/b.gguf"
            assert(mh.convert(folder, a, { type = t }))
            assert(mh.quantize.file(f32, b, t))
            assert.is_true(read(a) == read(b), preset .. " " .. t)
         end
      end
   end)
end)

describe("moonhub convert: bad folders #integration", function()
   local dir, folder
   setup(function()
      dir = host.tmpdir()
      local tok = dir .. "/tokenizer.json"
      H.write_tokenizer(tok)
      local g = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny", type = "F32", out = g, tokenizer = tok, seed = 5 }))
      folder = H.export(g, dir .. "/good", { tokenizer = tok })
   end)
   teardown(function() host.rmdir(dir) end)

   -- A copy of the good folder, changed by edit(path), converted.
   local function convert_broken(edit)
      local bad = host.tmpdir()
      os.execute("cp " .. q(folder) .. "/* " .. q(bad))
      edit(bad)
      local out = bad .. "/out.gguf"
      local before = files_in(bad)
      local st, err = mh.convert(bad, out, { type = "Q8_0" })
      assert.is_nil(st)
      assert.same(before, files_in(bad))      -- no output, no temporary left
      host.rmdir(bad)
      return err
   end

   local function sub_file(path, from, to)
      local s = read(path):gsub(from, to)
      local f = assert(io.open(path, "wb"))
      f:write(s)
      f:close()
   end

   it("names what is wrong and leaves no file", function()
      assert.matches("has no readable config.json", convert_broken(function(d) os.remove(d .. "/config.json") end))
      assert.matches("unsupported architecture 'GPT2LMHeadModel'.*supported: LlamaForCausalLM.*Phi3ForCausalLM",
         convert_broken(function(d) sub_file(d .. "/config.json", "LlamaForCausalLM", "GPT2LMHeadModel") end))
      assert.matches("'model.layers.0.self_attn.k_proj.weight' has shape %(32,64%), config.json implies "
         .. "%(64,64%)", convert_broken(function(d)
            sub_file(d .. "/config.json", '"num_key_value_heads":2', '"num_key_value_heads":4')
         end))
      assert.matches("model%-00002%-of%-00002%.safetensors",
         convert_broken(function(d) os.remove(d .. "/model-00002-of-00002.safetensors") end))
      assert.matches("has no tokenizer.json", convert_broken(function(d) os.remove(d .. "/tokenizer.json") end))
      assert.matches("'lm_head.weight' is missing", convert_broken(function(d)
         sub_file(d .. "/config.json", '"tie_word_embeddings":true', '"tie_word_embeddings":false')
      end))
      assert.matches("rope_scaling type 'dynamic' is not supported", convert_broken(function(d)
         sub_file(d .. "/config.json", '"rope_theta"', '"rope_scaling": {"type": "dynamic", "factor": 2}, "rope_theta"')
      end))
      -- found by fuzz_hf_config: the context length was cast to an integer unchecked
      assert.matches("needs a positive 'original_max_position_embeddings' %(at most 1e9%)", convert_broken(function(d)
         sub_file(d .. "/config.json", '"rope_theta"', '"rope_scaling": {"rope_type": "llama3", "factor": 8, '
            .. '"low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 6.7e51}, "rope_theta"')
      end))
   end)

   it("takes special ids from generation_config.json when nothing else names them", function()
      local d = host.tmpdir()
      os.execute("cp " .. q(folder) .. "/* " .. q(d))
      sub_file(d .. "/config.json", '"eos_token_id"', '"x_eos_token_id"')
      sub_file(d .. "/tokenizer_config.json", '"eos_token"', '"x_eos_token"')
      local function eos()
         assert(mh.convert(d, d .. "/o.gguf", { type = "F32" }))
         local _, md = H.gguf_tensors(d .. "/o.gguf")
         return md["tokenizer.ggml.eos_token_id"]
      end
      assert.is_nil(eos())
      local f = assert(io.open(d .. "/generation_config.json", "wb"))
      f:write('{"bos_token_id": 1, "eos_token_id": [2, 0]}')
      f:close()
      assert.equal(2, eos())
      host.rmdir(d)
   end)

   it("leaves no partial file when the disk fills (CLI)", function()
      local out = dir .. "/full/tiny.gguf"
      os.execute("mkdir -p " .. q(dir .. "/full"))
      -- a file size limit stands in for a full disk (EFBIG instead of ENOSPC)
      local cmd = string.format("trap '' XFSZ; ulimit -f 64; MOONHUB_HOME=%s %s convert %s %s -t F32 -q 2>%s",
         q(dir), q(host.exe), q(folder), q(out), q(dir .. "/err"))
      local _, _, code = os.execute("sh -c " .. q(cmd))
      assert.equal(1, code)
      assert.matches("moonhub convert: .*tiny%.gguf", read(dir .. "/err"))
      assert.same({}, files_in(dir .. "/full"))
   end)

   it("prints its help and refuses an unknown type", function()
      local o, _, code = host.run(dir, "convert --help")
      assert.equal(0, code)
      assert.matches("Usage: moonhub convert", o)
      local _, err, code2 = host.run(dir, "convert " .. q(folder) .. " " .. q(dir .. "/x.gguf") .. " -t Q9")
      assert.equal(2, code2)
      assert.matches("unknown type 'Q9'", err)
   end)
end)
