-- app.lua: the scheduler test server sched_spec.lua starts as a child
-- (`moonhub run tests/spec/sched/app.lua MODEL PORTFILE`). Layer: tests.
-- GET /gen?n=N&p=a,b,c streams one "data: <id>" line per token from a
-- handler coroutine awaiting r:next(), then "data: done <reason> <n>";
-- slow=1 sleeps 20 ms per token, the request paced by its reader (a client
-- that leaves cancels it).
local mh = require "moonhub"
local http = mh.http

local model_path, portfile = arg[1], arg[2]
local model = assert(mh.load(model_path))
local s = assert(mh.sched.new(model, { parallel = 2, ctx = 4096, prefill_chunk = 8 }))
local srv = assert(http.server{ port = 0 })
local reasons = {}

local function gen(req)
   local ids = {}
   for id in (req.args.p or "1"):gmatch("%d+") do ids[#ids + 1] = tonumber(id) end
   -- slow: a processor parks the request before each token until this
   -- handler reads on, so it cannot run to its end ahead of a slow reader
   local r, err = s:submit{ tokens = ids, max_tokens = tonumber(req.args.n) or 8,
      temperature = 0, eog = false,
      processors = req.args.slow and { { name = "ban_words", args = { words = { "\1\2\3" } } } } or nil }
   if not r then return 400, nil, err end
   req:start(200, { ["Content-Type"] = "text/event-stream" })
   local gone = false
   while true do
      local ev = r:next()
      if ev.done then
         reasons[ev.reason] = (reasons[ev.reason] or 0) + 1
         req:write(string.format("data: done %s %d\n\n", ev.reason, ev.usage.completion_tokens))
         break
      end
      if not gone and not req:write("data: " .. ev.token .. "\n\n") then
         gone = true                     -- drain what is queued, fast
         r:cancel()
      end
      if req.args.slow and not gone then http.sleep(0.02) end
   end
   req:finish()
end

srv:handle(function(req)
   if req.path == "/gen" then return gen(req) end
   if req.path == "/stats" then
      local st = s:stats()
      return 200, nil, string.format("done=%d running=%d cancel=%d", st.requests_done, st.running,
         reasons.cancel or 0)
   end
   return 404, nil, "no route"
end)

local f = assert(io.open(portfile .. ".tmp", "w"))
f:write(srv.port, "\n")
f:close()
os.rename(portfile .. ".tmp", portfile)
http.run()
s:close()
