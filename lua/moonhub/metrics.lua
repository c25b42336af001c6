-- moonhub.metrics: Prometheus text exposition for the server — counters,
-- histograms and gauges read from the scheduler at scrape time.
-- Layer: lua/moonhub (pure Lua).
local M = {}
local Metrics = {}
Metrics.__index = Metrics

local LATENCY_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 }

function M.new()
   return setmetatable({ counters = {}, requests = {}, hist = {} }, Metrics)
end

function Metrics:add(name, v)
   self.counters[name] = (self.counters[name] or 0) + v
end

-- Observes v (seconds) in the histogram name.
function Metrics:observe(name, v)
   local h = self.hist[name]
   if not h then
      h = { counts = {}, sum = 0, n = 0 }
      for i = 1, #LATENCY_BUCKETS do h.counts[i] = 0 end
      self.hist[name] = h
   end
   for i, b in ipairs(LATENCY_BUCKETS) do
      if v <= b then h.counts[i] = h.counts[i] + 1 end
   end
   h.sum, h.n = h.sum + v, h.n + 1
end

function Metrics:request(route, status, seconds)
   local key = route .. "\0" .. tostring(status)
   self.requests[key] = (self.requests[key] or 0) + 1
   self:observe("moonhub_request_duration_seconds", seconds)
end

local function label(s) return (tostring(s):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" })) end

local function sorted_keys(t)
   local ks = {}
   for k in pairs(t) do ks[#ks + 1] = k end
   table.sort(ks)
   return ks
end

-- The event loop's lag: how late its timers ran (a probe every 50 ms), so a
-- handler that blocks the loop shows here (docs/server.md, "Off the loop").
local function render_lag(line)
   local lag = require("moonhub.http").loop_lag()
   if not lag then return end
   local name = "moonhub_event_loop_lag_seconds"
   line("# HELP " .. name .. " Time between an event-loop timer's due time and its run.")
   line("# TYPE " .. name .. " histogram")
   for i, le in ipairs(lag.le) do line(string.format('%s_bucket{le="%g"} %d', name, le, lag.counts[i])) end
   line(string.format('%s_bucket{le="+Inf"} %d', name, lag.n))
   line(string.format("%s_sum %.6f", name, lag.sum))
   line(string.format("%s_count %d", name, lag.n))
   line("# TYPE moonhub_event_loop_lag_max_seconds gauge")
   line(string.format("moonhub_event_loop_lag_max_seconds %.6f", lag.max))
end

-- Gauges of the model pool: models loaded and loading (waiting requests).
local function render_pool(line, pool)
   if not pool then return end
   local loaded, loading, waiting = 0, 0, 0
   for _ in pairs(pool.entries) do loaded = loaded + 1 end
   for _, ld in pairs(pool.loading or {}) do loading, waiting = loading + 1, waiting + #ld.waiters end
   line("# TYPE moonhub_models_loaded gauge")
   line(string.format("moonhub_models_loaded %d", loaded))
   line("# TYPE moonhub_models_loading gauge")
   line(string.format("moonhub_models_loading %d", loading))
   line("# TYPE moonhub_model_load_waiting gauge")
   line(string.format("moonhub_model_load_waiting %d", waiting))
   -- the compute threads the engine runs with (--threads > env > config file)
   line("# TYPE moonhub_compute_threads gauge")
   line(string.format("moonhub_compute_threads %d", require("moonhub.core.sys").threads()))
end
M.render_pool = render_pool

-- The exposition text; sched (optional) gives the gauges of the moment.
function Metrics:render(sched)
   local out = {}
   local function line(s) out[#out + 1] = s end
   line("# HELP moonhub_requests_total HTTP requests by route and status.")
   line("# TYPE moonhub_requests_total counter")
   for _, k in ipairs(sorted_keys(self.requests)) do
      local route, status = k:match("^(.*)%z(.*)$")
      line(string.format('moonhub_requests_total{route="%s",status="%s"} %d', label(route), status, self.requests[k]))
   end
   for _, name in ipairs(sorted_keys(self.counters)) do
      line("# TYPE " .. name .. " counter")
      line(string.format("%s %d", name, self.counters[name]))
   end
   local st = sched and sched:stats() or {}
   for name, h in pairs(st.histograms or {}) do self.hist[name] = h end
   for _, name in ipairs(sorted_keys(self.hist)) do
      local h = self.hist[name]
      line("# TYPE " .. name .. " histogram")
      for i, b in ipairs(LATENCY_BUCKETS) do
         line(string.format('%s_bucket{le="%g"} %d', name, b, h.counts[i] or 0))
      end
      line(string.format('%s_bucket{le="+Inf"} %d', name, h.n))
      line(string.format("%s_sum %.6f", name, h.sum))
      line(string.format("%s_count %d", name, h.n))
   end
   render_lag(line)
   local gauges = {
      { "moonhub_requests_running", st.running }, { "moonhub_requests_waiting", st.waiting },
      { "moonhub_kv_cells_used", st.kv_used }, { "moonhub_kv_cells_total", st.kv_total },
      { "moonhub_prefix_cache_hits_total", st.prefix_hits },
      { "moonhub_prefix_cache_tokens_total", st.prefix_tokens },
      { "moonhub_prefix_store_hits_total", st.store_hits },
      { "moonhub_prefix_store_tokens_total", st.store_tokens },
      { "moonhub_prefix_store_entries", st.store_entries },
      { "moonhub_prefix_store_bytes", st.store_bytes },
      { "moonhub_prefix_store_budget_bytes", st.store_budget },
      { "moonhub_prefix_store_evictions_total", st.store_evictions },
      { "moonhub_prefix_store_disk_entries", st.store_disk_entries },
      { "moonhub_prefix_store_disk_bytes", st.store_disk_bytes },
      { "moonhub_prefix_store_disk_hits_total", st.store_disk_hits },
      { "moonhub_spec_draft_tokens_total", st.spec_drafted },
      { "moonhub_spec_accepted_tokens_total", st.spec_accepted },
      { "moonhub_spec_steps_total", st.spec_steps },
      { "moonhub_spec_step_tokens_total", st.spec_tokens },
      { "moonhub_lora_rows_total", st.lora_rows }, { "moonhub_lora_mixed_steps_total", st.lora_mixed_steps },
      { "moonhub_processor_parks_total", st.parks },
   }
   for _, g in ipairs(gauges) do
      line("# TYPE " .. g[1] .. " gauge")
      line(string.format("%s %s", g[1], tostring(g[2] or 0)))
   end
   -- history writes the database refused (full disk, lock): counted by
   -- moonhub.history in this process; 0 when it was never loaded
   local history = package.loaded["moonhub.history"]
   line("# TYPE moonhub_history_errors_total counter")
   line(string.format("moonhub_history_errors_total %d", history and history.errors_total() or 0))
   render_pool(line, self.pool)
   return table.concat(out, "\n") .. "\n"
end

return M
