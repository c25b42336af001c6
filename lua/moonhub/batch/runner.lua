-- moonhub.batch.runner: runs batches — each request line through the
-- server's own route handler (the same adapters and shapes as a client
-- gets), one line at a time so interactive requests keep the other slots;
-- every finished line is appended to output.jsonl or errors.jsonl before
-- the counts move, so a batch resumes after a crash with nothing lost and
-- nothing done twice. Layer: lua/moonhub (uses moonhub.batch, .jobs,
-- .registry, .http, .openai, .fs).
local json = require "dkjson"
local fs = require "moonhub.fs"
local oa = require "moonhub.openai"
local batch = require "moonhub.batch"
local files = require "moonhub.batch.files"

local M = {}

local function set(...)
   local s = {}
   for _, k in ipairs({ ... }) do s[k] = true end
   return s
end

local function sleep(s) require("moonhub.http").sleep(s) end

-- ===== one request through a route handler =====

-- A request object for a route handler that never touches a socket: the
-- handlers answer by returning status, headers, body (streaming is off).
local Fake = {}
Fake.__index = Fake
function Fake.on_close() end
function Fake.add_header() end
function Fake:state() return self._state end
function Fake:respond(status, _, body) self._state, self.status, self.out = "done", status, body return true end
function Fake.start() error("a batch request cannot stream", 0) end

local function run_once(app, url, body)
   local route = app.table:find("POST", url)
   if not route then return 404, oa.error_body(404, "no route for POST " .. url, nil, "not_found") end
   local req = setmetatable({ method = "POST", path = url, args = {}, headers = {}, body = json.encode(body),
      remote = "batch", closed = false, _state = "new" }, Fake)
   local ok, status, _, out = pcall(route.handler, app, req)
   if not ok then
      if type(status) == "string" and status:find("interrupted!", 1, true) then error(status, 0) end  -- Ctrl-C
      local e = app:error_of(status, req)
      return e.status, oa.error_body(e.status, e.message, e.param, e.code)
   end
   if req._state == "done" then return req.status, req.out end
   return status, out
end

-- executor(app) -> exec(url, body) -> HTTP status, response body (JSON text).
-- A full queue or a model still loading (503) is waited out, not recorded:
-- batch lines are the low-priority traffic.
function M.executor(app, opts)
   opts = opts or {}
   return function(url, body)
      local tries = 0
      while true do
         local status, out = run_once(app, url, body)
         tries = tries + 1
         if status ~= 503 or tries >= (opts.tries or 120) then return status, out end
         sleep(opts.retry_s or 1)
      end
   end
end

-- ===== the lines finished so far =====

