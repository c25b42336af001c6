-- Abuse specs for the connection guard of `moonhub serve` (engine/net/
-- http_server.c): the fd cap under a low `ulimit -n`, clients that trickle
-- their headers, uploads past the body hard cap, and a client that hangs up
-- mid-stream. Layer: tests. The server is a child process; idle and
-- trickling clients are bash /dev/tcp sockets. Waits are bounded and wait
-- for events (a reply, a closed socket, a metric), never for a duration.
local H = require "helpers.host"
local S = require "helpers.server"
local data = require "helpers.data"
local json = require "dkjson"
local q = H.q

local MODEL = "models/stories260K.gguf"

-- `moonhub serve` under `ulimit -n nofile` (nil: unchanged); returns
-- {pid, port, dir} once it printed its address.
local function serve(model, args, nofile)
   local dir = H.tmpdir()
   local d = function(f) return q(dir .. "/" .. f) end
   local cmd = string.format("(%s MOONHUB_HOME=%s exec %s serve --model %s --port 0 %s) >%s 2>%s & echo $! >%s",
      nofile and ("ulimit -n " .. nofile .. ";") or "", d("home"), q(H.exe), q(model), args, d("out"),
      d("err"), d("pid"))
   assert(os.execute("sh -c " .. q(cmd)))
   local port
   S.eventually(function()
      port = (H.read(dir .. "/out") or ""):match("ready at http://[%d.]+:(%d+)/v1")
      return port
   end, 20)
   local pid = tonumber(H.read(dir .. "/pid") or "")
   assert(port, "moonhub serve did not start: " .. tostring(H.read(dir .. "/err")))
   return { pid = pid, port = tonumber(port), dir = dir }
end

local function stop(s)
   if not s then return end
   os.execute("kill " .. s.pid .. " 2>/dev/null")
   S.eventually(function() return not H.read("/proc/" .. s.pid .. "/stat") end, 5)
   os.execute("kill -9 " .. s.pid .. " 2>/dev/null")
   H.rmdir(s.dir)
end

-- curl -> status, body, curl's exit code
local function curl(s, path, args, timeout)
   local p = io.popen(string.format("curl -s -m %d -o %s -w '%%{http_code}' %s http://127.0.0.1:%d%s; echo \" $?\"",
      timeout or 10, q(s.dir .. "/body"), args or "", s.port, path))
   local out = p:read("a")
   p:close()
   local code, rc = out:match("^(%d+) (%d+)")
   return tonumber(code) or 0, H.read(s.dir .. "/body") or "", tonumber(rc)
end

-- Runs a bash script in the background; its pid.
local function bash_bg(s, name, script)
   H.write(s.dir .. "/" .. name .. ".sh", script)
   local p = io.popen(string.format("bash %s >/dev/null 2>&1 & echo $!", q(s.dir .. "/" .. name .. ".sh")))
   local pid = tonumber(p:read("l"))
   p:close()
   return pid
end

local function metric(s, name)
   local code, body = curl(s, "/metrics")
   return code == 200 and S.metric(body, name) or nil
end

describe("connection guard #integration", function()
   local srv, holder

   after_each(function()
      if holder then os.execute("kill " .. holder .. " 2>/dev/null") end
      holder = nil
      stop(srv)
      srv = nil
   end)

   it("keeps answering /health with more idle connections than its fd limit allows", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      srv = serve(model, "", 96)
      -- 300 idle sockets against a server that may hold < 96 files
      holder = bash_bg(srv, "idle", string.format([[
for i in $(seq 1 300); do exec {fd}<>/dev/tcp/127.0.0.1/%d || break; done
echo opened > %s/opened
sleep 60
]], srv.port, srv.dir))
      assert.truthy(S.eventually(function() return H.read(srv.dir .. "/opened") end, 20))
      local code, body = curl(srv, "/health", "", 20)
      assert.equal(200, code)
      assert.equal("ok", json.decode(body).status)
      local err = H.read(srv.dir .. "/err") or ""
      assert.truthy(err:find("connection cap reached", 1, true), err)
      local _, lines = err:gsub("\n", "")
      assert.truthy(lines < 20, "the cap warnings are rate-limited, got " .. lines .. " lines")
   end)

   it("closes a connection that trickles its headers", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      srv = serve(model, "--header-timeout 1")
      -- one header line every 0.1 s for up to 30 s: far past the deadline
      holder = bash_bg(srv, "trickle", string.format([[
trap '' PIPE
exec 3<>/dev/tcp/127.0.0.1/%d
printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n' >&3
for i in $(seq 1 300); do
  printf 'X-Slow-%%d: x\r\n' $i >&3 2>/dev/null || { echo closed > %s/trickle; exit 0; }
  sleep 0.1
done
echo still-open > %s/trickle
]], srv.port, srv.dir, srv.dir))
      assert.truthy(S.eventually(function() return H.read(srv.dir .. "/trickle") end, 40))
      assert.equal("closed", H.read(srv.dir .. "/trickle"):match("%S+"))
      assert.equal(200, (curl(srv, "/health")))   -- a prompt client is unaffected
   end)

   it("answers an upload past the hard cap with a JSON 413 and a clean close", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      srv = serve(model, "--max-body-mb 1")
      local big = srv.dir .. "/big.json"
      -- past evhttp's own former cap too (4x the limit + 16 MiB), which answered in HTML
      H.write(big, '{"prompt": "' .. string.rep("a", 24 << 20) .. '"}')
      for _, file in ipairs({ big }) do
         local code, body, rc = curl(srv, "/v1/completions",
            "-H 'Content-Type: application/json' --data-binary @" .. q(file), 30)
         assert.equal(413, code)
         assert.equal(0, rc, "curl saw the connection reset (exit " .. tostring(rc) .. ")")
         local v = json.decode(body)
         assert.equal("request_too_large", v and v.error and v.error.code, body)
      end
      -- between the body limit and the hard cap: the handler-side 413, JSON too
      H.write(big, '{"prompt": "' .. string.rep("a", (1 << 20) + 1000) .. '"}')
      local code, body = curl(srv, "/v1/completions", "-H 'Content-Type: application/json' --data-binary @"
         .. q(big), 30)
      assert.equal(413, code)
      assert.equal("invalid_request_error", json.decode(body).error.type)
   end)

   it("frees the generation slot when a streaming client hangs up", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      srv = serve(model, "--parallel 1 --ctx 2048")
      local body = json.encode({ prompt = "Once upon a time", max_tokens = 1900, stream = true,
         temperature = 1, ignore_eos = true })
      H.write(srv.dir .. "/req.json", body)
      holder = bash_bg(srv, "stream", string.format(
         "exec curl -s -N -m 120 -H 'Content-Type: application/json' --data-binary @%s "
         .. "http://127.0.0.1:%d/v1/completions > %s/stream.out", q(srv.dir .. "/req.json"), srv.port, srv.dir))
      -- the stream is under way: a token arrived and the slot is taken
      assert.truthy(S.eventually(function()
         return (H.read(srv.dir .. "/stream.out") or ""):find("data: ", 1, true)
            and metric(srv, "moonhub_requests_running") == 1
      end, 30))
      os.execute("kill " .. holder .. " 2>/dev/null")
      holder = nil
      -- the event: the slot is given back (running drops to 0) ...
      assert.truthy(S.eventually(function() return metric(srv, "moonhub_requests_running") == 0 end, 30))
      -- ... and the one slot serves the next request
      local code = curl(srv, "/v1/completions", "-H 'Content-Type: application/json' -d "
         .. q(json.encode({ prompt = "Hi", max_tokens = 2 })), 30)
      assert.equal(200, code)
   end)
end)
