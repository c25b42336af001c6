-- moonhub.work: long core calls off the event loop — inside a server
-- coroutine a core function's *_start twin runs it on a worker thread and
-- the coroutine waits on its channel while the loop serves other requests.
-- Layer: lua/moonhub (uses moonhub.core.http's in_task/running only).
local M = {}

local function http() return package.loaded["moonhub.core.http"] end

-- in_task() -> true inside a request or timer coroutine of the loop
function M.in_task()
   local h = http()
   return h ~= nil and h.in_task()
end

-- can_wait() -> whether this caller may wait on a channel: a loop
-- coroutine, or code outside a running loop (the wait then runs it). A
-- coroutine of its own inside a handler may not.
function M.can_wait()
   local h = http()
   return not h or not h.running() or h.in_task()
end

-- call(mod, name, ...) -> mod[name](...)'s results; in a loop coroutine
-- mod[name .. "_start"](...) runs it on a worker thread instead (a task
-- and a channel that closes when it is done) and the coroutine waits.
function M.call(mod, name, ...)
   local start = mod[name .. "_start"]
   if not start or not M.in_task() then return mod[name](...) end
   local task, ch = start(...)
   while ch:recv() do end
   return task:result()
end

return M
