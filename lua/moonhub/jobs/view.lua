-- moonhub.jobs.view: what the jobs and runs verbs print — a loss sparkline,
-- a loss chart drawn in the terminal, ages, the live progress line, the
-- job table. Layer: lua/moonhub (pure Lua; string formatting only).
local M = {}

local BARS = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" }

-- resample(values, n) -> at most n values (bucket means), NaN/nil dropped
local function resample(vals, n)
   local clean = {}
   for _, v in ipairs(vals) do if type(v) == "number" and v == v then clean[#clean + 1] = v end end
   if #clean <= n then return clean end
   local out = {}
   for i = 1, n do
      local a, b = (i - 1) * #clean // n + 1, i * #clean // n
      local s = 0
      for k = a, b do s = s + clean[k] end
      out[i] = s / (b - a + 1)
   end
   return out
end

-- sparkline(values [, width = 40]) -> "▇▅▃▂▁"
function M.sparkline(vals, width)
   local v = resample(vals, width or 40)
   if #v == 0 then return "" end
   local lo, hi = math.huge, -math.huge
   for _, x in ipairs(v) do lo, hi = math.min(lo, x), math.max(hi, x) end
   local out = {}
   for i, x in ipairs(v) do
      local k = hi > lo and math.floor((x - lo) / (hi - lo) * 7 + 0.5) + 1 or 1
      out[i] = BARS[k]
   end
   return table.concat(out)
end

-- chart(values, {width = 60, height = 8, label = "loss"}) -> lines: a
-- y axis with the range, one column per (resampled) step
function M.chart(vals, opts)
   opts = opts or {}
   local v = resample(vals, opts.width or 60)
   if #v == 0 then return { "(no steps yet)" } end
   local h = opts.height or 8
   local lo, hi = math.huge, -math.huge
   for _, x in ipairs(v) do lo, hi = math.min(lo, x), math.max(hi, x) end
   local span = hi > lo and hi - lo or 1
   local lines = {}
   for row = h, 1, -1 do
      local cells = {}
      for i, x in ipairs(v) do
         local level = (x - lo) / span * h        -- 0..h
         cells[i] = level >= row - 0.5 and "█" or (level >= row - 1 and row == 1 and "▁" or " ")
      end
      local axis = row == h and string.format("%9.4f ┤", hi) or row == 1 and string.format("%9.4f ┤", lo)
         or string.rep(" ", 10) .. "│"
      lines[#lines + 1] = axis .. table.concat(cells)
   end
   lines[#lines + 1] = string.rep(" ", 10) .. "└" .. string.rep("─", #v)
   lines[#lines + 1] = string.format("%11s%s: %d steps, first %.4f, last %.4f", "", opts.label or "loss",
      #vals, vals[1] or 0, vals[#vals] or 0)
   return lines
end

-- age(seconds) -> "5s", "3m", "2h", "4d"
function M.age(s)
   s = math.max(0, math.floor(s or 0))
   if s < 60 then return s .. "s" end
   if s < 3600 then return s // 60 .. "m" end
   if s < 86400 then return s // 3600 .. "h" end
   return s // 86400 .. "d"
end

-- progress(run) -> "12/40 30%"
function M.progress(r)
   local total = r.total_steps or 0
   if total <= 0 then return tostring(r.step or 0) end
   return string.format("%d/%d %d%%", r.step or 0, total, math.floor((r.step or 0) * 100 / total))
end

-- progress_line(id, rec, total, losses) -> the live line of `moonhub train`
function M.progress_line(id, rec, total, losses)
   local pct = total > 0 and rec.step * 100 // total or 0
   local filled = total > 0 and rec.step * 20 // total or 0
   return string.format("job %d [%s%s] %3d%% step %d/%d loss %.4f %s %.0f tok/s", id, string.rep("#", filled),
      string.rep(".", 20 - filled), pct, rec.step, total, rec.loss, M.sparkline(losses, 24),
      rec.tokens_per_s or 0)
end

-- table(rows, now) -> the lines of `moonhub jobs`
function M.table(rows, now)
   local out = { string.format("%-5s %-12s %-14s %-28s %-20s %s", "ID", "STATUS", "PROGRESS", "MODEL",
      "DATASET", "AGE") }
   for _, r in ipairs(rows) do
      local model = tostring(r.model or "-")
      if #model > 28 then model = "..." .. model:sub(-25) end
      out[#out + 1] = string.format("%-5d %-12s %-14s %-28s %-20s %s", r.id, r.status, M.progress(r), model,
         tostring(r.dataset or "-"), M.age(now - (r.created_at or now)))
   end
   return out
end

return M
