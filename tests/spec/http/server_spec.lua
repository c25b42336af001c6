-- End-to-end specs for the HTTP server: a child `moonhub run app.lua` on a
-- free loopback port, driven with curl. Layer: tests. Every curl has a
-- time limit; servers are stopped (and killed if need be) in teardown.
-- The limits are generous bounds on a hang (a loaded host is slow); what is
-- asserted is the order of events, never how long they took.
local H = require "helpers.host"
local http = require("moonhub").http
local now = require("moonhub.core.sys").now
local json = require "dkjson"
local q = H.q

local APP = "tests/spec/http/app.lua"

local function sh(cmd)
   local ok = os.execute(cmd)
   return ok
end

-- Starts the app in dir; returns {pid, port, dir, base}.
local function start_app(dir)
   local pf = dir .. "/port"
   sh(string.format("%s run %s %s 1024 >%s 2>%s & echo $! >%s", q(H.exe), APP, q(pf),
                    q(dir .. "/out"), q(dir .. "/err"), q(dir .. "/pid")))
   local t0 = now()
   while not H.read(pf) and now() - t0 < 60 do http.sleep(0.02) end
   local port = tonumber(H.read(pf) or "")
   assert(port, "server did not start: " .. tostring(H.read(dir .. "/err")))
   local pid = tonumber(H.read(dir .. "/pid"))
   return { pid = pid, port = port, dir = dir, base = "http://127.0.0.1:" .. port }
end

-- A zombie counts as ended: the reaper of orphans may be slow to collect it.
local function alive(pid)
   local stat = H.read("/proc/" .. pid .. "/stat")
   return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- Waits up to secs for the process to end; kills it if it does not.
local function reap(app, secs)
   local t0 = now()
   while alive(app.pid) and now() - t0 < (secs or 3) do http.sleep(0.02) end
   local ended = not alive(app.pid)
   if not ended then sh("kill -9 " .. app.pid .. " 2>/dev/null") end
   return ended
end

-- curl -> status code (number, 0 on failure), body, headers, curl exit code
local function curl(app, path, opts)
   local d = app.dir
   local cmd = string.format("curl -s -m %s -o %s -D %s -w '%%{http_code}' %s %s",
                             opts and opts.timeout or 30, q(d .. "/body"), q(d .. "/hdr"),
                             opts and opts.args or "", q(app.base .. path))
   local p = io.popen(cmd .. "; echo \" $?\"")
   local out = p:read("a")
   p:close()
   local code, rc = out:match("^(%d+) (%d+)")
   return tonumber(code) or 0, H.read(d .. "/body") or "", H.read(d .. "/hdr") or "",
          tonumber(rc)
end

-- Polls fn() until it returns true, at most secs (default 30).
local function eventually(fn, secs)
   local t0 = now()
   repeat
      if fn() then return true end
      http.sleep(0.02)
   until now() - t0 > (secs or 30)
   return fn()
end

