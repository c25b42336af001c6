-- moonhub.pool: the models a server holds, loaded on first use by registry
-- name, each with its scheduler; unloaded after keep_alive idle (a timer on
-- the loop) and the least recently used evicted under max_loaded or a
-- memory budget. In a server a load runs on a worker thread (moonhub.work):
-- the model shows as "loading", requests for it wait, others go on; a load
-- is checked (memory, KV cache type) before anything is evicted for it.
-- Layer: lua/moonhub (uses moonhub.model, .sched, .models, .registry, .http
-- timers and channels). See docs/registry.md, "Multiple models".
local http = require "moonhub.http"

local M = {}
local Pool = {}
Pool.__index = Pool

local function now() return require("moonhub.core.sys").now() end

M.DEFAULT_KEEP_ALIVE = 300      -- seconds, as Ollama
M.DEFAULT_MAX_LOADED = 3

local UNITS = { ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ms = 1e-3, s = 1, m = 60, h = 3600 }

-- parse_duration(v) -> seconds | nil, msg. As Ollama's keep_alive: a
-- number of seconds, or a Go duration ("5m", "1h30m", "250ms", "-1s");
-- a string of digits alone is seconds. Negative: keep loaded forever.
function M.parse_duration(v)
   if math.type(v) then return v + 0.0 end
   if type(v) ~= "string" or v == "" then
      return nil, "keep_alive must be a number of seconds or a duration such as \"5m\""
   end
   if v:match("^%s*[-+]?%d+%.?%d*%s*$") then return tonumber(v) + 0.0 end
   local sign, rest = v:match("^([-+]?)(.+)$")
   local total, pos = 0.0, 1
   while pos <= #rest do
      local num, unit, nxt = rest:match("^(%d*%.?%d+)([a-zµ]+)()", pos)
      if not num or not UNITS[unit] then
         return nil, string.format("keep_alive: cannot read %q as a duration (use e.g. 30s, 5m, 1h, -1)", v)
      end
      total = total + tonumber(num) * UNITS[unit]
      pos = nxt
   end
   return sign == "-" and -total or total
end

-- The default loader: registry name -> model and its scheduler. A
-- registered adapter version loads as its base plus the adapter (mh.load);
-- opts.adapters ("ADAPTER[:SCALE]" specs) go on the default model only.
local function default_load(pool, path, key)
   local o = pool.opts
   local mh = require "moonhub"
   local model, err = mh.load(path, { ctx = o.ctx, threads = o.threads, kv_type = o.kv_type })
   if not model then return nil, err end
   local ok, aerr = require("moonhub.adapters").apply(model, key == "default" and o.adapters or nil)
   if not ok then model:close(); return nil, aerr end
   return model
end

-- new{max_loaded = 3, mem_budget = bytes, keep_alive = 300, ctx =,
--   parallel = 1, kv_type =, threads =, sched = {extra sched.new options},
--   adapters = {"ADAPTER[:SCALE]", ...} (on the default model), load =
--   fn(pool, path, key) -> model | nil, msg (key "default": the default model),
--   start = fn(pool, model) -> sched | nil, msg, resolve = fn(ref) -> path, key | nil, msg,
--   on_change = fn(pool), on_unload = fn(entry)} -> pool
function M.new(opts)
   opts = opts or {}
   if type(opts) ~= "table" then error("pool.new: opts must be a table, got " .. type(opts), 2) end
   local ml = opts.max_loaded or M.DEFAULT_MAX_LOADED
   if math.type(ml) ~= "integer" or ml < 1 then
      error("pool.new: max_loaded must be a positive integer, got " .. tostring(ml), 2)
   end
   local ka = opts.keep_alive or M.DEFAULT_KEEP_ALIVE
   if type(ka) ~= "number" then error("pool.new: keep_alive must be a number of seconds", 2) end
   if opts.mem_budget ~= nil and (type(opts.mem_budget) ~= "number" or opts.mem_budget <= 0) then
      error("pool.new: mem_budget must be a positive number of bytes", 2)
   end
   return setmetatable({ opts = opts, max_loaded = ml, keep_alive = ka, mem_budget = opts.mem_budget,
      entries = {}, loading = {}, default = nil }, Pool)
end

-- ===== resolving names =====

