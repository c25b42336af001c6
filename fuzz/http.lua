-- http.lua: fuzz harness (driven by fuzz_http.c) for the request bodies of
-- every model route. The real server application (moonhub.server with the
-- model pool, as `moonhub serve` sets it up) listens on a loopback port in
-- this process; the driver sends each input as one request over a socket
-- and pumps the loop until the reply is complete. Layer: fuzz.
-- Input: the first byte picks the route, the rest is the body.
-- A finding: a 5xx answer (bad input must be a 4xx), a 4xx whose body is not
-- an OpenAI error object, or a reply that is not HTTP at all.
local mh = require "moonhub"
local http = mh.http
local json = require "dkjson"

local ROUTES = {
   c = "/v1/chat/completions", p = "/v1/completions", e = "/v1/embeddings",
   t = "/tokenize", d = "/detokenize", g = "/api/generate", o = "/api/chat",
   m = "/v1/messages", r = "/v1/responses",
}
local ORDER = { "c", "p", "e", "t", "d", "g", "o", "m", "r" }

local shared = os.getenv("MOONHUB_TEST_DATA") or "../shared"
local model = shared .. "/models/stories260K.gguf"
assert(io.open(model, "rb"), "fuzz http: " .. model .. " is missing"):close()

local app = mh.server.new({ model_name = "stories260K" })
local srv = assert(http.server({ port = 0, max_body = 1 << 20 }))
srv:handle(app:handler())
local pool = require("moonhub.pool").new({ max_loaded = 1, ctx = 256, parallel = 2, threads = 1,
   sched = { prefix_cache = true, cache_bytes = 4 << 20 } })
app:use_pool(pool, { default_ref = model })
local e = assert(pool:acquire(model))
pool:release(e, -1)
app:attach(e.model, e.sched)
app.ready = true

local H = {}
H.port = srv.port

function H.pump() http.sleep(0.001) end

function H.request(data)
   local key = data:sub(1, 1)
   local path = ROUTES[key] or ROUTES[ORDER[(key:byte() or 0) % #ORDER + 1]]
   local body = data:sub(2)
   return table.concat({ "POST ", path, " HTTP/1.1\r\nHost: 127.0.0.1:", H.port,
      "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ", #body,
      "\r\n\r\n", body })
end

function H.check(reply, data)
   local status = tonumber(reply:match("^HTTP/1%.[01] (%d%d%d) "))
   if not status then error("not an HTTP reply: " .. reply:sub(1, 200), 0) end
   local body = reply:match("\r\n\r\n(.*)$") or ""
   if status >= 500 then
      error(string.format("%d for %q:\n%s", status, data:sub(1, 300), body:sub(1, 500)), 0)
   end
   if status >= 400 and status ~= 404 then   -- 404: a route other helpers may not have yet
      local v = json.decode(body)
      if type(v) ~= "table" or (type(v.error) ~= "table" and type(v.error) ~= "string") then
         error(string.format("%d without an error object for %q:\n%s", status, data:sub(1, 300),
            body:sub(1, 300)), 0)
      end
   end
end

return H
