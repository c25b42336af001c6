-- helpers.server: start `moonhub serve` as a child process on a free port
-- and talk to it with curl, for the server specs. Layer: tests (pure
-- module: does nothing on require). Every wait is bounded and every curl
-- has a time limit; stop() ends the child with SIGTERM (SIGKILL if stuck).
-- The bounds are generous (a loaded CI host is many times slower): they
-- end a hang, they never time anything that the specs assert on.
local H = require "helpers.host"
local http = require("moonhub").http
local now = require("moonhub.core.sys").now
local json = require "dkjson"
local q = H.q

local M = {}
local Server = {}
Server.__index = Server

-- A zombie counts as ended: the reaper of orphans may be slow to collect it.
local function alive(pid)
   local stat = H.read("/proc/" .. pid .. "/stat")
   return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- Starts `moonhub serve --model MODEL --port 0 ARGS` (args: a shell
-- string) and waits (at most 60 s) for its "ready at URL" line. Returns a
-- server {pid, base, url, dir, name}; raises with its stderr if it fails.
function M.start(model, args)
   local dir = H.tmpdir()
   local d = function(f) return q(dir .. "/" .. f) end
   -- the subshell waits for the child to record its exit code in rc
   local cmd = string.format("(MOONHUB_HOME=%s %s serve --model %s --port 0 %s >%s 2>%s & echo $! >%s; "
      .. "wait $!; echo $? >%s) >/dev/null 2>&1 &", d("home"), q(H.exe), q(model), args or "",
      d("out"), d("err"), d("pid"), d("rc"))
   assert(os.execute(cmd))
   local t0 = now()
   local base, name
   repeat
      local out = H.read(dir .. "/out") or ""
      name, base = out:match("moonhub serve: (%S+) ready at (http://[%d.]+:%d+)/v1 ")
      if base or H.read(dir .. "/rc") then break end
      http.sleep(0.02)
   until now() - t0 > 60
   local pid = tonumber(H.read(dir .. "/pid") or "")
   local self = setmetatable({ pid = pid, base = base, url = base and base .. "/v1", dir = dir,
                               name = name, n = 0 }, Server)
   if not base then
      self:stop()
      error("moonhub serve did not start: " .. tostring(H.read(dir .. "/err")), 2)
   end
   return self
end

--- Ends the server: SIGTERM, then waits up to secs (default 5) for it to
-- exit; SIGKILL if it does not. Returns its exit code (nil if killed).
function Server:stop(secs)
   if self.stopped then return self.rc end
   self.stopped = true
   if self.pid then os.execute("kill -TERM " .. self.pid .. " 2>/dev/null") end
   local t0 = now()
   while not H.read(self.dir .. "/rc") and now() - t0 < (secs or 5) do http.sleep(0.02) end
   if self.pid and alive(self.pid) then os.execute("kill -9 " .. self.pid .. " 2>/dev/null") end
   self.rc = tonumber(H.read(self.dir .. "/rc") or "")
   self.stderr = H.read(self.dir .. "/err")
   H.rmdir(self.dir)
   return self.rc
end

function Server:alive() return self.pid ~= nil and alive(self.pid) end

M.alive = alive

