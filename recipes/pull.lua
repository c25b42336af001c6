-- download a model from the Hugging Face Hub (GGUF, or safetensors it can convert) and register it
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub pull [hf.co/]ORG/NAME[:QUANT] | [hf.co/]ORG/NAME/FILE.gguf [--name N] [--tag T] [--revision R]
--        [--convert [--type T]]
local cli = require "moonhub.cli"
local mh = require "moonhub"
local progress = require "moonhub.progress"

local p = cli.parser("pull", "Download a model from the Hugging Face Hub, verify its sha256 "
   .. "and register it. Picks Q4_K_M by default (then Q4_K_S, Q5_K_M, Q8_0, the smallest). "
   .. "HF_TOKEN is sent when set; HF_ENDPOINT (or MOONHUB_HF_ENDPOINT) points at a mirror.")
p:argument("model", "ORG/NAME, ORG/NAME:QUANT or ORG/NAME/FILE.gguf, each may start with hf.co/ "
   .. "(hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M)")
p:option("--name", "registry name (default: the file name without .gguf, quant suffix and -GGUF, as import)")
p:option("--tag", "registry tag (default: the quant type, as import)")
p:option("--revision", "branch, tag or commit on the Hub", "main")
p:flag("-q --quiet", "no progress output")
p:flag("--convert", "a safetensors repo (no GGUF): convert the folder to GGUF after the download "
   .. "and register it beside the folder (without it, a terminal asks; elsewhere the command is printed)")
p:option("--type", "the GGUF type --convert writes: " .. table.concat(mh.convert.types, ", "), "F16")

local a, code = cli.parse(p, arg)
if not a then return code end
local types = {}
for _, t in ipairs(mh.convert.types) do types[t:upper()] = true end
if not types[a.type:upper()] then   -- checked before any download
   return cli.fail("pull", "unknown --type '" .. a.type .. "' (expected one of "
      .. table.concat(mh.convert.types, ", ") .. ")", 2)
end

local row, err = mh.models.pull(a.model, {
   name = a.name, tag = a.tag, revision = a.revision,
   progress = not a.quiet and function(label) return progress.new(label) end or nil,
   log = function(msg) if not a.quiet then io.stderr:write(msg, "\n") end end,
})
if not row then
   return cli.fail("pull", err)
end
io.write(string.format("pulled %s:%s (%s, %s) -> %s\n", row.model, row.tag, row.quant or row.format,
   mh.hub.human(row.size or 0), row.path))
if row.format ~= "safetensors" then return 0 end

-- ===== a safetensors folder: offer the GGUF conversion =====
local T = a.type:upper()
local out = row.path:gsub("/+$", "") .. "-" .. T .. ".gguf"
local fs = require "moonhub.fs"
local cmd = string.format("moonhub convert %s %s --type %s", row.path, out, T)
local want = a.convert
if not want and fs.isatty(0) and fs.isatty(1) then
   io.write(string.format("%s has no GGUF file. Convert it to GGUF (%s) now? [y/N] ", a.model, T))
   io.flush()
   local answer = io.read("l") or ""
   want = answer:match("^%s*[yY]") ~= nil
end
if not want then
   io.write("to run it with llama.cpp or share it as one file, convert it to GGUF:\n  ", cmd, "\n")
   return 0
end
local bar = progress.new("convert " .. T, { quiet = a.quiet, unit = "tensors", from = 0 })
local st, cerr = mh.convert(row.path, out, { type = T, name = row.model, progress = bar })
bar(nil, nil, true)
if not st then
   return cli.fail("pull", "the download is registered as " .. row.model .. ":" .. row.tag
      .. ", but converting it failed: " .. tostring(cerr))
end
local g, ierr = mh.models.import(out, { name = row.model, tag = T, parent = row.id })
if not g then
   os.remove(out)
   return cli.fail("pull", "converted, but registering " .. out .. " failed: " .. tostring(ierr))
end
io.write(string.format("converted %s:%s -> %s:%s (%s, %s) -> %s\n", row.model, row.tag, g.model, g.tag,
   st.arch, mh.hub.human(st.file_bytes), out))
return 0
