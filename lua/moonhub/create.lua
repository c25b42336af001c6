-- moonhub.create: write a randomly initialized model as GGUF
-- (llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, qwen2moe, experts;
-- encoders bert, nomic-bert)
-- (real shapes of known models, or a config), for tests and benchmarks.
-- Layer: lua/moonhub (wraps moonhub.core.gguf_write; dkjson for config files).
--
--   local st = assert(mh.create.model({preset = "smollm2-135m", type = "Q8_0",
--      tokenizer = "vocab.gguf", seed = 1, out = "smol-random.gguf"}))
local core = require "moonhub.core.gguf_write"

local M = {}

-- Shapes of public models (weights are random; only the shapes are real).
-- n_vocab is what the model has; the tokenizer's own size is used when it
-- differs (the result says so in stats.vocab_changed).
M.presets = {
   tiny = { arch = "llama", n_layer = 2, n_embd = 64, n_ff = 128, n_head = 4, n_head_kv = 2,
            n_vocab = 259, n_ctx = 512, rope_base = 10000, rms_eps = 1e-5, tied = true },
   ["smollm2-135m"] = { arch = "llama", n_layer = 30, n_embd = 576, n_ff = 1536, n_head = 9,
            n_head_kv = 3, n_vocab = 49152, n_ctx = 8192, rope_base = 1e5, rms_eps = 1e-5,
            tied = true },
   ["smollm2-360m"] = { arch = "llama", n_layer = 32, n_embd = 960, n_ff = 2560, n_head = 15,
            n_head_kv = 5, n_vocab = 49152, n_ctx = 8192, rope_base = 1e5, rms_eps = 1e-5,
            tied = true },
   ["qwen2.5-0.5b"] = { arch = "qwen2", n_layer = 24, n_embd = 896, n_ff = 4864, n_head = 14,
            n_head_kv = 2, n_vocab = 151936, n_ctx = 32768, rope_base = 1e6, rms_eps = 1e-6,
            tied = true, qkv_bias = true },
   ["llama-3.2-1b"] = { arch = "llama", n_layer = 16, n_embd = 2048, n_ff = 8192, n_head = 32,
            n_head_kv = 8, n_vocab = 128256, n_ctx = 131072, rope_base = 5e5, rms_eps = 1e-5,
            tied = true, rope_factor = 32, rope_low_freq = 1, rope_high_freq = 4,
            rope_orig_ctx = 8192 },
   ["tinyllama-1.1b"] = { arch = "llama", n_layer = 22, n_embd = 2048, n_ff = 5632, n_head = 32,
            n_head_kv = 4, n_vocab = 32000, n_ctx = 2048, rope_base = 10000, rms_eps = 1e-5,
            tied = false },
   ["mistral-7b-v0.1"] = { arch = "llama", n_layer = 32, n_embd = 4096, n_ff = 14336, n_head = 32,
            n_head_kv = 8, n_vocab = 32000, n_ctx = 32768, rope_base = 10000, rms_eps = 1e-5,
            tied = false, n_swa = 4096 },
   ["qwen3-0.6b"] = { arch = "qwen3", n_layer = 28, n_embd = 1024, n_ff = 3072, n_head = 16,
            n_head_kv = 8, head_dim = 128, n_vocab = 151936, n_ctx = 40960, rope_base = 1e6,
            rms_eps = 1e-6, tied = true },
   ["gemma-2-2b"] = { arch = "gemma2", n_layer = 26, n_embd = 2304, n_ff = 9216, n_head = 8,
            n_head_kv = 4, head_dim = 256, n_vocab = 256000, n_ctx = 8192, rope_base = 10000,
            rms_eps = 1e-6, tied = true, n_swa = 4096, attn_softcap = 50, final_softcap = 30 },
   ["gemma-3-1b"] = { arch = "gemma3", n_layer = 26, n_embd = 1152, n_ff = 6912, n_head = 4,
            n_head_kv = 1, head_dim = 256, n_vocab = 262144, n_ctx = 32768, rope_base = 1e6,
            rope_base_swa = 10000, rms_eps = 1e-6, tied = true, n_swa = 512 },
   ["phi-3.5-mini"] = { arch = "phi3", n_layer = 32, n_embd = 3072, n_ff = 8192, n_head = 32,
            n_head_kv = 32, n_vocab = 32064, n_ctx = 131072, rope_base = 10000, rms_eps = 1e-5,
            tied = false, longrope = true, rope_orig_ctx = 4096, n_swa = 262144 },
}

