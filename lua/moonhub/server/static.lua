-- moonhub.server.static: the web UI's files (web/ in the source tree or the
-- installed share dir) and the Debian-packaged scripts it uses (/vendor/),
-- with content types, ETag/If-None-Match, Cache-Control, gzip and the
-- security headers (CSP). Layer: lua/moonhub (uses moonhub.fs, moonhub.host;
-- lua-zlib when installed). See docs/web.md.
local fs = require "moonhub.fs"
local oa = require "moonhub.openai"

local M = {}

local has_zlib, zlib = pcall(require, "zlib")
if not has_zlib then zlib = nil end

M.TYPES = {
   html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8", mjs = "text/javascript; charset=utf-8",
   css = "text/css; charset=utf-8", svg = "image/svg+xml", png = "image/png", ico = "image/x-icon",
   json = "application/json", txt = "text/plain; charset=utf-8", map = "application/json", woff2 = "font/woff2",
}
local COMPRESSIBLE = { html = true, js = true, mjs = true, css = true, svg = true, json = true, txt = true,
   map = true }

-- Forbids inline script and style and every other host: the UI speaks only
-- to the server that served it (model text can never become running code).
M.CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
   .. "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

-- /vendor/NAME -> the Debian package's file (DESIGN.md: no vendored copies)
M.VENDOR = {
   ["chart.umd.js"] = { file = "/usr/share/javascript/chart.js/chart.min.js", package = "libjs-chart.js" },
   ["marked.js"] = { file = "/usr/share/javascript/marked/marked.min.js", package = "libjs-marked" },
}

-- root() -> the web folder: $MOONHUB_WEB_ROOT, else web/ beside lua/ in the
-- host's root (the source tree first, then PREFIX/share/moonhub).
function M.root()
   local env = os.getenv("MOONHUB_WEB_ROOT")
   if env and env ~= "" then return env end
   return require("moonhub.host").root .. "/web"
end

-- safe_path(p) -> p | nil, why: a request path that can only name a file
-- under the web folder: plain segments of [A-Za-z0-9._-], none empty,
-- none starting with a dot (no "..", no hidden files), no escapes.
function M.safe_path(p)
   if type(p) ~= "string" or p == "" or #p > 200 then return nil, "path too long or empty" end
   if p:find("[^%w%._/%-]") then return nil, "path holds characters other than letters, digits, '.', '_', '-', '/'" end
   for seg in (p .. "/"):gmatch("([^/]*)/") do
      if seg == "" then return nil, "path has an empty segment" end
      if seg:sub(1, 1) == "." then return nil, "path segment starts with '.'" end
   end
   return p
end

-- ===== files, cached by (size, mtime) =====

local cache = {}      -- path -> {size, mtime, body, etag, gz}

