-- moonhub.convert: a Hugging Face model folder (config.json, tokenizer.json
-- + tokenizer_config.json, safetensors shards) to a GGUF file with the keys
-- and tensor names llama.cpp's convert_hf_to_gguf.py writes.
-- Layer: lua/moonhub (wraps moonhub.core.gguf_write; moonhub.fs for paths).
--
--   local st = assert(mh.convert("SmolLM2-135M/", "smol-Q8_0.gguf", { type = "Q8_0" }))
--   print(st.arch, st.tensors, st.types.q8_0, st.file_bytes)
local core = require "moonhub.core.gguf_write"
local fs = require "moonhub.fs"

local M = {}

-- The accepted types (as mh.quantize): F32, F16, BF16, Q8_0, Q4_K_M, ...
M.types = core.ftypes()

local known = {}
for _, t in ipairs(M.types) do known[t:upper()] = t end

-- folder(dir, out, opts?) -> stats | nil, msg
-- opts: type = "F16" (default), name = general.name (default: the folder's
-- name), progress = function(done, total) in tensors.
-- stats: {arch, tensors, vocab, types = {f16 = n, ...}, file_bytes, seconds, type}
-- The file is written to a temporary name beside out and renamed when
-- complete; after any error there is no out (an old one is left as it was).
function M.folder(dir, out, opts)
   for i, v in ipairs({ dir, out }) do
      if type(v) ~= "string" or v == "" then
         error(string.format("convert: argument #%d must be a non-empty path, got %s", i, type(v)), 2)
      end
   end
   opts = opts or {}
   if type(opts) ~= "table" then error("convert: opts must be a table, got " .. type(opts), 2) end
   local t = opts.type or "F16"
   if type(t) ~= "string" or not known[t:upper()] then
      error("convert: opts.type must be one of " .. table.concat(M.types, ", ") .. ", got "
         .. tostring(t), 2)
   end
   if opts.progress ~= nil and type(opts.progress) ~= "function" then
      error("convert: opts.progress must be a function(done, total)", 2)
   end
   if opts.name ~= nil and type(opts.name) ~= "string" then
      error("convert: opts.name must be a string", 2)
   end
   local st = fs.stat(dir)
   if not st or st.type ~= "dir" then
      return nil, dir .. " is not a folder (convert reads a Hugging Face model folder)"
   end
   local name = opts.name or dir:gsub("/+$", ""):match("([^/]+)$")
   return core.convert(dir, out, known[t:upper()], opts.progress, name)
end

return setmetatable(M, { __call = function(_, ...) return M.folder(...) end })
