-- Specs for the server's seams without a model: the route table (match,
-- captures, 404/405, middleware order), each middleware on fake requests
-- (Host, Origin/CORS, API key, JSON type, body limit, log), model-name
-- hints, keep_alive ranges and strict JSON bodies. Layer: tests (pure).
local routes = require "moonhub.server.routes"
local mw = require "moonhub.server.middleware"
local names = require "moonhub.server.names"
local request = require "moonhub.server.request"
local server = require "moonhub.server"
local oa = require "moonhub.openai"
local json_decode = require("dkjson").decode

-- A request as http.lua hands it over, recording added headers.
local function fake(method, path, headers, body)
   local r = { method = method, path = path, headers = headers or {}, body = body or "", remote = "127.0.0.1:5",
      added = {} }
   function r.add_header(self, k, v) self.added[k] = v end
   return r
end

local function err_of(fn)
   local ok, e = pcall(fn)
   assert.is_false(ok, "expected an error")
   assert.is_table(e, tostring(e))
   return e
end

local function app(opts) return { opts = opts or {}, host = "127.0.0.1", buckets = {} } end
local function pass() return 200, {}, "ok" end

describe("route table #unit", function()
   local t, seen
   before_each(function()
      t, seen = routes.new(), {}
      local function tag(name) return function(_, _, nxt) seen[#seen + 1] = name return nxt() end end
      t:add({ "GET", "/v1/models", function() return 200, {}, "list" end, middleware = { tag("a"), tag("b") } })
      t:add({ "GET", "/v1/models/{*id}", function(_, _, id) return 200, {}, id end })
      t:add({ "DELETE", "/api/history/{id}", function(_, _, id) return 200, {}, "del " .. id end })
      t:add({ "GET", "/api/history/{id}", function(_, _, id) return 200, {}, "get " .. id end })
   end)

   it("matches method and pattern; {id} is one segment, {*id} the rest, both unescaped", function()
      assert.same({ 200, {}, "list" }, { t:dispatch({}, fake("GET", "/v1/models?x=1"), {}) })
      assert.same({ "a", "b" }, seen)                           -- in list order, outermost first
      assert.equal("org/name:q8", select(3, t:dispatch({}, fake("GET", "/v1/models/org%2Fname:q8"), {})))
      assert.equal("org/name", select(3, t:dispatch({}, fake("GET", "/v1/models/org/name"), {})))
      assert.equal("del 7", select(3, t:dispatch({}, fake("DELETE", "/api/history/7"), {})))
      assert.is_nil((t:find("GET", "/api/history/7/x")))
      assert.equal("get 7", select(3, t:dispatch({}, fake("HEAD", "/api/history/7"), {})))
   end)

   it("404 for an unknown path, 405 with Allow for a known one, OPTIONS lists the methods", function()
      local e = err_of(function() t:dispatch({}, fake("GET", "/nothing"), {}) end)
      assert.equal(404, e.status)
      assert.equal("not_found", e.code)
      e = err_of(function() t:dispatch({}, fake("POST", "/api/history/3"), {}) end)
      assert.equal(405, e.status)
      assert.equal("DELETE, GET", e.headers.Allow)
      local status, headers = t:dispatch({}, fake("OPTIONS", "/api/history/3"), {})
      assert.equal(204, status)
      assert.equal("DELETE, GET, OPTIONS", headers.Allow)
   end)

   it("requests no route takes still pass the base middleware (the Host check)", function()
      local e = err_of(function()
         t:dispatch(app(), fake("GET", "/nothing", { host = "evil.example" }), { mw.host })
      end)
      assert.equal(403, e.status)
   end)

   it("the server's table puts auth on generation and admin routes, not on health or models", function()
      local st = server.route_table()
      local chat = st:find("POST", "/v1/chat/completions")
      local pull = st:find("POST", "/api/moonhub/pull")
      local health = st:find("GET", "/health")
      local function has(r, f) for _, m in ipairs(r.middleware) do if m == f then return true end end return false end
      assert.is_true(has(chat, mw.auth) and has(chat, mw.rate) and has(chat, mw.json) and has(chat, mw.host))
      assert.is_true(has(pull, mw.auth) and has(pull, mw.json))
      assert.is_false(has(health, mw.auth))
      assert.is_true(has(health, mw.host) and has(health, mw.cors))
      assert.equal(mw.log, chat.middleware[1])
      assert.is_table((st:find("GET", "/api/moonhub/models/org/name")))
   end)
end)

describe("middleware #unit", function()
   it("Host: loopback names, IP literals, the bound name and --allowed-hosts pass; others are 403", function()
      local a = app({ allowed_hosts = { "box.lan", ".corp.example" } })
      for _, h in ipairs({ "localhost", "LOCALHOST:8080", "127.0.0.1:9", "[::1]:80", "10.0.0.7", "ui.localhost",
                           "box.lan:8080", "corp.example", "a.corp.example", "localhost." }) do
         assert.is_true(mw.allowed_host(a, h), h)
      end
      assert.is_true(mw.allowed_host(a, nil))
      for _, h in ipairs({ "evil.example", "localhost.evil.example", "box.lan.evil", "xcorp.example", "" }) do
         assert.is_false(mw.allowed_host(a, h), h)
      end
      assert.is_true(mw.allowed_host(app({ allowed_hosts = { "*" } }), "anything.example"))
      local e = err_of(function() mw.host(a, fake("GET", "/", { host = "evil.example" }), pass) end)
      assert.equal(403, e.status)
      assert.equal("host_not_allowed", e.code)
      assert.matches("%-%-allowed%-hosts evil%.example", e.message)
   end)

   it("Origin: foreign origins may read but not POST or preflight; same origin and --cors may", function()
      local a = app()
      local function run(method, origin, host, opts)
         local r = fake(method, "/v1/chat/completions", { origin = origin, host = host or "127.0.0.1:8080",
            ["access-control-request-method"] = method == "OPTIONS" and "POST" or nil })
         r.route = { allow = "POST" }
         return r, mw.cors(opts or a, r, pass)
      end
      assert.equal(200, select(2, run("POST", nil)))
      assert.equal(200, select(2, run("POST", "http://127.0.0.1:8080")))
      assert.equal(200, select(2, run("GET", "http://evil.example")))
      for _, m in ipairs({ "POST", "PUT", "DELETE", "PATCH", "OPTIONS" }) do
         local e = err_of(function() run(m, "http://evil.example") end)
         assert.equal(403, e.status)
         assert.equal("origin_not_allowed", e.code)
      end
      -- a page on another port of the same host is another origin
      assert.equal(403, err_of(function() run("POST", "http://127.0.0.1:3000") end).status)
      local cors = app({ cors = { "http://app.example" } })
      local r, status, headers = run("OPTIONS", "http://app.example", nil, cors)
      assert.equal(204, status)
      assert.equal("http://app.example", r.added["Access-Control-Allow-Origin"])
      assert.matches("POST", headers["Access-Control-Allow-Methods"])
      assert.matches("Content%-Type", headers["Access-Control-Allow-Headers"])
      r, status = run("POST", "http://app.example", nil, cors)
      assert.equal(200, status)
      assert.equal("http://app.example", r.added["Access-Control-Allow-Origin"])
      assert.equal(403, err_of(function() run("POST", "http://other.example", nil, cors) end).status)
      assert.equal(200, select(2, run("POST", "http://any.example", nil, app({ cors = { "*" } }))))
   end)

   it("API key: compared whole, Bearer only, in constant time over the secret", function()
      local a = app({ api_key = "sk-secret" })
      assert.equal(200, mw.auth(a, fake("POST", "/", { authorization = "Bearer sk-secret" }), pass))
      for _, h in ipairs({ "Bearer sk-secre", "Bearer sk-secretX", "sk-secret", "Bearer ", "Basic sk-secret" }) do
         local e = err_of(function() mw.auth(a, fake("POST", "/", { authorization = h }), pass) end)
         assert.equal(401, e.status)
      end
      assert.equal(401, err_of(function() mw.auth(a, fake("POST", "/"), pass) end).status)
      assert.is_true(mw.same_secret("abc", "abc"))
      assert.is_false(mw.same_secret("abd", "abc"))
      assert.is_false(mw.same_secret("ab", "abc"))
      assert.is_false(mw.same_secret("abc\0", "abc"))
      assert.is_false(mw.same_secret("", "abc"))
      assert.equal(200, mw.auth(app(), fake("POST", "/"), pass))       -- no key set: open
   end)

   it("JSON routes want application/json; the body limit is the route's", function()
      local r = fake("POST", "/x", { ["content-type"] = "application/json; charset=utf-8" }, "{}")
      assert.equal(200, mw.json(app(), r, pass))
      for _, ct in ipairs({ "text/plain", "application/x-www-form-urlencoded", "multipart/form-data" }) do
         local e = err_of(function() mw.json(app(), fake("POST", "/x", { ["content-type"] = ct }, "{}"), pass) end)
         assert.equal(415, e.status)
         assert.equal("unsupported_media_type", e.code)
      end
      assert.equal(415, err_of(function() mw.json(app(), fake("POST", "/x", {}, "{}"), pass) end).status)
      assert.equal(200, mw.json(app(), fake("POST", "/x", {}, ""), pass))    -- nothing to read
      local big = fake("POST", "/x", {}, string.rep("x", 11))
      big.route = { pattern = "/x", max_body = 10 }
      assert.equal(413, err_of(function() mw.body(app(), big, pass) end).status)
      big.route.max_body = nil
      assert.equal(200, mw.body(app({ max_body = 11 }), big, pass))
   end)

   it("the log writes method, path, status, ms and tokens; --quiet writes nothing", function()
      local lines = {}
      local saved = io.stderr
      io.stderr = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end }   -- luacheck: ignore
      local ok, err = pcall(function()
         local r = fake("POST", "/v1/chat/completions?k=secret")
         mw.log(app(), r, function() r.tokens = { prompt_tokens = 7, completion_tokens = 3 } return 200, {}, "" end)
         local r2 = fake("GET", "/x")
         pcall(mw.log, app(), r2, function() oa.fail(404, "no") end)
         mw.log(app({ quiet = true }), fake("GET", "/y"), pass)
      end)
      io.stderr = saved   -- luacheck: ignore
      assert(ok, err)
      assert.equal(2, #lines)
      assert.matches("^moonhub serve: POST /v1/chat/completions 200 [%d%.]+ms 7%+3 tokens\n$", lines[1])
      assert.matches("^moonhub serve: GET /x 404 [%d%.]+ms\n$", lines[2])
   end)
end)

describe("model names #unit", function()
   it("suggests close names: typos, a word of the name, containment", function()
      local known = { "mh-smol-llama-17m-Q8_0", "stories:latest", "stories:Q8_0", "qwen2:latest" }
      assert.same({ "mh-smol-llama-17m-Q8_0" }, names.close("mh-smol-llama-17m-Q8_O", known))
      assert.same({ "mh-smol-llama-17m-Q8_0" }, names.close("smool", known))
      assert.same({ "stories:Q8_0", "stories:latest" }, names.close("storis", known))
      assert.same({}, names.close("gpt-4o", known))
      assert.same({}, names.close("../../etc/passwd", known))
   end)

   it("picks aliases, the default for no name, and wants a name without a default", function()
      local a = { aliases = { ["gpt-4o"] = "smol" }, opts = {}, default_ref = "m.gguf" }
      assert.equal("smol", names.pick(a, "gpt-4o"))
      assert.equal("other", names.pick(a, "other"))
      assert.equal("m.gguf", names.pick(a, nil))
      a.default_ref = nil
      assert.equal(400, err_of(function() names.pick(a, nil) end).status)
      a.opts.default_model = "smol"
      assert.equal("smol", names.pick(a, nil))
      assert.same({ "gpt-4o", "smol" }, { names.parse_alias(" gpt-4o = smol ") })
      assert.is_nil((names.parse_alias("nothing")))
      assert.is_nil((names.parse_alias("=x")))
   end)
end)

describe("keep_alive and strict bodies #unit", function()
   it("keep_alive: out-of-range values are refused before anything is set", function()
      assert.equal(300, request.keep_alive("5m"))
      assert.equal(0, request.keep_alive(0))
      assert.equal(-1, request.keep_alive(-5))
      assert.equal(-1, request.keep_alive(-1e308))
      assert.equal(request.MAX_KEEP_ALIVE, request.keep_alive(request.MAX_KEEP_ALIVE))
      for _, v in ipairs({ 2e9, 1e308, "999999h", 2^63, math.maxinteger, "soon", "", true }) do
         assert.is_nil((request.keep_alive(v)), tostring(v))
      end
   end)

   it("refuses non-JSON numbers, trailing text, deep nesting and invalid UTF-8", function()
      for _, body in ipairs({ '{"max_tokens": 00}', '{"temperature": .5}', '{"a": 1} x', '{"a": 1}}',
                              "{'a': 1}", '{"a": NaN}' }) do
         assert.equal(400, err_of(function() oa.decode(body) end).status, body)
      end
      assert.equal(1, oa.decode(' {"a": 1} \n').a)
      local deep = string.rep("[", 100000) .. string.rep("]", 100000)
      local e = err_of(function() oa.decode('{"a": ' .. deep .. '}') end)
      assert.matches("deeper than 64", e.message)
      -- brackets inside strings (an escaped quote too) are text, not nesting
      assert.equal(1, oa.decode('{"a": "' .. string.rep("[", 100) .. '\\"", "b": 1}').b)
      assert.is_true(oa.within_depth(string.rep("[", 64) .. string.rep("]", 64), 64))
      assert.is_false(oa.within_depth(string.rep("[", 65) .. string.rep("]", 65), 64))
      e = err_of(function() oa.decode('{"messages": [{"role": "user", "content": "\xff\xfe"}]}') end)
      assert.equal("messages", e.param)
      assert.matches("messages%[0%]%.content", e.message)
      assert.equal(400, err_of(function() oa.decode('{"\xc3": 1}') end).status)
      assert.equal("é", oa.decode('{"a": "\\u00e9"}').a)
   end)
end)

describe("the app's handler #unit", function()
   -- a request that records its answer
   local function answered(method, path, headers)
      local r = fake(method, path, headers or { host = "127.0.0.1" })
      r.st = "new"
      function r.state(self) return self.st end
      function r.respond(self, status, hdrs, body)
         self.st, self.status, self.out_headers, self.out = "done", status, hdrs, body
      end
      return r
   end

   it("raised errors become the route's error shape; internal ones an id, never the details", function()
      local a = server.new({ quiet = true })
      a.table:add({ "GET", "/boom", function() error("secret/path/file.lua:12: exploded") end, middleware = {} })
      a.table:add({ "GET", "/ollama", function() oa.fail(400, "bad thing") end, middleware = {},
         error_body = function(e) return oa.encode({ error = e.message }) end })
      local lines = {}
      local saved = io.stderr
      io.stderr = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end }   -- luacheck: ignore
      local ok, err = pcall(function()
         local r = answered("GET", "/boom")
         a:handler()(r)
         assert.equal(500, r.status)
         local e = json_decode(r.out).error
         assert.equal("internal_error", e.code)
         assert.not_matches("secret", r.out)
         local id = e.message:match("id (err%-[%w%-]+);")
         assert.is_not_nil(id, e.message)
         assert.matches(id:gsub("%-", "%%-") .. ".*secret/path/file%.lua:12: exploded", table.concat(lines))
         r = answered("GET", "/ollama")
         a:handler()(r)
         assert.equal(400, r.status)
         assert.same({ error = "bad thing" }, json_decode(r.out))
         r = answered("GET", "/health")
         a:handler()(r)
         assert.equal(503, r.status)                -- no model yet
      end)
      io.stderr = saved   -- luacheck: ignore
      assert(ok, err)
   end)
end)
