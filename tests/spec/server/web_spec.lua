-- Specs for the web UI's server side: static files (content types, ETag and
-- 304, Cache-Control, gzip only when accepted), GET / for browsers versus
-- other clients, the CSP and the shell's lack of inline script, path
-- validation (static files, model names), the Host check, the CORS
-- preflight with --cors, the API key on the UI's routes, and the routes the
-- UI added (history writes, status, memory, search). Layer: tests
-- (helpers.server starts `moonhub serve` without a model; curl talks to it).
local S = require "helpers.server"
local H = require "helpers.host"
local static = require "moonhub.server.static"
local models_routes = require "moonhub.server.models_routes"
local json = require "dkjson"

local KEY = "web-spec-key"

-- ===== unit =====

describe("web static paths and codings #unit", function()
   it("safe_path takes plain segments only", function()
      for _, p in ipairs({ "app.js", "pages/chat.js", "vendor-x_1.css" }) do assert.equal(p, (static.safe_path(p))) end
      for _, p in ipairs({ "../Makefile", "pages/../../x", ".env", "pages/.x", "a//b", "a/", "", "a%2e", "a\\b",
            "a b", "pages/%2e%2e/x", string.rep("a", 201) }) do
         assert.is_nil((static.safe_path(p)), p)
      end
   end)

   it("accepts_gzip reads Accept-Encoding with q-values", function()
      assert.is_true(static.accepts_gzip("gzip, deflate, br"))
      assert.is_true(static.accepts_gzip("deflate, gzip;q=0.5"))
      assert.is_true(static.accepts_gzip("*"))
      assert.is_false(static.accepts_gzip("gzip;q=0"))
      assert.is_false(static.accepts_gzip("br"))
      assert.is_false(static.accepts_gzip(nil))
   end)

   it("model names from URLs are registry references, never paths", function()
      for _, r in ipairs({ "smol", "smol:Q8_0", "org/name:latest" }) do assert.equal(r, models_routes.check_ref(r)) end
      for _, r in ipairs({ "../x", "/etc/passwd", "a//b", "~root", "a/../b", ".hidden", "" }) do
         local ok, e = pcall(models_routes.check_ref, r)
         assert.is_false(ok, r)
         assert.equal(400, e.status, r)
      end
   end)

   it("the shell has no inline script, style or handler (the CSP forbids them)", function()
      local root = static.root()
      for _, f in ipairs({ "index.html" }) do
         local html = assert(H.read(root .. "/" .. f))
         for tag in html:gmatch("<script[^>]*>") do assert.truthy(tag:find("src=", 1, true), f .. ": " .. tag) end
         assert.is_nil(html:find("<style", 1, true), f)
         assert.is_nil(html:find("%son%a+%s*="), f)
         assert.is_nil(html:find("style=", 1, true), f)
      end
      assert.truthy(static.CSP:find("script-src 'self'", 1, true))
      assert.is_nil(static.CSP:find("unsafe", 1, true))
   end)
end)

-- ===== a live server =====

