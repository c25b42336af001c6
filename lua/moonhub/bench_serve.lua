-- moonhub.bench_serve: `moonhub bench serve MODEL`: starts `moonhub serve`
-- (and llama-server, or any OpenAI-compatible --url) on the same file and
-- prints aggregate tok/s of 1/4/8 concurrent streams, time to first token
-- cold vs with a cached 1000-token prefix, and p50 latency of an 8-token
-- completion. Layer: lua/moonhub (drives `curl` processes; dkjson).
local json = require "dkjson"
local fs = require "moonhub.fs"
local bs = require "moonhub.bench_server"
local now = require("moonhub.core.sys").now

local M = {}

M.usage = [==[usage: moonhub bench serve MODEL [--threads 2] [--parallel 4] [--ctx 2048]
         [--streams 1,4,8] [--tokens 64] [--prefix 1000] [--reps 3] [--cache-mb 512]
         [--llama-server PATH] [--url URL] [--long 1000,4000] [-q]
  Starts `moonhub serve` on MODEL (and PATH -m MODEL -t THREADS -np PARALLEL
  -c PARALLEL*CTX when --llama-server is given; --url adds a running server),
  runs each measurement on every server in turn, REPS times, and prints the
  best (tok/s) or median (latency) figures, and each server's peak RSS.
  --long N,... measures only the time to first token of fresh (cold) prompts
  of about N tokens each (give --ctx above the longest). Progress (which measurement, which rep, which
  server) goes to stderr; -q/--quiet silences it.]==]

local function fail(msg) error({ usage = msg }, 0) end

