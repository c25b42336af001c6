-- tests/spec/jobs/common.lua: what the job specs share — a home with
-- stories260K registered and a small prompt/completion dataset imported
-- (moonhub.data) and split, background processes, and bounded polls on events.
-- Layer: tests (pure module: does nothing on require).
local H = require "helpers.host"
local data = require "helpers.data"
local json = require "dkjson"

local M = {}

M.MODEL = "models/stories260K.gguf"

local names = { "Lily", "Tom", "Ben", "Sue", "Max" }
local things = { "a red ball", "a big dog", "a small cat", "a blue kite" }
local verbs = { "saw", "liked", "found", "had" }

-- jsonl(n) -> n prompt/completion rows a small model learns by heart
function M.jsonl(n)
   local out = {}
   for i = 1, n do
      out[i] = json.encode({ prompt = names[(i - 1) % 5 + 1] .. " " .. verbs[(i - 1) % 4 + 1],
         completion = " " .. things[(i * 3 - 1) % 4 + 1] .. "." })
   end
   return table.concat(out, "\n") .. "\n"
end

-- run(home, args) -> stdout, stderr, code (asserting nothing)
M.run = H.run

local function must(home, args)
   local out, err, code = H.run(home, args)
   assert(code == 0, "moonhub " .. args .. " failed (" .. tostring(code) .. "): " .. tostring(err) .. tostring(out))
   return out
end
M.must = must

-- setup(pending) -> home with the model registered as "stories" and dataset
-- "toy" (20 rows, with train/val/test splits) | nil when the model is missing
function M.setup(pending)
   local model = data.need(M.MODEL, pending)
   if not model then return nil end
   local home = H.tmpdir()
   must(home, "import " .. H.q(model) .. " --name stories --tag base")
   M.dataset(home, "toy", 20)
   return home
end

-- dataset(home, name, n): n rows imported as dataset NAME (moonhub.data),
-- split 0.8 / 0.1 / 0.1 with seed 1
function M.dataset(home, name, n)
   local path = home .. "/" .. name .. ".jsonl"
   H.write(path, M.jsonl(n))
   M.with(home, function(reg)
      local d = require "moonhub.data"
      assert(d.import(path, { name = name, reg = reg }))
      assert(require("moonhub.data.ops").split(reg, name, { train = 0.8, val = 0.1, test = 0.1, seed = 1 }))
   end)
end

-- reg(home) -> an open registry of home (the caller closes it)
function M.reg(home)
   return assert(require("moonhub.registry").open(home))
end

-- with(home, fn) -> fn(reg)'s result, the registry closed after
function M.with(home, fn)
   local reg = M.reg(home)
   local ok, a, b = pcall(fn, reg)
   reg:close()
   if not ok then error(a, 0) end
   return a, b
end

-- bg(home, args [, env]) -> pid of `moonhub ARGS` started in the background
function M.bg(home, args, env)
   local p = io.popen(string.format("env %s MOONHUB_HOME=%s %s %s >>%s 2>&1 & echo $!", env or "", H.q(home),
      H.q(H.exe), args, H.q(home .. "/bg.log")))
   local pid = math.tointeger(tonumber(p:read("l")))
   p:close()
   return pid
end

function M.alive(pid)
   local stat = H.read("/proc/" .. pid .. "/stat")
   return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- wait(fn [, tries = 3000]) -> fn()'s first truthy value, polling every 10 ms;
-- raises when it never comes (a bound on a hang, not a timing assertion).
-- The bound is 5 times the tries' nominal 10 ms each (150 s by default): on
-- a loaded host a training step took 400 ms instead of a few.
function M.wait(fn, what, tries)
   local now = require("moonhub.core.sys").now
   local limit, t0 = (tries or 3000) * 0.05, now()
   repeat
      local v = fn()
      if v then return v end
      require("moonhub.db").sleep(10)
   until now() - t0 > limit
   local v = fn()
   if v then return v end
   error("gave up waiting for " .. (what or "a condition"), 2)
end

-- wait_exit(pid): the process has ended (reaped by its shell)
function M.wait_exit(pid)
   M.wait(function() return not M.alive(pid) end, "process " .. pid .. " to exit")
end

-- job(home, id) -> the run row
-- statuses(reg, id) -> "queued running ..." (a run's transitions in order)
function M.statuses(reg, id)
   local out = {}
   for i, e in ipairs(reg:run_events(id)) do out[i] = e.status end
   return table.concat(out, " ")
end

function M.job(home, id)
   return M.with(home, function(reg) return reg:run(id) end)
end

-- losses(home, id) -> {[step] = loss}
function M.losses(home, id)
   return M.with(home, function(reg)
      local out = {}
      for _, s in ipairs(reg:steps(id)) do out[s.step] = s.loss end
      return out
   end)
end

-- integrity(home) -> "ok" or the problems
function M.integrity(home)
   return M.with(home, function(reg) return reg:integrity_check() end)
end

-- enqueue(home, args) -> job id, from `train --detach --json`
function M.enqueue(home, args)
   local out = must(home, "train --detach --json " .. args)
   return math.tointeger(json.decode(out).id)
end

return M
