-- list the registered models: name:tag, size, quant, parameters, context, modified
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub list [--json]
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("list", "List the models in the registry, one line per tag; LATEST marks the "
   .. "version NAME and NAME:latest answer to (latest is no tag of its own).")
p:flag("--json", "print the rows as JSON")
local a, code = cli.parse(p, arg)
if not a then return code end

local reg, err = mh.models.open()
if not reg then
   return cli.fail("list", err)
end
local rows, aliases = reg:list(), reg:aliases()
reg:close()

if a.json then
   io.write(require("dkjson").encode({ models = rows, aliases = aliases }, { indent = true }), "\n")
   return 0
end

local function count(n)
   if not n then return "-" end
   if n >= 1e9 then return string.format("%.1fB", n / 1e9) end
   if n >= 1e6 then return string.format("%.1fM", n / 1e6) end
   return string.format("%.1fK", n / 1e3)
end

if #rows == 0 then
   io.write("no models yet: try 'moonhub pull ORG/NAME' or 'moonhub import FILE'\n")
   return 0
end
local fmt = "%-40s %10s  %-16s %8s %8s  %-16s  %s\n"
io.write(string.format(fmt, "NAME", "SIZE", "QUANT", "PARAMS", "CONTEXT", "MODIFIED", "LATEST"))
for _, r in ipairs(rows) do
   -- an adapter version (applied to its base when loaded) shows as "LoRA r8"
   local quant = r.format:match("^lora") and ("LoRA " .. (r.quant or "")) or r.quant or r.format
   if #quant > 16 then quant = quant:sub(1, 15) .. "+" end
   io.write((string.format(fmt, r.name .. ":" .. r.tag, mh.hub.human(r.size or 0), quant, count(r.params),
      r.ctx and tostring(r.ctx) or "-", os.date("%Y-%m-%d %H:%M", r.updated_at or r.created_at),
      r.latest and "*" or ""):gsub("%s+\n$", "\n")))
end
for _, al in ipairs(aliases) do
   io.write(string.format("%-40s -> %s%s\n", al.name, al.model, al.tag and (":" .. al.tag) or ""))
end
return 0
