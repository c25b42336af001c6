-- Specs for moonhub.pool with stand-in models: keep_alive durations, LRU
-- eviction under max_loaded and a memory budget, expiry on the loop's timer.
-- Layer: tests (no model files; the end-to-end server specs are in serve_spec.lua).
local pool_mod = require "moonhub.pool"
local http = require("moonhub").http

-- A pool over fake models: name "a".."z" of size 100 each unless sizes says.
local function fake_pool(opts, sizes)
   local log = {}
   opts = opts or {}
   opts.resolve = function(ref)
      if not ref:match("^%l$") then return nil, "registry: no model named '" .. ref .. "'" end
      return "/m/" .. ref, "k" .. ref, ref .. ":latest"
   end
   opts.load = function(_, path)
      local name = path:match("(%l)$")
      return { size = (sizes or {})[name] or 100, ctx = 64, close = function() log[#log + 1] = "close " .. name end }
   end
   opts.start = function() return { parallel = 1, ctx = 64, close = function() end,
      stats = function() return { store_bytes = 0, store_budget = 0 } end } end
   return pool_mod.new(opts), log
end

local function names(p)
   local out = {}
   for _, e in ipairs(p:list()) do out[#out + 1] = e.name end
   table.sort(out)
   return table.concat(out, ",")
end

describe("pool.parse_duration #unit", function()
   it("reads Ollama keep_alive values", function()
      assert.equal(30.0, pool_mod.parse_duration(30))
      assert.equal(300.0, pool_mod.parse_duration("5m"))
      assert.equal(5400.0, pool_mod.parse_duration("1h30m"))
      assert.equal(0.25, pool_mod.parse_duration("250ms"))
      assert.equal(-1.0, pool_mod.parse_duration("-1"))
      assert.equal(-60.0, pool_mod.parse_duration("-1m"))
      assert.equal(0.0, pool_mod.parse_duration("0"))
      assert.equal(3600.0, pool_mod.parse_duration("3600"))
      local v, err = pool_mod.parse_duration("5 minutes")
      assert.is_nil(v)
      assert.matches("cannot read", err)
      assert.is_nil((pool_mod.parse_duration({})))
   end)
end)

describe("pool #unit", function()
   it("loads on first use, shares an entry, and rejects unknown names with 404", function()
      local p = fake_pool()
      local e = assert(p:acquire("a"))
      assert.equal("a:latest", e.name)
      assert.equal(1, e.busy)
      assert.equal(e, p:acquire("a"))
      assert.equal(2, e.busy)
      local none, err, status = p:acquire("Nope")
      assert.is_nil(none)
      assert.equal(404, status)
      assert.matches("no model named", err)
      p:release(e) p:release(e)
      assert.equal(0, e.busy)
      p:close()
   end)

   it("evicts the least recently used idle model at max_loaded", function()
      local p, log = fake_pool({ max_loaded = 2 })
      p:release(assert(p:acquire("a")))
      http.sleep(0.01)
      p:release(assert(p:acquire("b")))
      http.sleep(0.01)
      p:release(assert(p:acquire("a")))        -- a is now the most recent
      p:release(assert(p:acquire("c")))
      assert.equal("a:latest,c:latest", names(p))
      assert.same({ "close b" }, log)
      p:close()
   end)

   it("keeps busy models: 503 when nothing can be evicted", function()
      local p = fake_pool({ max_loaded = 1 })
      local a = assert(p:acquire("a"))
      local none, err, status = p:acquire("b")
      assert.is_nil(none)
      assert.equal(503, status)
      assert.matches("busy", err)
      p:release(a)
      assert.truthy(p:acquire("b"))
      p:close()
   end)

   it("evicts under the memory budget and refuses a model larger than it", function()
      local p, log = fake_pool({ mem_budget = 250 }, { a = 100, b = 100, c = 100, d = 300 })
      p:release(assert(p:acquire("a")))
      http.sleep(0.01)
      p:release(assert(p:acquire("b")))
      p:release(assert(p:acquire("c")))
      assert.equal("b:latest,c:latest", names(p))
      assert.same({ "close a" }, log)
      local none, err, status = p:acquire("d")
      assert.is_nil(none)
      assert.equal(503, status)
      assert.matches("over the memory budget", err)
      assert.equal("b:latest,c:latest", names(p))
      p:close()
   end)

   it("keep_alive 0 unloads after the answer, negative keeps, short values expire", function()
      local p, log = fake_pool({ keep_alive = 0.15 })
      p:release(assert(p:acquire("a")), 0)
      assert.same({ "close a" }, log)
      p:release(assert(p:acquire("b")), -1)
      p:release(assert(p:acquire("c")))
      assert.equal("b:latest,c:latest", names(p))
      local st = p:state()
      local by = {}
      for _, s in ipairs(st) do by[s.name] = s end
      assert.is_true(by["b:latest"].forever)
      assert.is_number(by["c:latest"].expires_at)
      local t0 = require("moonhub.core.sys").now()
      while #p:list() > 1 and require("moonhub.core.sys").now() - t0 < 30 do http.sleep(0.02) end
      assert.equal("b:latest", names(p))
      assert.same({ "close a", "close c" }, log)
      p:close()
      assert.same({ "close a", "close c", "close b" }, log)
   end)

   it("reports changes and unloads", function()
      local changes, gone = 0, {}
      local p = fake_pool({ on_change = function() changes = changes + 1 end,
         on_unload = function(e) gone[#gone + 1] = e.name .. " " .. e.unloaded end })
      p:release(assert(p:acquire("a")), 0)
      assert.is_true(changes >= 2)
      assert.same({ "a:latest keep_alive 0" }, gone)
      p:close()
   end)

   it("checks its options", function()
      assert.has_error(function() pool_mod.new({ max_loaded = 0 }) end,
         "pool.new: max_loaded must be a positive integer, got 0")
      assert.has_error(function() pool_mod.new({ mem_budget = -1 }) end,
         "pool.new: mem_budget must be a positive number of bytes")
      assert.has_error(function() pool_mod.new():acquire("") end, "pool:acquire: ref must be a non-empty string")
   end)

   -- Loads yield (in a server they wait on a worker thread): run requests as
   -- loop coroutines and a stand-in load that waits on a gate channel the
   -- plan opens. The timers give the order of the steps (they fire in order
   -- even when all are late); the loop stops when done() says so (a 60 s
   -- bound ends a hang), never after a fixed time a loaded host may need.
   local function run_requests(plan, done)
      for _, step in ipairs(plan) do http.timer(step[1], step[2], { once = true }) end
      local t0 = require("moonhub.core.sys").now()
      local check
      check = http.timer(0.01, function()
         if done() or require("moonhub.core.sys").now() - t0 > 60 then
            check:cancel()
            http.stop(0)
         end
      end)
      http.run()
   end

   it("loads once for concurrent requests, which wait (state loading); other models go on", function()
      local p = fake_pool()
      local loads, order, got, mid = {}, {}, {}, nil
      local plain, gate = p.opts.load, http.channel()
      p.opts.load = function(pool, path)
         loads[#loads + 1] = path
         if path == "/m/s" then gate:recv() end        -- s loads until "a" is served
         return plain(pool, path)
      end
      run_requests({
         { 0, function() got[1] = p:acquire("s"); order[#order + 1] = "s1" end },
         { 0.05, function() got[2] = p:acquire("s"); order[#order + 1] = "s2" end },
         { 0.1, function()
            mid = p:state()
            got[3] = p:acquire("a"); order[#order + 1] = "a"
            gate:push("go")
         end },
      }, function() return #order == 3 end)
      assert.same({ "/m/s", "/m/a" }, loads)
      assert.same({ "a", "s1", "s2" }, order)          -- "a" did not wait for "s"
      assert.equal(got[1], got[2])
      assert.equal(2, got[1].busy)
      assert.same({ { name = "s:latest", path = "/m/s", state = "loading", busy = 0, waiting = 1 } },
         { { name = mid[1].name, path = mid[1].path, state = mid[1].state, busy = mid[1].busy,
            waiting = mid[1].waiting } })
      assert.equal("loaded", p:state()[1].state)
      assert.is_nil(next(p.loading))
   end)

   it("gives the waiters of a failed load its error", function()
      local p = fake_pool()
      local gate, loads = http.channel(), 0
      p.opts.load = function()
         loads = loads + 1
         gate:recv()                                    -- fails once both wait on it
         return nil, "bad file"
      end
      local out = {}
      run_requests({
         { 0, function() out[1] = { p:acquire("s") } end },
         { 0.02, function() out[2] = { p:acquire("s") } end },
         { 0.04, function() gate:push("go") end },
      }, function() return out[1] and out[2] end)
      assert.equal(1, loads)
      assert.same({ nil, "bad file", 500 }, out[1])
      assert.same({ nil, "bad file", 500 }, out[2])
      assert.equal("", names(p))
   end)

   it("unloads a busy model once its requests are done, refusing new ones meanwhile", function()
      local p, log = fake_pool()
      local order, e, refused = {}, nil, nil
      run_requests({
         { 0, function() e = p:acquire("a") end },
         { 0.05, function()
            assert.is_true(p:unload_idle(e, "removed", 5))
            order[#order + 1] = "unloaded"
         end },
         { 0.1, function() refused = { p:acquire("a") } end },
         { 0.2, function()
            order[#order + 1] = "released"
            p:release(e)
         end },
      }, function() return #order == 2 end)
      assert.same({ "released", "unloaded" }, order)
      assert.same({ nil, "model 'a:latest' is being unloaded; retry shortly", 503 }, refused)
      assert.same({ "close a" }, log)
      assert.equal("", names(p))
      -- outside a loop coroutine a busy model is refused at once
      local b = assert(p:acquire("b"))
      local ok, err = p:unload_idle(b, "removed")
      assert.is_nil(ok)
      assert.matches("answering requests", err)
   end)
end)

