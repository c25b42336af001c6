-- tests/helpers/hf_folder.lua: the inverse of moonhub convert, for specs.
-- Writes a Hugging Face folder (config.json, tokenizer.json,
-- tokenizer_config.json, safetensors shards + index) from a GGUF made by
-- `moonhub create` (F32, F16 and BF16 tensors as they are, Q8_0 dequantized
-- to F32), undoing what llama.cpp's converter does (llama q/k row
-- permutation, Gemma's 1 + w norms, rope factor tensors back into
-- rope_scaling, experts stacked into 3-D tensors back into one tensor per
-- expert for Mixtral and Qwen2-MoE). Written apart from convert.c on purpose: the round trip
-- folder -> convert -> GGUF checks one against the other.
-- Also: a tiny byte-level BPE tokenizer.json, and GGUF tensor bytes by name.
-- Pure module: does nothing on require.
local dkjson = require "dkjson"
local mh = require "moonhub"

local M = {}

-- ===== a tiny byte-level BPE tokenizer =====

-- GPT-2's byte -> printable code point map.
local function byte_chars()
   local bs, cs = {}, {}
   for b = 33, 126 do bs[#bs + 1] = b end
   for b = 161, 172 do bs[#bs + 1] = b end
   for b = 174, 255 do bs[#bs + 1] = b end
   local have = {}
   for _, b in ipairs(bs) do have[b] = true end
   for _, b in ipairs(bs) do cs[b] = b end
   local n = 0
   for b = 0, 255 do
      if not have[b] then cs[b] = 256 + n; n = n + 1 end
   end
   local out = {}
   for b = 0, 255 do out[b] = utf8.char(cs[b]) end
   return out
end

M.SPECIALS = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" }
M.CHATML = "{%- for message in messages -%}{{- '<|im_start|>' + message['role'] + '\\n' + "
   .. "message['content'] + '<|im_end|>' + '\\n' -}}{%- endfor -%}{%- if add_generation_prompt "
   .. "-%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"

-- Writes path: 3 special tokens (ids 0-2), the 256 byte tokens, and a few
-- merges (Ġt, he, Ġthe...). Returns the vocabulary size.
function M.write_tokenizer(path)
   local ch = byte_chars()
   local vocab, merges = {}, {}
   for i, s in ipairs(M.SPECIALS) do vocab[s] = i - 1 end
   for b = 0, 255 do vocab[ch[b]] = 3 + b end
   local n = 259
   for _, pair in ipairs({ { ch[32], "t" }, { "h", "e" }, { ch[32] .. "t", "he" }, { "i", "n" },
                           { ch[32], "a" }, { "o", "n" }, { "e", "r" }, { ch[32], "w" } }) do
      merges[#merges + 1] = pair[1] .. " " .. pair[2]
      vocab[pair[1] .. pair[2]] = n
      n = n + 1
   end
   local added = {}
   for i, s in ipairs(M.SPECIALS) do
      added[i] = { id = i - 1, content = s, single_word = false, lstrip = false, rstrip = false,
         normalized = false, special = true }
   end
   local tj = {
      version = "1.0", truncation = dkjson.null, padding = dkjson.null,
      added_tokens = added, normalizer = dkjson.null,
      pre_tokenizer = { type = "ByteLevel", add_prefix_space = false, trim_offsets = true,
         use_regex = true },
      post_processor = { type = "ByteLevel", add_prefix_space = true, trim_offsets = false,
         use_regex = true },
      decoder = { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true },
      model = { type = "BPE", dropout = dkjson.null, unk_token = dkjson.null,
         continuing_subword_prefix = dkjson.null, end_of_word_suffix = dkjson.null,
         fuse_unk = false, byte_fallback = false, vocab = vocab, merges = merges },
   }
   local f = assert(io.open(path, "wb"))
   f:write(dkjson.encode(tj))
   f:close()
   return n
end

-- Writes path: a SentencePiece-style BPE tokenizer.json (Llama 2's kind:
-- U+2581 for spaces with a prepended one, <0xNN> byte fallback): <unk> <s>
-- </s>, the 256 byte pieces, then n_extra pieces (at most 8) of which
-- four come from merges ("xthe" needs "he" (rank 1) before "th" (rank 3),
-- so merge order shows). Returns the vocabulary size.
function M.write_spm_tokenizer(path, n_extra)
   local sp = "\u{2581}"
   local vocab = { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 }
   for b = 0, 255 do vocab[string.format("<0x%02X>", b)] = 3 + b end
   local extra = { sp, "t", "h", "e", sp .. "t", "he", sp .. "the", "th" }
   for i = 1, math.min(n_extra or 8, 8) do vocab[extra[i]] = 258 + i end
   local added = {}
   for i, s in ipairs({ "<unk>", "<s>", "</s>" }) do
      added[i] = { id = i - 1, content = s, single_word = false, lstrip = false, rstrip = false,
         normalized = false, special = true }
   end
   local tj = {
      version = "1.0", truncation = dkjson.null, padding = dkjson.null, added_tokens = added,
      normalizer = { type = "Sequence", normalizers = {
         { type = "Prepend", prepend = sp },
         { type = "Replace", pattern = { String = " " }, content = sp } } },
      pre_tokenizer = dkjson.null, post_processor = dkjson.null,
      decoder = { type = "Sequence", decoders = {
         { type = "Replace", pattern = { String = sp }, content = " " }, { type = "ByteFallback" },
         { type = "Fuse" }, { type = "Strip", content = " ", start = 1, stop = 0 } } },
      model = { type = "BPE", dropout = dkjson.null, unk_token = "<unk>", continuing_subword_prefix = dkjson.null,
         end_of_word_suffix = dkjson.null, fuse_unk = true, byte_fallback = true, vocab = vocab,
         merges = { sp .. " t", "h e", sp .. "t he", "t h" } },
   }
   local f = assert(io.open(path, "wb"))
   f:write(dkjson.encode(tj))
   f:close()
   return 259 + math.min(n_extra or 8, 8)
end

-- ===== GGUF tensor bytes =====

-- {name = {info = tensor entry, bytes = string}}, metadata, the open file.
function M.gguf_tensors(path)
   local g = assert(mh.gguf.open(path))
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   local out = {}
   for _, t in ipairs(g:tensors()) do
      out[t.name] = { info = t, bytes = s:sub(g.data_offset + t.offset + 1, g.data_offset + t.offset + t.nbytes) }
   end
   return out, g.metadata, g
end

-- ===== the export =====

local function floats(bytes)
   local v, n = {}, #bytes // 4
   for i = 1, n do v[i] = string.unpack("<f", bytes, 4 * i - 3) end
   return v
end

local function pack_floats(v)
   local parts = {}
   for i, x in ipairs(v) do parts[i] = string.pack("<f", x) end
   return table.concat(parts)
end

-- IEEE half bits -> number.
local function half(h)
   local sign, e, m = (h >> 15) == 1 and -1 or 1, (h >> 10) & 31, h & 1023
   if e == 0 then return sign * m * 2.0 ^ -24 end
   if e == 31 then return m == 0 and sign * math.huge or 0 / 0 end
   return sign * (1 + m / 1024) * 2.0 ^ (e - 15)
end

-- Q8_0 blocks (f16 scale, 32 int8) -> packed f32 bytes, as the engine
-- dequantizes them (d * q in float).
local function dequant_q8_0(bytes)
   local out = {}
   for b = 0, #bytes // 34 - 1 do
      local d = string.unpack("<f", string.pack("<f", half(string.unpack("<I2", bytes, 34 * b + 1))))
      for i = 0, 31 do
         out[#out + 1] = string.pack("<f", d * string.unpack("<i1", bytes, 34 * b + 3 + i))
      end
   end
   return table.concat(out)
end

-- GGUF type -> {safetensors dtype, element bytes, converter to those bytes}.
local DTYPES = { f32 = { "F32", 4 }, f16 = { "F16", 2 }, bf16 = { "BF16", 2 },
   q8_0 = { "F32", 4, dequant_q8_0 } }

-- GGUF llama rows pair (2i, 2i+1) per head; HF rows pair (i, i + d/2).
local function unpermute(bytes, rows, cols, heads, esize)
   local rb, hd = cols * esize, rows // heads
   local out = {}
   for r = 0, rows - 1 do          -- HF row r <- GGUF row
      local h, within = r // hd, r % hd
      local j, i = within // (hd // 2), within % (hd // 2)
      local g = h * hd + 2 * i + j
      out[r + 1] = bytes:sub(g * rb + 1, (g + 1) * rb)
   end
   return table.concat(out)
end

local LAYER = {
   attn_norm = "input_layernorm", attn_q = "self_attn.q_proj", attn_k = "self_attn.k_proj",
   attn_v = "self_attn.v_proj", attn_output = "self_attn.o_proj", attn_qkv = "self_attn.qkv_proj",
   attn_q_norm = "self_attn.q_norm", attn_k_norm = "self_attn.k_norm", ffn_gate = "mlp.gate_proj",
   ffn_down = "mlp.down_proj", post_attention_norm = "post_attention_layernorm",
   post_ffw_norm = "post_feedforward_layernorm",
}
local CLASS = { llama = "LlamaForCausalLM", qwen2 = "Qwen2ForCausalLM", qwen3 = "Qwen3ForCausalLM",
   gemma2 = "Gemma2ForCausalLM", gemma3 = "Gemma3ForCausalLM", phi3 = "Phi3ForCausalLM",
   mixtral = "MixtralForCausalLM", qwen2moe = "Qwen2MoeForCausalLM" }
local MODEL_TYPE = { gemma3 = "gemma3_text", mixtral = "mixtral", qwen2moe = "qwen2_moe" }

-- Expert FFNs (transformers' MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock):
-- the router, expert E's three matrices, Qwen2-MoE's shared expert.
local MIXTRAL = { ffn_gate_inp = "block_sparse_moe.gate", ffn_gate_exps = "block_sparse_moe.experts.%d.w1",
   ffn_down_exps = "block_sparse_moe.experts.%d.w2", ffn_up_exps = "block_sparse_moe.experts.%d.w3" }
local QWEN2MOE = { ffn_gate_inp = "mlp.gate", ffn_gate_exps = "mlp.experts.%d.gate_proj",
   ffn_up_exps = "mlp.experts.%d.up_proj", ffn_down_exps = "mlp.experts.%d.down_proj",
   ffn_gate_inp_shexp = "mlp.shared_expert_gate", ffn_gate_shexp = "mlp.shared_expert.gate_proj",
   ffn_up_shexp = "mlp.shared_expert.up_proj", ffn_down_shexp = "mlp.shared_expert.down_proj" }

-- family: the GGUF architecture, or mixtral for llama with experts. An
-- expert tensor's name has a %d for the expert.
local function hf_name(family, gguf)
   local globals = { ["token_embd.weight"] = "model.embed_tokens.weight",
      ["output_norm.weight"] = "model.norm.weight", ["output.weight"] = "lm_head.weight" }
   if globals[gguf] then return globals[gguf] end
   local l, part, suffix = gguf:match("^blk%.(%d+)%.([%w_]+)%.(%a+)$")
   if not l then return nil end
   local moe = (family == "mixtral" and MIXTRAL or family == "qwen2moe" and QWEN2MOE or {})[part]
   if moe then return string.format("model.layers.%s.%s.%s", l, moe, suffix) end
   local arch = family
   local gemma = arch == "gemma2" or arch == "gemma3"
   local hf = LAYER[part]
   if part == "ffn_norm" then hf = gemma and "pre_feedforward_layernorm" or "post_attention_layernorm" end
   if part == "ffn_up" then hf = arch == "phi3" and "mlp.gate_up_proj" or "mlp.up_proj" end
   return hf and string.format("model.layers.%s.%s.%s", l, hf, suffix)
end

-- The expert keys of MixtralConfig / Qwen2MoeConfig.
local function moe_config(c, family, k)
   if family == "mixtral" then
      c.num_local_experts, c.num_experts_per_tok = k("expert_count"), k("expert_used_count")
   elseif family == "qwen2moe" then
      c.num_experts, c.num_experts_per_tok = k("expert_count"), k("expert_used_count")
      c.moe_intermediate_size = k("expert_feed_forward_length")
         or c.intermediate_size // c.num_experts_per_tok
      c.shared_expert_intermediate_size = k("expert_shared_feed_forward_length") or c.intermediate_size
      c.norm_topk_prob, c.decoder_sparse_step = false, 1
      c.mlp_only_layers = setmetatable({}, { __jsontype = "array" })
      c.use_sliding_window = false
   end
end

-- config.json from the GGUF's keys; extra: keys to add or replace (what a
-- GGUF cannot say, such as llama3's rope_scaling parameters).
local function config(md, arch, tensors, extra, family)
   local function k(s) return md[arch .. "." .. s] end
   local gemma = arch == "gemma2" or arch == "gemma3"
   local c = {
      architectures = { CLASS[family] }, model_type = MODEL_TYPE[family] or family,
      hidden_size = k("embedding_length"), intermediate_size = k("feed_forward_length"),
      num_hidden_layers = k("block_count"), num_attention_heads = k("attention.head_count"),
      num_key_value_heads = k("attention.head_count_kv"),
      max_position_embeddings = k("context_length"), rms_norm_eps = k("attention.layer_norm_rms_epsilon"),
      rope_theta = k("rope.freq_base"), vocab_size = tensors["token_embd.weight"].info.shape[2],
      tie_word_embeddings = tensors["output.weight"] == nil, head_dim = k("attention.key_length"),
      bos_token_id = 1, eos_token_id = 2, torch_dtype = "float32",
   }
   if gemma then
      c.hidden_activation = "gelu_pytorch_tanh"
      c.query_pre_attn_scalar = c.head_dim or c.hidden_size // c.num_attention_heads
      c.attn_logit_softcapping = k("attn_logit_softcapping")
      c.final_logit_softcapping = k("final_logit_softcapping")
   else
      c.hidden_act = "silu"
   end
   c.sliding_window = k("attention.sliding_window")
   if arch == "gemma3" then c.rope_local_base_freq = k("rope.freq_base_swa"); c.sliding_window_pattern = 6 end
   local st = k("rope.scaling.type")
   if st == "linear" then c.rope_scaling = { rope_type = "linear", factor = k("rope.scaling.factor") }
   elseif st == "yarn" then
      c.rope_scaling = { rope_type = "yarn", factor = k("rope.scaling.factor"),
         original_max_position_embeddings = k("rope.scaling.original_context_length") }
   end
   if tensors["rope_factors_long.weight"] then
      c.original_max_position_embeddings = k("rope.scaling.original_context_length")
      c.rope_scaling = { type = "longrope",
         long_factor = floats(tensors["rope_factors_long.weight"].bytes),
         short_factor = floats(tensors["rope_factors_short.weight"].bytes) }
   end
   if arch == "qwen2" then c.attention_bias = true end
   moe_config(c, family, k)
   for key, v in pairs(extra or {}) do c[key] = v end
   if c.sliding_window and family == "llama" then c.architectures = { "MistralForCausalLM" } end
   return c
end

local ESIZE = { F32 = 4, F16 = 2, BF16 = 2 }

-- Writes a safetensors file of {name, bytes, shape, dtype} entries, data
-- by element size (largest first) then name, as the format's reference
-- writer lays it out (every tensor aligned for its type).
local function write_safetensors(path, list)
   for _, t in ipairs(list) do t.dtype = t.dtype or "F32" end   -- callers may leave F32 implied
   table.sort(list, function(a, b)
      local ea, eb = ESIZE[a.dtype], ESIZE[b.dtype]
      if ea ~= eb then return ea > eb end
      return a.name < b.name
   end)
   local header, off, data = { __metadata__ = { format = "pt" } }, 0, {}
   for i, t in ipairs(list) do
      header[t.name] = { dtype = t.dtype, shape = t.shape, data_offsets = { off, off + #t.bytes } }
      off = off + #t.bytes
      data[i] = t.bytes
   end
   local h = dkjson.encode(header)
   h = h .. string.rep(" ", (8 - #h % 8) % 8)
   local f = assert(io.open(path, "wb"))
   f:write(string.pack("<I8", #h), h, table.concat(data))
   f:close()
end
M.write_safetensors = write_safetensors   -- also hf_folder_bert's writer

-- A stacked expert tensor (GGUF ne [cols, rows, n_expert]) as n_expert
-- entries of (rows, cols), expert e under hf:format(e).
local function unstack(list, hf, t, dtype, bytes)
   local cols, rows, n = t.info.shape[1], t.info.shape[2], t.info.shape[3]
   local each = #bytes // n
   for e = 0, n - 1 do
      list[#list + 1] = { name = hf:format(e), bytes = bytes:sub(e * each + 1, (e + 1) * each),
         shape = { rows, cols }, dtype = dtype }
   end
end

-- export(gguf, dir, opts) -> dir. opts: tokenizer = path of the
-- tokenizer.json the GGUF was made with (copied); config = extra
-- config.json keys; shards = number of safetensors files (default 2, with
-- model.safetensors.index.json; 1: model.safetensors); tensors =
-- function(list) that may change the {name, bytes, shape, dtype} entries
-- before they are written (bad folders for specs).
function M.export(gguf, dir, opts)
   opts = opts or {}
   local tensors, md = M.gguf_tensors(gguf)
   local arch = md["general.architecture"]
   local family = (arch == "llama" and md["llama.expert_count"]) and "mixtral" or arch
   assert(os.execute("mkdir -p '" .. dir .. "'"))
   local list = {}
   for name, t in pairs(tensors) do
      local ty = assert(DTYPES[t.info.dtype], "hf_folder.export: " .. name .. " is " .. t.info.dtype
         .. " (F32, F16, BF16 or Q8_0 expected)")
      local hf = hf_name(family, name)
      if hf then
         local shape, bytes = {}, ty[3] and ty[3](t.bytes) or t.bytes
         for i = #t.info.shape, 1, -1 do
            if t.info.shape[i] ~= 1 or i == 1 then shape[#shape + 1] = t.info.shape[i] end
         end
         local heads = name:match("attn_q%.weight$") and md[arch .. ".attention.head_count"]
            or name:match("attn_k%.weight$") and md[arch .. ".attention.head_count_kv"]
         if heads and arch == "llama" then bytes = unpermute(bytes, shape[1], shape[2], heads, ty[2]) end
         if (arch == "gemma2" or arch == "gemma3") and name:match("_norm%.weight$") then
            local v = floats(bytes)
            for i = 1, #v do v[i] = v[i] - 1 end
            bytes = pack_floats(v)
         end
         if name:match("ffn_gate_inp_shexp") then shape = { 1, shape[1] } end   -- nn.Linear(n_embd, 1)
         if name:match("_exps%.weight$") then unstack(list, hf, t, ty[1], bytes)
         else list[#list + 1] = { name = hf, bytes = bytes, shape = shape, dtype = ty[1] } end
      end
   end
   if opts.tensors then opts.tensors(list) end
   local cfg = config(md, arch, tensors, opts.config, family)
   local function write(name, text)
      local f = assert(io.open(dir .. "/" .. name, "wb"))
      f:write(text)
      f:close()
   end
   write("config.json", dkjson.encode(cfg, { indent = true }))
   local shards = opts.shards or 2
   if shards == 1 then
      write_safetensors(dir .. "/model.safetensors", list)
   else
      table.sort(list, function(a, b) return a.name < b.name end)
      local parts, map = {}, {}
      for i, t in ipairs(list) do
         local s = (i - 1) * shards // #list + 1
         parts[s] = parts[s] or {}
         table.insert(parts[s], t)
         map[t.name] = string.format("model-%05d-of-%05d.safetensors", s, shards)
      end
      for s = 1, shards do
         write_safetensors(dir .. "/" .. string.format("model-%05d-of-%05d.safetensors", s, shards), parts[s])
      end
      write("model.safetensors.index.json", dkjson.encode({ metadata = {}, weight_map = map }))
   end
   local src = assert(io.open(assert(opts.tokenizer, "hf_folder.export: opts.tokenizer"), "rb"))
   write("tokenizer.json", src:read("a"))
   src:close()
   write("tokenizer_config.json", dkjson.encode({
      add_bos_token = false, add_eos_token = false, bos_token = "<|im_start|>",
      eos_token = "<|im_end|>", pad_token = "<|im_end|>", unk_token = "<|endoftext|>",
      chat_template = M.CHATML, tokenizer_class = "GPT2Tokenizer", model_max_length = 2048 }))
   return dir
end

-- Tensor names whose bytes, type or shape differ between two GGUFs (or
-- that exist in one only), sorted: {} when the files carry the same tensors.
function M.tensor_diff(a, b)
   local ta, tb = M.gguf_tensors(a), M.gguf_tensors(b)
   local bad = {}
   for k, v in pairs(ta) do
      local w = tb[k]
      if not w or w.bytes ~= v.bytes or w.info.dtype ~= v.info.dtype
         or table.concat(w.info.shape, ",") ~= table.concat(v.info.shape, ",") then
         bad[#bad + 1] = k
      end
   end
   for k in pairs(tb) do if not ta[k] then bad[#bad + 1] = k end end
   table.sort(bad)
   return bad
end

-- The largest |difference| between two loaded models' logits over ids.
function M.logits_diff(a, b, ids)
   return (a:forward(ids, nil, { all = true }) - b:forward(ids, nil, { all = true })):abs():max()
end

return M
