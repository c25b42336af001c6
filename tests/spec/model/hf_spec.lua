-- Specs for Hugging Face checkpoint directories through mh.load: the BF16
-- copy of mh-smol-llama-17m (models/hf/) against its F16 GGUF: tokens,
-- greedy generation, perplexity, and clear errors for broken configs.
local data = require "helpers.data"
local dkjson = require "dkjson"
local mh = require "moonhub"

local HF = "models/hf/mh-smol-llama-17m"
local GGUF = "models/mh-smol-llama-17m-F16.gguf"

-- The directory (found through a file inside it), or nil when missing.
local function hf_dir()
   local p = data.need(HF .. "/config.json", pending)
   return p and p:match("^(.*)/config%.json$")
end

local function read_json(rel)
   local p = data.need(rel, pending)
   if not p then return nil end
   local f = assert(io.open(p, "rb"))
   local v = dkjson.decode(f:read("a"))
   f:close()
   return v
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Largest minus second-largest of a (1, n_vocab) logits row.
local function top2_margin(lg, n)
   local a, b = -math.huge, -math.huge
   for j = 1, n do
      local v = lg[{ 1, j }]
      if v > a then a, b = v, a elseif v > b then b = v end
   end
   return a - b
end

describe("HF checkpoint directories #integration", function()
   local dir, gguf_path

   before_each(function()
      dir = hf_dir()
      gguf_path = data.need(GGUF, pending)
   end)

   it("loads a directory with its tokenizer and the GGUF's hyperparameters", function()
      if not (dir and gguf_path) then return end
      local m = assert(mh.load(dir))
      local g = assert(mh.load(gguf_path))
      for _, k in ipairs { "n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "head_dim", "n_ff",
                           "n_ctx_train", "n_params", "tied_embeddings" } do
         assert.are.equal(g.info[k], m.info[k], k)
      end
      assert.are.equal("llama", m.info.arch)
      assert.is_true(m.info.rope_neox)
      local text = "The quick brown fox jumps over the lazy dog. 1234567890"
      assert.are.same(g.tokenizer:encode(text), m.tokenizer:encode(text))
      -- the config.json path names the same checkpoint
      local c = assert(mh.load(dir .. "/config.json"))
      assert.are.equal(m.info.n_params, c.info.n_params)
      c:close(); m:close(); g:close()
   end)

   it("generates the F16 GGUF's greedy tokens on the reference prompts", function()
      local ref = read_json("vectors/reference/mh-smol-llama-17m-F16.json")
      if not (dir and gguf_path and ref) then return end
      local m = assert(mh.load(dir, { ctx = 256 }))
      local g = assert(mh.load(gguf_path, { ctx = 256 }))
      local opts = { max_tokens = 12, temperature = 0, ignore_eos = true }
      for _, p in ipairs(ref.prompts) do
         local _, a = m:generate(p.tokens, opts)
         local _, b = g:generate(p.tokens, opts)
         assert.are.equal(12, #a.tokens)
         for i = 1, #b.tokens do
            if a.tokens[i] ~= b.tokens[i] then
               -- only past a near-tie of the GGUF run (BF16 vs F16 logits
               -- differ by up to about 0.25)
               local prefix = table.move(b.tokens, 1, i - 1, 1, table.move(p.tokens, 1, #p.tokens, 1, {}))
               local margin = top2_margin(g:forward(prefix), g.info.n_vocab)
               assert.is_true(margin < 0.5, string.format("prompt %q: token %d differs (%d vs %d) "
                  .. "with top-2 margin %.3f", p.prompt, i, a.tokens[i], b.tokens[i], margin))
               break
            end
         end
      end
      m:close(); g:close()
   end)

   -- BF16 weights against the F16 file: relative PPL error measured 5.1e-3
   -- (F16 GGUF) and 5.3e-3 (llama.cpp's reference); allowed 3e-2
   it("has the F16 GGUF's perplexity (within 3 %)", function()
      local ref = read_json("vectors/reference/mh-smol-llama-17m-F16.json")
      local tp = data.need("vectors/reference/text.txt", pending)
      if not (dir and gguf_path and ref and tp) then return end
      local f = assert(io.open(tp, "rb"))
      local text = f:read("a")
      f:close()
      local m = assert(mh.load(dir))
      local g = assert(mh.load(gguf_path))
      local a = m:perplexity(text, { ctx = ref.perplexity.ctx })
      local b = g:perplexity(text, { ctx = ref.perplexity.ctx })
      local want = ref.perplexity.value
      for _, v in ipairs { b, want } do
         local rel = math.abs(a - v) / v
         assert.is_true(rel <= 0.03, string.format("ppl %.9g vs %.9g (rel %.3e)", a, v, rel))
      end
      m:close(); g:close()
   end)

   describe("broken checkpoints", function()
      local tmp

      -- A temporary directory holding links to the real files and the given config.json text.
      local function fake_dir(config)
         tmp = os.tmpname()
         os.remove(tmp)
         assert(os.execute("mkdir " .. sh_quote(tmp)))
         for _, name in ipairs { "model.safetensors", "tokenizer.json", "tokenizer_config.json" } do
            local src = dir .. "/" .. name
            if src:sub(1, 1) ~= "/" then src = os.getenv("PWD") .. "/" .. src end
            assert(os.execute("ln -s " .. sh_quote(src) .. " " .. sh_quote(tmp .. "/" .. name)))
         end
         local f = assert(io.open(tmp .. "/config.json", "wb"))
         f:write(config)
         f:close()
         return tmp
      end

      after_each(function()
         if tmp then os.execute("rm -rf " .. sh_quote(tmp)) end
         tmp = nil
      end)

      local function config_with(edit)
         local f = assert(io.open(dir .. "/config.json", "rb"))
         local cfg = dkjson.decode(f:read("a"))
         f:close()
         edit(cfg)
         return dkjson.encode(cfg)
      end

      it("works through links (the control case)", function()
         if not dir then return end
         local m = assert(mh.load(fake_dir(config_with(function() end))))
         assert.are.equal(49152, m.info.n_vocab)
         m:close()
      end)

      it("reports a corrupt config.json", function()
         if not dir then return end
         local m, msg = mh.load(fake_dir('{"architectures": ["LlamaForCausalLM"], "hidden_size": 2'))
         assert.is_nil(m)
         assert.matches("config.json is not a JSON object", msg, 1, true)
      end)

      it("names a missing key, an unknown architecture and a wrong vocab size", function()
         if not dir then return end
         local m, msg = mh.load(fake_dir(config_with(function(c) c.num_hidden_layers = nil end)))
         assert.is_nil(m)
         assert.matches("config.json lacks 'num_hidden_layers'", msg, 1, true)
         os.execute("rm -rf " .. sh_quote(tmp))
         m, msg = mh.load(fake_dir(config_with(function(c) c.architectures = { "PhiForCausalLM" } end)))
         assert.is_nil(m)
         assert.matches("unsupported architecture 'PhiForCausalLM'", msg, 1, true)
         assert.matches("LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM", msg, 1, true)
         os.execute("rm -rf " .. sh_quote(tmp))
         m, msg = mh.load(fake_dir(config_with(function(c) c.vocab_size = 50000 end)))
         assert.is_nil(m)
         assert.matches("'model.embed_tokens.weight' has shape (49152,256), expected (50000,256)", msg, 1, true)
      end)
   end)
end)
