-- The cluster on loopback, as a user starts it: `moonhub cluster up 2
-- --workers 2` (PostgreSQL, two servers, two workers, nginx) on stories260K.
-- 200 chat turns in 20 sessions (X-Session-Id) spread over both servers with
-- each session on one (X-Moonhub-Upstream, each server's /metrics, prefix
-- cache hits); 4 jobs through nginx run by both workers, one worker killed
-- with SIGKILL mid-job and its job finished by the other with the losses of
-- an uninterrupted run; the counts in PostgreSQL agree; `cluster down`
-- leaves nothing running. Layer: tests (the CLI, curl, moonhub.db).
local H = require "helpers.host"
local data = require "helpers.data"
local cluster = require "moonhub.cluster"
local json = require "dkjson"

local MODEL = "models/stories260K.gguf"

local function sleep(s) require("moonhub.db").sleep(math.floor(s * 1000)) end

-- wait(fn, what [, secs = 600]) -> fn()'s first truthy value; raises past
-- the bound (a bound on a hang, not a timing assertion: on a loaded host a
-- training step can take 400 ms, so the jobs below can need minutes)
local function wait(fn, what, secs)
   for _ = 1, (secs or 600) * 20 do
      local v = fn()
      if v then return v end
      sleep(0.05)
   end
   error("gave up waiting for " .. what, 2)
end

-- moonhub(home, db, args) -> output; raises on a failure
local function moonhub(home, db, args)
   local p = io.popen(string.format("MOONHUB_HOME=%s MOONHUB_DB=%s %s %s 2>&1", H.q(home), H.q(db), H.q(H.exe),
      args))
   local out = p:read("a")
   local ok = p:close()
   assert(ok, "moonhub " .. args .. ": " .. out)
   return out
end

