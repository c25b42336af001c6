-- tests/helpers/hf_folder.lua: the inverse of moonhub convert, for specs.
-- Writes a Hugging Face folder (config.json, tokenizer.json,
-- tokenizer_config.json, safetensors shards + index) from an F32 GGUF made
-- by `moonhub create`, undoing what llama.cpp's converter does (llama q/k
-- row permutation, Gemma's 1 + w norms, rope factor tensors back into
-- rope_scaling). Written apart from convert.c on purpose: the round trip
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

-- GGUF llama rows pair (2i, 2i+1) per head; HF rows pair (i, i + d/2).
local function unpermute(bytes, rows, cols, heads)
   local rb, hd = cols * 4, rows // heads
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
   gemma2 = "Gemma2ForCausalLM", gemma3 = "Gemma3ForCausalLM", phi3 = "Phi3ForCausalLM" }
local MODEL_TYPE = { gemma3 = "gemma3_text" }

local function hf_name(arch, gguf)
   local globals = { ["token_embd.weight"] = "model.embed_tokens.weight",
      ["output_norm.weight"] = "model.norm.weight", ["output.weight"] = "lm_head.weight" }
   if globals[gguf] then return globals[gguf] end
   local l, part, suffix = gguf:match("^blk%.(%d+)%.([%w_]+)%.(%a+)$")
   if not l then return nil end
   local gemma = arch == "gemma2" or arch == "gemma3"
   local hf = LAYER[part]
   if part == "ffn_norm" then hf = gemma and "pre_feedforward_layernorm" or "post_attention_layernorm" end
   if part == "ffn_up" then hf = arch == "phi3" and "mlp.gate_up_proj" or "mlp.up_proj" end
   return hf and string.format("model.layers.%s.%s.%s", l, hf, suffix)
end

-- config.json from the GGUF's keys; extra: keys to add or replace (what a
-- GGUF cannot say, such as llama3's rope_scaling parameters).
local function config(md, arch, tensors, extra)
   local function k(s) return md[arch .. "." .. s] end
   local gemma = arch == "gemma2" or arch == "gemma3"
   local c = {
      architectures = { CLASS[arch] }, model_type = MODEL_TYPE[arch] or arch,
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
   for key, v in pairs(extra or {}) do c[key] = v end
   if c.sliding_window and arch == "llama" then c.architectures = { "MistralForCausalLM" } end
   return c
end

-- Writes a safetensors file of {name, bytes, shape} entries (F32), data in
-- name order, as the format's reference writer lays it out.
local function write_safetensors(path, list)
   table.sort(list, function(a, b) return a.name < b.name end)
   local header, off, data = { __metadata__ = { format = "pt" } }, 0, {}
   for i, t in ipairs(list) do
      header[t.name] = { dtype = "F32", shape = t.shape, data_offsets = { off, off + #t.bytes } }
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

-- export(gguf, dir, opts) -> dir. opts: tokenizer = path of the
-- tokenizer.json the GGUF was made with (copied); config = extra
-- config.json keys; shards = number of safetensors files (default 2, with
-- model.safetensors.index.json; 1: model.safetensors).
function M.export(gguf, dir, opts)
   opts = opts or {}
   local tensors, md = M.gguf_tensors(gguf)
   local arch = md["general.architecture"]
   assert(os.execute("mkdir -p '" .. dir .. "'"))
   local list = {}
   for name, t in pairs(tensors) do
      assert(t.info.dtype == "f32", "hf_folder.export needs an F32 GGUF, " .. name .. " is " .. t.info.dtype)
      local hf = hf_name(arch, name)
      if hf then
         local shape, bytes = {}, t.bytes
         for i = #t.info.shape, 1, -1 do
            if t.info.shape[i] ~= 1 or i == 1 then shape[#shape + 1] = t.info.shape[i] end
         end
         local heads = name:match("attn_q%.weight$") and md[arch .. ".attention.head_count"]
            or name:match("attn_k%.weight$") and md[arch .. ".attention.head_count_kv"]
         if heads and arch == "llama" then bytes = unpermute(bytes, shape[1], shape[2], heads) end
         if (arch == "gemma2" or arch == "gemma3") and name:match("_norm%.weight$") then
            local v = floats(bytes)
            for i = 1, #v do v[i] = v[i] - 1 end
            bytes = pack_floats(v)
         end
         list[#list + 1] = { name = hf, bytes = bytes, shape = shape }
      end
   end
   local cfg = config(md, arch, tensors, opts.config)
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

return M
