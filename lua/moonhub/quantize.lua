-- moonhub.quantize: convert a GGUF model to another quantization, with
-- llama.cpp's per-tensor type rules (Q4_K_M and Q5_K_M mixes, fallbacks).
-- Layer: lua/moonhub (wraps moonhub.core.gguf_write; moonhub.fs for file
-- identity). The output is written to a temp file next to it and renamed.
--
--   local st = assert(mh.quantize.file("m-F16.gguf", "m-Q4_K_M.gguf", "Q4_K_M"))
--   print(st.types.q4_K, st.bytes_in, st.bytes_out, st.seconds)
local core = require "moonhub.core.gguf_write"
local fs = require "moonhub.fs"

local M = {}

-- The accepted type names ("Q8_0", "Q4_K_M", ..., "F16", "BF16", "F32").
M.types = core.ftypes()

local known = {}
for _, t in ipairs(M.types) do known[t:upper()] = t end

-- file(input, output, type, progress?) -> stats | nil, msg
-- progress(done, total): input tensor bytes converted, after every chunk.
-- stats: {tensors, types = {q8_0 = n, ...}, bytes_in, bytes_out,
--         file_bytes, fallbacks, seconds, type}
function M.file(input, output, qtype, progress)
   for i, v in ipairs({ input, output }) do
      if type(v) ~= "string" or v == "" then
         error(string.format("quantize.file: argument #%d must be a non-empty path, got %s",
            i, type(v)), 2)
      end
   end
   if type(qtype) ~= "string" or not known[qtype:upper()] then
      error("quantize.file: type must be one of " .. table.concat(M.types, ", ")
         .. ", got " .. tostring(qtype), 2)
   end
   -- one inode under two names (the same path spelled twice, a symlink, a
   -- hard link): the rename would replace the model being read
   if fs.same_file(input, output) then
      return nil, string.format("%s is the input model itself; choose another output file", output)
   end
   if progress ~= nil and type(progress) ~= "function" then
      error("quantize.file: argument #4 must be a progress function(done, total)", 2)
   end
   return core.quantize(input, output, known[qtype:upper()], progress)
end

return setmetatable(M, { __call = function(_, ...) return M.file(...) end })
