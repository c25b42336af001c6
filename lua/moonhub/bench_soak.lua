-- moonhub.bench_soak: `moonhub bench soak MODEL`: starts `moonhub serve` on
-- MODEL and keeps N clients (bash + curl loops) sending a mix of chat,
-- streamed chat and embeddings requests for M minutes, then prints the
-- request counts, every error, and the server's RSS at start (after a
-- warm-up), peak and end, with per-minute RSS and prefix-store lines
-- (the store grows to its budget by design). A benchmark: it
-- prints figures and asserts nothing. Layer: lua/moonhub (drives curl and
-- bash processes; moonhub.fs for the executable's path).
local fs = require "moonhub.fs"
local bs = require "moonhub.bench_server"
local now = require("moonhub.core.sys").now

local M = {}

M.usage = [==[usage: moonhub bench soak MODEL [--clients 16] [--minutes 10] [--parallel 4]
         [--tokens 24] [--threads 2] [--ctx 1024] [-q]
  Starts `moonhub serve MODEL` and runs CLIENTS concurrent clients for MINUTES,
  each sending chat, streamed chat and embeddings requests in turn. Prints the
  requests per kind, the errors (any non-200, curl failure, or a stream
  without its [DONE]) and the server's RSS: after the first minute (or 10 %
  of the run), at its peak and at the end. Progress (time, requests so far,
  RSS) goes to stderr; -q/--quiet silences it.]==]

local function fail(msg) error({ usage = msg }, 0) end

local function parse(args)
   local o = { clients = 16, minutes = 10, parallel = 4, tokens = 24, threads = 2, ctx = 1024 }
   local i = 1
   while i <= #args do
      local a, v = args[i], args[i + 1]
      local key = a:match("^%-%-(%a+)$")
      if a == "-h" or a == "--help" then o.help = true; i = i + 1
      elseif a == "-q" or a == "--quiet" then o.quiet = true; i = i + 1
      elseif key and o[key] ~= nil then
         o[key] = tonumber(v or "") or fail(a .. " needs a number")
         if o[key] <= 0 then fail(a .. " must be positive") end
         if key ~= "minutes" then o[key] = math.tointeger(o[key]) or fail(a .. " needs an integer") end
         i = i + 2
      elseif a:sub(1, 1) == "-" then fail("unknown option " .. a)
      elseif not o.model then o.model = a; i = i + 1
      else fail("unexpected argument " .. a) end
   end
   if not o.model and not o.help then fail("missing MODEL") end
   return o
end

local q = bs.q

local function write(path, s)
   local f = assert(io.open(path, "wb"))
   f:write(s)
   f:close()
end

local sleep = bs.sleep

local function rss_kib(pid)
   return tonumber((fs.read("/proc/" .. pid .. "/status") or ""):match("VmRSS:%s*(%d+)"))
end

local function loadavg() return (fs.read("/proc/loadavg") or "?"):match("^(%S+ %S+ %S+)") end

-- The prefix store's bytes and budget from the server's /metrics (KiB), so
-- RSS growth can be told from the store filling up to its budget.
local function store_kib(base)
   local p = io.popen("curl -s -m 5 " .. q(base .. "/metrics") .. " 2>/dev/null")
   local text = p and p:read("a") or ""
   if p then p:close() end
   local bytes = tonumber(text:match("\nmoonhub_prefix_store_bytes%S* (%S+)"))
   local budget = tonumber(text:match("\nmoonhub_prefix_store_budget_bytes%S* (%S+)"))
   return bytes and bytes / 1024, budget and budget / 1024
end

-- The server: serve on a free port in its own MOONHUB_HOME.
local function start_server(o, dir)
   local srv = bs.serve({ model = o.model, home = dir .. "/home", log = dir .. "/server.log", what = "bench soak",
      args = string.format("--threads %d --parallel %d --ctx %d", o.threads, o.parallel, o.ctx) })
   return srv.pid, srv.base
end

-- One client: a bash loop of curl requests until the deadline; a line per
-- request: kind, HTTP status, curl exit code, 1 if the reply is whole.
local CLIENT = [=[
dir=%s; base=%s; id=%d; deadline=$(( $(date +%%s) + %d ))
chat='{"messages":[{"role":"user","content":"Tell me a short story, number '$id'."}],"max_tokens":%d}'
stream='{"messages":[{"role":"user","content":"Write a line about the sea, '$id'."}],"max_tokens":%d,"stream":true}'
embed='{"input":["client '$id' says hello","and a second text to embed"]}'
i=$id
while [ "$(date +%%s)" -lt "$deadline" ]; do
  case $(( i %% 3 )) in
    0) kind=chat; path=/v1/chat/completions; body=$chat ;;
    1) kind=stream; path=/v1/chat/completions; body=$stream ;;
    2) kind=embed; path=/v1/embeddings; body=$embed ;;
  esac
  code=$(curl -s -m 300 -o "$dir/c$id.out" -w '%%{http_code}' -H 'Content-Type: application/json' \
         --data-binary "$body" "$base$path"); rc=$?
  whole=1
  if [ $kind = stream ] && ! grep -q 'data: \[DONE\]' "$dir/c$id.out"; then whole=0; fi
  if [ $kind != stream ] && ! grep -q '"usage"' "$dir/c$id.out"; then whole=0; fi
  [ "$code" = 200 ] || cp "$dir/c$id.out" "$dir/err-$id-$i.out" 2>/dev/null
  echo "$kind $code $rc $whole" >> "$dir/c$id.log"
  i=$(( i + 1 ))
