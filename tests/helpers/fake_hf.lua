-- helpers.fake_hf: start and stop the fake Hugging Face Hub
-- (tests/helpers/fake_hf.py) on a loopback port for registry specs.
-- Layer: tests (pure module: does nothing on require). Every wait is
-- bounded; stop() kills the server by its pid.
local json = require "dkjson"
local H = require "helpers.host"

local M = {}

M.SCRIPT = "tests/helpers/fake_hf.py"

function M.available()
   local ok = os.execute("command -v python3 >/dev/null 2>&1")
   return ok == true
end

local function sleep(s) os.execute("sleep " .. s) end

-- start(dir, {repos = ..., drop_after = ..., token = ...}) -> server
-- {port, url, log_path, pid, requests(), stop()}; raises when it does not come up in 10 s.
function M.start(dir, cfg)
   cfg.log = dir .. "/hub-log.jsonl"
   cfg.lifetime = cfg.lifetime or 240
   H.write(dir .. "/hub.json", json.encode(cfg))
   H.write(cfg.log, "")
   local portfile = dir .. "/hub.port"
   os.remove(portfile)
   local p = io.popen(string.format("python3 %s %s >%s 2>%s & echo $!", H.q(M.SCRIPT),
      H.q(dir .. "/hub.json"), H.q(portfile), H.q(dir .. "/hub.err")))
   local pid = tonumber(p:read("l"))
   p:close()
   local port
   for _ = 1, 100 do
      local text = H.read(portfile)
      port = text and tonumber(text:match("^(%d+)\n"))
      if port then break end
      sleep(0.1)
   end
   if not port then
      os.execute("kill " .. pid .. " 2>/dev/null")
      error("fake hub did not start: " .. tostring(H.read(dir .. "/hub.err")))
   end
   local srv = { port = port, pid = pid, log_path = cfg.log, url = "http://127.0.0.1:" .. port }
   function srv.requests()
      local out = {}
      for line in (H.read(cfg.log) or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
      return out
   end
   function srv.clear() H.write(cfg.log, "") end
   function srv.stop()
      if srv.pid then os.execute("kill " .. srv.pid .. " 2>/dev/null") end
      srv.pid = nil
   end
   return srv
end

-- run(home, srv, args, env) -> stdout, stderr, exit code: `moonhub args`
-- against the fake hub, with HF_TOKEN unset and HF_HUB_CACHE inside home
-- unless env sets them.
function M.run(home, srv, args, env)
   env = env or {}
   local parts = { "env", "-u", "HF_TOKEN", "-u", "HF_HOME", "MOONHUB_HOME=" .. H.q(home),
      "HF_HUB_CACHE=" .. H.q(env.HF_HUB_CACHE or (home .. "/hf-cache")) }
   if srv then parts[#parts + 1] = "MOONHUB_HF_ENDPOINT=" .. H.q(srv.url) end
   for k, v in pairs(env) do
      if k ~= "HF_HUB_CACHE" then parts[#parts + 1] = k .. "=" .. H.q(v) end
   end
   local cmd = string.format("%s %s %s </dev/null >%s 2>%s", table.concat(parts, " "), H.q(H.exe),
      args, H.q(home .. "/.stdout"), H.q(home .. "/.stderr"))
   local _, _, code = os.execute(cmd)
   return H.read(home .. "/.stdout"), H.read(home .. "/.stderr"), code
end

return M
