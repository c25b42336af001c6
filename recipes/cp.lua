-- give a model another name (an alias that follows it; nothing is copied on disk)
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub cp NAME[:TAG] NEW  (NAME may be a pulled model's Hub reference)
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("cp", "Make NEW an alias of NAME (NAME:TAG pins that tag).")
p:argument("source", "NAME, NAME:TAG or the Hub reference of a pulled model (hf.co/ORG/REPO:QUANT)")
p:argument("new", "the new name")
local a, code = cli.parse(p, arg)
if not a then return code end

local reg, err = mh.models.open()
if not reg then
   return cli.fail("cp", err)
end
-- a bad name raises (a usage error); an unknown model returns nil, msg
local target = mh.models.registry_ref(reg, a.source)
local called, done, msg = pcall(reg.alias, reg, target, a.new)
local fine = called and done
if not called then msg = done end
reg:close()
if not fine then
   return cli.fail("cp", (tostring(msg):gsub("^registry%.", "")))
end
io.write(string.format("%s -> %s\n", a.new, target))
return 0
