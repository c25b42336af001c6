-- preset_json.lua: prints a `moonhub create` preset as JSON (for
-- make_arch_fixtures.sh; the reference reads its hyperparameters from it).
-- Layer: tests/tools (developer tool). Usage: moonhub run preset_json.lua NAME
local create = require "moonhub.create"
local name = arg and arg[1]
local p = create.presets[name or ""]
if not p then
   io.stderr:write("preset_json.lua: unknown preset '" .. tostring(name) .. "'\n")
   os.exit(1)
end
io.write(require("dkjson").encode(p), "\n")