-- Runs curl ARGS URL >out in the background; its pid (exec: the pid is curl's)
local function curl_bg(args, url, out)
   local p = io.popen(string.format("(exec curl %s %s >%s 2>/dev/null) & echo $!", args, q(url), q(out)))
   local pid = tonumber(p:read("l"))
   p:close()
   return pid
end

describe("HTTP server end to end #integration", function()
   local app

   setup(function() app = start_app(H.tmpdir()) end)
   teardown(function()
      sh("kill " .. app.pid .. " 2>/dev/null")
      reap(app, 30)
      H.rmdir(app.dir)
   end)

   it("GET with a query string", function()
      local code, body, hdr = curl(app, "/hello?name=x%20y")
      assert.equal(200, code)
      assert.equal("hello x y", body)
      assert.matches("Content%-Type: text/plain", hdr)
   end)

   it("POST with headers and body; handler may return status, headers, body", function()
      local code, body, hdr = curl(app, "/echo?a=1&b&a=2",
                                   { args = "-X POST -H 'X-Test: yes' --data-binary 'ab c'" })
      assert.equal(200, code)
      assert.equal("POST|/echo|a=1&b&a=2|yes|4|ab c", body)
      assert.matches("X%-Method: POST", hdr)
      assert.matches("X%-Remote%-Ok: true", hdr)
   end)

   it("404 from the Lua router with an OpenAI-shaped body", function()
      local code, body, hdr = curl(app, "/nope")
      assert.equal(404, code)
      assert.same({ error = { type = "not_found", message = "no route /nope" } },
                  json.decode(body))
      assert.matches("application/json", hdr)
   end)

   it("a body over max_body is 413 before the handler; the server goes on", function()
      local big = app.dir .. "/big"
      H.write(big, string.rep("x", 2000))
      local code = curl(app, "/echo", { args = "--data-binary @" .. q(big) })
      assert.equal(413, code)
      local code2, body2 = curl(app, "/echo", { args = "--data-binary 'small'" })
      assert.equal(200, code2)
      assert.equal("POST|/echo||-|5|small", body2)
   end)

   it("a handler error is 500 JSON, logged to stderr, and the server goes on", function()
      local code, body, hdr = curl(app, "/error")
      assert.equal(500, code)
      local e = json.decode(body).error
      assert.equal("server_error", e.type)
      -- the client gets an id, never the message (it names a source file)
      local id = e.message:match("^internal error %(id (err%-[%x%-]+%d);")
      assert.is_not_nil(id, e.message)
      assert.not_matches("app%.lua", body)
      assert.matches("application/json", hdr)
      local log = H.read(app.dir .. "/err")
      local want = "%[" .. id:gsub("%-", "%%-") .. "%] handler error: tests/spec/http/app.lua:26: boom in handler\n"
      assert.matches(want .. "stack traceback:", log)
      assert.equal(200, (curl(app, "/hello")))
      local code3, body3 = curl(app, "/noresponse")
      assert.equal(500, code3)
      assert.matches("internal error %(id err%-", body3)
      assert.matches("handler returned without a response", H.read(app.dir .. "/err"))
   end)

   it("req:add_header: the headers reach returned and streamed answers alike", function()
      for _, path in ipairs({ "/added", "/added?stream=1" }) do
         local code, _, hdr = curl(app, path)
         assert.equal(200, code)
         assert.matches("X%-Added: yes\r\n", hdr)
         assert.matches("X%-Own: 1\r\n", hdr)
      end
   end)

   it("HEAD and OPTIONS are served", function()
      local code, body = curl(app, "/hello", { args = "-I" })
      assert.equal(200, code)
      assert.is_nil(body:find("hello", 1, true))    -- headers only
      assert.equal(200, (curl(app, "/hello", { args = "-X OPTIONS" })))
   end)

   it("keeps a connection alive across requests", function()
      local p = io.popen(string.format("curl -s -m 30 -o /dev/null -o /dev/null "
         .. "-w '%%{num_connects} ' %s %s", q(app.base .. "/hello"), q(app.base .. "/fast")))
      local out = p:read("a")
      p:close()
      assert.equal("1 0 ", out)
   end)

   it("streams SSE chunks as they are written", function()
      local f = app.dir .. "/sse"
      sh(string.format("curl -sN -m 60 %s >%s 2>/dev/null &", q(app.base .. "/stream"), q(f)))
      -- chunk1 arrives while the handler is still waiting for /go
      assert.is_true(eventually(function() return (H.read(f) or ""):find("chunk1") end))
      assert.equal("data: chunk1\n\n", H.read(f))
      assert.equal("went", select(2, curl(app, "/go")))
      assert.is_true(eventually(function() return (H.read(f) or ""):find("%[DONE%]") end))
      assert.equal("data: chunk1\n\ndata: chunk2\n\ndata: chunk3\n\ndata: [DONE]\n\n", H.read(f))
   end)

   -- Order, not durations: /fast is answered while /hold still waits.
   it("a waiting request does not block another", function()
      local f = app.dir .. "/held1"
      sh(string.format("curl -s -m 60 %s >%s 2>/dev/null &", q(app.base .. "/hold"), q(f)))
      assert.is_true(eventually(function() return select(2, curl(app, "/held")) == "1" end))
      local code, body = curl(app, "/fast")
      assert.equal(200, code)
      assert.equal("fast done", body)
      assert.equal("", H.read(f) or "")            -- the held one still waits
      assert.equal("released 1", select(2, curl(app, "/release")))
      assert.is_true(eventually(function() return H.read(f) == "released" end))
   end)

   -- The slow one naps until /wake (or 60 s): "still sleeping" is an
   -- order of events, not a race with its clock on a slow host.
   it("a sleeping request does not block another", function()
      local f = app.dir .. "/slow"
      sh(string.format("curl -s -m 90 %s >%s 2>/dev/null &", q(app.base .. "/slow?s=60"), q(f)))
      assert.is_true(eventually(function() return select(2, curl(app, "/sleeping")) == "1" end))
      local code, body = curl(app, "/fast")
      assert.equal(200, code)
      assert.equal("fast done", body)
      assert.equal("", H.read(f) or "")            -- the slow one is still sleeping
      assert.equal("1", select(2, curl(app, "/sleeping")))
      assert.equal("woken", select(2, curl(app, "/wake")))
      assert.is_true(eventually(function() return H.read(f) == "slow done" end))
   end)

   -- 20 requests wait at the same time: all are counted as waiting before
   -- one /release frees them (a server that served one at a time would
   -- never get past the first).
   it("serves many concurrent waiting requests at once", function()
      local d = app.dir
      sh(string.format("for i in $(seq 20); do curl -s -m 60 %s >%s/c$i 2>/dev/null & done",
                       q(app.base .. "/hold"), q(d)))
      assert.is_true(eventually(function() return select(2, curl(app, "/held")) == "20" end))
      assert.equal("released 20", select(2, curl(app, "/release")))
      for i = 1, 20 do
         assert.is_true(eventually(function() return H.read(d .. "/c" .. i) == "released" end))
      end
   end)

   it("a C thread's push wakes the waiting handler", function()
      local code, body = curl(app, "/thread?ms=50")
      assert.equal(200, code)
      assert.equal("from-thread:42", body)
   end)

   -- The client hangs up once the stream has begun (a curl -m 0.3 could give
   -- up before it even connected on a loaded host).
   it("notices a client that goes away during a stream", function()
      local f = app.dir .. "/endless"
      local pid = curl_bg("-sN -m 60", app.base .. "/endless", f)
      assert.is_true(eventually(function() return (H.read(f) or ""):find("data: 1\n\n", 1, true) end))
      assert.equal("gone=0 closecb=0", select(2, curl(app, "/status")))
      sh("kill " .. pid)
      assert.is_true(eventually(function()
         return select(2, curl(app, "/status")) == "gone=1 closecb=1"
      end))
   end)
end)

describe("HTTP server stopping #integration", function()
   -- Events, not naps: the request in flight is seen waiting before the
   -- SIGTERM, and it ends only when the spec creates its file, after the
   -- refused connection was seen.
   it("SIGTERM: stops accepting, lets the request in flight finish, exits", function()
      local app = start_app(H.tmpdir())
      local f, go = app.dir .. "/slow", app.dir .. "/go"
      sh(string.format("curl -s -m 90 %s >%s 2>/dev/null &", q(app.base .. "/until_file?f=" .. go), q(f)))
      assert.is_true(eventually(function() return select(2, curl(app, "/sleeping")) == "1" end))
      sh("kill -TERM " .. app.pid)
      assert.is_true(eventually(function() return select(4, curl(app, "/fast")) == 7 end),
         "the server still accepts after SIGTERM")  -- 7: connection refused
      assert.equal("", H.read(f) or "")            -- still in flight
      H.write(go, "")
      assert.is_true(eventually(function() return H.read(f) == "slow done" end))
      assert.is_true(reap(app, 30), "server did not exit")
      assert.matches("SIGTERM, stopping", H.read(app.dir .. "/err"))
      assert.matches("app: loop ended", H.read(app.dir .. "/err"))
      H.rmdir(app.dir)
   end)

   it("http.stop() from a handler answers, then run returns", function()
      local app = start_app(H.tmpdir())
      local code, body = curl(app, "/stop")
      assert.equal(200, code)
      assert.equal("stopping", body)
      assert.is_true(reap(app, 30), "server did not exit")
      assert.matches("app: loop ended", H.read(app.dir .. "/err"))
      H.rmdir(app.dir)
   end)
end)