-- Tiny shapes of each architecture for tests (tests/fixtures/arch holds
-- float64 reference logits for them): head_dim 32 so q8_0 KV caches work,
-- weights wide enough (std) and windows/caps small enough that every
-- feature changes the logits of a 12-token prompt.
local tiny = { n_layer = 2, n_embd = 64, n_ff = 128, n_head = 2, n_head_kv = 1, n_vocab = 259,
   n_ctx = 512, rope_base = 10000, rms_eps = 1e-6, tied = true, std = 0.25, norm_std = 0.1 }
local function tiny_of(t)
   local c = {}
   for k, v in pairs(tiny) do c[k] = v end
   for k, v in pairs(t) do c[k] = v end
   return c
end
M.presets["tiny-qwen3"] = tiny_of({ arch = "qwen3", n_head = 4, n_head_kv = 2, head_dim = 32,
   rope_base = 1e6 })
M.presets["tiny-gemma2"] = tiny_of({ arch = "gemma2", n_layer = 26, n_swa = 5, attn_softcap = 2,
   final_softcap = 3 })   -- 26 layers: llama.cpp runs gemma2 only at its 2b/9b/27b depths
M.presets["tiny-gemma3"] = tiny_of({ arch = "gemma3", n_layer = 6, n_head = 4, n_head_kv = 2,
   head_dim = 32, n_swa = 4, rope_base = 1e6, rope_base_swa = 10000, rope_scale_linear = 8 })
M.presets["tiny-phi3"] = tiny_of({ arch = "phi3", n_head_kv = 2, tied = false, longrope = true,
   rope_orig_ctx = 256, rms_eps = 1e-5, n_swa = 8 })   -- llama.cpp wants a window for phi3
-- tiny-phi3 at k-quant width (256-multiple rows, std scaled so n_embd*std^2
-- matches the 64-wide presets): the Q4_K_M reference fixture
M.presets["tiny-phi3-k"] = tiny_of({ arch = "phi3", n_embd = 256, n_ff = 512, n_head = 8,
   n_head_kv = 2, std = 0.125, tied = false, longrope = true, rope_orig_ctx = 256, rms_eps = 1e-5,
   n_swa = 8 })
M.presets["tiny-llama3"] = tiny_of({ arch = "llama", rope_base = 5e5, rope_factor = 8,
   rope_low_freq = 1, rope_high_freq = 4, rope_orig_ctx = 64, rms_eps = 1e-5 })
M.presets["tiny-llama-linear"] = tiny_of({ arch = "llama", rope_scale_linear = 4, rms_eps = 1e-5 })
M.presets["tiny-llama-yarn"] = tiny_of({ arch = "llama", rope_base = 1e4, rope_scale_yarn = 4,
   rope_orig_ctx = 64, rms_eps = 1e-5 })
M.presets["tiny-mistral-swa"] = tiny_of({ arch = "llama", n_swa = 5, rms_eps = 1e-5 })

-- ===== encoder embedding models (bert, nomic-bert) =====
-- rms_eps is their LayerNorm epsilon, pooling the file's pooling_type
-- (1 mean, 2 CLS). Without --tokenizer they get a built-in ~200-token
-- WordPiece vocabulary (create_bert.c); pass a BERT vocab GGUF such as
-- ../shared/vectors/tokenizer/ggml-vocab-bert-bge.gguf for the real 30522.
M.presets["bge-small"] = { arch = "bert", n_layer = 12, n_embd = 384, n_ff = 1536, n_head = 12,
   n_head_kv = 12, n_vocab = 30522, n_ctx = 512, rms_eps = 1e-12, pooling = 2 }
M.presets["nomic-embed-text"] = { arch = "nomic-bert", n_layer = 12, n_embd = 768, n_ff = 3072,
   n_head = 12, n_head_kv = 12, n_vocab = 30522, n_ctx = 2048, rope_base = 1000, rms_eps = 1e-12,
   pooling = 1 }
M.presets["tiny-bert"] = tiny_of({ arch = "bert", n_vocab = 203, tied = false, n_head = 4, n_head_kv = 4,
   n_ctx = 64, rms_eps = 1e-12, pooling = 2 })
M.presets["tiny-nomic-bert"] = tiny_of({ arch = "nomic-bert", n_vocab = 203, tied = false, n_head = 4,
   n_head_kv = 4, n_ctx = 64, rope_base = 1000, rms_eps = 1e-12, pooling = 1 })

