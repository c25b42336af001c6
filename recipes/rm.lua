-- remove a model, one of its tags or an alias from the registry (and the files pull downloaded)
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub rm NAME[:TAG] ...
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("rm", "Remove models from the registry. Files that pull or import "
   .. "--copy/--link put under $MOONHUB_HOME/models are deleted; files registered in place are kept.")
p:argument("models", "NAME, NAME:TAG, an alias or a pulled model's Hub reference"):args("+")
local a, code = cli.parse(p, arg)
if not a then return code end

local status = 0
for _, ref in ipairs(a.models) do
   local out, err = mh.models.remove(ref)
   if not out then
      status = cli.fail("rm", err)
   elseif out.alias then
      io.write("removed alias ", out.alias, "\n")
   else
      io.write("removed ", ref, "\n")
      for _, path in ipairs(out.deleted) do io.write("  deleted ", path, "\n") end
      for _, path in ipairs(out.kept) do io.write("  kept ", path, " (not ours)\n") end
   end
end
return status
