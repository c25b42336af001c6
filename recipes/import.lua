-- register a local GGUF file or Hugging Face folder in the registry
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub import PATH [--name N] [--tag T] [--link | --copy] [--parent NAME[:TAG]]
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("import", "Register a local model. By default the registry points at "
   .. "the file where it is (rm never deletes it); --link or --copy put a symlink or a copy "
   .. "under $MOONHUB_HOME/models.")
p:argument("path", "a .gguf file or a folder with config.json and safetensors")
p:option("--name", "registry name (default: the file name without .gguf, quant suffix and -GGUF)")
p:option("--tag", "registry tag (default: the quant type; `latest` always names the newest version)")
p:option("--parent", "the version this one derives from (NAME[:TAG])")
p:mutex(p:flag("--link", "symlink it into $MOONHUB_HOME/models"),
        p:flag("--copy", "copy it into $MOONHUB_HOME/models"))
local a, code = cli.parse(p, arg)
if not a then return code end

local row, err = mh.models.import(a.path, { name = a.name, tag = a.tag, parent = a.parent,
   mode = a.link and "link" or a.copy and "copy" or "in-place" })
if not row then error(err, 0) end    -- the host prints "moonhub import: msg" once
io.write(string.format("imported %s:%s (%s, %s) -> %s\n", row.model, row.tag, row.quant or row.format,
   mh.hub.human(row.size or 0), row.path))
return 0
