-- moonhub.progress: the one progress printer of long jobs (pull, create,
-- quantize, bench): a redrawn line with rate and ETA on a terminal, a plain
-- line per 10 % elsewhere (logs, pipes, CI). Layer: lua/moonhub (uses
-- moonhub.fs for isatty and moonhub.core.sys for the monotonic clock).
--
--   local p = progress.new("quantize Q4_K_M")           -- bytes by default
--   p(done, total); ...; p(nil, nil, true)              -- final: ends the line
local fs = require "moonhub.fs"

local M = {}

-- human(n) -> "1.5 MiB": a byte count for people
function M.human(n)
   for _, u in ipairs({ { 2^30, "GiB" }, { 2^20, "MiB" }, { 2^10, "KiB" } }) do
      if n >= u[1] then return string.format("%.1f %s", n / u[1], u[2]) end
   end
   return string.format("%d B", math.floor(n))
end

local function eta(secs)
   if secs ~= secs or secs == math.huge then return "?" end
   secs = math.floor(secs + 0.5)
   if secs < 60 then return string.format("%ds", secs) end
   if secs < 3600 then return string.format("%dm%02ds", secs // 60, secs % 60) end
   return string.format("%dh%02dm", secs // 3600, secs % 3600 // 60)
end

-- The "done/total rate" part: bytes read as sizes, anything else as a count
-- of that unit ("3/9 reps 0.52 reps/s").
local function amounts(unit, done, total, rate)
   if unit == "bytes" then
      if total then return string.format("%s/%s %s/s", M.human(done), M.human(total), M.human(rate)) end
      return string.format("%s %s/s", M.human(done), M.human(rate))
   end
   local d = math.floor(done)
   if total then return string.format("%d/%d %s %.2f %s/s", d, total, unit, rate, unit) end
   return string.format("%d %s %.2f %s/s", d, unit, rate, unit)
end

local function noop() end

-- new(label, opts) -> fn(done, total|nil, final, note)
-- opts: out = io.stderr; unit = "bytes" (default) or a noun for counts;
-- tty = whether to redraw one line (default: out is stderr and fd 2 is a
-- terminal); quiet = true returns a function that prints nothing;
-- clock = fn() -> seconds (default the monotonic clock); from = where the
-- rate counts from (default: the first done seen, as a resumed download
-- starts past 0; jobs reporting their first chunk late pass 0).
-- Terminal: the line is redrawn at most 5 times a second; final ends it.
-- Elsewhere: one line when done crosses into a new tenth of total (so at
-- most 11 lines, the last at 100 %), or every 5 s when total is unknown.
-- note (optional) names the part in flight ("tg128 rep 2/3"). fn(nil, nil,
-- true) finishes at the last values seen (for jobs reporting from C).
function M.new(label, opts)
   opts = opts or {}
   if opts.quiet then return noop end
   local out = opts.out or io.stderr
   local unit = opts.unit or "bytes"
   local tty = opts.tty
   if tty == nil then tty = out == io.stderr and fs.isatty(2) end
   local clock = opts.clock or require("moonhub.core.sys").now
   local t0, last_t, last_step, start = clock(), -math.huge, -1, opts.from
   local seen_done, seen_total
   return function(done, total, final, note)
      if final and done == nil then               -- finish at the last values seen
         if seen_done == nil then return end
         done, total = seen_done, seen_total
      end
      seen_done, seen_total = done, total
      if not final and done == 0 and not total then return end   -- no answer yet
      local now = clock()
      start = start or done                  -- a resumed download starts past 0
      local step = total and math.floor(done * 10 / math.max(total, 1))
      if tty then
         if not final and now - last_t < 0.2 then return end
      elseif final then
         if step and step >= 10 and last_step >= 10 then return end   -- 100 % already said
      elseif step then
         if step <= last_step then return end
      elseif now - last_t < 5 then
         return
      end
      last_t, last_step = now, step or last_step
      local rate = (done - start) / math.max(now - t0, 1e-3)
      local text
      if total then
         local width, frac = 24, math.min(done / math.max(total, 1), 1)
         local bar = tty and ("[" .. string.rep("#", math.floor(width * frac))
            .. string.rep(".", width - math.floor(width * frac)) .. "] ") or ""
         text = string.format("%s %s%5.1f%% %s ETA %s", label, bar, frac * 100,
            amounts(unit, done, total, rate), rate > 0 and eta((total - done) / rate) or "?")
      else
         text = string.format("%s %s", label, amounts(unit, done, nil, rate))
      end
      if note then text = text .. "  " .. note end
      if tty then out:write("\r\27[K", text, final and "\n" or "")
      else out:write(text, "\n") end
      out:flush()
   end
end

return M
