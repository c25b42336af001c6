-- Specs for moonhub.http's loop inside this process: sleep, timers, channels
-- fed from C threads, stop, misuse errors, bind errors. Layer: tests. Every
-- run() here has a watchdog timer that stops it, so a bug fails, not hangs.
local mh = require "moonhub"
local http = mh.http

-- Runs the loop with fn started as a timer job; stops after at most secs.
local function run_with(fn, secs)
   local watchdog_fired = false
   local dog = http.timer(secs or 3, function()
      watchdog_fired = true
      http.stop(0)
   end, { once = true })
   http.timer(0, fn, { once = true })
   http.run()
   dog:cancel()
   return not watchdog_fired
end

describe("moonhub.http loop #unit", function()
   -- Events, not durations: a timer due inside the sleep fires during it
   -- (the loop runs), one due long after it has not fired when sleep returns.
   it("sleep outside the loop runs the loop for that long", function()
      local order = {}
      http.timer(0.01, function() order[#order + 1] = "inside" end, { once = true })
      local late = http.timer(30, function() order[#order + 1] = "late" end, { once = true })
      http.sleep(0.05)
      order[#order + 1] = "woke"
      assert.same({ "inside", "woke" }, order)
      late:cancel()
   end)

   it("timer jobs run in coroutines that may sleep; stop ends run", function()
      local order = {}
      local ok = run_with(function()
         order[#order + 1] = "a"
         http.sleep(0.02)
         order[#order + 1] = "c"
         http.stop(0)
      end)
      http.timer(0.005, function() order[#order + 1] = "b" end, { once = true })
      assert.is_true(ok)
      -- "b" was scheduled after run returned: it runs on the next loop run
      assert.same({ "a", "c" }, order)
      http.sleep(0.02)
      assert.same({ "a", "c", "b" }, order)
   end)

   it("a repeating timer fires until cancelled", function()
      local n = 0
      local t
      local ok = run_with(function()
         t = http.timer(0.01, function(self)
            n = n + 1
            if n == 3 then self:cancel(); http.stop(0) end
         end)
      end)
      assert.is_true(ok)
      assert.equal(3, n)
      assert.is_false(t:active())
   end)

   it("ch:recv in a coroutine wakes on a push from a C thread", function()
      -- order, not durations: recv yields to the loop (another job runs
      -- while it waits) and returns the thread's message once it comes
      local got, order = nil, {}
      local ok = run_with(function()
         local ch = http.channel()
         ch:push_later_from_thread("hello", 200, 7)
         http.timer(0, function() order[#order + 1] = "other job" end, { once = true })
         order[#order + 1] = "waiting"
         local msg, tag = ch:recv()
         order[#order + 1] = "received"
         got = { msg, tag }
         http.stop(0)
      end)
      assert.is_true(ok)
      assert.same({ "hello", 7 }, got)
      assert.same({ "waiting", "other job", "received" }, order)
   end)

   it("ch:recv outside the loop waits by running it; nil once closed", function()
      local ch = http.channel()
      ch:push("queued", 1)
      assert.same({ "queued", 1 }, { ch:recv() })
      ch:push_later_from_thread("b\0c", 20, 2)
      assert.same({ "b\0c", 2 }, { ch:recv() })
      ch:close()
      assert.is_nil(ch:recv())
      local ok, err = ch:push("late")
      assert.is_nil(ok)
      assert.matches("closed", err)
   end)

   it("many messages from a thread keep their order", function()
      local ch = http.channel()
      for i = 1, 50 do ch:push_later_from_thread(tostring(i), 5, i) end
      local seen = {}
      for _ = 1, 50 do
         local msg, tag = ch:recv()
         assert.equal(tostring(tag), msg)
         seen[tag] = true
      end
      for i = 1, 50 do assert.is_true(seen[i]) end
   end)

   it("waiting from a nested coroutine inside the loop is a clear error", function()
      local err
      local ok = run_with(function()
         local co = coroutine.create(function() http.sleep(0.01) end)
         local _, e = coroutine.resume(co)
         err = e
         http.stop(0)
      end)
      assert.is_true(ok)
      assert.matches("http.sleep: cannot wait here", err)
   end)

   it("run inside run is refused", function()
      local err
      run_with(function()
         err = select(2, pcall(http.run))
         http.stop(0)
      end)
      assert.matches("already running", err)
   end)

   it("stop outside the loop returns false", function()
      assert.is_false(http.stop())
   end)

   it("misuse raises errors that name the function", function()
      assert.has_error(function() http.sleep(-1) end)
      assert.error_matches(function() http.timer("x", print) end, "http.timer")
      assert.error_matches(function() http.timer(1, 5) end, "http.timer: expected a function")
      assert.error_matches(function() http.server{ prot = 1 } end, "unknown option 'prot'")
      assert.error_matches(function() http.server{ port = "80" } end, "option 'port' must be a number")
      assert.error_matches(function() http.server{ port = 70000 } end, "port must be in 0..65535")
      assert.error_matches(function() http.server{ port = 1.5 } end, "must be an integer")
   end)

   it("a taken port is nil + 'address already in use', not a crash", function()
      local a = assert(http.server{ port = 0 })
      assert.is_true(a.port > 0)
      local b, err = http.server{ port = a.port }
      assert.is_nil(b)
      assert.matches("cannot listen on 127%.0%.0%.1:" .. a.port .. ": Address already in use", err)
      a:close()
      local c = assert(http.server{ port = a.port })   -- free again after close
      c:close()
   end)

   it("an unknown host is nil + msg", function()
      local s, err = http.server{ host = "no-such-host.invalid" }
      assert.is_nil(s)
      assert.matches("cannot resolve host", err)
   end)

   it("parse_query decodes and groups repeated keys", function()
      assert.same({ a = { "1", "2" }, b = "x y", flag = true, ["k k"] = "/" },
                  http.parse_query("a=1&b=x+y&flag&a=2&k%20k=%2F"))
      assert.same({}, http.parse_query(""))
   end)
end)
