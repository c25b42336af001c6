-- Specs for Hugging Face folders of mixture-of-experts models (Mixtral,
-- Qwen2-MoE): tiny-mixtral and tiny-qwen2moe GGUFs from `moonhub create`
-- (F16 and Q8_0) exported by helpers.hf_folder with one tensor per expert,
-- converted back (mh.convert) to the GGUF's tensors byte for byte with its
-- expert keys and logits, loaded directly (mh.load), Q8_0 against `moonhub
-- quantize`; bad folders refused by key or tensor name; the KV-state
-- identity and bench's bytes per token of an expert model; create --help.
local H = require "helpers.hf_folder"
local host = require "helpers.host"
local mh = require "moonhub"

local PROMPT = "the whale then went to the water in the wind <|im_end|>"

local function read(path) return host.read(path) end

local function exists(path)
   local f = io.open(path, "rb")
   if f then f:close() end
   return f ~= nil
end

local MOE_KEYS = { "expert_count", "expert_used_count", "expert_feed_forward_length",
   "expert_shared_feed_forward_length", "feed_forward_length", "block_count" }

local CLASS = { ["tiny-mixtral"] = "MixtralForCausalLM", ["tiny-qwen2moe"] = "Qwen2MoeForCausalLM" }

describe("HF folders of mixture-of-experts models #integration", function()
   local dir, tok
   setup(function()
      dir = host.tmpdir()
      tok = dir .. "/tokenizer.json"
      H.write_tokenizer(tok)
   end)
   teardown(function() host.rmdir(dir) end)

   local made = {}
   local function make(preset, ty)
      local key = preset .. "-" .. ty
      if not made[key] then
         local g = dir .. "/" .. key .. ".gguf"
         assert(mh.create.model({ preset = preset, type = ty, out = g, tokenizer = tok, seed = 5 }))
         made[key] = { g, H.export(g, dir .. "/" .. key, { tokenizer = tok }) }
      end
      return made[key][1], made[key][2]
   end

   for _, preset in ipairs({ "tiny-mixtral", "tiny-qwen2moe" }) do
      for _, ty in ipairs({ "F16", "Q8_0" }) do
         it(preset .. " " .. ty .. ": converts back to the GGUF's tensors, expert keys and logits", function()
            local g, folder = make(preset, ty)
            local cfg = require("dkjson").decode(read(folder .. "/config.json"))
            assert.equal(CLASS[preset], cfg.architectures[1])
            assert.is_true(exists(folder .. "/model-00002-of-00002.safetensors"))
            local out = dir .. "/" .. preset .. "-" .. ty .. "-back.gguf"
            local st = assert(mh.convert(folder, out, { type = ty }))
            assert.same({}, H.tensor_diff(g, out))
            local _, ma = H.gguf_tensors(g)
            local _, mb = H.gguf_tensors(out)
            local arch = ma["general.architecture"]
            assert.equal(arch, st.arch)
            assert.is_number(mb[arch .. ".expert_count"])
            for _, k in ipairs(MOE_KEYS) do assert.equal(ma[arch .. "." .. k], mb[arch .. "." .. k], k) end
            local m, c = assert(mh.load(g)), assert(mh.load(out))
            local ids = m.tokenizer:encode(PROMPT, { special = true })
            assert.equal(0, H.logits_diff(m, c, ids))
            m:close(); c:close()
         end)
      end

      it(preset .. ": the F16 folder loads directly with the GGUF's logits and byte counts", function()
         local g, folder = make(preset, "F16")
         local m, f = assert(mh.load(g)), assert(mh.load(folder))
         local ids = m.tokenizer:encode(PROMPT, { special = true })
         assert.same(ids, f.tokenizer:encode(PROMPT, { special = true }))
         for _, k in ipairs({ "n_layer", "n_embd", "n_ff", "n_vocab", "tied_embeddings", "n_params",
                              "weight_bytes", "bytes_per_token" }) do
            assert.equal(m.info[k], f.info[k], k)
         end
         -- q/k rows of llama (Mixtral) run unpermuted with NEOX rope in the
         -- folder: the same products summed in another order
         local d = H.logits_diff(m, f, ids)
         assert.is_true(d < 1e-4)
         m:close(); f:close()
         -- the CLI takes the folder as it takes the file
         local cmd = " 'the whale then' --max-tokens 4 --temp 0"
         local a, aerr, acode = host.run(dir, "generate " .. host.q(folder) .. cmd)
         local b, _, bcode = host.run(dir, "generate " .. host.q(g) .. cmd)
         assert.same({ 0, 0 }, { acode, bcode }, aerr)
         if d == 0 then assert.equal(b, a) end
      end)

      it(preset .. ": convert BF16, Q8_0 and Q4_K_M are convert F16 + `moonhub quantize`", function()
         local _, folder = make(preset, "F16")
         local f16 = dir .. "/" .. preset .. "-c16.gguf"
         assert(mh.convert(folder, f16, { type = "F16" }))
         for _, t in ipairs({ "BF16", "Q8_0", "Q4_K_M" }) do
            local a, b = dir .. "/a.gguf", dir .. "/b.gguf"
            local _, err, code = host.run(dir, "convert " .. host.q(folder) .. " " .. host.q(a) .. " -t " .. t .. " -q")
            assert.equal(0, code, err)
            assert(mh.quantize.file(f16, b, t))
            -- general.file_type and the tensors alike: the whole file
            assert.is_true(read(a) == read(b), preset .. " " .. t)
         end
      end)
   end

   -- A bad copy of preset's F16 folder (config keys over, tensors edited):
   -- convert's message (it must fail, leaving no file) and load's (nil
   -- when the folder loads).
   local function bad(preset, config, edit)
      local g = make(preset, "F16")
      local d = host.tmpdir()
      H.export(g, d, { tokenizer = tok, config = config, tensors = edit })
      local st, cerr = mh.convert(d, d .. "/out.gguf", { type = "F16" })
      local m, lerr = mh.load(d)
      local left = exists(d .. "/out.gguf")
      if m then m:close() end
      host.rmdir(d)
      assert.is_nil(st)
      assert.is_false(left)
      return cerr, lerr
   end

   local function drop(name)
      return function(list)
         for i, t in ipairs(list) do
            if t.name == name then table.remove(list, i); return end
         end
         error("no tensor " .. name)
      end
   end

   it("refuses Qwen2-MoE switches the engine lacks, naming the key (convert and load)", function()
      local cases = {
         { { norm_topk_prob = true }, "config.json norm_topk_prob true is not supported" },
         { { decoder_sparse_step = 2 }, "config.json decoder_sparse_step must be 1" },
         { { mlp_only_layers = { 1 } }, "config.json mlp_only_layers must be empty" },
         { { use_sliding_window = true }, "config.json use_sliding_window true is not supported" },
         { { num_experts_per_tok = 5 }, "num_experts_per_tok 5 of num_experts 4" },
         { { num_experts = 0 }, "'num_experts' must be a positive integer" },
      }
      for _, c in ipairs(cases) do
         local cerr, lerr = bad("tiny-qwen2moe", c[1])
         assert.matches(c[2], cerr, 1, true)
         assert.matches(c[2], lerr, 1, true)
      end
   end)

   it("refuses a missing, mis-shaped or extra expert tensor by name", function()
      local w2 = "model.layers.1.block_sparse_moe.experts.2.w2.weight"
      local cerr, lerr = bad("tiny-mixtral", nil, drop(w2))
      assert.matches("tensor '" .. w2 .. "' is missing from .* %(MixtralForCausalLM with 4 experts needs it%)", cerr)
      assert.matches("tensor '" .. w2 .. "' is missing", lerr, 1, true)
      local w1 = "model.layers.0.block_sparse_moe.experts.3.w1.weight"
      cerr, lerr = bad("tiny-mixtral", nil, function(list)
         for _, t in ipairs(list) do
            if t.name == w1 then t.shape = { 32, 64 }; t.bytes = t.bytes:sub(1, #t.bytes // 2) end
         end
      end)
      assert.matches("tensor '" .. w1 .. "' has shape (32,64), config.json implies (64,64)", cerr, 1, true)
      assert.matches("tensor '" .. w1 .. "' has shape (32,64), expected (64,64)", lerr, 1, true)
      -- five experts in the checkpoint, four in config.json: convert would drop one
      cerr = bad("tiny-mixtral", nil, function(list)
         for _, t in ipairs(list) do
            if t.name == w1 then
               list[#list + 1] = { name = w1:gsub("%.3%.", ".4."), bytes = t.bytes, shape = t.shape, dtype = t.dtype }
               return
            end
         end
      end)
      assert.matches("experts.4.w1.weight' in .* has no GGUF counterpart for MixtralForCausalLM", cerr)
      -- (the loader binds the experts config.json counts and leaves the rest)
      local gate = "model.layers.0.mlp.shared_expert_gate.weight"
      cerr, lerr = bad("tiny-qwen2moe", nil, drop(gate))
      assert.matches("tensor '" .. gate .. "' is missing", cerr, 1, true)
      assert.matches("tensor '" .. gate .. "' is missing", lerr, 1, true)
   end)
end)

describe("expert models elsewhere: KV-state identity, bytes per token, create --help #integration", function()
   local dir, tok
   setup(function()
      dir = host.tmpdir()
      tok = dir .. "/tokenizer.json"
      H.write_tokenizer(tok)
   end)
   teardown(function() host.rmdir(dir) end)

   it("refuses a KV state saved from a model that differs only in one expert", function()
      local a, b = dir .. "/a.gguf", dir .. "/b.gguf"
      assert(mh.create.model({ preset = "tiny-mixtral", type = "F16", out = a, tokenizer = tok, seed = 5 }))
      -- b: a with bytes of expert 2's down matrix in layer 1 changed
      local ts, _, g = H.gguf_tensors(a)
      local t = ts["blk.1.ffn_down_exps.weight"]
      local at = g.data_offset + t.info.offset + t.info.nbytes // 4 * 2 + 100
      local s = read(a)
      host.write(b, s:sub(1, at) .. "\x11\x3c\x22\x3c" .. s:sub(at + 5))
      local ma, mb = assert(mh.load(a, { ctx = 64 })), assert(mh.load(b, { ctx = 64 }))
      assert.are_not.equal(mh.kvstate.identity(ma), mh.kvstate.identity(mb))
      local cache = ma:new_cache()
      ma:generate(PROMPT, { cache = cache, max_tokens = 2, temperature = 0 })
      assert(ma:save_state(dir .. "/s.kv", cache))
      local c, err = mb:load_state(dir .. "/s.kv")
      assert.is_nil(c)
      assert.matches("s%.kv was saved from another model", err)
      assert(ma:load_state(dir .. "/s.kv"))
      ma:close(); mb:close()
   end)

   it("counts the experts a generated token reads in bytes_per_token (bench's bandwidth share)", function()
      for _, preset in ipairs({ "tiny-mixtral", "tiny-qwen2moe" }) do
         local g = dir .. "/" .. preset .. ".gguf"
         assert(mh.create.model({ preset = preset, type = "Q8_0", out = g, tokenizer = tok, seed = 5 }))
         local ts, md = H.gguf_tensors(g)
         local arch = md["general.architecture"]
         local X, k = md[arch .. ".expert_count"], md[arch .. ".expert_used_count"]
         local experts = 0
         for name, t in pairs(ts) do
            if name:match("_exps%.weight$") then experts = experts + t.info.nbytes end
         end
         local m = assert(mh.load(g))
         local embd = 0
         if not m.info.tied_embeddings then
            local e = ts["token_embd.weight"].info
            embd = e.nbytes - e.nbytes // e.shape[2]      -- all rows but the one a token reads
         end
         assert.equal(m.info.weight_bytes - embd - experts // X * (X - k), m.info.bytes_per_token, preset)
         m:close()
      end
   end)

   it("create --help lists the config.json families --config takes, experts included", function()
      local out, err, code = host.run(dir, "create --help")
      assert.equal(0, code, err)
      local list = assert(out:gsub("%s+", " "):match("config.json %(model_type ([^)]+)%)"), out)
      local seen = {}
      for mt in list:gmatch("[%w_]+") do
         seen[mt] = true
         local cfg, cerr = mh.create.from_hf({ model_type = mt, num_hidden_layers = 2, hidden_size = 64,
            intermediate_size = 128, num_attention_heads = 2, vocab_size = 300, num_experts = 4,
            num_experts_per_tok = 2, moe_intermediate_size = 32, shared_expert_intermediate_size = 64 })
         assert.is_table(cfg, cerr)
      end
      assert.is_true(seen.mixtral and seen.qwen2_moe, list)
   end)
end)
