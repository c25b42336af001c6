-- list the models loaded by running servers: name, memory, context, prefix
-- cache (used / budget), when they unload
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub ps [--json]. MOONHUB_HOST (host[:port]) asks that server alone.
-- Each `moonhub serve` keeps its state in
-- $MOONHUB_HOME/run/server-PORT.json (rewritten on every load/unload,
-- removed on exit); files of servers no longer running are skipped and removed.
local cli = require "moonhub.cli"
local mh = require "moonhub"
local json = require "dkjson"

local p = cli.parser("ps", "List the models that running servers have loaded.")
p:flag("--json", "print the servers' states as JSON")
local a, code = cli.parse(p, arg)
if not a then return code end

-- The servers: MOONHUB_HOST's, else those this machine runs (their state files).
local client = require "moonhub.cli_client"
local found, ferr = client.servers()
if not found then return cli.fail("ps", ferr .. " — e.g. MOONHUB_HOST=127.0.0.1:8080", 2) end

-- The live state from each server's admin route, /api/moonhub/ps (the
-- prefix store grows between the loads and unloads that rewrite the state
-- file); /api/ps is Ollama's shape now. A local server's file stands in when
-- it fails; MOONHUB_HOST's server must answer.
local servers = {}
for _, s in ipairs(found) do
   local live
   local status, body = client.request(s.url .. "/api/moonhub/ps", "GET", nil, 2)
   if status == 200 and type(body) == "table" and type(body.models) == "table" then live = body end
   if s.explicit and not live then
      return cli.fail("ps", "no moonhub server answers at " .. s.url
         .. " — check MOONHUB_HOST, or start 'moonhub serve'")
   end
   local st = s.state or { port = math.tointeger(tonumber(s.url:match(":(%d+)$"))), host = s.url }
   if live then st.models = live.models end
   servers[#servers + 1] = st
end

if a.json then
   io.write(json.encode({ servers = setmetatable(servers, { __jsontype = "array" }) }, { indent = true }), "\n")
   return 0
end

local function until_text(m, t)
   if (m.busy or 0) > 0 then return "in use" end
   if type(m.expires_at) ~= "number" then return m.expires_at and tostring(m.expires_at) or "Forever" end
   local d = m.expires_at - t
   if d <= 1 then return "Stopping..." end
   if d < 90 then return string.format("%d seconds from now", d) end
   if d < 5400 then return string.format("%d minutes from now", (d + 30) // 60) end
   return string.format("%d hours from now", (d + 1800) // 3600)
end

local rows, t = {}, os.time()
for _, s in ipairs(servers) do
   for _, m in ipairs(s.models or {}) do
      local cache = m.cache_budget and m.cache_budget > 0
         and (mh.hub.human(m.cache_bytes or 0) .. " / " .. mh.hub.human(m.cache_budget)) or "-"
      rows[#rows + 1] = { m.name or "?", mh.hub.human(m.size or 0), tostring(m.ctx or "-"),
         until_text(m, t), cache, tostring(s.port) }
   end
end
if #servers == 0 then
   io.write("no server is running (start one with 'moonhub serve')\n")
   return 0
end
local fmt = "%-36s %10s  %7s  %-22s %-21s  %s\n"
io.write(string.format(fmt, "NAME", "SIZE", "CONTEXT", "UNTIL", "PREFIX CACHE", "PORT"))
for _, r in ipairs(rows) do io.write(string.format(fmt, table.unpack(r))) end
return 0
