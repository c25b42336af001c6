-- moonhub.server.status: GET /api/moonhub/status, the figures of /metrics as
-- one JSON object for the web UI's status panel — loaded models, memory
-- used / budget, slots busy, queue length, prefix-cache hit rate — and a
-- short series of token counts sampled every few seconds (tokens/s over the
-- last minutes). Layer: lua/moonhub (uses moonhub.http timers, moonhub.fs).
local oa = require "moonhub.openai"

local M = {}

M.INTERVAL = 5          -- seconds between samples
M.KEEP = 120            -- samples kept: 10 minutes

local JSON = { ["Content-Type"] = "application/json" }

local function counter(app, name) return app.metrics.counters[name] or 0 end

-- sample(app): appends {t, generated, prompt} (the /metrics counters) to
-- app.samples, keeping the last M.KEEP.
function M.sample(app, t)
   local s = app.samples or {}
   app.samples = s
   s[#s + 1] = { t = t or os.time(), generated = counter(app, "moonhub_generated_tokens_total"),
      prompt = counter(app, "moonhub_prompt_tokens_total") }
   if #s > M.KEEP then table.remove(s, 1) end
end

-- start(app) -> timer: samples from now on (the server calls it on listen)
function M.start(app)
   M.sample(app)
   return require("moonhub.http").timer(M.INTERVAL, function() M.sample(app) end)
end

-- rates(samples) -> [{t, tokens_per_s, prompt_tokens_per_s}] between samples
function M.rates(samples)
   local out = oa.array()
   for i = 2, #(samples or {}) do
      local a, b = samples[i - 1], samples[i]
      local dt = b.t - a.t
      if dt > 0 then
         out[#out + 1] = { t = b.t, tokens_per_s = (b.generated - a.generated) / dt,
            prompt_tokens_per_s = (b.prompt - a.prompt) / dt }
      end
   end
   return out
end

-- the samples and the counters of this moment (a last, partial interval
-- when a second or more has passed since the last sample)
local function with_now(app)
   local s, t = app.samples or {}, os.time()
   if #s == 0 or t - s[#s].t < 1 then return s end
   local out = table.move(s, 1, #s, 1, {})
   out[#out + 1] = { t = t, generated = counter(app, "moonhub_generated_tokens_total"),
      prompt = counter(app, "moonhub_prompt_tokens_total") }
   return out
end

-- status(app) -> the object GET /api/moonhub/status answers
function M.status(app)
   local pool = app.pool
   local models, busy, slots, queue = oa.array(), 0, 0, 0
   local entries = pool and pool:list() or {}       -- state()'s loaded rows come first, in list() order
   for i, m in ipairs(pool and pool:state() or {}) do
      local e = m.state == "loaded" and entries[i] or nil
      local st = e and e.sched and e.sched.stats and e.sched:stats() or {}
      queue = queue + (st.waiting or 0) + (m.waiting or 0)      -- m.waiting: requests waiting for a load
      if e then m.running, m.waiting, m.kv_used, m.kv_total = st.running, st.waiting, st.kv_used, st.kv_total end
      busy, slots = busy + (st.running or 0), slots + (e and (m.parallel or 0) or 0)
      models[i] = m
   end
   local used = pool and select(2, pool:used()) or 0
   local prompt = counter(app, "moonhub_prompt_tokens_total")
   local cached = counter(app, "moonhub_prompt_cached_tokens_total")
   local avail = require("moonhub.fs").mem_available()
   return {
      time = os.time(), started = app.created, ready = app.is_ready == true,
      models = models,
      memory = { used_bytes = used, budget_bytes = pool and pool.mem_budget or oa.null,
         available_bytes = avail or oa.null },
      slots = { busy = busy, total = slots }, queue = queue,
      prefix_cache = { prompt_tokens = prompt, cached_tokens = cached,
         hit_rate = prompt > 0 and cached / prompt or oa.null },
      tokens = { generated_total = counter(app, "moonhub_generated_tokens_total"), prompt_total = prompt },
      interval_s = M.INTERVAL, series = M.rates(with_now(app)),
   }
end

M.ROUTES = {
   { "GET", "/api/moonhub/status", function(app) return 200, JSON, oa.encode(M.status(app)) end },
}

return M
