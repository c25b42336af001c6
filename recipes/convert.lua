-- convert a Hugging Face model folder (safetensors) to GGUF, optionally quantized
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub convert HF_FOLDER OUT.gguf [--type T] [--name NAME] [-q]
local cli = require "moonhub.cli"
local mh = require "moonhub"
local progress = require "moonhub.progress"

local p = cli.parser("convert",
   "Write a GGUF model from a Hugging Face folder (config.json, tokenizer.json, "
   .. "tokenizer_config.json, *.safetensors), with the metadata keys and tensor names "
   .. "llama.cpp's convert_hf_to_gguf.py writes. Architectures: llama, mistral, qwen2, "
   .. "qwen3, gemma2, gemma3 (text), phi3, mixtral, qwen2_moe (experts stacked as llama.cpp "
   .. "stacks them); embedding models: bert (BertModel) and nomic-bert (NomicBertModel), with "
   .. "sentence-transformers' pooling. Quantized types use the same rules as "
   .. "`moonhub quantize`, byte for byte.")
p:argument("folder", "the Hugging Face model folder (or a registered NAME[:TAG] that is one)")
p:argument("output", "the GGUF file to write (written to a temporary name, then renamed)")
p:option("-t --type", "tensor type: " .. table.concat(mh.convert.types, ", ")):default("F16")
p:option("--name", "general.name (default: the folder's name)")
p:flag("-q --quiet", "no progress output")

local a, code = cli.parse(p, arg)
if not a then return code end

local known = {}
for _, t in ipairs(mh.convert.types) do known[t:upper()] = true end
if not known[a.type:upper()] then
   return cli.fail("convert", "unknown type '" .. a.type .. "' (expected one of "
      .. table.concat(mh.convert.types, ", ") .. ")", 2)
end

local folder = a.folder
local st0 = require("moonhub.fs").stat(folder)
if not st0 then   -- not a path: perhaps a registered name
   local resolved = mh.models.resolve(folder)
   if resolved then folder = resolved end
end

local bar = progress.new("convert " .. a.type:upper(), { quiet = a.quiet, unit = "tensors", from = 0 })
local st, err = mh.convert(folder, a.output, { type = a.type, name = a.name, progress = bar })
bar(nil, nil, true)
if not st then
   return cli.fail("convert", err)
end

local parts = cli.type_counts(st.types)
io.write(string.format("converted %s -> %s (%s, %s)\n", a.folder, a.output, st.arch, st.type))
io.write(string.format("  tensors   %d: %s\n", st.tensors, table.concat(parts, ", ")))
io.write(string.format("  vocab     %d\n", st.vocab))
io.write(string.format("  file      %.2f MiB in %.2f s\n", st.file_bytes / (1024 * 1024), st.seconds))
return 0