local function parse(args)
   local o = { threads = 2, parallel = 4, ctx = 2048, streams = { 1, 4, 8 }, tokens = 64, prefix = 1000,
               reps = 3, cache_mb = 512 }
   local ints = { ["--threads"] = "threads", ["--parallel"] = "parallel", ["--ctx"] = "ctx",
                  ["--tokens"] = "tokens", ["--prefix"] = "prefix", ["--reps"] = "reps",
                  ["--cache-mb"] = "cache_mb" }
   local i = 1
   while i <= #args do
      local a, v = args[i], args[i + 1]
      if ints[a] then
         o[ints[a]] = math.tointeger(tonumber(v or "")) or fail(a .. " needs an integer")
         if o[ints[a]] < (a == "--cache-mb" and 0 or 1) then fail(a .. " must be positive") end
         i = i + 2
      elseif a == "--streams" then
         o.streams = {}
         for f in (v or ""):gmatch("[^,]+") do
            o.streams[#o.streams + 1] = math.tointeger(tonumber(f)) or fail("--streams needs counts like 1,4,8")
         end
         if #o.streams == 0 then fail("--streams needs counts like 1,4,8") end
         i = i + 2
      elseif a == "--long" then
         o.long = {}
         for f in (v or ""):gmatch("[^,]+") do
            local n = math.tointeger(tonumber(f))
            if not n or n < 1 then fail("--long needs prompt lengths like 1000,4000") end
            o.long[#o.long + 1] = n
         end
         if #o.long == 0 then fail("--long needs prompt lengths like 1000,4000") end
         i = i + 2
      elseif a == "--llama-server" or a == "--url" then
         o[a:sub(3):gsub("-", "_")] = v or fail(a .. " needs a value")
         i = i + 2
      elseif a == "-h" or a == "--help" then o.help = true; i = i + 1
      elseif a == "-q" or a == "--quiet" then o.quiet = true; i = i + 1
      elseif a:sub(1, 1) == "-" then fail("unknown option " .. a)
      elseif not o.model then o.model = a; i = i + 1
      else fail("unexpected argument " .. a) end
   end
   if not o.model and not o.help then fail("missing MODEL") end
   for _, n in ipairs(o.long or {}) do
      if n + 1 > o.ctx then fail(string.format("--long %d needs --ctx above it (now %d)", n, o.ctx)) end
   end
   return o
end

-- ===== processes and HTTP through curl =====

local sh_quote, sleep = bs.q, bs.sleep

local function tmpfile(content)
   local name = os.tmpname()
   local f = assert(io.open(name, "wb"))
   f:write(content or "")
   f:close()
   return name
end

local function http_status(url)
   local p = io.popen("curl -s -o /dev/null -w '%{http_code}' -m 2 " .. sh_quote(url) .. " 2>/dev/null")
   local code = p:read("a")
   p:close()
   return tonumber(code) or 0
end

-- A port nothing answers on (curl fails to connect: status 0).
local function free_port()
   math.randomseed(os.time() + math.floor(now() * 1e6) % 100000)
   for _ = 1, 50 do
      local port = math.random(20000, 45000)
      if http_status("http://127.0.0.1:" .. port .. "/") == 0 then return port end
   end
   error("bench serve: no free port found")
end

-- Starts a POST of body (a table) to url; finish() waits and returns
-- seconds (curl's time_total), the decoded reply or nil, msg.
local function post(url, body)
   local bf, of = tmpfile(json.encode(body)), os.tmpname()
   local h = assert(io.popen(string.format("curl -s -S -m 900 -o %s -w '%%{http_code} %%{time_total}' "
      .. "-H 'Content-Type: application/json' --data-binary @%s %s 2>&1", of, bf, sh_quote(url)), "r"))
   return function()
      local out = h:read("a")
      h:close()
      local text = fs.read(of) or ""
      os.remove(bf)
      os.remove(of)
      local code, secs = out:match("(%d+) ([%d.]+)")
      local reply = json.decode(text)
      if code ~= "200" or type(reply) ~= "table" then
         return nil, string.format("%s answered %s: %s", url, out, text:sub(1, 200))
      end
      return tonumber(secs), reply
   end
end

local function completion(srv, prompt, max_tokens)
   return post(srv.base .. "/v1/completions", { model = srv.model_name, prompt = prompt, max_tokens = max_tokens,
      temperature = 0, ignore_eos = true, cache_prompt = true, stream = false })
end

local function must(secs, reply)
   if not secs then error("bench serve: " .. tostring(reply), 0) end
   return secs, reply
end

-- ===== servers =====

local function wait_ready(srv, log)
   for _ = 1, 600 do
      if http_status(srv.base .. "/health") == 200 then return end
      if srv.pid and not bs.alive(srv.pid) then
         local text = fs.read(log) or ""
         error("bench serve: " .. srv.name .. " exited:\n" .. text:sub(-2000), 0)
      end
      sleep(0.2)
   end
   error("bench serve: " .. srv.name .. " did not become ready", 0)
end

-- Fills servers as they start, so the caller can stop them all on error.
local function start_servers(o, servers)
   -- one at a time: loading competes for the 2 cores
   local ms = bs.serve({ model = o.model, log = os.tmpname(), what = "bench serve",
      args = string.format("--threads %d --parallel %d --ctx %d --cache-mb %d", o.threads, o.parallel, o.ctx,
         o.cache_mb) })
   ms.name = "moonhub"
   servers[#servers + 1] = ms
   if o.llama_server then
      local port = free_port()
      local cmd = string.format("%s -m %s -t %d -np %d -c %d --port %d", sh_quote(o.llama_server),
         sh_quote(o.model), o.threads, o.parallel, o.parallel * o.ctx, port)
      local ls = { name = "llama-server", base = "http://127.0.0.1:" .. port, cmd = cmd, log = os.tmpname() }
      servers[#servers + 1] = ls
      ls.pid = bs.spawn(cmd, ls.log)
      wait_ready(ls, ls.log)
   end
   if o.url then
      local s = { name = o.url, base = o.url:gsub("/v1/?$", ""):gsub("/$", "") }
      wait_ready(s)
      servers[#servers + 1] = s
   end
end

local function stop_servers(servers)
   for _, s in ipairs(servers) do
      bs.stop(s.pid)
      if s.log then os.remove(s.log) end
   end
end

-- ===== measurements =====

local function median(t)
   local c = { table.unpack(t) }
   table.sort(c)
   local n = #c
   return n % 2 == 1 and c[(n + 1) // 2] or (c[n // 2] + c[n // 2 + 1]) / 2
end

-- S concurrent completions of o.tokens tokens: generated tokens / wall s.
local function streams_tps(srv, o, S, rep)
   local waits = {}
   local t0 = now()
   for i = 1, S do
      waits[i] = completion(srv, string.format("Story %d.%d: once upon a time there was a", rep, i), o.tokens)
   end
   local total = 0
   for i = 1, S do
      local _, reply = must(waits[i]())
      total = total + (reply.usage and reply.usage.completion_tokens or 0)
   end
   return total / (now() - t0)
end

local WORDS = { "the", "little", "fox", "ran", "over", "a", "green", "hill", "and", "saw", "river", "where",
   "children", "played", "with", "boats", "made", "of", "paper", "while", "old", "man", "sang", "songs",
   "about", "sea", "stars", "morning", "bread", "garden", "happy", "quiet" }

-- A text of about n tokens (counted with the model's tokenizer), varied by seed.
local function long_text(tok, n, seed)
   local x, parts = seed, { "Document " .. seed .. ":" }
   local count = 0
   while count < n do
      for _ = 1, 16 do
         x = (x * 1103515245 + 12345) % 2147483648
         parts[#parts + 1] = WORDS[x % #WORDS + 1]
      end
      count = #tok:encode(table.concat(parts, " "))
   end
   return table.concat(parts, " ")
end

-- Time to first token (a 1-token completion): cold on a fresh long text,
-- then the same text + a question (the prefix cached), then again after
-- `parallel` other requests went through every slot (the prefix store).
local function ttft(srv, o, text, rep)
   local cold = must(completion(srv, text, 1)())
   local cached = must(completion(srv, text .. " What happened next?", 1)())
   local waits = {}
   for i = 1, o.parallel do waits[i] = completion(srv, "Unrelated " .. rep .. "." .. i .. " story about cats", 4) end
   for i = 1, o.parallel do must(waits[i]()) end
   local _, reply = must(completion(srv, text .. " Who was there?", 1)())
   local store = must(completion(srv, text .. " Where was it?", 1)())
   return cold, cached, store, reply.usage
end

-- --long: cold time to first token of a fresh text of each length, per
-- server in turn, reps times (median).
local function measure_long(servers, o, tok, progress)
   local res, total, done = {}, #servers * (1 + o.reps * #o.long), 0
   for _, s in ipairs(servers) do
      progress(done, total, false, "warm-up " .. s.name)
      done = done + 1
      res[s.name] = { long = {} }
      must(completion(s, "Warm up: once upon a time", 8)())
   end
   for rep = 1, o.reps do
      for _, n in ipairs(o.long) do
         local text = long_text(tok, n, rep * 7919 + n)
         for _, s in ipairs(servers) do
            progress(done, total, false, string.format("TTFT %d tokens rep %d/%d %s", n, rep, o.reps, s.name))
            done = done + 1
            local l = res[s.name].long
            l[n] = l[n] or {}
            l[n][#l[n] + 1] = must(completion(s, text, 1)())
         end
      end
   end
   progress(total, total, true, "done")
   return res
end

-- measure(servers, o, tok, progress) -> figures per server. progress counts
-- steps: a warm-up per server, then per rep one per stream count and server
-- and two per server (TTFT, latency); its note names the step in flight.
local function measure(servers, o, tok, progress)
   local res = {}
   local total, done = #servers * (1 + o.reps * (#o.streams + 2)), 0
   local function step(note)
      progress(done, total, false, note)
      done = done + 1
   end
   for _, s in ipairs(servers) do
      step("warm-up " .. s.name)
      res[s.name] = { tps = {}, cold = {}, cached = {}, store = {}, lat = {} }
      must(completion(s, "Warm up: once upon a time", 8)())
   end
   for rep = 1, o.reps do               -- interleaved: the shared box's noise hits all servers alike
      local tag = string.format("rep %d/%d", rep, o.reps)
      for _, S in ipairs(o.streams) do
         for _, s in ipairs(servers) do
            step(string.format("%d stream%s %s %s", S, S > 1 and "s" or "", tag, s.name))
            local t = res[s.name].tps
            t[S] = math.max(t[S] or 0, streams_tps(s, o, S, rep))
         end
      end
      local text = long_text(tok, o.prefix, rep * 7919)
      for _, s in ipairs(servers) do
         local r = res[s.name]
         step(string.format("TTFT %s %s", tag, s.name))
         local c, k, st, usage = ttft(s, o, text, rep)
         r.cold[#r.cold + 1], r.cached[#r.cached + 1], r.store[#r.store + 1] = c, k, st
         r.prompt_tokens, r.cached_tokens = usage and usage.prompt_tokens, usage and usage.prompt_tokens_details
            and usage.prompt_tokens_details.cached_tokens
         step(string.format("latency %s %s", tag, s.name))
         for i = 1, 10 do
            r.lat[#r.lat + 1] = must(completion(s, string.format("Request %d.%d: hello there", rep, i), 8)())
         end
      end
   end
   progress(total, total, true, "done")
   return res
end

-- ===== report =====

-- MiB of a process's peak resident memory (VmHWM), or nil (no pid, no /proc).
local function peak_rss_mib(pid)
   local text = pid and fs.read("/proc/" .. pid .. "/status")
   local kb = text and text:match("VmHWM:%s*(%d+) kB")
   return kb and tonumber(kb) / 1024
end

local function print_table(servers, o, res)
   local names = {}
   for i, s in ipairs(servers) do names[i] = s.name end
   local head = string.format("%-44s", "measure")
   for _, n in ipairs(names) do head = head .. string.format(" %14s", n) end
   if #names > 1 then head = head .. string.format(" %12s", "1st / 2nd") end
   print(head)
   local function row(label, f, fmt)
      local line, vals = string.format("%-44s", label), {}
      for i, n in ipairs(names) do
         vals[i] = f(res[n])
         line = line .. string.format(" %14s", vals[i] and string.format(fmt, vals[i]) or "-")
      end
      if #names > 1 and label:sub(1, 1) ~= " " and vals[1] and vals[2] and vals[2] ~= 0 then
         line = line .. string.format(" %12s", string.format("%.2fx", vals[1] / vals[2]))
      end
      print(line)
   end
   local function rss() row("peak RSS (VmHWM) so far, MiB", function(r) return r.rss end, "%.1f") end
   if o.long then
      for _, n in ipairs(o.long) do
         row(string.format("TTFT cold, ~%d-token prompt, ms (median)", n),
            function(r) return median(r.long[n]) * 1e3 end, "%.1f")
      end
      return rss()
   end
   for _, S in ipairs(o.streams) do
      row(string.format("generated tok/s, %d stream%s (best)", S, S > 1 and "s" or ""),
         function(r) return r.tps[S] end, "%.1f")
   end
   local s1 = o.streams[1]
   for _, S in ipairs(o.streams) do
      if S ~= s1 then
         row(string.format("  %d streams / %d", S, s1), function(r) return r.tps[S] / r.tps[s1] end, "%.2fx")
      end
   end
   row(string.format("TTFT cold, %d-token prompt, ms (median)", o.prefix),
      function(r) return median(r.cold) * 1e3 end, "%.1f")
   row("TTFT cached prefix, same slot, ms", function(r) return median(r.cached) * 1e3 end, "%.1f")
   row("  cached / cold", function(r) return median(r.cached) / median(r.cold) end, "%.3f")
   row(string.format("TTFT cached prefix after %d other requests, ms", o.parallel),
      function(r) return median(r.store) * 1e3 end, "%.1f")
   row("  after others / cold", function(r) return median(r.store) / median(r.cold) end, "%.3f")
   row("p50 latency, 8-token completion, ms", function(r) return median(r.lat) * 1e3 end, "%.1f")
   rss()
   for _, n in ipairs(names) do
      local r = res[n]
      print(string.format("%s: long prompt %s tokens, cached %s after other requests", n,
         tostring(r.prompt_tokens or "?"), tostring(r.cached_tokens or "?")))
   end
end

function M.main(args)
   local pok, o = pcall(parse, args)
   if not pok then   -- a bad option: say which, and how the command goes
      io.stderr:write("bench serve: ", type(o) == "table" and tostring(o.usage) or tostring(o), "\n", M.usage, "\n")
      return 2
   end
   if o.help then print(M.usage) return 0 end
   local tok, terr = require("moonhub.tokenizer").load(o.model)
   if not tok then
      io.stderr:write("bench serve: ", tostring(terr), "\n")
      return 1
   end
   local servers = {}
   local progress = require("moonhub.progress").new("bench serve", { unit = "steps", quiet = o.quiet })
   local ok, err = pcall(function()
      start_servers(o, servers)
      local res = (o.long and measure_long or measure)(servers, o, tok, progress)   -- printed after the progress
      for _, s in ipairs(servers) do res[s.name].rss = peak_rss_mib(s.pid) end
      print(string.format("model %s, %d threads, %d parallel, ctx %d per slot, %d tokens per stream, best/median of %d",
         o.model, o.threads, o.parallel, o.ctx, o.tokens, o.reps))
      for _, s in ipairs(servers) do print(s.name .. ": " .. (s.cmd or s.base)) end
      print_table(servers, o, res)
   end)
   stop_servers(servers)
   if not ok then
      io.stderr:write(type(err) == "table" and tostring(err.usage) or tostring(err), "\n")
      return 1
   end
   return 0
end

return M
