-- download a model from the Hugging Face Hub (GGUF quant or safetensors folder) and register it
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub pull [hf.co/]ORG/NAME[:QUANT] | [hf.co/]ORG/NAME/FILE.gguf [--name N] [--tag T] [--revision R]
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

local a, code = cli.parse(p, arg)
if not a then return code end

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
return 0
