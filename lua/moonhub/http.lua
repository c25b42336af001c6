-- moonhub.http: the HTTP server and event loop for Lua — servers, request
-- objects, streaming, sleep, timers, channels. Layer: lua/moonhub (wraps
-- moonhub.core.http; dkjson only for the 500 error body). Each request runs
-- its handler in a new coroutine; see docs/http.md.
local core = require "moonhub.core.http"
local json = require "dkjson"

local M = {}

-- ===== requests =====

local Request = {}
local req_mt = {
   __index = function(t, k)
      if k == "closed" then return t._raw:closed() end
      return Request[k]
   end,
}

-- headers plus those added with req:add_header (added ones win)
local function merged(self, headers)
   local extra = rawget(self, "_extra")
   if not extra then return headers end
   local out = {}
   for k, v in pairs(headers or {}) do out[k] = v end
   for k, v in pairs(extra) do out[k] = v end
   return out
end

--- req:respond(status, headers, body) -> true | false, msg (client gone)
function Request:respond(status, headers, body)
   self.status = status
   return self._raw:respond(status, merged(self, headers), body)
end

--- req:start(status, headers): begins a streaming (chunked) response.
function Request:start(status, headers)
   self.status = status
   return self._raw:start(status, merged(self, headers))
end

--- req:add_header(name, value): a header for whichever response comes
-- (middleware such as CORS sets them before the handler answers).
function Request:add_header(name, value)
   if type(name) ~= "string" or type(value) ~= "string" then
      error("req:add_header: name and value must be strings", 2)
   end
   local extra = rawget(self, "_extra") or {}
   extra[name] = value
   rawset(self, "_extra", extra)
end

--- req:write(chunk) -> true, or false once the client has gone away.
function Request:write(chunk) return (self._raw:write(chunk)) end

function Request:finish() return self._raw:finish() end

--- req:abort() -> true | false, msg: drops the connection without finishing
-- the response (what was written is flushed first), so the client sees a
-- cut transfer.
function Request:abort() return self._raw:abort() end

--- req:on_close(fn): fn() runs (in its own coroutine) if the client goes
-- away before the response is complete.
function Request:on_close(fn)
   if type(fn) ~= "function" then
      error("req:on_close: expected a function, got " .. type(fn), 2)
   end
   self._raw:on_close(fn)
end

--- "new" | "streaming" | "done"
function Request:state() return self._raw:state() end

local function unescape(s)
   s = s:gsub("+", " ")
   return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Parses "a=1&b=x%20y&flag&a=2" into {a = {"1", "2"}, b = "x y", flag = true}.
