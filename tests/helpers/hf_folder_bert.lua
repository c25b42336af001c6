-- tests/helpers/hf_folder_bert.lua: the inverse of moonhub convert for
-- encoder GGUFs (bert, nomic-bert) made by `moonhub create`, for specs.
-- Writes what sentence-transformers saves for BertModel / NomicBertModel:
-- config.json, model.safetensors, a WordPiece tokenizer.json (HF's "##"
-- spelling, undoing GGUF's U+2581 one), tokenizer_config.json, modules.json
-- and 1_Pooling/config.json. Written apart from convert_bert.c on purpose,
-- so the round trip folder -> convert -> GGUF checks one against the other.
-- Also: every metadata key of a GGUF, arrays in full (kvs).
-- Pure module: does nothing on require.
local dkjson = require "dkjson"
local H = require "helpers.hf_folder"

local M = {}

-- ===== GGUF metadata, arrays included =====

local SCALAR = { [0] = "B", "b", "<I2", "<i2", "<I4", "<i4", "<f", "B", nil, nil, "<I8", "<i8", "<d" }

-- kvs(path) -> {key = value}: arrays as Lua lists, bools as booleans.
function M.kvs(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   assert(s:sub(1, 4) == "GGUF", path .. " is not a GGUF file")
   local _, _, n_kv, pos = string.unpack("<I4I8I8", s, 5)
   local function value(t)
      local v
      if t == 8 then return string.unpack("<s8", s, pos) end
      if t == 9 then
         local at, n
         at, n, pos = string.unpack("<I4I8", s, pos)
         local list = {}
         for i = 1, n do list[i], pos = value(at) end
         return list, pos
      end
      v, pos = string.unpack(SCALAR[t], s, pos)
      if t == 7 then v = v ~= 0 end
      return v, pos
   end
   local out = {}
   for _ = 1, n_kv do
      local k, t
      k, t, pos = string.unpack("<s8I4", s, pos)
      out[k], pos = value(t)
   end
   return out
end

-- ===== names =====

local GLOBAL = {   -- GGUF base name -> BertModel, NomicBertModel
   token_embd = { "embeddings.word_embeddings", "embeddings.word_embeddings" },
   token_types = { "embeddings.token_type_embeddings", "embeddings.token_type_embeddings" },
   position_embd = { "embeddings.position_embeddings" },
   token_embd_norm = { "embeddings.LayerNorm", "emb_ln" },
}
local LAYER = {
   attn_q = { "attention.self.query" }, attn_k = { "attention.self.key" },
   attn_v = { "attention.self.value" }, attn_qkv = { nil, "attn.Wqkv" },
   attn_output = { "attention.output.dense", "attn.out_proj" },
   attn_output_norm = { "attention.output.LayerNorm", "norm1" },
   ffn_up = { "intermediate.dense", "mlp.fc11" }, ffn_gate = { nil, "mlp.fc12" },
   ffn_down = { "output.dense", "mlp.fc2" }, layer_output_norm = { "output.LayerNorm", "norm2" },
}

local function hf_name(arch, gguf)
   local col = arch == "nomic-bert" and 2 or 1
   local l, part, suffix = gguf:match("^blk%.(%d+)%.([%w_]+)%.(%a+)$")
   if l then
      local hf = LAYER[part] and LAYER[part][col]
      return hf and string.format("encoder.layer%s.%s.%s.%s", col == 2 and "s" or "", l, hf, suffix)
   end
   part, suffix = gguf:match("^([%w_]+)%.(%a+)$")
   local hf = GLOBAL[part] and GLOBAL[part][col]
   return hf and hf .. "." .. suffix
end

-- ===== the tokenizer =====

local SP = "\u{2581}"

-- GGUF "bert" spelling -> HF's: "▁word" -> "word", "piece" -> "##piece",
-- "[SPECIAL]" as it is.
local function hf_token(t)
   if t:sub(1, #SP) == SP then return t:sub(#SP + 1) end
   if t:match("^%[.*%]$") then return t end
   return "##" .. t
end

local NAMES = { cls = "cls_token_id", sep = "seperator_token_id", unk = "unknown_token_id",
   pad = "padding_token_id", mask = "mask_token_id", bos = "bos_token_id" }

local function tokenizer_files(md)
   local toks, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
   local vocab, added, special = {}, {}, {}
   for i, t in ipairs(toks) do
      local hf = hf_token(t)
      vocab[hf] = i - 1
      if types[i] == 3 or types[i] == 2 then   -- control, unknown: HF's special added tokens
         added[#added + 1] = { id = i - 1, content = hf, single_word = false, lstrip = false,
            rstrip = false, normalized = false, special = true }
      end
   end
   for k, key in pairs(NAMES) do
      local id = md["tokenizer.ggml." .. key]
      if id then special[k] = toks[id + 1] end
   end
   local cls, sep = special.cls or "[CLS]", special.sep or "[SEP]"
   local function st(name) return { id = name, ids = { vocab[name] }, tokens = { name } } end
   local tj = {
      version = "1.0", truncation = dkjson.null, padding = dkjson.null, added_tokens = added,
      normalizer = { type = "BertNormalizer", clean_text = true, handle_chinese_chars = true,
         strip_accents = dkjson.null, lowercase = true },
      pre_tokenizer = { type = "BertPreTokenizer" },
      post_processor = { type = "TemplateProcessing",
         single = { { SpecialToken = { id = cls, type_id = 0 } }, { Sequence = { id = "A", type_id = 0 } },
            { SpecialToken = { id = sep, type_id = 0 } } },
         pair = { { SpecialToken = { id = cls, type_id = 0 } }, { Sequence = { id = "A", type_id = 0 } },
            { SpecialToken = { id = sep, type_id = 0 } }, { Sequence = { id = "B", type_id = 1 } },
            { SpecialToken = { id = sep, type_id = 1 } } },
         special_tokens = { [cls] = st(cls), [sep] = st(sep) } },
      decoder = { type = "WordPiece", prefix = "##", cleanup = true },
      model = { type = "WordPiece", unk_token = special.unk or "[UNK]", continuing_subword_prefix = "##",
         max_input_chars_per_word = 100, vocab = vocab },
   }
   local tc = { do_lower_case = true, clean_up_tokenization_spaces = true, model_max_length = 512,
      strip_accents = dkjson.null, tokenize_chinese_chars = true, tokenizer_class = "BertTokenizer" }
   for k in pairs(NAMES) do
      if special[k] then tc[k .. "_token"] = hf_token(special[k]) end
   end
   return tj, tc
end

-- ===== config.json =====

local function config(md, arch, vocab_size)
   local function k(s) return md[arch .. "." .. s] end
   if arch == "bert" then
      return { architectures = { "BertModel" }, model_type = "bert", hidden_size = k("embedding_length"),
         intermediate_size = k("feed_forward_length"), num_hidden_layers = k("block_count"),
         num_attention_heads = k("attention.head_count"), max_position_embeddings = k("context_length"),
         layer_norm_eps = k("attention.layer_norm_epsilon"), vocab_size = vocab_size,
         type_vocab_size = md["tokenizer.ggml.token_type_count"], hidden_act = "gelu",
         position_embedding_type = "absolute", pad_token_id = 0, hidden_dropout_prob = 0.1,
         attention_probs_dropout_prob = 0.1, initializer_range = 0.02, torch_dtype = "float32" }
   end
   local c = { architectures = { "NomicBertModel" }, model_type = "nomic_bert", n_embd = k("embedding_length"),
      n_inner = k("feed_forward_length"), n_layer = k("block_count"), n_head = k("attention.head_count"),
      n_positions = 8192, max_trained_positions = 2048, layer_norm_epsilon = k("attention.layer_norm_epsilon"),
      vocab_size = vocab_size, type_vocab_size = md["tokenizer.ggml.token_type_count"],
      rotary_emb_base = k("rope.freq_base"), rotary_emb_fraction = 1.0, rotary_emb_interleaved = false,
      rotary_emb_scale_base = dkjson.null, rotary_scaling_factor = dkjson.null, activation_function = "swiglu",
      causal = false, qkv_proj_bias = false, mlp_fc1_bias = false, mlp_fc2_bias = false, prenorm = false,
      use_rms_norm = false, parallel_block = false, pad_token_id = 0, torch_dtype = "float32" }
   -- llama.cpp takes 2048 for nomic-bert unless max_position_embeddings says otherwise
   if k("context_length") ~= 2048 then c.max_position_embeddings = k("context_length") end
   return c
end

-- ===== the export =====

local function write(path, text)
   local dir = path:match("^(.*)/[^/]*$")
   if dir then assert(os.execute("mkdir -p '" .. dir .. "'")) end
   local f = assert(io.open(path, "wb"))
   f:write(text)
   f:close()
end

-- export(gguf, dir, opts?) -> dir. gguf: an F32 bert / nomic-bert GGUF.
-- opts.pooler: also write BERT's pooler.dense tensors (real checkpoints
-- carry them; converters drop them). opts.masked_lm: bert only, the
-- BertForMaskedLM layout of older checkpoints ("bert." before every name,
-- LayerNorm gamma / beta) with an MLM head bias. opts.extra: more
-- {name =, bytes =, shape =} tensors for the checkpoint.
function M.export(gguf, dir, opts)
   opts = opts or {}
   local tensors = H.gguf_tensors(gguf)
   local md = M.kvs(gguf)
   local arch = md["general.architecture"]
   assert(arch == "bert" or arch == "nomic-bert", "hf_folder_bert.export: " .. tostring(arch))
   local list = {}
   for name, t in pairs(tensors) do
      assert(t.info.dtype == "f32", "hf_folder_bert.export needs an F32 GGUF, " .. name .. " is " .. t.info.dtype)
      local hf = assert(hf_name(arch, name), "no Hugging Face name for " .. name)
      local shape = {}
      for i = #t.info.shape, 1, -1 do
         if t.info.shape[i] ~= 1 or i == 1 then shape[#shape + 1] = t.info.shape[i] end
      end
      if opts.masked_lm then
         hf = "bert." .. hf:gsub("LayerNorm%.weight$", "LayerNorm.gamma"):gsub("LayerNorm%.bias$", "LayerNorm.beta")
      end
      list[#list + 1] = { name = hf, bytes = t.bytes, shape = shape }
   end
   local E = md[arch .. ".embedding_length"]
   if opts.pooler then
      list[#list + 1] = { name = "pooler.dense.weight", bytes = string.rep(string.pack("<f", 0.5), E * E),
         shape = { E, E } }
      list[#list + 1] = { name = "pooler.dense.bias", bytes = string.rep(string.pack("<f", 0.25), E), shape = { E } }
   end
   local cfg = config(md, arch, tensors["token_embd.weight"].info.shape[2])
   if opts.masked_lm then
      cfg.architectures = { "BertForMaskedLM" }
      list[#list + 1] = { name = "cls.predictions.bias", shape = { cfg.vocab_size },
         bytes = string.rep(string.pack("<f", 0), cfg.vocab_size) }
   end
   for _, t in ipairs(opts.extra or {}) do list[#list + 1] = t end
   assert(os.execute("mkdir -p '" .. dir .. "'"))
   H.write_safetensors(dir .. "/model.safetensors", list)
   write(dir .. "/config.json", dkjson.encode(cfg))
   local tj, tc = tokenizer_files(md)
   write(dir .. "/tokenizer.json", dkjson.encode(tj))
   write(dir .. "/tokenizer_config.json", dkjson.encode(tc))
   write(dir .. "/modules.json", dkjson.encode({
      { idx = 0, name = "0", path = "", type = "sentence_transformers.models.Transformer" },
      { idx = 1, name = "1", path = "1_Pooling", type = "sentence_transformers.models.Pooling" },
      { idx = 2, name = "2", path = "2_Normalize", type = "sentence_transformers.models.Normalize" } }))
   local pool = md[arch .. ".pooling_type"]
   write(dir .. "/1_Pooling/config.json", dkjson.encode({ word_embedding_dimension = E,
      pooling_mode_cls_token = pool == 2, pooling_mode_mean_tokens = pool == 1,
      pooling_mode_max_tokens = false, pooling_mode_mean_sqrt_len_tokens = false }))
   return dir
end

return M