--- start_in(home, args[, env[, secs]]) -> {pid, port, base, home}: `moonhub
-- serve --port 0 ARGS` on the registry in home (env: "NAME=V ..." or "-u
-- NAME" for env(1)), its output in home/serve.out and home/serve.err; waits
-- (at most secs, default 60) for its state file home/run/server-PORT.json.
-- Old state files are removed first, so the port read is this server's.
-- For specs that keep their own home (the registry, pulled files).
function M.start_in(home, args, env, secs)
   local run = home .. "/run"
   os.execute("rm -rf " .. q(run))
   local p = io.popen(string.format("env %s MOONHUB_HOME=%s %s serve --port 0 %s >%s 2>%s & echo $!", env or "",
      q(home), q(H.exe), args, q(home .. "/serve.out"), q(home .. "/serve.err")))
   local pid = tonumber(p:read("l"))
   p:close()
   local t0, port = now(), nil
   while not port and now() - t0 < math.max(secs or 60, 60) do
      local ls = io.popen("ls " .. q(run) .. " 2>/dev/null")
      port = tonumber((ls:read("a") or ""):match("server%-(%d+)%.json"))
      ls:close()
      if not port then http.sleep(0.05) end
   end
   if not port then
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      error("server did not start: " .. tostring(H.read(home .. "/serve.err")), 2)
   end
   return { pid = pid, port = port, base = "http://127.0.0.1:" .. port, home = home }
end

--- stop_in(s): ends a server of start_in: SIGTERM, up to 5 s, then SIGKILL.
function M.stop_in(s)
   if not (s and s.pid) then return end
   os.execute("kill " .. s.pid .. " 2>/dev/null")
   local t0 = now()
   while alive(s.pid) and now() - t0 < 5 do http.sleep(0.05) end
   if alive(s.pid) then os.execute("kill -9 " .. s.pid .. " 2>/dev/null") end
end

-- The curl command for one request; its files are named after tag.
-- opts: method, body (string or table -> JSON), headers {k = v},
-- timeout (s, default 60), stream (no buffering), args (extra curl flags).
function Server:command(path, opts, tag)
   opts = opts or {}
   local d = self.dir .. "/" .. tag
   local parts = { "curl -s -N", "-m", tostring(opts.timeout or 60), "-o", q(d .. ".body"),
                   "-D", q(d .. ".hdr"), "-w '%{http_code}'" }
   if opts.method then parts[#parts + 1] = "-X " .. opts.method end
   for k, v in pairs(opts.headers or {}) do parts[#parts + 1] = "-H " .. q(k .. ": " .. v) end
   if opts.body ~= nil then
      local body = type(opts.body) == "table" and json.encode(opts.body) or opts.body
      H.write(d .. ".req", body)
      parts[#parts + 1] = "-H 'Content-Type: application/json' --data-binary @" .. q(d .. ".req")
   end
   if opts.args then parts[#parts + 1] = opts.args end
   parts[#parts + 1] = q(self.base .. path)
   return table.concat(parts, " ") .. " >" .. q(d .. ".code") .. " 2>/dev/null"
end

-- Reads back one finished request: {status, body, headers = {lower = v}, raw_headers, json}
function Server:result(tag)
   local d = self.dir .. "/" .. tag
   local raw = H.read(d .. ".hdr") or ""
   local headers = {}
   for k, v in raw:gmatch("([%w-]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
   local body = H.read(d .. ".body") or ""
   local r = { status = tonumber(H.read(d .. ".code") or "") or 0, body = body, headers = headers,
               raw_headers = raw }
   r.json = json.decode(body, 1, json.null)
   for _, ext in ipairs({ ".body", ".hdr", ".code", ".req" }) do os.remove(d .. ext) end
   return r
end

--- One request; returns {status, body, headers, json}.
function Server:request(path, opts)
   self.n = self.n + 1
   local tag = "r" .. self.n
   os.execute(self:command(path, opts, tag))
   return self:result(tag)
end

--- POSTs a JSON body (a table) to path.
function Server:post(path, body, opts)
   local o = { body = body }
   for k, v in pairs(opts or {}) do o[k] = v end
   return self:request(path, o)
end

--- Runs the requests {path, opts} all at once (one curl each, in the
-- background) and returns their results in order.
function Server:many(reqs)
   local cmds, tags = {}, {}
   for i, r in ipairs(reqs) do
      self.n = self.n + 1
      tags[i] = "r" .. self.n
      cmds[i] = "(" .. self:command(r[1], r[2], tags[i]) .. ") &"
   end
   os.execute(table.concat(cmds, " ") .. " wait")
   local out = {}
   for i, tag in ipairs(tags) do out[i] = self:result(tag) end
   return out
end

--- The events of an SSE body: a list of decoded JSON objects, with the
-- literal "[DONE]" kept as a string. Raises on a line that is not framed
-- as "data: ..." followed by a blank line.
function M.sse(body)
   local events = {}
   for block in body:gmatch("(.-)\n\n") do
      if not block:match("^:") then     -- comments (keep-alives) are skipped
         local payload = block:match("^data: (.*)$")
         assert(payload, "bad SSE block: " .. block)
         if payload == "[DONE]" then events[#events + 1] = payload
         else events[#events + 1] = assert(json.decode(payload, 1, json.null), payload) end
      end
   end
   assert(body:sub(-2) == "\n\n", "SSE body does not end with a blank line")
   return events
end

--- The value of a metric line `name{labels} value` (labels: a plain
-- string matched exactly, or nil for none) in Prometheus text.
function M.metric(text, name, labels)
   local key = name .. (labels and ("{" .. labels .. "}") or "")
   for line in text:gmatch("[^\n]+") do
      local k, v = line:match("^(%S+) (%S+)$")
      if k == key then return tonumber(v) end
   end
   return nil
end

--- Polls fn() every 20 ms until it returns a true value, at most secs
-- (default 30: a bound on a hang, not a timing assertion).
function M.eventually(fn, secs)
   local t0 = now()
   repeat
      local v = fn()
      if v then return v end
      http.sleep(0.02)
   until now() - t0 > (secs or 30)
   return fn()
end

--- Starts one request in the background (a curl of its own) and returns
-- {pid, tag}; hang_up(bg) ends that curl (the client goes away) and
-- finish(bg) waits for it to end by itself. Either returns its result
-- (status, body so far, headers, json) as request() does.
function Server:background(path, opts)
   self.n = self.n + 1
   local tag = "r" .. self.n
   local p = io.popen("(exec " .. self:command(path, opts, tag) .. ") >/dev/null 2>&1 & echo $!")
   local pid = tonumber(p:read("l"))
   p:close()
   return { pid = pid, tag = tag, srv = self }
end

--- The body a background request has received so far.
function Server:body_so_far(bg) return H.read(self.dir .. "/" .. bg.tag .. ".body") or "" end

function Server:hang_up(bg)
   os.execute("kill " .. bg.pid .. " 2>/dev/null")
   M.eventually(function() return not alive(bg.pid) end, 30)
   return self:result(bg.tag)
end

function Server:finish(bg, secs)
   M.eventually(function() return not alive(bg.pid) end, secs or 120)
   return self:result(bg.tag)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Decodes standard base64 (with = padding) into bytes.
function M.base64_decode(s)
   local out, bits, n = {}, 0, 0
   for ch in s:gmatch("[^=]") do
      local v = B64:find(ch, 1, true)
      assert(v, "bad base64 character " .. ch)
      bits, n = (bits << 6) | (v - 1), n + 6
      if n >= 8 then
         n = n - 8
         out[#out + 1] = string.char((bits >> n) & 0xff)
      end
   end
   return table.concat(out)
end

M.now = now
M.null = json.null
M.decode = function(s) return json.decode(s, 1, json.null) end
M.encode = json.encode

return M