-- request(base, path, {method, headers, body}) -> {status, headers (lower), body}
local function request(base, path, o)
   o = o or {}
   local dir = H.tmpdir()
   local parts = { "curl -s -m 60 -o", H.q(dir .. "/body"), "-D", H.q(dir .. "/hdr"), "-w '%{http_code}'" }
   if o.method == "HEAD" then parts[#parts + 1] = "-I" elseif o.method then parts[#parts + 1] = "-X " .. o.method end
   for k, v in pairs(o.headers or {}) do parts[#parts + 1] = "-H " .. H.q(k .. ": " .. v) end
   if o.body then
      H.write(dir .. "/req", o.body)
      parts[#parts + 1] = "-H 'Content-Type: application/json' --data-binary @" .. H.q(dir .. "/req")
   end
   parts[#parts + 1] = "--path-as-is " .. H.q(base .. path)
   local p = io.popen(table.concat(parts, " "))
   local code = tonumber(p:read("a"))
   p:close()
   local headers = {}
   for k, v in (H.read(dir .. "/hdr") or ""):gmatch("([%w-]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
   local r = { status = code, headers = headers, body = H.read(dir .. "/body") or "" }
   H.rmdir(dir)
   r.json = json.decode(r.body, 1, json.null)
   return r
end

describe("moonhub serve: the web UI #integration", function()
   local home, srv
   local auth = { Authorization = "Bearer " .. KEY }
   setup(function()
      home = H.tmpdir()
      srv = S.start_in(home, "--api-key " .. KEY .. " --cors http://app.example --quiet")
   end)
   teardown(function()
      S.stop_in(srv)
      if home then H.rmdir(home) end
   end)

   it("GET / gives browsers the UI and other clients the plain answer; HEAD / too", function()
      local r = request(srv.base, "/", { headers = { Accept = "text/html,application/xhtml+xml" } })
      assert.equal(200, r.status)
      assert.equal("text/html; charset=utf-8", r.headers["content-type"])
      assert.truthy(r.body:find('<script type="module" src="/app.js"></script>', 1, true))
      assert.truthy(r.headers["content-security-policy"]:find("default-src 'self'", 1, true))
      assert.equal("nosniff", r.headers["x-content-type-options"])
      r = request(srv.base, "/")
      assert.equal(200, r.status)
      assert.truthy(r.body:find("is running", 1, true))
      assert.equal(200, request(srv.base, "/", { method = "HEAD" }).status)
   end)

   it("files carry their type, an ETag that answers 304, no-cache, and gzip only when accepted", function()
      local file = assert(H.read(static.root() .. "/app.js"))
      local plain = request(srv.base, "/app.js")
      assert.equal(200, plain.status)
      assert.equal("text/javascript; charset=utf-8", plain.headers["content-type"])
      assert.equal("no-cache", plain.headers["cache-control"])
      assert.is_nil(plain.headers["content-encoding"])
      assert.equal(file, plain.body)
      local gz = request(srv.base, "/app.js", { headers = { ["Accept-Encoding"] = "gzip" } })
      assert.equal("gzip", gz.headers["content-encoding"])
      assert.equal("Accept-Encoding", gz.headers["vary"])
      assert.is_true(#gz.body < #file)
      assert.equal(file, (require("zlib").inflate()(gz.body)))
      local etag = assert(plain.headers["etag"])
      local again = request(srv.base, "/app.js", { headers = { ["If-None-Match"] = etag } })
      assert.equal(304, again.status)
      assert.equal("", again.body)
      assert.equal(304, request(srv.base, "/app.js", { headers = { ["If-None-Match"] = gz.headers["etag"],
         ["Accept-Encoding"] = "gzip" } }).status)
      assert.equal(200, request(srv.base, "/app.js", { headers = { ["If-None-Match"] = '"other"' } }).status)
      assert.equal("text/css; charset=utf-8", request(srv.base, "/style.css").headers["content-type"])
      assert.equal("image/svg+xml", request(srv.base, "/favicon.svg").headers["content-type"])
   end)

   it("Chart.js and marked come from Debian's packages at /vendor/", function()
      for name, v in pairs(static.VENDOR) do
         local r = request(srv.base, "/vendor/" .. name)
         if H.read(v.file) then
            assert.equal(200, r.status, name)
            assert.equal("text/javascript; charset=utf-8", r.headers["content-type"])
         else
            assert.equal(404, r.status, name)
            assert.truthy(r.json.error.message:find(v.package, 1, true))
         end
      end
      assert.equal(404, request(srv.base, "/vendor/jquery.js").status)
   end)

   it("static paths cannot leave the web folder", function()
      for _, p in ipairs({ "/pages/..%2f..%2fMakefile", "/pages/%2e%2e/app.js", "/pages/../app.js",
            "/pages/.hidden", "/pages/a%00.js" }) do
         local r = request(srv.base, p)
         assert.is_true(r.status == 400 or r.status == 404, p .. " -> " .. tostring(r.status))
         assert.is_nil(r.body:find("PREFIX", 1, true), p)        -- not the Makefile
      end
      assert.equal("invalid_path", request(srv.base, "/pages/%2e%2e/app.js").json.error.code)
      assert.equal(404, request(srv.base, "/pages/nothing.js").status)
      assert.equal(404, request(srv.base, "/vendor/..%2f..%2fetc%2fpasswd").status)
   end)

   it("a foreign Host gets 403 (DNS rebinding); loopback names with the port pass", function()
      local port = srv.base:match(":(%d+)$")
      local r = request(srv.base, "/", { headers = { Host = "evil.example:" .. port, Accept = "text/html" } })
      assert.equal(403, r.status)
      assert.truthy(r.json.error:find("--allowed-hosts", 1, true))      -- GET / answers in Ollama's error shape
      r = request(srv.base, "/app.js", { headers = { Host = "evil.example:" .. port } })
      assert.equal(403, r.status)
      assert.equal("host_not_allowed", r.json.error.code)
      for _, h in ipairs({ "localhost:" .. port, "127.0.0.1:" .. port, "[::1]:" .. port }) do
         assert.equal(200, request(srv.base, "/", { headers = { Host = h, Accept = "text/html" } }).status, h)
      end
   end)

   it("--cors: the allowed origin's preflight names methods and headers; others are refused", function()
      local pre = { Origin = "http://app.example", ["Access-Control-Request-Method"] = "PUT",
         ["Access-Control-Request-Headers"] = "authorization, content-type" }
      local r = request(srv.base, "/api/moonhub/history/1", { method = "OPTIONS", headers = pre })
      assert.equal(204, r.status)
      assert.equal("http://app.example", r.headers["access-control-allow-origin"])
      assert.truthy(r.headers["access-control-allow-methods"]:find("PUT", 1, true))
      assert.truthy(r.headers["access-control-allow-headers"]:find("Authorization", 1, true))
      pre.Origin = "http://evil.example"
      r = request(srv.base, "/api/moonhub/history/1", { method = "OPTIONS", headers = pre })
      assert.equal(403, r.status)
      assert.is_nil(r.headers["access-control-allow-origin"])
   end)

   it("the UI's API routes want the key as a Bearer header, not in the URL", function()
      assert.equal(401, request(srv.base, "/api/moonhub/status").status)
      assert.equal(401, request(srv.base, "/api/moonhub/status?key=" .. KEY).status)
      local r = request(srv.base, "/api/moonhub/status", { headers = auth })
      assert.equal(200, r.status)
      for _, k in ipairs({ "models", "memory", "slots", "queue", "prefix_cache", "tokens", "series" }) do
         assert.is_not_nil(r.json[k], k)
      end
      assert.equal(0, r.json.queue)
      assert.same({ busy = 0, total = 0 }, r.json.slots)
   end)

   it("history: POST creates a conversation, PUT makes its messages the given ones", function()
      local msgs = { { role = "user", content = "Hi <b>there</b>" }, { role = "assistant", content = "Hello" } }
      local r = request(srv.base, "/api/moonhub/history", { method = "POST", headers = auth,
         body = json.encode({ model = "smol", messages = msgs }) })
      assert.equal(201, r.status)
      local id = r.json.id
      assert.is_true(math.type(id) == "integer")
      msgs[2].content = "Hello again"
      msgs[3], msgs[4] = { role = "user", content = "more" }, { role = "assistant", content = "sure" }
      r = request(srv.base, "/api/moonhub/history/" .. id, { method = "PUT", headers = auth,
         body = json.encode({ messages = msgs }) })
      assert.equal(200, r.status)
      local c = request(srv.base, "/api/moonhub/history/" .. id, { headers = auth }).json
      assert.equal(4, #c.messages)
      assert.equal("Hello again", c.messages[2].content)
      assert.equal("Hi <b>there</b>", c.messages[1].content)
      assert.equal("web", c.source)
      r = request(srv.base, "/api/moonhub/history", { method = "POST", headers = auth,
         body = json.encode({ messages = { { role = "root", content = "x" } } }) })
      assert.equal(400, r.status)
      assert.equal("messages", r.json.error.param)
      assert.equal(404, request(srv.base, "/api/moonhub/history/99999", { method = "PUT", headers = auth,
         body = json.encode({ messages = {} }) }).status)
      assert.equal(404, request(srv.base, "/api/moonhub/history/..%2f1", { method = "PUT", headers = auth,
         body = json.encode({ messages = {} }) }).status)
   end)

   it("a model path in the registry routes is refused with the registry's message, no source position", function()
      for _, p in ipairs({ "/api/moonhub/models/..%2F..%2Fetc%2Fpasswd", "/api/moonhub/models/%2Fetc%2Fpasswd" }) do
         local r = request(srv.base, p, { method = "DELETE", headers = auth })
         assert.equal(400, r.status, p)
         assert.truthy(r.json.error.message:find("model name must be", 1, true), r.body)
         assert.is_nil(r.json.error.message:find(".lua:", 1, true), r.body)
         assert.equal(404, request(srv.base, p, { headers = auth }).status, p)
      end
   end)

   it("memory and search check their arguments", function()
      local r = request(srv.base, "/api/moonhub/memory?model=..%2F..%2Fetc%2Fpasswd", { headers = auth })
      assert.equal(400, r.status)
      assert.equal("invalid_model_name", r.json.error.code)
      assert.equal(400, request(srv.base, "/api/moonhub/memory?model=%2Fetc%2Fpasswd", { headers = auth }).status)
      assert.equal(404, request(srv.base, "/api/moonhub/memory?model=nosuch", { headers = auth }).status)
      assert.equal(400, request(srv.base, "/api/moonhub/search", { headers = auth }).status)
      assert.equal(400, request(srv.base, "/api/moonhub/search?q=x&ctx=0", { headers = auth }).status)
   end)
end)
