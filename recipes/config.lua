-- show or change the defaults in $MOONHUB_HOME/config.lua (get, set, unset, list)
-- Layer: recipes (uses moonhub.config, moonhub.cli).
-- Usage: moonhub config list | get KEY | set KEY VALUE | unset KEY | path.
-- Precedence for every key: flag > MOONHUB_* variable > this file > built-in.
local cli = require "moonhub.cli"
local config = require "moonhub.config"

local keys = {}
for _, k in ipairs(config.keys()) do
   keys[#keys + 1] = string.format("  %-13s %-21s %s", k, config.KEYS[k].env, config.KEYS[k].doc)
end
local p = cli.parser("config", "Show or change moonhub's defaults (docs/config.md).",
   "keys (and the variable that overrides the file):\n" .. table.concat(keys, "\n"))
p:command_target("command")
p:command("list", "every key, its value and where it comes from (flag > env > file > built-in)")
p:command("get", "one key's value"):argument("key", "the key")
local set = p:command("set", "check VALUE against KEY's type and write it to the config file")
set:argument("key", "the key")
set:argument("value", "the value")
p:command("unset", "remove KEY from the config file"):argument("key", "the key")
p:command("path", "where the config file is")

local a, code = cli.parse(p, arg)
if not a then return code end

local function show(v)
   if v == nil then return "(unset)" end
   return tostring(v)
end

if a.command == "path" then
   print(config.path())
elseif a.command == "list" then
   for _, r in ipairs(config.list()) do
      print(string.format("%-13s %-24s (%s)", r.key, show(r.value), r.source))
   end
elseif a.command == "get" then
   if not config.KEYS[a.key] then return cli.fail("config", select(2, config.check(a.key)), 2) end
   local v = config.get(a.key)
   if v == nil then return cli.fail("config", a.key .. " is not set (the verb decides; see docs/config.md)") end
   print(v)
else
   local v, err = config.set(a.key, a.value)
   if v == nil and err then return cli.fail("config", err, 2) end
   local env = config.KEYS[a.key].env
   local e = os.getenv(env)
   if e and e ~= "" then
      io.stderr:write(string.format("moonhub config: note: %s=%s is set and overrides the file\n", env, e))
   end
end
return 0
