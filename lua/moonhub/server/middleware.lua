-- moonhub.server.middleware: what runs around a route's handler — the
-- request log, the Host check (DNS rebinding), Origin/CORS, the API key,
-- the rate limit, the body limit and the JSON content type. Each is
-- fn(app, req, next) (routes.lua chains them). Layer: lua/moonhub (uses
-- moonhub.openai for error objects, moonhub.core.sys for the clock).
local oa = require "moonhub.openai"

local M = {}

local function now() return require("moonhub.core.sys").now() end

-- ===== request log =====

-- One line per request on stderr: method, path, status, ms, tokens
-- (prompt+completion, when the route generated). Off with serve --quiet.
function M.log(app, req, nxt)
   if app.opts.quiet then return nxt() end
   local t0 = now()
   local r = table.pack(pcall(nxt))
   local status = r[1] and (math.type(r[2]) == "integer" and r[2] or req.status)
      or (type(r[2]) == "table" and r[2].status) or 500
   local t = req.tokens
   io.stderr:write(string.format("moonhub serve: %s %s %s %.1fms%s\n", req.method, req.path:match("^[^?]*"),
      tostring(status or "-"), (now() - t0) * 1000,
      t and string.format(" %d+%d tokens", t.prompt_tokens or 0, t.completion_tokens or 0) or ""))
   if not r[1] then error(r[2], 0) end
   return table.unpack(r, 2, r.n)
end

-- ===== Host: DNS rebinding =====

-- "Name.:8080" -> "name"; "[::1]:8080" -> "::1", true (an IPv6 literal)
local function host_name(h)
   h = h:lower()
   local v6 = h:match("^%[([%x:%.]+)%]")
   if v6 then return v6, true end
   local name = h:match("^([^:]+)")
   return name and name:gsub("%.$", "") or nil, false
end