local function load(path)
   local st = fs.stat(path)
   if not st or st.type ~= "file" then return nil end
   local c = cache[path]
   if c and c.size == st.size and c.mtime == st.mtime then return c end
   local body = fs.read(path)
   if not body then return nil end
   local sum = zlib and string.format("%08x", zlib.crc32()(body)) or string.format("%x", st.mtime)
   c = { size = st.size, mtime = st.mtime, body = body, etag = string.format('"%s-%x"', sum, #body) }
   cache[path] = c
   return c
end

-- gzip (not zlib or raw deflate: the "gzip" coding), made once per version
local function gzipped(c)
   if c.gz == nil then
      local ok, out = pcall(function() return zlib.deflate(6, 31)(c.body, "finish") end)
      c.gz = ok and #out < #c.body and out or false
   end
   return c.gz or nil
end

-- accepts_gzip("gzip, deflate, br") -> true; "gzip;q=0" -> false
function M.accepts_gzip(ae)
   for item in (ae or ""):lower():gmatch("[^,]+") do
      local coding, params = item:match("^%s*([%w%*%-]+)%s*(.-)%s*$")
      if coding == "gzip" or coding == "x-gzip" or coding == "*" then
         local q = tonumber(params:match("q%s*=%s*([%d%.]+)") or "1")
         if q and q > 0 then return true end
      end
   end
   return false
end

-- If-None-Match holds the tag ("*", a list, weak W/ forms, our -gz variant)
local function matches(inm, etag)
   if not inm then return false end
   local bare = etag:sub(2, -2)
   for tag in inm:gmatch("[^,]+") do
      tag = tag:gsub("^%s*W/", ""):gsub("^%s+", ""):gsub("%s+$", "")
      if tag == "*" or tag == etag or tag == '"' .. bare .. '-gz"' then return true end
   end
   return false
end

-- serve_file(req, path, cache_control) -> status, headers, body
function M.serve_file(req, path, cache_control)
   local c = load(path)
   if not c then oa.fail(404, "no such file: " .. req.path:match("^[^?]*"), nil, "not_found") end
   local ext = path:match("%.(%w+)$") or ""
   local h = { ["Content-Type"] = M.TYPES[ext] or "application/octet-stream",
      ["Cache-Control"] = cache_control or "no-cache", ["X-Content-Type-Options"] = "nosniff",
      ["Content-Security-Policy"] = M.CSP, ["Referrer-Policy"] = "no-referrer", ["X-Frame-Options"] = "DENY" }
   local gz = COMPRESSIBLE[ext] and zlib and #c.body > 512 and M.accepts_gzip(req.headers["accept-encoding"])
      and gzipped(c)
   if COMPRESSIBLE[ext] and zlib then h["Vary"] = "Accept-Encoding" end
   h.ETag = gz and c.etag:sub(1, -2) .. '-gz"' or c.etag
   if matches(req.headers["if-none-match"], c.etag) then return 304, h, "" end
   if gz then h["Content-Encoding"] = "gzip" end
   return 200, h, gz or c.body
end

-- ===== routes =====

local function web_file(app, req, rel)
   local ok, why = M.safe_path(rel)
   if not ok then oa.fail(400, "bad file path: " .. why, nil, "invalid_path") end
   return M.serve_file(req, (app.web_root or M.root()) .. "/" .. rel)
end

-- GET /: the UI for browsers (they send Accept: text/html); other clients
-- (Ollama's, curl, health probes) keep the plain-text "is running" answer.
function M.index(fallback)
   return function(app, req)
      local accept = (req.headers.accept or ""):lower()
      if accept:find("text/html", 1, true) then return web_file(app, req, "index.html") end
      return fallback(app, req)
   end
end

-- GET /vendor/NAME: a Debian-packaged script; a clear 404 when its package
-- is missing.
local function vendor(_, req, name)
   local v = M.VENDOR[name]
   if not v then oa.fail(404, "no vendor file " .. name, nil, "not_found") end
   if not fs.stat(v.file) then
      oa.fail(404, string.format("%s is not installed (apt-get install %s, or sh deps/install.sh)", v.file, v.package),
         nil, "not_found")
   end
   return M.serve_file(req, v.file, "public, max-age=86400")
end

-- add_routes(t, base, root_fallback, root_error_body): the UI's routes.
-- GET / falls back to root_fallback (Ollama's answer, in its error shape).
-- Top-level files are routed by name (listed when the table is built), so
-- GET of an API path keeps its 405; pages/ and vendor/ take any safe name.
function M.add_routes(t, base, root_fallback, root_error_body)
   t:add({ "GET", "/", M.index(root_fallback), middleware = base, error_body = root_error_body })
   local names = fs.list(M.root()) or {}
   table.sort(names)
   for _, n in ipairs(names) do
      if M.safe_path(n) and n:find("%.%w+$") then
         t:add({ "GET", "/" .. n, function(app, req) return web_file(app, req, n) end, middleware = base })
      end
   end
   t:add({ "GET", "/pages/{*path}", function(app, req, p) return web_file(app, req, "pages/" .. p) end,
      middleware = base })
   t:add({ "GET", "/vendor/{name}", vendor, middleware = base })
end

return M
