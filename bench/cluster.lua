-- bench/cluster.lua: chat requests per second through nginx over one
-- `moonhub serve` and over two (`moonhub cluster up N`), the same cores.
-- Layer: bench (prints figures; never a test). Uses curl --parallel.
-- Usage: ./moonhub run bench/cluster.lua [MODEL.gguf] [requests=160] [concurrency=8] [max_tokens=16]
-- Three shapes on the same cores: one server with all cores as threads, one
-- server with one thread, one server per core with one thread each;
-- requests carry 40 X-Session-Id values, so nginx spreads them.
local exe = require("moonhub.fs").readlink("/proc/self/exe")
local now = require("moonhub.core.sys").now
local json = require "dkjson"

local model = arg[1] or "../shared/models/stories260K.gguf"
local n, conc, max_tokens = tonumber(arg[2] or 160), tonumber(arg[3] or 8), tonumber(arg[4] or 16)
local cores = require("moonhub.core.sys").threads()

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function sh(cmd)
   local p = io.popen(cmd .. " 2>&1")
   local out = p:read("a")
   p:close()
   return out
end

local function run(servers, threads)
   local home = sh("mktemp -d /tmp/moonhub-bench-cluster.XXXXXX"):match("%S+")
   os.execute("chmod 755 " .. q(home))
   local up = io.popen(string.format("MOONHUB_HOME=%s %s cluster up %d --workers 0 --port 0 --model %s "
      .. "--serve-args='--threads %d' >%s/up.out 2>&1 & echo $!", q(home), q(exe), servers, q(model), threads, home))
   up:read("l")
   up:close()
   local url
   for _ = 1, 1200 do
      local f = io.open(home .. "/up.out")
      local text = f and f:read("a") or ""
      if f then f:close() end
      url = text:match("ready at (http://[%d.:]+)/v1")
      if url or (text:match("moonhub cluster: ") and not text:match("ready")) then break end
      require("moonhub.db").sleep(50)
   end
   assert(url, "cluster up failed: see " .. home .. "/up.out")
   local cfg = {}
   for i = 1, n do
      local body = home .. "/b" .. i .. ".json"
      local f = assert(io.open(body, "w"))
      f:write(json.encode({ model = model:match("([^/]+)%.gguf$"), max_tokens = max_tokens, temperature = 0,
         messages = { { role = "user", content = "Once upon a time, story " .. i } } }))
      f:close()
      cfg[#cfg + 1] = string.format('url = "%s/v1/chat/completions"\nheader = "X-Session-Id: s%d"\n'
         .. 'header = "Content-Type: application/json"\ndata-binary = "@%s"\noutput = "/dev/null"\n'
         .. 'write-out = "%%{http_code}\\n"\n', url, i % 40, body)
   end
   local f = assert(io.open(home .. "/curl.cfg", "w"))
   f:write(table.concat(cfg, "next\n"))
   f:close()
   -- warm up: each server loads its model once
   sh(string.format("curl -s --parallel --parallel-max %d -K %s", conc, q(home .. "/curl.cfg")))
   local t0 = now()
   local codes = sh(string.format("curl -s --parallel --parallel-max %d -K %s", conc, q(home .. "/curl.cfg")))
   local dt = now() - t0
   local ok = select(2, codes:gsub("200", ""))
   sh(string.format("MOONHUB_HOME=%s %s cluster down", q(home), q(exe)))
   os.execute("rm -rf " .. q(home))
   return ok / dt, ok
end

print(string.format("cluster bench: %s, %d chat requests (max_tokens %d), %d at once, %d cores", model, n,
   max_tokens, conc, cores))
local shapes = { { 1, cores }, { 1, 1 }, { cores, 1 } }
local best = {}
for round = 1, 2 do                      -- interleaved A B C A B C: the machine is shared and noisy
   for i, sh_ in ipairs(shapes) do
      local rps, ok = run(sh_[1], sh_[2])
      best[i] = math.max(best[i] or 0, rps)
      print(string.format("  round %d: %d server(s) x %d thread(s): %6.1f requests/s (%d answered 200)", round,
         sh_[1], sh_[2], rps, ok))
   end
end
for i, sh_ in ipairs(shapes) do
   print(string.format("best of 2: %d server(s) x %d thread(s): %.1f requests/s (%.2fx the first)", sh_[1], sh_[2],
      best[i], best[i] / best[1]))
end