-- Whether a Host header names this server: IP literals (a page on another
-- site cannot make a browser send one for its own name), localhost and
-- *.localhost, the --host name, and --allowed-hosts (exact names,
-- ".suffix" for a domain and its subdomains, "*" for any).
function M.allowed_host(app, host)
   if host == nil then return true end          -- HTTP/1.0 clients; browsers always send Host
   local name, v6 = host_name(host)
   if not name or name == "" then return false end
   if v6 or name:match("^%d+%.%d+%.%d+%.%d+$") then return true end
   if name == "localhost" or name:match("%.localhost$") then return true end
   if app.host and name == app.host:lower() then return true end
   for _, a in ipairs(app.opts.allowed_hosts or {}) do
      a = a:lower()
      if a == "*" or a == name or (a:sub(1, 1) == "." and (name:sub(-#a) == a or name == a:sub(2))) then
         return true
      end
   end
   return false
end

function M.host(app, req, nxt)
   local host = req.headers.host
   if not M.allowed_host(app, host) then
      oa.fail(403, string.format("Host %q is not a name of this server; to serve it start with --allowed-hosts %s",
         host:sub(1, 100), (host_name(host) or "NAME"):sub(1, 100)), nil, "host_not_allowed")
   end
   return nxt()
end

-- ===== Origin and CORS =====

local STATE_CHANGING = { POST = true, PUT = true, PATCH = true, DELETE = true }

local function cors_allows(app, origin)
   origin = origin:lower()
   for _, o in ipairs(app.opts.cors or {}) do
      if o == "*" or o:lower() == origin then return true end
   end
   return false
end

-- An Origin whose host[:port] is the Host the request came to (our own
-- pages, such as a web UI served at /).
local function same_origin(req, origin)
   local authority = origin:lower():match("^%a[%w+.-]*://([^/]+)$")
   local host = req.headers.host
   return authority ~= nil and host ~= nil and authority == host:lower()
end

-- Allowed origins (--cors) get Access-Control-Allow-Origin and their
-- preflights answered; other foreign origins may not change state (POST,
-- PUT, PATCH, DELETE) nor preflight. Reads from them get no CORS headers,
-- so the browser keeps the answer from the page.
function M.cors(app, req, nxt)
   local origin = req.headers.origin
   if origin == nil then return nxt() end
   if cors_allows(app, origin) then
      req:add_header("Access-Control-Allow-Origin", origin)
      req:add_header("Vary", "Origin")
      local allow = req.route and req.route.allow
      if req.method == "OPTIONS" and req.headers["access-control-request-method"] and allow and allow ~= "" then
         return 204, { ["Access-Control-Allow-Methods"] = allow .. ", OPTIONS",
            ["Access-Control-Allow-Headers"] = "Authorization, Content-Type",
            ["Access-Control-Max-Age"] = "600" }, ""
      end
      return nxt()
   end
   if same_origin(req, origin) then return nxt() end
   if STATE_CHANGING[req.method] or req.method == "OPTIONS" then
      oa.fail(403, string.format("cross-origin request from %q refused; to allow that site start the server "
         .. "with --cors %s", origin:sub(1, 100), origin:sub(1, 100)), nil, "origin_not_allowed")
   end
   return nxt()
end

-- ===== API key =====

-- Compares a client's key with the secret in time that depends only on
-- the secret's length, so timing does not reveal how much of a guess is right.
function M.same_secret(given, secret)
   local diff = #given ~ #secret
   for i = 1, #secret do diff = diff | ((given:byte(i) or 0) ~ secret:byte(i)) end
   return diff == 0
end

-- The key comes as 'Authorization: Bearer KEY' (OpenAI's clients) or
-- 'x-api-key: KEY' (Anthropic's); either one that matches lets the request in.
function M.auth(app, req, nxt)
   local key = app.opts.api_key
   if key and key ~= "" then
      local bearer = (req.headers.authorization or ""):match("^[Bb]earer%s+(.-)%s*$") or ""
      local x = req.headers["x-api-key"] or ""
      if not (M.same_secret(bearer, key) or M.same_secret(x, key)) then
         oa.fail(401, "invalid or missing API key: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'", nil,
            "invalid_api_key")
      end
   end
   return nxt()
end

-- ===== rate limit =====

-- Token bucket per API key (or client address): opts.rate requests per
-- second, burst 2x. Returns ok, seconds until the next request is allowed.
function M.allow(app, who)
   local rate = app.opts.rate
   if not rate or rate <= 0 then return true end
   local ip = (who or ""):match("^(.*):%d+$") or who or "?"
   local buckets = app.buckets
   local b = buckets[ip]
   local t = now()
   if not b then
      app.n_buckets = (app.n_buckets or 0) + 1
      if app.n_buckets > 10000 then            -- many clients: forget those whose bucket is full again
         for k, x in pairs(buckets) do
            if x.tokens + (t - x.at) * rate >= rate * 2 then buckets[k], app.n_buckets = nil, app.n_buckets - 1 end
         end
      end
      b = { tokens = rate * 2, at = t }
      buckets[ip] = b
   end
   b.tokens = math.min(rate * 2, b.tokens + (t - b.at) * rate)
   b.at = t
   if b.tokens < 1 then return false, (1 - b.tokens) / rate end
   b.tokens = b.tokens - 1
   return true
end

function M.rate(app, req, nxt)
   local ok, wait = M.allow(app, req.headers.authorization or req.remote)
   if not ok then
      oa.fail(429, "rate limit exceeded; slow down", nil, "rate_limit_exceeded",
         { ["Retry-After"] = tostring(math.max(1, math.ceil(wait))) })
   end
   return nxt()
end

-- ===== body =====

-- The route's max_body (bytes), else the server's; bodies past the
-- server's are refused in C before they are read whole.
function M.body(app, req, nxt)
   local limit = req.route.max_body or app.opts.max_body
   local n = #(req.body or "")
   if limit and n > limit then
      oa.fail(413, string.format("the request body has %d bytes; %s takes at most %d", n, req.route.pattern, limit),
         nil, "request_too_large")
   end
   return nxt()
end

-- JSON routes take application/json only: a browser cannot send that
-- cross-site without a preflight (text/plain and forms need none).
function M.json(_, req, nxt)
   if (req.body or "") ~= "" then
      local ct = (req.headers["content-type"] or ""):lower():match("^%s*([^;%s]+)")
      if ct ~= "application/json" then
         oa.fail(415, string.format("send the body as JSON with 'Content-Type: application/json' (got %s)",
            ct and ("'" .. ct:sub(1, 60) .. "'") or "none"), nil, "unsupported_media_type")
      end
   end
   return nxt()
end

return M
