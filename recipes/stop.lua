-- unload a model from running servers (Ollama's stop)
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub stop MODEL. The server is MOONHUB_HOST's (host[:port]) when
-- set, else every `moonhub serve` on this machine that has MODEL loaded. The
-- request is Ollama's unload: POST /api/generate {"model": MODEL, "keep_alive": 0}.
local cli = require "moonhub.cli"
local client = require "moonhub.cli_client"

local p = cli.parser("stop", "Unload a model from running servers (MOONHUB_HOST's, else this machine's).")
p:argument("model", "the model's name as 'moonhub ps' shows it")
local a, code = cli.parse(p, arg)
if not a then return code end

local servers, serr = client.servers()
if not servers then return cli.fail("stop", serr .. " — e.g. MOONHUB_HOST=127.0.0.1:8080", 2) end
if #servers == 0 then
   return cli.fail("stop", "no server is running — start one with 'moonhub serve', or set MOONHUB_HOST")
end

-- this machine's servers: those whose state lists the model (by name or the ref it was loaded as)
local function has(s)
   if s.explicit then return true end
   for _, m in ipairs(s.state.models or {}) do
      if m.name == a.model or m.ref == a.model or m.name == a.model .. ":latest" then return true end
   end
   return false
end

local stopped = 0
for _, s in ipairs(servers) do
   if has(s) then
      local status, body = client.request(s.url .. "/api/generate", "POST", { model = a.model, keep_alive = 0 })
      if not status then return cli.fail("stop", body .. " — is the server running? see 'moonhub ps'") end
      if status == 404 and client.error_text(body):find("no route", 1, true) then
         return cli.fail("stop", string.format("the server at %s has no /api/generate (Ollama's unload "
            .. "request) — it predates 'moonhub stop': restart it with this moonhub", s.url))
      elseif status == 404 then
         return cli.fail("stop", string.format("the server at %s does not know model '%s': %s — see 'moonhub ps'",
            s.url, a.model, client.error_text(body)))
      elseif status >= 400 then
         return cli.fail("stop", string.format("the server at %s answered HTTP %d: %s", s.url, status,
            client.error_text(body)))
      end
      stopped = stopped + 1
      io.write(string.format("stopped %s at %s\n", a.model, s.url))
   end
end
if stopped == 0 then
   return cli.fail("stop", string.format("no running server has '%s' loaded — see 'moonhub ps'", a.model))
end
return 0