-- Mixture-of-experts shapes (engine/model/moe.c). The tiny ones route a
-- 12-token prompt over 4 experts, top 2: Mixtral is llama with experts of
-- n_ff rows and renormalised weights; qwen2moe has narrower experts
-- (n_ff_exp) plus a sigmoid-gated shared expert (n_ff_shexp).
M.presets["tiny-mixtral"] = tiny_of({ arch = "llama", n_ff = 64, n_expert = 4, n_expert_used = 2,
   rms_eps = 1e-5 })
M.presets["tiny-qwen2moe"] = tiny_of({ arch = "qwen2moe", n_expert = 4, n_expert_used = 2,
   n_ff_exp = 32, n_ff_shexp = 64, qkv_bias = true, rope_base = 1e6,
   tied = false })   -- llama.cpp's qwen2moe needs output.weight
-- Qwen1.5-MoE-A2.7B's proportions scaled down for benchmarks: 16 experts
-- (top 4) a quarter as wide as the shared expert, 8 layers of width 512.
M.presets["qwen2moe-small"] = { arch = "qwen2moe", n_layer = 8, n_embd = 512, n_ff = 1536,
   n_head = 8, n_head_kv = 8, n_vocab = 151936, n_ctx = 8192, rope_base = 1e6, rms_eps = 1e-6,
   tied = false, qkv_bias = true, n_expert = 16, n_expert_used = 4, n_ff_exp = 384,
   n_ff_shexp = 1536 }