function M.parse_query(q)
   local args = {}
   for pair in (q or ""):gmatch("[^&]+") do
      local k, v = pair:match("^([^=]*)=(.*)$")
      if k then v = unescape(v) else k, v = pair, true end
      k = unescape(k)
      local old = args[k]
      if old == nil then args[k] = v
      elseif type(old) == "table" then old[#old + 1] = v
      else args[k] = { old, v } end
   end
   return args
end

local function wrap(raw)
   local method, path, query, remote = raw:info()
   return setmetatable({
      _raw = raw, method = method, path = path, query = query,
      args = M.parse_query(query), headers = raw:headers(), body = raw:body(),
      remote = remote,
   }, req_mt)
end

local JSON_HDR = { ["Content-Type"] = "application/json" }

--- The OpenAI-shaped error body.
function M.error_body(msg, kind)
   return json.encode({ error = { message = msg, type = kind or "server_error" } })
end

local error_seq = 0

--- A short id for an internal error: logged with the details, sent to the
-- client instead of them (messages may hold file paths and source lines).
function M.error_id()
   error_seq = error_seq + 1
   return string.format("err-%x-%d", os.time(), error_seq)
end

local function fail(raw, req, msg, trace)
   local id = M.error_id()
   io.stderr:write(string.format("moonhub http: %s %s: [%s] %s\n", req.method, req.path, id,
                                 trace or msg))
   local state = raw:state()
   if state == "new" then
      req.status = 500
      raw:respond(500, JSON_HDR, M.error_body("internal error (id " .. id .. "; details in the server log)"))
   elseif state == "streaming" then raw:finish() end
end

local function on_error(e)
   local msg = tostring(e)
   return { msg = msg, trace = debug.traceback(msg, 2) }
end

-- The coroutine body for one request: the handler under xpcall, then make
-- sure the client got an answer (a handler may also return status, headers,
-- body instead of calling req:respond).
local function dispatcher(handler)
   return function(raw)
      local req = wrap(raw)
      local ok, a, b, c = xpcall(handler, on_error, req)
      if not ok then return fail(raw, req, a.msg, "handler error: " .. a.trace) end
      local state = raw:state()
      if state == "new" then
         if math.type(a) == "integer" then return req:respond(a, b, c) end
         fail(raw, req, "handler returned without a response")
      elseif state == "streaming" then
         raw:finish()
      end
   end
end

-- ===== servers =====

local Server = {}
Server.__index = Server

--- srv:handle(fn): fn(req) serves every request (route in Lua).
function Server:handle(fn)
   if type(fn) ~= "function" then
      error("server:handle: expected a function, got " .. type(fn), 2)
   end
   self._raw:handle(dispatcher(fn))
   return self
end

--- Stops listening and closes the server's connections.
function Server:close() self._raw:close() end
--- Requests received and not yet fully answered.
function Server:inflight() return self._raw:inflight() end

--- Open connections and their cap.
function Server:connections() return self._raw:connections() end

local OPTS = { host = "string", port = "number", max_body = "number", timeout = "number",
   max_connections = "number", header_timeout = "number" }

--- server{host = "127.0.0.1", port = 0, max_body = 16 MiB, timeout = 60,
-- max_connections = from the fd limit, header_timeout = 30}
-- -> server | nil, msg (e.g. "address already in use"). port 0 picks a
-- free port: read srv.port. A request must arrive whole within
-- header_timeout seconds of the connection opening (or of the previous
-- reply); at max_connections open the server stops accepting until one closes.
function M.server(opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("http.server: expected a table of options", 2) end
   for k, v in pairs(opts) do
      local want = OPTS[k]
      if not want then error("http.server: unknown option '" .. tostring(k) .. "'", 2) end
      if type(v) ~= want then
         error(string.format("http.server: option '%s' must be a %s, got %s", k, want, type(v)), 2)
      end
   end
   for _, k in ipairs({ "port", "max_body", "timeout", "max_connections", "header_timeout" }) do
      if opts[k] and math.type(opts[k]) ~= "integer" then
         error("http.server: option '" .. k .. "' must be an integer", 2)
      end
   end
   local raw, err = core.server(opts.host, opts.port, opts.max_body, opts.timeout,
      opts.max_connections, opts.header_timeout)
   if not raw then return nil, err end
   return setmetatable({ _raw = raw, port = raw:port(), host = opts.host or "127.0.0.1" }, Server)
end

-- ===== the loop =====

--- Runs the loop until http.stop() or SIGINT/SIGTERM (then servers stop
-- accepting, requests in flight get a few seconds, servers close).
M.run = core.run
--- stop([grace = 5 s]) -> true when a running loop was asked to stop.
M.stop = core.stop
M.running = core.running
--- sleep(seconds): in a handler, yields to the loop; elsewhere runs it.
M.sleep = core.sleep
--- channel() -> ch: ch:push(msg, tag), ch:recv() -> msg, tag | nil when
-- closed and empty, ch:close(); C threads push through the C API.
M.channel = core.channel
--- loop_lag() -> {le, counts (cumulative), n, sum, max} of the loop's lag
-- probe (how late timers run; it starts with the first server) | nil
M.loop_lag = core.loop_lag

--- timer(seconds, fn [, {once = true}]) -> t: fn(t) runs every seconds (or
-- once) in its own coroutine until t:cancel().
function M.timer(seconds, fn, opts)
   if type(seconds) ~= "number" then error("http.timer: seconds must be a number", 2) end
   if type(fn) ~= "function" then error("http.timer: expected a function, got " .. type(fn), 2) end
   if opts ~= nil and type(opts) ~= "table" then error("http.timer: opts must be a table", 2) end
   return core.timer(seconds, fn, opts and opts.once)
end

return M