-- A registry reference -> path, key (one key per registered version, so
-- "name" and "name:latest" share an entry) | nil, msg. Paths are refused:
-- a client names models, not files on the server.
function Pool:resolve(ref)
   local d = self.default
   if d and (ref == d.ref or ref == d.name) then
      local path, err = require("moonhub.models").resolve(d.ref)
      if not path then return nil, err end
      return path, "default", d.name
   end
   if self.opts.resolve then return self.opts.resolve(ref) end
   local name, tag = ref:match("^([^:]+):([^:]+)$")
   name = name or ref
   if #ref > 250 or not name:match("^[%w][%w%._%-/]*$") or name:match("%.%.")
      or (tag and not tag:match("^[%w][%w%._%-]*$")) then
      return nil, "not a model name"
   end
   local home = require("moonhub").home()
   if not require("moonhub.registry").exists(home) then return nil, "the registry is empty" end
   local reg, msg = require("moonhub.registry").open(home)
   if not reg then return nil, msg end
   local row, rerr = reg:resolve(ref)
   reg:close()
   if not row then return nil, rerr end
   return row.path, "v" .. row.id, row.model .. ":" .. row.tag
end

-- set_default(ref, name): the model serve --model names (a path or a
-- registry name, reported as name); it reloads by ref after an unload.
function Pool:set_default(ref, name)
   self.default = { ref = ref, name = name or ref }
end

-- find(ref) -> the loaded entry answering to ref, or nil
function Pool:find(ref)
   for _, e in pairs(self.entries) do
      if e.refs[ref] then return e end
   end
   return nil
end

-- ===== memory and eviction =====

function Pool:used()
   local n, bytes = 0, 0
   for _, e in pairs(self.entries) do n, bytes = n + 1, bytes + (e.size or 0) end
   return n, bytes
end

local function lru_idle(self, except)
   local best
   for _, e in pairs(self.entries) do
      if e ~= except and e.busy == 0 and (not best or e.last_used < best.last_used) then best = e end
   end
   return best
end

-- Evicts idle entries, least recently used first, until one more model of
-- `need` bytes fits -> true | nil, msg
function Pool:make_room(need)
   while true do
      local n, bytes = self:used()
      local over_count = n >= self.max_loaded
      local over_mem = self.mem_budget and bytes + need > self.mem_budget
      if not over_count and not over_mem then return true end
      local victim = lru_idle(self)
      if not victim then
         return nil, over_count and string.format("all %d loaded models are busy (--max-loaded %d); retry shortly",
            n, self.max_loaded) or "the loaded models are busy and the memory budget is spent; retry shortly"
      end
      self:unload(victim, "evicted")
   end
end

-- ===== loading and unloading =====

-- Bytes a model takes with parallel sequences of ctx (weights + KV +
-- scratch); asked before its scheduler starts (which owns the model after).
local function entry_size(model, ctx, parallel)
   if type(model.memory_needed) ~= "function" then return model.size or 0 end
   local ok, n = pcall(model.memory_needed, model, ctx * parallel)
   return ok and n or 0
end

-- add(ref, model, sched, {key =, name =, path =, size =}) -> entry:
-- registers a model with its running scheduler (size: its bytes, measured
-- before the scheduler started).
function Pool:add(ref, model, sched, info)
   info = info or {}
   local key = info.key or ("path:" .. (info.path or ref))
   local parallel = sched and sched.parallel or self.opts.parallel or 1
   local ctx = sched and sched.ctx or model.ctx
   local t = now()
   local e = { key = key, name = info.name or ref, refs = { [ref] = true }, path = info.path or model.path,
      model = model, sched = sched, ctx = ctx, parallel = parallel, size = info.size or model.size or 0,
      loaded_at = t, loaded_wall = os.time(), last_used = t, busy = 0, keep_alive = self.keep_alive }
   if info.name then e.refs[info.name] = true end
   self.entries[key] = e
   self:touch(e)
   return e
end

-- Whether a scheduler can run model before anything is evicted for it:
-- a one-cell KV cache of the configured type (q8_0 needs head_dim a
-- multiple of 32) -> true | nil, msg
local function check_startable(model)
   if type(model.new_cache) ~= "function" then return true end
   local ok, err = pcall(model.new_cache, model, 1)
   if ok then return true end
   return nil, (tostring(err):gsub("^.-new_cache: ", ""))    -- the reason, not where it was raised
end

