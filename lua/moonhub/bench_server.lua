-- moonhub.bench_server: the child `moonhub serve` of the benchmarks that
-- drive a server (bench serve, bench soak): started on a free port (port 0,
-- its address read from its "ready at" line), waited for, stopped.
-- Layer: lua/moonhub (shell processes; moonhub.fs for files and the
-- executable's path).
local fs = require "moonhub.fs"

local M = {}

--- q(s) -> s quoted for the shell
function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.sleep(s) os.execute("sleep " .. s) end

--- spawn(cmd, log) -> pid: cmd in the background, stdout and stderr to log
function M.spawn(cmd, log)
   local p = assert(io.popen(string.format("%s > %s 2>&1 & echo $!", cmd, M.q(log)), "r"))
   local pid = math.tointeger(tonumber(p:read("l") or ""))
   p:close()
   return pid or error("cannot start " .. cmd, 0)
end

function M.alive(pid) return pid ~= nil and os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

--- serve{model =, args = "--threads 2 ...", log = PATH, home = DIR|nil,
-- what = "bench serve"} -> {pid, base = "http://127.0.0.1:PORT", cmd, log}.
-- Raises "WHAT: the server exited: LOG TAIL" if it stops before it is
-- ready, or after about two minutes without its ready line (then killed).
function M.serve(o)
   local exe = fs.readlink("/proc/self/exe") or "moonhub"
   local cmd = string.format("%s%s serve %s --port 0 %s", o.home and "MOONHUB_HOME=" .. M.q(o.home) .. " " or "",
      M.q(exe), M.q(o.model), o.args or "")
   local pid = M.spawn(cmd, o.log)
   for _ = 1, 600 do
      local log = fs.read(o.log) or ""
      local base = log:match("ready at (http://[%d.]+:%d+)/v1")
      if base then return { pid = pid, base = base, cmd = cmd, log = o.log } end
      if not M.alive(pid) then error(o.what .. ": the server exited:\n" .. log:sub(-2000), 0) end
      M.sleep(0.2)
   end
   M.stop(pid)
   error(o.what .. ": the server did not become ready", 0)
end

--- stop(pid): SIGTERM (the server drains and exits)
function M.stop(pid)
   if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
end

return M
