-- moonhub.bench_model: llama-bench-like throughput rows for one model —
-- prompt processing (pp N: one batched forward of N tokens) and token
-- generation (tg N: N single-token steps), tokens/s mean ± sd over
-- repetitions, threads, peak RSS, and for tg the share of the memory-
-- bandwidth ceiling (mh.sys.membw). Layer: lua/moonhub (public API only).
local mh = require "moonhub"
local peak_rss = require("moonhub.fs").peak_rss

local M = {}

local function stats(xs)
   local sum, sq = 0, 0
   for _, x in ipairs(xs) do sum = sum + x end
   local mean = sum / #xs
   for _, x in ipairs(xs) do sq = sq + (x - mean) ^ 2 end
   return mean, #xs > 1 and math.sqrt(sq / (#xs - 1)) or 0
end

-- Token ids that look like text but need no tokenizer: a fixed walk over the vocab.
local function ids_of(n, n_vocab)
   local ids = {}
   for i = 1, n do ids[i] = (i * 7919 + 13) % n_vocab end
   return ids
end

local function time_pp(m, n, reps, tick)
   local ids, rates = ids_of(n, m.info.n_vocab), {}
   m:forward(ids_of(8, m.info.n_vocab))                       -- warm-up
   for r = 1, reps do
      tick(0, string.format("pp%d rep %d/%d", n, r, reps))
      local cache = m:new_cache(n)
      local t0 = mh.sys.now()
      m:forward(ids, cache)
      rates[r] = n / (mh.sys.now() - t0)
      cache:free()
   end
   return stats(rates)
end

local function time_tg(m, n, reps, tick)
   local ids, rates = ids_of(n + 1, m.info.n_vocab), {}
   for r = 1, reps do
      local note = string.format("tg%d rep %d/%d", n, r, reps)
      tick(0, note)
      local cache = m:new_cache(n + 1)
      m:forward({ ids[1] }, cache)
      local t0 = mh.sys.now()
      for i = 2, n + 1 do
         m:forward({ ids[i] }, cache)
         tick((i - 1) / n, note)              -- a long rep moves the bar too
      end
      rates[r] = n / (mh.sys.now() - t0)
      cache:free()
   end
   return stats(rates)
end

-- run{model =, pp = {128, 512}, tg = {128}, reps = 3, threads =,
--     progress = fn(done, total, final, note)} -> rows, info
-- progress counts repetitions (fractions within a tg rep); note names the
-- test and rep in flight ("tg128 rep 2/3"); the last call is final.
function M.run(o)
   local m, err = mh.load(o.model, { ctx = 4096, threads = o.threads })
   if not m then return nil, err end
   local pp, tg, reps = o.pp or { 128, 512 }, o.tg or { 128 }, o.reps or 3
   local total, done = (#pp + #tg) * reps, 0
   local report = o.progress or function() end
   -- tick(frac, note): frac of the rep in flight; a new note means the last rep ended
   local last_note
   local function tick(frac, note)
      if last_note and note ~= last_note then done = done + 1 end
      last_note = note
      report(done + frac, total, false, note)
   end
   local rows = {}
   for _, n in ipairs(pp) do
      local mean, sd = time_pp(m, n, reps, tick)
      rows[#rows + 1] = { test = "pp" .. n, mean = mean, sd = sd }
   end
   for _, n in ipairs(tg) do
      local mean, sd = time_tg(m, n, reps, tick)
      rows[#rows + 1] = { test = "tg" .. n, mean = mean, sd = sd }
   end
   report(total, total, true, "done")
   local info = { name = o.model:match("([^/]+)$"), bytes = m.info.weight_bytes, params = m.info.n_params,
                  bytes_per_token = m.info.bytes_per_token, threads = mh.sys.threads(), rss = peak_rss(),
                  cpu = mh.sys.cpu() }
   m:close()
   if #tg > 0 and o.membw ~= false then M.add_bandwidth(rows, info, mh.sys.membw()) end
   return rows, info
end

-- add_bandwidth(rows, info, probe): each tg row gets `bw_pct`, its share of
-- the ceiling a token can reach when it must read bytes_per_token of weights
-- at the probe's bytes_per_s (mh.sys.membw); the probe goes into info.membw.
function M.add_bandwidth(rows, info, probe)
   if not probe then return end
   info.membw = probe
   local ceiling = probe.bytes_per_s / info.bytes_per_token      -- tokens/s
   for _, r in ipairs(rows) do
      if r.test:match("^tg") then r.bw_pct = 100 * r.mean / ceiling end
   end
end

function M.print(rows, info)
   print(string.format("| %-28s | %10s | %9s | %7s | %-6s | %16s |", "model", "size", "params", "threads",
      "test", "t/s"))
   print("|" .. string.rep("-", 30) .. "|" .. string.rep("-", 12) .. "|" .. string.rep("-", 11) .. "|"
      .. string.rep("-", 9) .. "|" .. string.rep("-", 8) .. "|" .. string.rep("-", 18) .. "|")
   for _, r in ipairs(rows) do
      print(string.format("| %-28s | %7.2f MiB | %8.2fM | %7d | %-6s | %8.2f ± %5.2f |%s", info.name,
         info.bytes / 2^20, info.params / 1e6, info.threads, r.test, r.mean, r.sd,
         r.bw_pct and string.format(" %3.0f%% of bandwidth", r.bw_pct) or ""))
   end
   print(string.format("peak RSS %.1f MiB, cpu path %s", (info.rss or 0) / 2^20, info.cpu))
   if info.membw then
      print(string.format("memory bandwidth %.2f GB/s (%d MiB read by %d threads, best of %d); a token reads "
         .. "%.1f MiB of weights: ceiling %.1f tokens/s", info.membw.bytes_per_s / 1e9,
         info.membw.buffer_bytes // 2^20, info.membw.threads, info.membw.rounds, info.bytes_per_token / 2^20,
         info.membw.bytes_per_s / info.bytes_per_token))
   end
end

return M