-- Sorted preset names.
function M.preset_names()
   local names = {}
   for k in pairs(M.presets) do names[#names + 1] = k end
   table.sort(names)
   return names
end

local function copy(t)
   local c = {}
   for k, v in pairs(t) do c[k] = v end
   return c
end

-- model_type -> arch (gemma3's multimodal config nests the text model)
local HF_ARCH = { llama = "llama", mistral = "llama", qwen2 = "qwen2", qwen3 = "qwen3",
   gemma2 = "gemma2", gemma3 = "gemma3", gemma3_text = "gemma3", phi3 = "phi3" }

-- Mixture-of-experts configs: MixtralConfig (llama with experts of
-- intermediate_size rows) and Qwen2MoeConfig (experts of
-- moe_intermediate_size rows plus a shared expert; its norm_topk_prob has no
-- GGUF key: llama.cpp never renormalises qwen2moe).
HF_ARCH.mixtral, HF_ARCH.qwen2_moe = "llama", "qwen2moe"
local function hf_moe(h, c, mt)
   if mt == "mixtral" then
      c.n_expert, c.n_expert_used = h.num_local_experts or 8, h.num_experts_per_tok or 2
   elseif mt == "qwen2_moe" then
      c.n_expert, c.n_expert_used = h.num_experts, h.num_experts_per_tok
      c.n_ff_exp, c.n_ff_shexp = h.moe_intermediate_size, h.shared_expert_intermediate_size
      c.qkv_bias = true
   end
   return c
end

-- The architecture-specific fields of a Hugging Face config (c: our config).
local function hf_extras(h, c, mt)
   local rs = type(h.rope_scaling) == "table" and h.rope_scaling or {}
   local rt = rs.rope_type or rs.type
   if rt == "llama3" then
      c.rope_factor, c.rope_low_freq = rs.factor, rs.low_freq_factor
      c.rope_high_freq, c.rope_orig_ctx = rs.high_freq_factor, rs.original_max_position_embeddings
   elseif rt == "linear" then
      c.rope_scale_linear = rs.factor
   elseif rt == "yarn" then
      c.rope_scale_yarn = rs.factor
      c.rope_orig_ctx = rs.original_max_position_embeddings or h.max_position_embeddings
   elseif rt == "longrope" or rt == "su" then
      c.longrope, c.rope_orig_ctx = true, h.original_max_position_embeddings or 4096
   elseif rt ~= nil and rt ~= "default" then
      return nil, "create: rope_scaling type '" .. tostring(rt) .. "' is not supported "
         .. "(llama3, linear, yarn, longrope)"
   end
   if h.head_dim and h.head_dim ~= c.n_embd // c.n_head then c.head_dim = h.head_dim end
   -- Qwen2/3 configs carry a sliding_window they do not use unless asked
   local swa = h.sliding_window
   if (mt == "qwen2" or mt == "qwen3" or mt == "qwen2_moe") and not h.use_sliding_window then swa = nil end
   if math.type(swa) == "integer" and swa > 0 then c.n_swa = swa end
   c.attn_softcap = h.attn_logit_softcapping or nil
   c.final_softcap = h.final_logit_softcapping or nil
   if c.arch == "gemma3" then c.rope_base_swa = h.rope_local_base_freq or 10000 end
   if c.arch == "gemma2" or c.arch == "gemma3" then
      c.rms_eps = h.rms_norm_eps or 1e-6
      c.tied = h.tie_word_embeddings ~= false    -- Gemma ties unless told otherwise
   end
   return c
end

-- from_hf(cfg) -> config: a Hugging Face config.json table (LlamaConfig,
-- MistralConfig, Qwen2/3Config, Gemma2/3Config, Phi3Config, MixtralConfig,
-- Qwen2MoeConfig) in this
-- module's terms; raw configs of ours pass through.
function M.from_hf(h)
   if type(h) ~= "table" then error("create.from_hf: config must be a table", 2) end
   if h.n_layer then return copy(h) end
   if h.model_type == "gemma3" and type(h.text_config) == "table" then
      local t = copy(h.text_config)
      t.model_type = "gemma3_text"
      t.vocab_size = t.vocab_size or h.vocab_size or 262208
      h = t
   end
   local mt = h.model_type or "llama"
   local arch = HF_ARCH[mt]
   if not arch then
      return nil, "create: model_type '" .. tostring(mt) .. "' is not supported (llama, mistral, "
         .. "qwen2, qwen3, gemma2, gemma3, phi3, mixtral, qwen2_moe)"
   end
   local c = {
      arch = arch,
      n_layer = h.num_hidden_layers, n_embd = h.hidden_size, n_ff = h.intermediate_size,
      n_head = h.num_attention_heads, n_head_kv = h.num_key_value_heads or h.num_attention_heads,
      n_vocab = h.vocab_size, n_ctx = h.max_position_embeddings or 2048,
      rope_base = h.rope_theta or 10000, rms_eps = h.rms_norm_eps or 1e-5,
      tied = h.tie_word_embeddings == true, qkv_bias = mt == "qwen2",
   }
   for _, k in ipairs({ "n_layer", "n_embd", "n_ff", "n_head", "n_vocab" }) do
      if math.type(c[k]) ~= "integer" then
         return nil, "create: config is missing an integer for " .. k
      end
   end
   return hf_extras(h, hf_moe(h, c, mt), mt)
end

-- load_config(path) -> config | nil, msg (a config.json file)
function M.load_config(path)
   local text, err = require("moonhub.fs").read(path)
   if not text then return nil, "create: " .. err end
   local obj, _, jerr = require("dkjson").decode(text)
   if type(obj) ~= "table" then
      return nil, "create: " .. path .. " is not a JSON object" .. (jerr and (": " .. jerr) or "")
   end
   return M.from_hf(obj)
end

-- model(opts) -> stats | nil, msg
-- opts: preset = NAME or config = TABLE|PATH; out = PATH (required);
-- type = "Q8_0" (default), seed = 0, tokenizer = vocab GGUF / tokenizer.json
-- (default: a built-in 259-token byte vocabulary), name = general.name,
-- progress = fn(done, total): tensor bytes written, after every chunk.
-- stats: {params, tensors, vocab, vocab_changed, types, file_bytes, seconds, type}
function M.model(opts)
   if type(opts) ~= "table" then error("create.model: expected an options table", 2) end
   if type(opts.out) ~= "string" or opts.out == "" then
      error("create.model: opts.out must be the output path", 2)
   end
   if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
      error("create.model: opts.seed must be an integer", 2)
   end
   local cfg, err
   if opts.preset then
      local p = M.presets[opts.preset]
      if not p then
         error("create.model: unknown preset '" .. tostring(opts.preset) .. "' (have: "
            .. table.concat(M.preset_names(), ", ") .. ")", 2)
      end
      cfg = copy(p)
      cfg.name = cfg.name or (opts.preset .. "-random")
   elseif type(opts.config) == "table" then
      cfg, err = M.from_hf(opts.config)
   elseif type(opts.config) == "string" then
      cfg, err = M.load_config(opts.config)
   else
      error("create.model: give opts.preset or opts.config", 2)
   end
   if not cfg then return nil, err end
   if opts.name then cfg.name = opts.name end
   cfg.name = cfg.name or "random"
   if opts.progress ~= nil and type(opts.progress) ~= "function" then
      error("create.model: opts.progress must be a function(done, total)", 2)
   end
   return core.create(cfg, { type = opts.type or "Q8_0", seed = opts.seed or 0,
      tokenizer = opts.tokenizer, progress = opts.progress }, opts.out)
end

return M
