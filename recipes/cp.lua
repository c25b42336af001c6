-- give a model another name (an alias that follows it; nothing is copied on disk)
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub cp NAME[:TAG] NEW
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("cp", "Make NEW an alias of NAME (NAME:TAG pins that tag).")
p:argument("source", "NAME or NAME:TAG")
p:argument("new", "the new name")
local a, code = cli.parse(p, arg)
if not a then return code end

local reg, err = mh.models.open()
if not reg then
   return cli.fail("cp", err)
end
-- a bad name raises (a usage error); an unknown model returns nil, msg
local called, done, msg = pcall(reg.alias, reg, a.source, a.new)
local fine = called and done
if not called then msg = done end
reg:close()
if not fine then
   return cli.fail("cp", (tostring(msg):gsub("^registry%.", "")))
end
io.write(string.format("%s -> %s\n", a.new, a.source))
return 0
