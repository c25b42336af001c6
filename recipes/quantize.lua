-- quantize a GGUF model to Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K, F16, BF16 or F32
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub quantize IN.gguf OUT.gguf TYPE [-q]
local cli = require "moonhub.cli"
local mh = require "moonhub"
local progress = require "moonhub.progress"

local p = cli.parser("quantize",
   "Convert a GGUF model to another quantization, choosing each tensor's type as llama-quantize does.")
p:argument("input", "the model to read (a GGUF file or a registered NAME[:TAG])")
p:argument("output", "the file to write (written to a temporary name, then renamed)")
p:argument("type", "target type: " .. table.concat(mh.quantize.types, ", "))
p:flag("-q --quiet", "no progress output")

local a, code = cli.parse(p, arg)
if not a then return code end

local known = {}
for _, t in ipairs(mh.quantize.types) do known[t:upper()] = true end
if not known[a.type:upper()] then
   return cli.fail("quantize", "unknown type '" .. a.type .. "' (expected one of "
      .. table.concat(mh.quantize.types, ", ") .. ")", 2)
end

local input, rerr = mh.models.resolve(a.input)   -- a registry name or a path
if not input then
   return cli.fail("quantize", rerr)
end
local bar = progress.new("quantize " .. a.type:upper(), { quiet = a.quiet, from = 0 })
local st, err = mh.quantize.file(input, a.output, a.type, bar)
bar(nil, nil, true)
if not st then
   return cli.fail("quantize", err)
end

local parts = cli.type_counts(st.types)
local mib = 1024 * 1024
io.write(string.format("quantized %s -> %s (%s)\n", a.input, a.output, st.type))
io.write(string.format("  tensors   %d: %s%s\n", st.tensors, table.concat(parts, ", "),
   st.fallbacks > 0 and string.format(" (%d fell back: rows not a multiple of the block)", st.fallbacks) or ""))
io.write(string.format("  size      %.2f MiB -> %.2f MiB (%.1f%%), file %.2f MiB\n",
   st.bytes_in / mib, st.bytes_out / mib, 100 * st.bytes_out / math.max(st.bytes_in, 1),
   st.file_bytes / mib))
io.write(string.format("  time      %.2f s\n", st.seconds))
return 0
