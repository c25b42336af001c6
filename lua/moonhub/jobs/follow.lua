-- moonhub.jobs.follow: how `moonhub train` follows its job — runs the queue
-- in this process until the job is done (or, while another worker runs it,
-- reads its steps from the registry), drawing a live progress line with a
-- loss sparkline on a terminal and a plain line per 10 % elsewhere.
-- Layer: lua/moonhub (uses moonhub.jobs, .jobs.view, .fs, .db).
local fs = require "moonhub.fs"
local jobs = require "moonhub.jobs"
local view = require "moonhub.jobs.view"

local M = {}

-- follow(reg, id, {out = io.stdout, tty = bool, max_active =}) -> final run row
function M.follow(reg, id, opts)
   opts = opts or {}
   local out = opts.out or io.stdout
   local tty = opts.tty
   if tty == nil then tty = fs.isatty(1) end
   local losses, last_pct, seen = {}, -1, 0
   local function show(jid, rec, total)
      if jid ~= id then return end
      losses[#losses + 1] = rec.loss
      seen = rec.step
      local line = view.progress_line(jid, rec, total, losses)
      if tty then
         out:write("\r", line, "\27[K")
      else
         local pct = total > 0 and rec.step * 10 // total or 0
         if pct > last_pct then last_pct = pct; out:write(line, "\n") end
      end
      out:flush()
   end
   local function other(jid, msg)
      if jid ~= id then out:write(string.format("job %d: %s\n", jid, msg)) end
   end
   -- while another worker trains our job: its steps from the registry
   local function poll(s)
      for _, r in ipairs(reg:steps(id, seen)) do
         show(id, r, (reg:run(id) or {}).total_steps or 0)
      end
      require("moonhub.db").sleep(math.floor(s * 1000))
   end
   jobs.work(reg, { until_id = id, on_step = show, log = other, sleep = poll, max_active = opts.max_active,
      on_eval = function(jid, s, ev)
         if jid == id then
            out:write(tty and "\r\27[K" or "", string.format("job %d step %d eval loss %.4f\n", jid, s, ev.loss))
         end
      end })
   for _, r in ipairs(reg:steps(id, seen)) do show(id, r, (reg:run(id) or {}).total_steps or 0) end
   if tty and seen > 0 then out:write("\n") end
   return reg:run(id)
end

return M
