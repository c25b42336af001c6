-- create a random-initialized model (real shapes of known models) as GGUF
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub create (--preset NAME | --config FILE.json) --out FILE.gguf [--type Q8_0] [-q] ...
local cli = require "moonhub.cli"
local mh = require "moonhub"
local progress = require "moonhub.progress"

local presets = mh.create.preset_names()
local p = cli.parser("create",
   "Write a model with random weights: for tests, benchmarks and memory planning. "
   .. "Presets: " .. table.concat(presets, ", ") .. ".")
p:mutex(
   p:option("--preset", "a known model shape"),
   p:option("--config", "a Hugging Face config.json (model_type llama, mistral, qwen2, qwen3, "
      .. "gemma2, gemma3, gemma3_text, phi3, mixtral, qwen2_moe)")
)
p:option("--out", "the GGUF file to write (required)")
p:option("--type", "weight type: " .. table.concat(mh.quantize.types, ", "), "Q8_0")
p:option("--tokenizer", "vocab GGUF or tokenizer.json to copy the tokenizer from "
   .. "(default: a built-in 259-token byte vocabulary)")
p:option("--seed", "random seed (same seed, same bytes)", "0"):convert(math.tointeger)
p:option("--name", "general.name to record")
p:flag("--list", "list the presets and exit")
p:flag("-q --quiet", "no progress output")

local a, code = cli.parse(p, arg)
if not a then return code end
if a.list then
   for _, n in ipairs(presets) do
      local c = mh.create.presets[n]
      io.write(string.format("  %-16s %s L%d d%d ff%d h%d kv%d vocab %d%s\n", n, c.arch, c.n_layer,
         c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.n_vocab, c.tied and " tied" or ""))
   end
   return 0
end
if not a.out then
   return cli.fail("create", "--out FILE.gguf is required\n" .. p:get_usage(), 2)
end
if not a.preset and not a.config then
   return cli.fail("create", "give --preset NAME or --config FILE.json\n" .. p:get_usage(), 2)
end
if a.preset and not mh.create.presets[a.preset] then
   return cli.fail("create", "unknown preset '" .. a.preset .. "' (have: " .. table.concat(presets, ", ") .. ")", 2)
end
local known = {}
for _, t in ipairs(mh.quantize.types) do known[t:upper()] = true end
if not known[a.type:upper()] then
   return cli.fail("create", "unknown type '" .. a.type .. "' (expected one of "
      .. table.concat(mh.quantize.types, ", ") .. ")", 2)
end
if not a.seed then
   return cli.fail("create", "--seed must be an integer", 2)
end

local bar = progress.new("create " .. (a.preset or a.config), { quiet = a.quiet, from = 0 })
local st, err = mh.create.model({ preset = a.preset, config = a.config, out = a.out,
   type = a.type, seed = a.seed, tokenizer = a.tokenizer, name = a.name, progress = bar })
bar(nil, nil, true)
if not st then
   return cli.fail("create", err)
end
local want = a.preset and mh.create.presets[a.preset].n_vocab
if st.vocab_changed and want then
   io.stderr:write(string.format("moonhub create: note: vocab size %d from the tokenizer "
      .. "(the preset has %d)\n", st.vocab, want))
end
local parts = {}
for t, n in pairs(st.types) do parts[#parts + 1] = string.format("%s x%d", t, n) end
table.sort(parts)
io.write(string.format("created %s: %.1fM params, vocab %d, %s, %.2f MiB in %.2f s\n", a.out,
   st.params / 1e6, st.vocab, table.concat(parts, ", "), st.file_bytes / 2^20, st.seconds))
return 0
