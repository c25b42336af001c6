-- Specs for moonhub.sched on stories260K: blocking r:next() in a script,
-- agreement with model:generate, queueing, cancel, prefix cache, logprobs,
-- errors, and a server whose handler coroutines await r:next(). Layer: tests.
local mh = require "moonhub"
local data = require "helpers.data"
local H = require "helpers.host"
local now = require("moonhub.core.sys").now

local MODEL = "models/stories260K.gguf"
local P1 = { 1, 403, 407, 261, 378, 432, 383, 286, 261, 376 }
local P2 = { 1, 385, 410 }

local function greedy_ids(model, prompt, n)
   local _, st = model:generate(prompt, { temperature = 0, max_tokens = n })
   return st.tokens
end

describe("moonhub.sched in a script", function()
   local path, model, s

   before_each(function()
      path = data.need(MODEL, pending)
      if path then model = assert(mh.load(path)) end
   end)
   after_each(function()
      if s then s:close() end
      s = nil
   end)

   it("decodes like model:generate, four requests batched", function()
      if not path then return end
      local prompts = { P1, P2, { 1, 300, 301, 302, 303, 304 }, { 1, 66 } }
      local want = {}
      for i, p in ipairs(prompts) do want[i] = greedy_ids(model, p, 12 + i) end
      s = assert(mh.sched.new(model, { parallel = 4, ctx = 128, prefill_chunk = 4 }))
      local reqs = {}
      for i, p in ipairs(prompts) do reqs[i] = { tokens = p, max_tokens = 12 + i, temperature = 0 } end
      local rs = assert(s:submit_all(reqs))   -- admitted together: the steps are shared
      for i, r in ipairs(rs) do
         local ids, fin = r:wait()
         assert.same(want[i], ids)
         assert.equal(fin.reason, #ids == 12 + i and "length" or "stop")
         assert.equal(#prompts[i], fin.usage.prompt_tokens)
         assert.equal(#ids, fin.usage.completion_tokens)
         assert.is_true(fin.timings.ttft_ms >= 0 and fin.timings.queue_ms >= 0)
         assert.is_nil(r:next())
      end
      local st = s:stats()
      assert.equal(4, st.requests_done)
      assert.equal(0, st.running)
      assert.equal(4 * 128, st.kv_total)
      -- shared steps (21 today with 4 prompt rows a step): one at a time
      -- would take at least 12 + 13 + 14 + 15
      assert.is_true(st.steps < 30, "steps " .. st.steps)
   end)

   it("takes no step while held", function()
      if not path then return end
      s = assert(mh.sched.new(model, { parallel = 2, ctx = 64 }))
      s._h:hold(true)
      local r = assert(s:submit{ tokens = P2, max_tokens = 3, temperature = 0 })
      os.execute("sleep 0.1")
      local st = s:stats()
      assert.equal(0, st.steps)
      assert.equal(1, st.waiting)
      s._h:hold(false)
      local ids = r:wait()
      assert.equal(3, #ids)
   end)

   it("submit_all refuses a bad request and cancels the ones before it", function()
      if not path then return end
      s = assert(mh.sched.new(model, { parallel = 2, ctx = 64 }))
      local ok, err = pcall(s.submit_all, s, { { tokens = P2, max_tokens = 50, eog = false }, { tokens = {} } })
      assert.is_false(ok)
      assert.matches("tokens is empty", err)
      local rs = assert(s:submit_all{ { tokens = P2, max_tokens = 3, temperature = 0 } })
      local ids, fin = rs[1]:wait()
      assert.equal(3, #ids)
      assert.equal("length", fin.reason)
      local st = s:stats()
      assert.equal(0, st.running)
      assert.equal(0, st.waiting)
   end)

   it("queues requests beyond the slots and finishes them all", function()
      if not path then return end
      s = assert(mh.sched.new(model, { parallel = 1, ctx = 64, prefix_cache = false }))
      local rs = {}
      for i = 1, 3 do rs[i] = assert(s:submit{ tokens = P2, max_tokens = 5, temperature = 0, eog = false }) end
      local first
      for i = 1, 3 do
         local ids, fin = rs[i]:wait()
         assert.equal("length", fin.reason)
         assert.equal(5, #ids)
         first = first or ids
         assert.same(first, ids)
         assert.equal(0, fin.usage.cached_tokens)
      end
   end)

   it("cancels mid-stream", function()
      if not path then return end
      -- A processor parks the request before each token until r:next() runs
      -- it, so the request cannot run on to its end while this thread waits
      -- (a loaded host could let a plain one finish its 200 tokens before the
      -- cancel); test_sched.c cancels a request without processors.
      s = assert(mh.sched.new(model, { parallel = 1, ctx = 256 }))
      local r = assert(s:submit{ tokens = P1, max_tokens = 200, temperature = 0, eog = false,
         processors = { { name = "ban_words", args = { words = { "\1\2\3" } } } } })
      local ev = r:next()
      assert.is_number(ev.token)
      assert.is_true(r:cancel())
      local ids, fin = r:wait()
      assert.equal("cancel", fin.reason)
      assert.is_true(fin.usage.completion_tokens < 200)
      assert.equal(fin.usage.completion_tokens, #ids + 1)
      assert.is_false(r:cancel())
   end)

   it("reuses a cached prefix and reports it", function()
      if not path then return end
      s = assert(mh.sched.new(model, { parallel = 2, ctx = 128 }))
      local _, a = assert(s:submit{ tokens = P1, max_tokens = 6, temperature = 0 }):wait()
      assert.equal(0, a.usage.cached_tokens)
      local follow = { table.unpack(P1, 1, 8) }
      follow[9], follow[10] = 40, 41
      local ids, b = assert(s:submit{ tokens = follow, max_tokens = 6, temperature = 0 }):wait()
      assert.equal(8, b.usage.cached_tokens)
      local st = s:stats()
      assert.equal(1, st.prefix_hits)
      assert.equal(8, st.prefix_tokens)
      s:close()
      s = nil
      assert.same(greedy_ids(model, follow, 6), ids)
   end)

   it("reports logprobs and top candidates", function()
      if not path then return end
      s = assert(mh.sched.new(model, { ctx = 64 }))
      local r = assert(s:submit{ tokens = P1, max_tokens = 2, temperature = 0, logprobs = 3 })
      local ev = r:next()
      assert.equal(3, #ev.top)
      assert.equal(ev.token, ev.top[1][1])
      assert.near(ev.logprob, ev.top[1][2], 1e-6)
      assert.is_true(ev.top[2][2] <= ev.top[1][2] and ev.logprob <= 0)
      r:wait()
      local plain = assert(s:submit{ tokens = P1, max_tokens = 1, temperature = 0 }):next()
      assert.is_nil(plain.logprob)
      assert.is_nil(plain.top)
   end)

   it("rejects bad requests clearly and owns the model while it runs", function()
      if not path then return end
      s = assert(mh.sched.new(model, { ctx = 32 }))
      local r, msg = s:submit{ tokens = P1, max_tokens = 30 }
      assert.is_nil(r)
      assert.matches("exceeds the context of 32", msg)
      assert.has_error(function() s:submit{ tokens = {} } end, "sched:submit: tokens is empty")
      assert.has_error(function() s:submit{ tokens = { 1, 9999 } } end)
      assert.has_error(function() s:submit{ tokens = P2, logprobs = 50 } end)
      assert.has_error(function() s:submit("x") end)
      assert.has_error(function() mh.sched.new(model, { parallel = 0 }) end)
      local ok, err = pcall(model.forward, model, { 1 })
      assert.is_false(ok)
      assert.matches("scheduler", err)
      assert.has_error(function() mh.sched.new(model) end)   -- already owned
      s:close()
      assert.has_error(function() s:submit{ tokens = P2 } end, "sched:submit: the scheduler is closed")
      s = nil
      assert.equal(512, model:forward({ 1 }):size(2))     -- given back
      local none, why = mh.sched.new(model, { parallel = 4, ctx = 1024, mem_limit = 1000 })
      assert.is_nil(none)
      assert.matches("KV cache", why)
   end)

   it("stops at the tokenizer's end-of-generation ids", function()
      if not path then return end
      local want = greedy_ids(model, P1, 30)
      s = assert(mh.sched.new(model, { ctx = 512 }))
      assert.same({ 2 }, s.eog_ids)
      -- a bias that makes EOS the best token: the request stops at once
      local ids, fin = assert(s:submit{ tokens = P1, max_tokens = 40, temperature = 0,
         logit_bias = { [2] = 100 } }):wait()
      assert.equal("stop", fin.reason)
      assert.same({}, ids)
      -- an explicit list: the first new greedy token after the fourth ends it
      local k = 5
      while want[k] and table.concat(want, ",", 1, k - 1):find("%f[%d]" .. want[k] .. "%f[%D]") do k = k + 1 end
      ids, fin = assert(s:submit{ tokens = P1, max_tokens = 30, temperature = 0, eog_ids = { want[k] } }):wait()
      assert.equal("stop", fin.reason)
      assert.same({ table.unpack(want, 1, k - 1) }, ids)
   end)
end)

describe("moonhub.sched in a server #integration", function()
   local app

   local function sh(cmd) return os.execute(cmd) end

   after_each(function()
      if not app then return end
      sh("kill " .. app.pid .. " 2>/dev/null")
      local t0 = now()
      local function alive()          -- a zombie counts as ended
         local stat = H.read("/proc/" .. app.pid .. "/stat")
         return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
      end
      while alive() and now() - t0 < 30 do mh.http.sleep(0.02) end
      sh("kill -9 " .. app.pid .. " 2>/dev/null")
      H.rmdir(app.dir)
      app = nil
   end)

   it("streams from handler coroutines awaiting r:next()", function()
      local path = data.need(MODEL, pending)
      if not path then return end
      local model = assert(mh.load(path))
      local want1, want2 = greedy_ids(model, P1, 20), greedy_ids(model, P2, 30)
      local dir = H.tmpdir()
      sh(string.format("%s run tests/spec/sched/app.lua %s %s >%s 2>%s & echo $! >%s", H.q(H.exe),
         H.q(path), H.q(dir .. "/port"), H.q(dir .. "/out"), H.q(dir .. "/err"), H.q(dir .. "/pid")))
      local t0 = now()
      while not H.read(dir .. "/port") and now() - t0 < 60 do mh.http.sleep(0.02) end
      local port = tonumber(H.read(dir .. "/port") or "")
      assert(port, "server did not start: " .. tostring(H.read(dir .. "/err")))
      app = { pid = tonumber(H.read(dir .. "/pid")), dir = dir }
      local base = "http://127.0.0.1:" .. port
      local function url(p, n) return H.q(base .. "/gen?n=" .. n .. "&p=" .. table.concat(p, ",")) end
      -- two requests at once: both run in the scheduler's batch
      sh(string.format("curl -s -m 60 %s >%s & curl -s -m 60 %s >%s; wait", url(P1, 20),
         H.q(dir .. "/a"), url(P2, 30), H.q(dir .. "/b")))
      local function parse(text)
         local ids, done = {}, nil
         for line in (text or ""):gmatch("data: ([^\n]+)") do
            if line:match("^done") then done = line else ids[#ids + 1] = tonumber(line) end
         end
         return ids, done
      end
      local a, da = parse(H.read(dir .. "/a"))
      local b, db = parse(H.read(dir .. "/b"))
      assert.equal("done length 20", da)
      assert.equal("done length 30", db)
      -- the model stops at EOS, the server (eog = false) does not
      assert.same(want1, { table.unpack(a, 1, #want1) })
      assert.same(want2, { table.unpack(b, 1, #want2) })
      local function stats()
         local p = io.popen("curl -s -m 30 " .. H.q(base .. "/stats"))
         local text = p:read("a")
         p:close()
         return text
      end
      assert.equal("done=2 running=0 cancel=0", stats())
      -- a client that goes away once its stream has begun (a curl -m 0.3
      -- could give up before it connected on a loaded host): the handler's
      -- write fails and it cancels
      local p = io.popen(string.format("(exec curl -s -N -m 120 %s >%s 2>/dev/null) & echo $!",
         H.q(base .. "/gen?slow=1&n=4000&p=1"), H.q(dir .. "/c")))
      local curl_pid = p:read("l")
      p:close()
      local t1 = now()
      while not (H.read(dir .. "/c") or ""):find("data: ", 1, true) and now() - t1 < 60 do mh.http.sleep(0.02) end
      sh("kill " .. curl_pid)
      t1 = now()
      while stats() ~= "done=3 running=0 cancel=1" and now() - t1 < 60 do mh.http.sleep(0.05) end
      assert.equal("done=3 running=0 cancel=1", stats())
   end)
end)