-- scan(path) -> {custom_id = true}, count. A line cut short by a crash
-- (no newline, or not JSON) is dropped from the file: it runs again.
local function scan(path)
   local text = fs.read(path)
   if not text or text == "" then return {}, 0 end
   local done, keep, changed = {}, {}, false
   local pos = 1
   for line in text:gmatch("([^\n]*)\n") do
      pos = pos + #line + 1
      local ok, obj = pcall(json.decode, line)
      if ok and type(obj) == "table" and type(obj.custom_id) == "string" and not done[obj.custom_id] then
         done[obj.custom_id] = true
         keep[#keep + 1] = line
      else
         changed = true
      end
   end
   if pos <= #text then changed = true end
   if changed then assert(fs.write(path, #keep > 0 and (table.concat(keep, "\n") .. "\n") or "")) end
   return done, #keep
end

-- Fault injection for the crash spec: MOONHUB_BATCH_FAULT=kill:N kills this
-- process (SIGKILL) right after the Nth line is written, before the counts move.
local function fault(n)
   local f = os.getenv("MOONHUB_BATCH_FAULT")
   if f and f == "kill:" .. n then os.execute("kill -9 " .. fs.pid()) end
end

-- ===== one batch =====

local function line_of(row, r, status, body)
   local head = string.format('{"id":"batch_req_%x_%x","custom_id":%s,', row.id, r.line, json.encode(r.custom_id))
   if status then
      return head .. string.format('"response":{"status_code":%d,"request_id":"req_%x%06x","body":%s},"error":null}',
         status, row.id, r.line, body)
   end
   return head .. '"response":null,"error":' .. json.encode(body) .. "}"
end

-- run(reg, row, exec, {progress = fn(done, total)}) -> final status | nil, msg.
-- row: a batch the caller moved to running. Lines already in its output
-- or error file are skipped; the others run in order.
function M.run(reg, row, exec, opts)
   opts = opts or {}
   local cfg = batch.config(row)
   local dir = row.artifacts or batch.dir(row.id)
   fs.mkdirs(dir)
   local text, err = files.content(cfg.input_file_id)
   if not text then return batch.finish(reg, row, "failed", "the input file is gone: " .. err) and "failed" end
   local reqs, errors = batch.parse_input(text, cfg.endpoint)
   if not reqs then return batch.finish(reg, row, "failed", errors[1].message) and "failed" end
   local out_path, err_path = dir .. "/output.jsonl", dir .. "/errors.jsonl"
   local done_ok, n_ok = scan(out_path)
   local done_err, n_err = scan(err_path)
   local out, errf = assert(io.open(out_path, "ab")), assert(io.open(err_path, "ab"))
   local function close() out:close(); errf:close() end
   if opts.progress then opts.progress(n_ok + n_err, #reqs) end
   for _, r in ipairs(reqs) do
      if not done_ok[r.custom_id] and not done_err[r.custom_id] then
         local now = reg:run(row.id)
         if not now or now.status ~= "running" then
            close()
            return nil, "batch moved to " .. tostring(now and now.status)
         end
         if now.cancel_requested == 1 then
            close()
            return batch.finish(reg, row, "cancelled", string.format("cancelled by the user after %d of %d requests",
               n_ok + n_err, #reqs)) and "cancelled"
         end
         local body = r.body
         body.stream, body.stream_options = nil, nil
         if cfg.owner == "cli" then body.model = nil end        -- the model `moonhub batch --model` loaded
         local ok, status, resp = pcall(exec, cfg.endpoint, body)
         if not ok then
            if tostring(status):find("interrupted!", 1, true) then close(); error(status, 0) end
            errf:write(line_of(row, r, nil, { code = "internal_error", message = tostring(status) }), "\n")
            errf:flush()
            n_err = n_err + 1
         elseif status == 200 then
            out:write(line_of(row, r, status, resp), "\n")
            out:flush()
            n_ok = n_ok + 1
         else
            errf:write(line_of(row, r, status, resp), "\n")
            errf:flush()
            n_err = n_err + 1
         end
         fault(n_ok + n_err)
         reg:update_run(row.id, { metrics = json.encode({ completed = n_ok, failed = n_err }), step = n_ok + n_err,
            heartbeat_at = os.time() })
         if opts.progress then opts.progress(n_ok + n_err, #reqs) end
      end
   end
   close()
   reg:update_run(row.id, { metrics = json.encode({ completed = n_ok, failed = n_err }), step = n_ok + n_err })
   local ok, ferr = batch.finish(reg, row, "succeeded", string.format("%d completed, %d failed", n_ok, n_err))
   if not ok then return nil, ferr end
   return "succeeded"
end

-- ===== claiming: the server's loop =====

-- claim(reg, pid, owner) -> the oldest queued or interrupted batch of this
-- owner ("server" or "cli"), moved to running for pid | nil. Interrupted
-- batches (their server died) resume by themselves.
function M.claim(reg, pid, owner)
   require("moonhub.jobs").reap(reg)
   return reg.db:transaction(function(d)
      for _, r in ipairs(d:query([[SELECT id, config FROM runs WHERE kind = 'batch'
            AND status IN ('queued', 'interrupted') ORDER BY id]])) do
         local cfg = json.decode(r.config or "{}") or {}
         if (cfg.owner or "server") == owner and reg:transition(r.id, set("queued", "interrupted"), "running",
               "picked up by " .. owner .. " " .. pid, { worker_pid = pid, heartbeat_at = os.time(),
               cancel_requested = 0 }) then
            return reg:run(r.id)
         end
      end
      return nil
   end)
end

-- serve(app, {poll_s = 0.5}): the server runs queued batches in a loop
-- coroutine, one request at a time, beside its other traffic. Nothing is
-- opened until the registry exists (a batch needs one).
function M.serve(app, opts)
   if app.batch_loop then return end
   opts = opts or {}
   local http = require "moonhub.http"
   app.batch_loop = true
   local exec = M.executor(app)
   http.timer(0, function()
      local registry = require "moonhub.registry"
      local home = require("moonhub").home()
      while true do
         local row, reg
         -- a handle per look, closed while idle: a connection held open across the
         -- loop's sleeps stalled a training job's event stream (serve_spec under
         -- load); a plain read first, so an idle loop never takes the write lock
         if registry.exists(home) then reg = registry.open(home) end
         if reg and reg.db:first([[SELECT 1 AS x FROM runs WHERE kind = 'batch'
               AND status IN ('queued', 'interrupted', 'running') LIMIT 1]]) then
            row = M.claim(reg, fs.pid(), "server")
         end
         if row then
            local ok, res, err = pcall(M.run, reg, row, exec)
            if not ok or (res == nil and err) then
               io.stderr:write(string.format("moonhub serve: batch %s: %s\n", batch.public_id(row.id),
                  tostring(ok and err or res)))
               if not ok then batch.finish(reg, row, "failed", "internal error: " .. tostring(res)) end
            end
            reg:close()
         else
            if reg then reg:close() end
            http.sleep(opts.poll_s or 0.5)
         end
      end
   end, { once = true })
end

return M