-- The load itself (model, room, scheduler) -> entry | nil, msg, status
function Pool:load_now(ref, path, key, name)
   local model, err = (self.opts.load or default_load)(self, path, key)
   if not model then return nil, err, 500 end
   local parallel = self.opts.parallel or 1
   local ctx = self.opts.ctx or model.ctx
   local need = entry_size(model, ctx, parallel)
   if self.mem_budget and need > self.mem_budget then
      model:close()
      return nil, string.format("model '%s' needs %.1f MiB at ctx %d x %d, over the memory budget of %.1f MiB",
         ref, need / 2^20, ctx, parallel, self.mem_budget / 2^20), 503
   end
   local startable, why = check_startable(model)
   if not startable then
      model:close()
      -- public: the message names no file, so clients may see it
      return nil, string.format("model '%s' cannot be served: %s", ref, why), 500, true
   end
   local ok, room = self:make_room(need)
   if not ok then
      model:close()
      return nil, room, 503
   end
   local sched, serr
   if self.opts.start then
      sched, serr = self.opts.start(self, model)
   else
      local so = { parallel = parallel, ctx = ctx, kv_type = self.opts.kv_type }
      for k, v in pairs(self.opts.sched or {}) do so[k] = v end
      sched, serr = require("moonhub.sched").new(model, so)
   end
   if not sched then
      model:close()
      return nil, serr, 500
   end
   return self:add(ref, model, sched, { key = key, name = name, path = path, size = need })
end

