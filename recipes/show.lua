-- show a model's architecture, size, quantization, tokenizer, template and memory needs
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub show MODEL [--ctx N] [--json]
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("show", "Show what a model file is and what it needs.")
p:argument("model", "a registered NAME[:TAG], a GGUF file or a Hugging Face model folder")
p:option("--ctx", "context length for the memory estimate (default: the trained context)"):convert(math.tointeger)
p:option("--template", "show this template (name or .jinja file) as the one chat would use")
p:flag("--json", "print the facts as JSON")

local a, code = cli.parse(p, arg)
if not a then return code end

-- a registry name shows its registry record too (tags, source, lineage)
local path, entry = mh.models.resolve(a.model)
if not path then
   return cli.fail("show", entry)
end
local model, err = cli.try(mh.load, path, { ctx = a.ctx, mem_limit = math.huge })
if not model then
   return cli.fail("show", err)
end
local info, tok = model.info, model.tokenizer
local ctx = a.ctx or info.n_ctx_train      -- the estimate for the context the model was trained at
-- an adapter version loads its base: the facts are the base's, plus the adapter's file
local adapter_file
if model.adapter_version then adapter_file, path = path, model.path end

local function human(n)
   for _, u in ipairs({ { 2^30, "GiB" }, { 2^20, "MiB" }, { 2^10, "KiB" } }) do
      if n >= u[1] then return string.format("%.2f %s", n / u[1], u[2]) end
   end
   return n .. " B"
end

local function count(n)
   if n >= 1e9 then return string.format("%.2fB", n / 1e9) end
   if n >= 1e6 then return string.format("%.1fM", n / 1e6) end
   return string.format("%.1fK", n / 1e3)
end

-- tensor types by count, from the GGUF (a folder's safetensors are all float)
local types, meta = {}, {}
local gf = mh.gguf.open(path)
if gf then
   meta = gf.metadata
   for _, t in ipairs(gf:tensors()) do types[t.dtype] = (types[t.dtype] or 0) + 1 end
   gf:close()
end
local type_list = {}
for name, n in pairs(types) do type_list[#type_list + 1] = string.format("%s x%d", name, n) end
table.sort(type_list)

-- the template chat, generate --template auto and serve use (moonhub.template.for_model)
local choice, terr = mh.template.for_model(model, a.template)
if not choice then
   return cli.fail("show", terr, 2)
end
local template_name = choice.label

local facts = {
   path = path, adapter = adapter_file, name = meta["general.name"], arch = info.arch, params = info.n_params,
   layers = info.n_layer, embedding = info.n_embd, heads = info.n_head, kv_heads = info.n_head_kv,
   ffn = info.n_ff, vocab = info.n_vocab, context_length = info.n_ctx_train,
   rope_base = info.rope_base, tied_embeddings = info.tied_embeddings,
   tensor_types = type_list, weights_bytes = info.weight_bytes,
   tokenizer = tok.kind .. (tok.pre and tok.pre ~= "" and (" / " .. tok.pre) or ""),
   bos = tok.bos, eos = tok.eos, chat_template = template_name,
   memory = { ctx = ctx, kv_bytes = model:kv_bytes(ctx),
      total_bytes = model:memory_needed(ctx) },
}

local record, record_rows
if entry then record, record_rows = mh.models.describe(entry) end
facts.registry = record
-- a version made by training: its base, dataset version and run (moonhub.registry.lineage)
if entry then
   local reg = mh.models.open()
   local lin = reg and reg:lineage_summary(entry.id)
   if reg then reg:close() end
   if lin and (lin.kind or lin.run or lin.dataset) then
      facts.lineage = lin
      local kind = lin.kind == "adapter" and ("LoRA adapter (" .. entry.format .. ")")
         or lin.kind == "merged" and "merged model (LoRA folded into the base)" or "derived version"
      record_rows[#record_rows + 1] = { "trained", kind }
      record_rows[#record_rows + 1] = { "base model", lin.base or "-" }
      record_rows[#record_rows + 1] = { "dataset", lin.dataset or "-" }
      record_rows[#record_rows + 1] = { "run", lin.run or "-" }
   end
end

if a.json then
   io.write(require("dkjson").encode(facts, { indent = true }), "\n")
   return 0
end

local rows = {
   { "model", facts.path },
   { "name", facts.name or "-" },
   { "architecture", facts.arch },
   { "parameters", count(facts.params) .. string.format(" (%d)", facts.params) },
   { "shape", string.format("%d layers, %d embd, %d heads (%d kv), ffn %d, vocab %d",
      facts.layers, facts.embedding, facts.heads, facts.kv_heads, facts.ffn, facts.vocab) },
   { "context length", tostring(facts.context_length) },
   { "quantization", #type_list > 0 and table.concat(type_list, ", ") or "safetensors (float)" },
   { "weights", human(facts.weights_bytes) },
   { "tokenizer", string.format("%s (bos %s, eos %s)", facts.tokenizer, tostring(tok.bos), tostring(tok.eos)) },
   { "chat template", template_name },
   { "memory at ctx " .. ctx, string.format("%s (weights %s + KV cache %s + scratch)",
      human(facts.memory.total_bytes), human(facts.weights_bytes), human(facts.memory.kv_bytes)) },
}
if adapter_file then table.insert(rows, 2, { "adapter", adapter_file }) end
for _, r in ipairs(record_rows or {}) do rows[#rows + 1] = r end
for _, r in ipairs(rows) do io.write(string.format("  %-18s %s\n", r[1], r[2])) end
return 0