done
]=]

local function start_clients(o, dir, base)
   local pids = {}
   local secs = math.floor(o.minutes * 60 + 0.5)
   for id = 1, o.clients do
      local script = dir .. "/client" .. id .. ".sh"
      write(script, string.format(CLIENT, q(dir), q(base), id, secs, o.tokens, o.tokens))
      local p = assert(io.popen(string.format("bash %s >/dev/null 2>&1 & echo $!", q(script))))
      pids[id] = math.tointeger(tonumber(p:read("l") or ""))
      p:close()
   end
   return pids
end

-- Requests the clients have finished so far (a line each in their logs).
local function requests_so_far(o, dir)
   local n = 0
   for id = 1, o.clients do n = n + select(2, (fs.read(dir .. "/c" .. id .. ".log") or ""):gsub("\n", "")) end
   return n
end

local function running(pids)
   for _, pid in ipairs(pids) do
      if pid and os.execute("kill -0 " .. pid .. " 2>/dev/null") then return true end
   end
   return false
end

local function tally(o, dir)
   local n, errs, kinds = 0, {}, { chat = 0, stream = 0, embed = 0 }
   for id = 1, o.clients do
      for line in (fs.read(dir .. "/c" .. id .. ".log") or ""):gmatch("[^\n]+") do
         local kind, code, rc, whole = line:match("^(%S+) (%S+) (%S+) (%S+)$")
         n = n + 1
         kinds[kind] = (kinds[kind] or 0) + 1
         if code ~= "200" or rc ~= "0" or whole ~= "1" then
            errs[#errs + 1] = string.format("client %d: %s answered %s (curl exit %s%s)", id, kind, code, rc,
               whole ~= "1" and ", reply incomplete" or "")
         end
      end
   end
   return n, kinds, errs
end

local function mib(kib) return kib and string.format("%.1f MiB", kib / 1024) or "?" end

local function report(o, r)
   print(string.format("soak: %s, %d clients x %.1f min, serve --parallel %d --threads %d --ctx %d, "
      .. "max_tokens %d", o.model, o.clients, o.minutes, o.parallel, o.threads, o.ctx, o.tokens))
   print(string.format("load average: %s at start, %s at end", r.load0, r.load1))
   print(string.format("requests: %d in %.0f s (%.2f/s): %d chat, %d stream, %d embeddings",
      r.n, r.secs, r.n / math.max(r.secs, 1e-9), r.kinds.chat or 0, r.kinds.stream or 0, r.kinds.embed or 0))
   print(string.format("errors: %d", #r.errs))
   for i = 1, math.min(#r.errs, 20) do print("  " .. r.errs[i]) end
   print(string.format("server RSS: %s when ready, %s after warm-up (%.0f s), peak %s, end %s",
      mib(r.rss_ready), mib(r.rss_start), r.warm, mib(r.rss_peak), mib(r.rss_end)))
   io.write("RSS per minute:")
   for _, v in ipairs(r.per_minute) do io.write(" ", mib(v)) end
   io.write("\nprefix store per minute:")
   for _, v in ipairs(r.store_minute) do io.write(" ", v and mib(v) or "?") end
   io.write(string.format("\nprefix store at the end: %s of a %s budget\n", mib(r.store_end), mib(r.store_budget)))
end

local function run(o)
   local dir = os.tmpname()
   os.remove(dir)
   os.execute("mkdir -p " .. q(dir))
   local pid, base = start_server(o, dir)
   local r = { rss_ready = rss_kib(pid), load0 = loadavg(), per_minute = {}, store_minute = {} }
   local ok, err = pcall(function()
      local clients = start_clients(o, dir, base)
      local secs = math.floor(o.minutes * 60 + 0.5)
      local progress = require("moonhub.progress").new("bench soak", { unit = "s", quiet = o.quiet, from = 0 })
      local t0 = now()
      r.warm = math.min(60, o.minutes * 6)
      local next_minute = 60
      repeat
         sleep(1)
         local rss, t = rss_kib(pid), now() - t0
         if not rss then
            error("bench soak: the server died:\n" .. (fs.read(dir .. "/server.log") or ""):sub(-2000), 0)
         end
         if t >= r.warm and not r.rss_start then r.rss_start = rss end
         if r.rss_start then r.rss_peak = math.max(r.rss_peak or 0, rss) end
         if t >= next_minute then
            r.per_minute[#r.per_minute + 1] = rss
            r.store_minute[#r.store_minute + 1] = store_kib(base) or false
            next_minute = next_minute + 60
         end
         r.rss_end = rss
         progress(math.min(t, secs), secs, false, string.format("%d requests, RSS %s", requests_so_far(o, dir),
            mib(rss)))
      until not running(clients)
      progress(secs, secs, true, "clients done")
      r.secs = now() - t0
      r.load1 = loadavg()
      r.store_end, r.store_budget = store_kib(base)
      r.n, r.kinds, r.errs = tally(o, dir)
   end)
   bs.stop(pid)
   if not ok then error(err, 0) end
   report(o, r)
   os.execute("rm -rf " .. q(dir))
   return #r.errs == 0 and 0 or 1
end

function M.main(args)
   local ok, o = pcall(parse, args)
   if not ok then
      if type(o) == "table" and o.usage then
         io.stderr:write("bench soak: ", o.usage, "\n", M.usage, "\n")
         return 2
      end
      error(o, 0)
   end
   if o.help then print(M.usage) return 0 end
   return run(o)
end

return M