-- Waits (in a loop coroutine) for the load in flight for key -> its
-- outcome: entry | nil, msg, status
local function wait_load(ld)
   if not require("moonhub.work").in_task() then
      return nil, "model '" .. ld.name .. "' is loading; retry shortly", 503
   end
   local ch = http.channel()
   ld.waiters[#ld.waiters + 1] = ch
   while ch:recv() do end
   return table.unpack(ld.outcome, 1, 4)
end

-- load(ref) -> entry | nil, msg, status (404 unknown, 503 no room, 500
-- failed), public (the message is safe to show a client: names no file).
-- While a load runs (its model, tokenizer and weights map on a worker
-- thread in a server) its key is in self.loading; requests for
-- the same model wait for it, other requests go on.
function Pool:load(ref)
   local path, key, name = self:resolve(ref)
   if not path then return nil, key, 404 end
   local e = self.entries[key]
   if e then
      e.refs[ref] = true
      return e
   end
   local ld = self.loading[key]
   if ld then
      local le, err, status, public = wait_load(ld)
      if le then le.refs[ref] = true end
      return le, err, status, public
   end
   ld = { key = key, name = name or ref, path = path, started = now(), waiters = {} }
   self.loading[key] = ld
   self:touch()
   local ok, a, b, c, d = pcall(self.load_now, self, ref, path, key, name)
   if not ok then a, b, c, d = nil, tostring(a), 500, nil end
   if a and self.closed then             -- the server stopped while it loaded
      self:unload(a, "closed")
      a, b, c = nil, "the server is stopping", 503
   end
   self.loading[key] = nil
   ld.outcome = { a, b, c, d }
   for _, ch in ipairs(ld.waiters) do ch:close() end
   self:touch()
   return a, b, c, d
end

-- unload(entry, why?): stops its scheduler and frees the model.
function Pool:unload(e, why)
   if self.entries[e.key] ~= e then return false end
   self.entries[e.key] = nil
   if e.sched then e.sched:close() end
   if e.model and e.model.close then e.model:close() end
   e.unloaded = why or "unloaded"
   if self.opts.on_unload then self.opts.on_unload(e) end
   self:touch()
   return true
end

-- unload_idle(entry, why, timeout = 60) -> true | nil, msg: unloads e
-- once the requests it is answering are done; new requests for it get 503
-- meanwhile. Waits in a loop coroutine (elsewhere a busy model is an error).
function Pool:unload_idle(e, why, timeout)
   if self.entries[e.key] ~= e then return true end
   if e.busy > 0 then
      if not require("moonhub.work").in_task() then
         return nil, "model '" .. e.name .. "' is answering requests; retry shortly"
      end
      e.draining = true
      local ch = http.channel()
      e.idle_waiters = e.idle_waiters or {}
      e.idle_waiters[#e.idle_waiters + 1] = ch
      local t = http.timer(timeout or 60, function() ch:close() end, { once = true })
      while ch:recv() do end
      t:cancel()
      if e.busy > 0 then
         e.draining = nil
         return nil, string.format("model '%s' was still answering requests after %g s; retry later",
            e.name, timeout or 60)
      end
   end
   self:unload(e, why)
   return true
end

-- ===== use =====

-- acquire(ref) -> entry | nil, msg, status, public. The entry stays loaded
-- (busy) until release.
function Pool:acquire(ref)
   if type(ref) ~= "string" or ref == "" then error("pool:acquire: ref must be a non-empty string", 2) end
   local e = self:find(ref)
   if not e then
      local err, status, public
      e, err, status, public = self:load(ref)
      if not e then return nil, err, status, public end
   end
   if e.draining then return nil, "model '" .. e.name .. "' is being unloaded; retry shortly", 503 end
   e.busy = e.busy + 1
   e.last_used = now()
   e.expires = nil
   self:touch()
   return e
end

-- release(entry, keep_alive?) -> the request is done: keep_alive (seconds;
-- 0 unloads now, negative keeps forever; default the entry's) starts.
function Pool:release(e, keep_alive)
   e.busy = math.max(0, e.busy - 1)
   e.last_used = now()
   if keep_alive ~= nil then e.keep_alive = keep_alive end
   if e.busy == 0 and e.idle_waiters then       -- unload_idle waits for this
      for _, ch in ipairs(e.idle_waiters) do ch:close() end
      e.idle_waiters = nil
   end
   if e.busy == 0 and self.entries[e.key] == e then
      if e.keep_alive == 0 then return self:unload(e, "keep_alive 0") end
      e.expires = e.keep_alive > 0 and (e.last_used + e.keep_alive) or nil
   end
   self:touch()
end

-- Re-arms the expiry timer for the earliest deadline and reports a change.
function Pool:touch()
   if self.timer then self.timer:cancel() self.timer = nil end
   local first
   for _, e in pairs(self.entries) do
      if e.busy == 0 and e.expires and (not first or e.expires < first) then first = e.expires end
   end
   if first and not self.closed then
      self.timer = http.timer(math.max(0.01, first - now()), function() self:sweep() end, { once = true })
   end
   if self.opts.on_change then self.opts.on_change(self) end
end

-- Unloads every idle entry past its deadline.
function Pool:sweep()
   self.timer = nil
   local t = now()
   for _, e in pairs(self.entries) do
      if e.busy == 0 and e.expires and e.expires <= t + 0.005 then self:unload(e, "expired") end
   end
   self:touch()
end

-- list() -> loaded entries, most recently used first
function Pool:list()
   local out = {}
   for _, e in pairs(self.entries) do out[#out + 1] = e end
   table.sort(out, function(a, b) return a.last_used > b.last_used end)
   return out
end

-- state() -> plain table for ps: {{name, path, size, ctx, parallel,
-- loaded_at, last_used, expires_at (nil: forever or busy), busy, state =
-- "loaded"}}, then the loads in flight {name, path, state = "loading",
-- loading_s, waiting (requests waiting for it)}
function Pool:state()
   local wall, mono = os.time(), now()
   local out = {}
   for i, e in ipairs(self:list()) do
      local st = e.sched and e.sched.stats and e.sched:stats() or {}   -- prefix store size, for ps
      out[i] = { name = e.name, path = e.path, size = e.size, ctx = e.ctx, parallel = e.parallel,
         cache_bytes = st.store_bytes, cache_budget = st.store_budget,
         busy = e.busy, idle_s = e.busy == 0 and math.max(0, mono - e.last_used) or 0,
         loaded_at = e.loaded_wall,     -- taken once: recomputing it from two clocks jitters by a second
         expires_at = e.expires and math.floor(wall + (e.expires - mono) + 0.5) or nil,
         forever = e.busy == 0 and not e.expires or nil, state = "loaded" }
   end
   local loads = {}
   for _, ld in pairs(self.loading) do loads[#loads + 1] = ld end
   table.sort(loads, function(a, b) return a.started < b.started end)
   for _, ld in ipairs(loads) do
      out[#out + 1] = { name = ld.name, path = ld.path, state = "loading", busy = 0,
         loading_s = math.max(0, mono - ld.started), waiting = #ld.waiters }
   end
   return out
end

-- Unloads everything and stops the timer.
function Pool:close()
   self.closed = true
   if self.timer then self.timer:cancel() self.timer = nil end
   for _, e in pairs(self.entries) do
      self.entries[e.key] = nil
      if e.sched then e.sched:close() end
      if e.model and e.model.close then e.model:close() end
   end
end

return M
