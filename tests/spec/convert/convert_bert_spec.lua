-- Specs for Hugging Face encoder folders (BertModel, NomicBertModel):
-- tiny-bert / tiny-nomic-bert GGUFs from `moonhub create`, exported as
-- sentence-transformers folders by helpers.hf_folder_bert, converted back
-- (tensors, keys, embeddings) and loaded directly; the real bge WordPiece
-- vocabulary's tokens through the folder; pooling from 1_Pooling; bad folders.
local data = require "helpers.data"
local H = require "helpers.hf_folder"
local B = require "helpers.hf_folder_bert"
local host = require "helpers.host"
local mh = require "moonhub"

local BGE_VOCAB = "vectors/tokenizer/ggml-vocab-bert-bge.gguf"
local TEXTS = { "the quick brown fox jumps over the lazy dog", "Hello, World! What is this?",
   "a cat sat on the mat; the dog was not there", "embedding search query" }
local q = host.q

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local function sub_file(path, from, to)
   local s, n = read(path):gsub(from, to)
   assert(n > 0, "no '" .. from .. "' in " .. path)
   local f = assert(io.open(path, "wb"))
   f:write(s)
   f:close()
end

-- Keys whose values differ (or exist in one only), but those in skip.
local function key_diff(a, b, skip)
   local ka, kb = B.kvs(a), B.kvs(b)
   local bad = {}
   for k, v in pairs(ka) do
      if not (skip or {})[k] and not (kb[k] ~= nil and require("luassert.util").deepcompare(v, kb[k])) then
         bad[#bad + 1] = k
      end
   end
   for k in pairs(kb) do if ka[k] == nil and not (skip or {})[k] then bad[#bad + 1] = k end end
   table.sort(bad)
   return bad, ka, kb
end

local function embed_all(m)
   local out = {}
   for i, v in ipairs(m:embed(TEXTS)) do out[i] = v:totable() end
   return out
end

local function max_diff(a, b)
   local d = 0
   for i = 1, #a do
      for j = 1, #a[i] do d = math.max(d, math.abs(a[i][j] - b[i][j])) end
   end
   return d
end

describe("HF encoder folders: convert and load #integration", function()
   local dir
   setup(function() dir = host.tmpdir() end)
   teardown(function() host.rmdir(dir) end)

   local function make(preset, opts)
      local g = dir .. "/" .. preset .. ".gguf"
      assert(mh.create.model({ preset = preset, type = "F32", out = g, seed = 7, tokenizer = opts and opts.tokenizer }))
      return g, B.export(g, dir .. "/" .. preset, opts)
   end

   for _, c in ipairs({ { "tiny-bert", "BertModel", "cls" }, { "tiny-nomic-bert", "NomicBertModel", "mean" } }) do
      local preset, cls, pooling = c[1], c[2], c[3]
      it(preset .. ": the folder converts back to the GGUF's tensors and keys and embeds alike", function()
         local g, folder = make(preset, { pooler = preset == "tiny-bert" })
         assert.matches(cls, read(folder .. "/config.json"), 1, true)
         local out = dir .. "/" .. preset .. "-back.gguf"
         local st = assert(mh.convert(folder, out, { type = "F32", name = preset .. "-random" }))
         assert.equal(preset == "tiny-bert" and "bert" or "nomic-bert", st.arch)
         assert.same({}, H.tensor_diff(g, out))
         -- every key alike but create's description and the one token
         -- type HF cannot say: create marks [UNK] UNKNOWN (2), llama.cpp's
         -- converter writes a special added token as CONTROL (3)
         local bad, ka, kb = key_diff(g, out, { ["general.description"] = true })
         assert.same({ "tokenizer.ggml.token_type" }, bad)
         local ta, tb = ka["tokenizer.ggml.token_type"], kb["tokenizer.ggml.token_type"]
         local unk = ka["tokenizer.ggml.unknown_token_id"] + 1
         assert.same({ 2, 3 }, { ta[unk], tb[unk] })
         tb[unk] = 2
         assert.same(ta, tb)
         local m, cv, f = assert(mh.load(g)), assert(mh.load(out)), assert(mh.load(folder))
         assert.same({ pooling, pooling, true }, { cv.info.pooling, f.info.pooling, f.info.encoder })
         for _, t in ipairs(TEXTS) do
            assert.same(m.tokenizer:encode(t), cv.tokenizer:encode(t), t)
            assert.same(m.tokenizer:encode(t), f.tokenizer:encode(t), t)
         end
         local e = embed_all(m)
         assert.same(e, embed_all(cv))
         assert.is_true(max_diff(e, embed_all(f)) < 1e-6)
         m:close(); cv:close(); f:close()
      end)
   end

   it("reads BertForMaskedLM's layout: a bert. prefix, LayerNorm gamma / beta, an MLM head", function()
      local g = dir .. "/tiny-bert.gguf"
      assert(mh.create.model({ preset = "tiny-bert", type = "F32", out = g, seed = 7 }))
      local folder = B.export(g, dir .. "/mlm", { masked_lm = true, pooler = true })
      assert.matches('"bert.embeddings.LayerNorm.gamma"', read(folder .. "/model.safetensors"), 1, true)
      local out = dir .. "/mlm.gguf"
      assert.equal("bert", assert(mh.convert(folder, out, { type = "F32" })).arch)
      assert.same({}, H.tensor_diff(g, out))
      local m, f = assert(mh.load(g)), assert(mh.load(folder))
      assert.is_true(max_diff(embed_all(m), embed_all(f)) < 1e-6)
      m:close(); f:close()
   end)

   it("reads a vocab.txt when there is no tokenizer.json", function()
      local _, folder = make("tiny-bert")
      local a = dir .. "/vt-a.gguf"
      assert(mh.convert(folder, a, { type = "F32" }))
      local vocab = require("dkjson").decode(read(folder .. "/tokenizer.json")).model.vocab
      local lines = {}
      for t, id in pairs(vocab) do lines[id + 1] = t end
      local f = assert(io.open(folder .. "/vocab.txt", "wb"))
      f:write(table.concat(lines, "\n"), "\n")
      f:close()
      os.remove(folder .. "/tokenizer.json")
      local b = dir .. "/vt-b.gguf"
      assert(mh.convert(folder, b, { type = "F32" }))
      -- the same tokens, types and special ids (this vocabulary is not one
      -- llama.cpp names, so its pre is "default" both ways)
      assert.same({}, (key_diff(a, b)))
      sub_file(folder .. "/tokenizer_config.json", '"do_lower_case":true', '"do_lower_case":false')
      local st, err = mh.convert(folder, b, { type = "F32" })
      assert.is_nil(st)
      assert.matches("tokenizer_config.json do_lower_case is false", err)
   end)

   it("writes Q8_0 tensors as `moonhub quantize` writes them from the GGUF (CLI)", function()
      local g, folder = make("tiny-bert")
      local a, b = dir .. "/cli-q8.gguf", dir .. "/q8.gguf"
      local o, err, code = host.run(dir, "convert " .. q(folder) .. " " .. q(a) .. " --type Q8_0 -q")
      assert.equal(0, code, err)
      assert.matches("bert, Q8_0", o, 1, true)
      assert(mh.quantize.file(g, b, "Q8_0"))
      assert.same({}, H.tensor_diff(a, b))
   end)

   it("embeds a folder from the CLI as the GGUF (moonhub embed DIR TEXT)", function()
      local g, folder = make("tiny-nomic-bert")
      local og, _, c1 = host.run(dir, "embed " .. q(g) .. " " .. q(TEXTS[2]))
      local of, err, c2 = host.run(dir, "embed " .. q(folder) .. " " .. q(TEXTS[2]))
      assert.same({ 0, 0 }, { c1, c2 }, err)
      local a, b = {}, {}
      for x in og:gmatch("%S+") do a[#a + 1] = tonumber(x) end
      for x in of:gmatch("%S+") do b[#b + 1] = tonumber(x) end
      assert.equal(64, #a)
      assert.is_true(max_diff({ a }, { b }) < 1e-6)
   end)

   it("takes the pooling from 1_Pooling/config.json (mean against CLS)", function()
      local g, folder = make("tiny-bert")
      local pc = folder .. "/1_Pooling/config.json"
      sub_file(pc, '"pooling_mode_mean_tokens":false', '"pooling_mode_mean_tokens":true')
      sub_file(pc, '"pooling_mode_cls_token":true', '"pooling_mode_cls_token":false')
      local out = dir .. "/mean.gguf"
      assert(mh.convert(folder, out, { type = "F32" }))
      assert.equal(1, B.kvs(out)["bert.pooling_type"])
      -- the reference: the same weights (same seed) with mean pooling
      local P = mh.create.presets
      local mean = { pooling = 1 }
      for k, v in pairs(P["tiny-bert"]) do mean[k] = mean[k] or v end
      P["tiny-bert-mean"] = mean
      local ref = dir .. "/ref-mean.gguf"
      local ok, e = pcall(mh.create.model, { preset = "tiny-bert-mean", type = "F32", out = ref, seed = 7 })
      P["tiny-bert-mean"] = nil
      assert(ok and e, e)
      local cls, cv, f, r = assert(mh.load(g)), assert(mh.load(out)), assert(mh.load(folder)), assert(mh.load(ref))
      assert.same({ "cls", "mean", "mean" }, { cls.info.pooling, cv.info.pooling, f.info.pooling })
      local want = embed_all(r)
      assert.same(want, embed_all(cv))
      assert.is_true(max_diff(want, embed_all(f)) < 1e-6)
      assert.is_true(max_diff(want, embed_all(cls)) > 1e-3)
      cls:close(); cv:close(); f:close(); r:close()
   end)

   it("with the real bge WordPiece vocabulary tokenizes as the GGUF does", function()
      local vocab = data.need(BGE_VOCAB, pending)
      if not vocab then return end
      local g, folder = make("tiny-bert", { tokenizer = vocab })
      local out = dir .. "/bge.gguf"
      assert(mh.convert(folder, out, { type = "F32", name = "tiny-bert-random" }))
      -- llama.cpp names the vocabulary by its hash; bge-small's matches two
      -- entries of its list and the later one, jina-v2-en, wins
      local bad, ka, kb = key_diff(g, out, { ["general.description"] = true, ["tokenizer.ggml.pre"] = true })
      assert.same({}, bad)
      assert.same({ "bert-bge", "jina-v2-en" }, { ka["tokenizer.ggml.pre"], kb["tokenizer.ggml.pre"] })
      local m, cv, f = assert(mh.load(g)), assert(mh.load(out)), assert(mh.load(folder))
      for _, t in ipairs({ "Héllo, naïve café-goers!", "UPPER lower MiXeD", "xyzzyplugh qwxvb unknownish",
                           "don't stop... 3.14 (1,000) #tag @user", "Ünïcödé façade résumé", "日本語 テキスト" }) do
         local ids = m.tokenizer:encode(t)
         assert.same(ids, cv.tokenizer:encode(t), t)
         assert.same(ids, f.tokenizer:encode(t), t)
      end
      assert.same(embed_all(m), embed_all(cv))
      m:close(); cv:close(); f:close()
   end)
end)

describe("HF encoder folders: refused #integration", function()
   local dir, bert, nomic
   setup(function()
      dir = host.tmpdir()
      for _, p in ipairs({ "tiny-bert", "tiny-nomic-bert" }) do
         local g = dir .. "/" .. p .. ".gguf"
         assert(mh.create.model({ preset = p, type = "F32", out = g, seed = 3 }))
         B.export(g, dir .. "/" .. p)
      end
      bert, nomic = dir .. "/tiny-bert", dir .. "/tiny-nomic-bert"
      -- relative position embeddings, which the engine does not run
      B.export(dir .. "/tiny-bert.gguf", dir .. "/extra", { extra = { { name = "embeddings.distance_embedding.weight",
         shape = { 4, 64 }, bytes = string.rep(string.pack("<f", 1), 256) } } })
   end)
   teardown(function() host.rmdir(dir) end)

   -- A copy of folder changed by edit(path): convert's and load's messages.
   local function broken(folder, edit)
      local bad = host.tmpdir()
      os.execute("cp -r " .. q(folder) .. "/. " .. q(bad))
      edit(bad)
      local st, err = mh.convert(bad, bad .. "/out.gguf", { type = "F16" })
      assert.is_nil(st)
      assert.is_nil(io.open(bad .. "/out.gguf"))
      local m, lerr = mh.load(bad)
      if m then m:close() end
      host.rmdir(bad)
      return err, lerr
   end

   it("refuses a checkpoint tensor it would drop", function()
      local st, err = mh.convert(dir .. "/extra", dir .. "/extra.gguf", { type = "F16" })
      assert.is_nil(st)
      assert.matches("tensor 'embeddings.distance_embedding.weight' in .* has no GGUF counterpart for BertModel", err)
   end)

   it("names the key or file that is wrong, converting and loading", function()
      local e, le = broken(bert, function(d) sub_file(d .. "/config.json", '"absolute"', '"relative_key"') end)
      assert.matches("'position_embedding_type' 'relative_key' is not supported", e)
      assert.matches("'position_embedding_type' 'relative_key' is not supported", le)
      assert.matches("'hidden_act' 'relu' is not supported", broken(bert, function(d)
         sub_file(d .. "/config.json", '"gelu"', '"relu"') end))
      assert.matches("'activation_function' 'gelu' is not supported", broken(nomic, function(d)
         sub_file(d .. "/config.json", '"swiglu"', '"gelu"') end))
      assert.matches("'qkv_proj_bias' must be false", broken(nomic, function(d)
         sub_file(d .. "/config.json", '"qkv_proj_bias":false', '"qkv_proj_bias":true') end))
      assert.matches("'rotary_emb_fraction' must be 1.0", broken(nomic, function(d)
         sub_file(d .. "/config.json", '"rotary_emb_fraction":1[%.0]*', '"rotary_emb_fraction":0.5') end))
      e, le = broken(bert, function(d)
         sub_file(d .. "/1_Pooling/config.json", '"pooling_mode_cls_token":true', '"pooling_mode_cls_token":false')
         sub_file(d .. "/1_Pooling/config.json", '"pooling_mode_max_tokens":false', '"pooling_mode_max_tokens":true')
      end)
      assert.matches("1_Pooling/config.json: neither pooling_mode_mean_tokens nor pooling_mode_cls_token", e)
      assert.matches("neither pooling_mode_mean_tokens", le)
      assert.matches("module type 'sentence_transformers.models.Dense' is not supported", broken(bert, function(d)
         sub_file(d .. "/modules.json", "Normalize", "Dense") end))
      assert.matches("normalizer.lowercase must lowercase", broken(bert, function(d)
         sub_file(d .. "/tokenizer.json", '"lowercase":true', '"lowercase":false') end))
      assert.matches("model.type 'BPE' is not supported for BertModel", broken(bert, function(d)
         sub_file(d .. "/tokenizer.json", '"type":"WordPiece"', '"type":"BPE"') end))
      assert.matches("'encoder.layer.1.attention.self.key.weight' is missing", broken(bert, function(d)
         sub_file(d .. "/model.safetensors", "encoder.layer.1.attention.self.key.weight",
            "encoder.layer.1.attention.self.kez.weight")
      end))
   end)
end)