-- http(method, url, body, headers, dir) -> status, headers (lower-case
-- names), body text
local function http(method, url, body, headers, dir)
   local args = { "curl -s --max-time 60 -X " .. method, "-D " .. H.q(dir .. "/h"), "-o " .. H.q(dir .. "/b") }
   for k, v in pairs(headers or {}) do args[#args + 1] = "-H " .. H.q(k .. ": " .. v) end
   if body then
      H.write(dir .. "/req", body)
      args[#args + 1] = "-H 'Content-Type: application/json' --data-binary @" .. H.q(dir .. "/req")
   end
   args[#args + 1] = H.q(url)
   os.execute(table.concat(args, " "))
   local head = H.read(dir .. "/h") or ""
   local status = math.tointeger(tonumber(head:match("^HTTP/%S+ (%d+)")))
   local hs = {}
   for k, v in head:gmatch("\n([%w-]+):%s*([^\r\n]*)") do hs[k:lower()] = v end
   return status, hs, H.read(dir .. "/b") or ""
end

-- metric(text, name [, label]) -> the sum of the metric's samples (matching label)
local function metric(text, name, label)
   local n = 0
   for line in text:gmatch("[^\n]+") do
      local k, v = line:match("^(" .. name .. "%S*) (%S+)$")
      if k and (not label or k:find(label, 1, true)) then n = n + tonumber(v) end
   end
   return n
end

-- start_up(home, args) -> pid of `moonhub cluster ARGS` in the background,
-- its output in home/up.out
local function start_up(home, args)
   local p = io.popen(string.format("MOONHUB_HOME=%s %s cluster %s >%s 2>&1 & echo $!", H.q(home), H.q(H.exe), args,
      H.q(home .. "/up.out")))
   local pid = math.tointeger(tonumber(p:read("l")))
   p:close()
   return pid
end

-- ready(home, pid) -> nginx's URL once `up` printed it; raises if up ended
local function ready(home, pid)
   return wait(function()
      local out = H.read(home .. "/up.out") or ""
      if not cluster.alive(pid) then error("cluster up ended: " .. out, 0) end
      return out:match("ready at (http://127%.0%.0%.1:%d+)/v1")
   end, "cluster up")
end

local JOB = { model = "stories:base", data = "toy", lr = 1e-2, batch = 4, seed = 3, threads = 1 }
local function job(steps, ckpt)
   local t = { steps = steps, checkpoint_every = ckpt }
   for k, v in pairs(JOB) do t[k] = v end
   return json.encode(t)
end

describe("moonhub cluster up 2 --workers 2 #integration", function()
   it("routes sessions to one server each, runs jobs on both workers through a SIGKILL, stops clean", function()
      local model = data.need(MODEL, pending)
      if not model or not data.need_cmd("nginx", pending) then return end
      local bin, why = cluster.pg_bindir()
      if not bin then return data.skip(why, pending) end
      local home = H.tmpdir()
      local tmp = home .. "/t"
      os.execute("mkdir -p " .. H.q(tmp))
      local up_pid = start_up(home, "up 2 --workers 2 --port 0 --lease 5 --model " .. H.q(model))
      local st
      local ok, err = pcall(function()
         local url = ready(home, up_pid)
         st = assert(cluster.read_state(home))
         assert.equal(2, #st.servers)
         assert.equal(2, #st.workers)
         local db = st.db
         assert.matches("^postgresql://", db)
         moonhub(home, db, "import " .. H.q(model) .. " --name stories --tag base")
         H.write(home .. "/toy.jsonl", require("spec.jobs.common").jsonl(20))
         moonhub(home, db, "data import " .. H.q(home .. "/toy.jsonl") .. " --name toy")

         -- 200 chat turns: 20 sessions of 10, each turn the whole conversation so far
         local where, per_server = {}, {}
         for turn = 1, 10 do
            for s = 1, 20 do
               local sid = "session-" .. s
               where[sid] = where[sid] or { msgs = {}, servers = {} }
               local w = where[sid]
               w.msgs[#w.msgs + 1] = { role = "user", content = string.format("Tell story %d, part %d.", s, turn) }
               local code, hs, body = http("POST", url .. "/v1/chat/completions", json.encode({ model = "stories260K",
                  messages = w.msgs, max_tokens = 8, temperature = 0, seed = 1 }), { ["X-Session-Id"] = sid }, tmp)
               assert.equal(200, code, body)
               local reply = json.decode(body).choices[1].message.content
               w.msgs[#w.msgs + 1] = { role = "assistant", content = reply }
               local up_addr = assert(hs["x-moonhub-upstream"], "nginx names the server")
               w.servers[up_addr] = true
               per_server[up_addr] = (per_server[up_addr] or 0) + 1
            end
         end
         for sid, w in pairs(where) do
            local n = 0
            for _ in pairs(w.servers) do n = n + 1 end
            assert.equal(1, n, sid .. " stayed on one server")
         end
         local hits = 0
         for _, s in ipairs(st.servers) do
            local addr = "127.0.0.1:" .. s.port
            assert.is_true((per_server[addr] or 0) > 0, "both servers answer: " .. json.encode(per_server))
            local _, _, m = http("GET", "http://" .. addr .. "/metrics", nil, nil, tmp)
            -- each server counted exactly the turns nginx sent it
            assert.equal(per_server[addr], metric(m, "moonhub_requests_total", 'route="/v1/chat/completions"'))
            local h = metric(m, "moonhub_prefix_cache_hits_total")
            assert.is_true(h > 0, addr .. " reused a cached prefix")
            hits = hits + h
         end
         assert.is_true(hits >= 90, "most later turns hit their server's prefix cache: " .. hits)

         -- no X-Session-Id: requests sharing their first 256 body bytes (a long
         -- system prompt) go to one server; short different bodies spread
         local function body(system, user)
            local msgs = system and string.format('{"role":"system","content":"%s"},', system) or ""
            return string.format('{"model":"stories260K","messages":[%s{"role":"user","content":"%s"}],'
               .. '"max_tokens":2}', msgs, user)
         end
         local function servers_for(make, n)
            local set, k = {}, 0
            for i = 1, n do
               local code, hs = http("POST", url .. "/v1/chat/completions", make(i), nil, tmp)
               assert.equal(200, code)
               if not set[hs["x-moonhub-upstream"]] then set[hs["x-moonhub-upstream"]], k = true, k + 1 end
            end
            return k
         end
         local long = string.rep("You tell short, kind stories to small children. ", 6)
         assert.equal(1, servers_for(function(i) return body(long, "Tale " .. i) end, 8))
         assert.equal(2, servers_for(function(i) return body(nil, "Tale " .. i) end, 16))

         -- 4 jobs through nginx: a short one, the reference, its twin (to be killed), a short one
         local ids = {}
         for i, jb in ipairs({ job(20, 10), job(300, 40), job(300, 40), job(20, 10) }) do
            local code, _, b = http("POST", url .. "/api/moonhub/jobs", jb, nil, tmp)
            assert.equal(201, code, b)
            ids[i] = math.tointeger(json.decode(b).id)
         end
         local conn = assert(require("moonhub.db").open(db))
         local function row(id) return conn:first("SELECT * FROM runs WHERE id = ?", id) end
         local workers = {}
         for _, w in ipairs(st.workers) do workers[w.pid] = true end
         local victim = wait(function()
            local r = row(ids[3])
            local pid = r.status == "running" and r.step >= 90 and r.lease_owner
               and math.tointeger(tonumber(r.lease_owner:match(":(%d+):%x+$")))
            return pid and workers[pid] and pid
         end, "job " .. ids[3] .. " to pass step 90")
         os.execute("kill -9 " .. victim)
         wait(function() return not cluster.alive(victim) end, "the killed worker to end")
         assert.is_true(row(ids[3]).step < 300, "killed mid-job")
         wait(function()
            return conn:first("SELECT count(*) AS n FROM runs WHERE status = 'succeeded'").n == 4
         end, "all 4 jobs to succeed")
         -- the same losses as its uninterrupted twin, step for step
         local function losses(id)
            local out = {}
            for _, r in ipairs(conn:query("SELECT step, loss FROM run_steps WHERE run_id = ? ORDER BY step", id)) do
               out[r.step] = string.format("%.17g", r.loss)
            end
            return out
         end
         local want, got = losses(ids[2]), losses(ids[3])
         assert.equal(300, #got)
         assert.same(want, got)
         -- who ran what: both workers took jobs; the twin was resumed by the survivor
         local ran = {}
         local evs = conn:query("SELECT run_id, status, reason FROM run_events WHERE status = 'running' ORDER BY id")
         for _, e in ipairs(evs) do ran[math.tointeger(tonumber(e.reason:match(":(%d+):%x+")))] = true end
         local survivor
         for pid in pairs(workers) do
            assert.is_true(ran[pid], "worker " .. pid .. " ran a job")
            if pid ~= victim then survivor = pid end
         end
         local states = {}
         for _, e in ipairs(conn:query("SELECT status, reason FROM run_events WHERE run_id = ? ORDER BY id", ids[3])) do
            states[#states + 1] = e.status
         end
         assert.equal("queued running interrupted running succeeded", table.concat(states, " "))
         assert.matches(":" .. survivor .. ":", row(ids[3]).lease_owner)
         -- counts agree: 4 train runs, their steps, an adapter each, nothing running
         assert.equal(4, conn:first("SELECT count(*) AS n FROM runs WHERE kind = 'train'").n)
         assert.equal(640, conn:first("SELECT count(*) AS n FROM run_steps").n)
         assert.equal(4, conn:first("SELECT count(DISTINCT run_id) AS n FROM run_steps").n)
         -- each job registered its adapter; twins wrote the same bytes, so one version each pair
         assert.equal(4, conn:first("SELECT count(output_version_id) AS n FROM runs WHERE kind = 'train'").n)
         assert.equal(2, conn:first("SELECT count(DISTINCT output_version_id) AS n FROM runs").n)
         assert.equal(row(ids[2]).output_version_id, row(ids[3]).output_version_id, "the resumed twin's adapter")
         assert.equal(0, conn:first("SELECT count(*) AS n FROM runs WHERE status IN ('running', 'queued')").n)
         assert.equal(4 * 3 + 2, conn:first("SELECT count(*) AS n FROM run_events").n)
         conn:close()
      end)
      -- down stops exactly what up started: every pid ends
      local pids = st and cluster.pids(st) or {}
      local out = moonhub(home, st and st.db or "", "cluster down")
      wait(function() return not cluster.alive(up_pid) end, "cluster up to end", 120)
      H.rmdir(home)
      if not ok then error(err, 0) end
      assert.matches("stopped", out)
      assert.is_true(#pids >= 6, "nginx, 2 servers, 2 workers, postgres")
      for _, pid in ipairs(pids) do assert.is_false(cluster.alive(pid), "pid " .. pid .. " still runs") end
   end)

   it("Ctrl-C in `cluster up` stops everything it started", function()
      local model = data.need(MODEL, pending)
      if not model or not data.need_cmd("nginx", pending) then return end
      local bin, why = cluster.pg_bindir()
      if not bin then return data.skip(why, pending) end
      local home = H.tmpdir()
      local up_pid = start_up(home, "up 1 --workers 1 --port 0 --model " .. H.q(model))
      local pids = {}
      local ok, err = pcall(function()
         ready(home, up_pid)
         pids = cluster.pids(assert(cluster.read_state(home)))
         assert.equal(4, #pids, "nginx, a server, a worker, postgres")
         os.execute("kill -INT " .. up_pid)          -- what Ctrl-C at its terminal sends
         wait(function() return not cluster.alive(up_pid) end, "cluster up to end", 60)
      end)
      local out = H.read(home .. "/up.out") or ""
      local left = cluster.read_state(home)
      local still = {}
      for _, pid in ipairs(pids) do
         if cluster.alive(pid) then still[#still + 1] = pid end
      end
      if left then cluster.down(left) end         -- whatever up left behind, before judging it
      if cluster.alive(up_pid) then os.execute("kill -KILL " .. up_pid) end
      for _, pid in ipairs(pids) do
         if cluster.alive(pid) then os.execute("kill -KILL " .. pid) end
      end
      H.rmdir(home)
      if not ok then error(err, 0) end
      assert.matches("moonhub cluster: stopping", out)
      assert.is_nil(left, "the state file is removed")
      assert.same({}, still, "every process up started has ended")
   end)
end)

assert(data.root())
