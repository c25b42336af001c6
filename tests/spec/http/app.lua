-- app.lua: the HTTP test server the http specs start as a child process
-- (`moonhub run tests/spec/http/app.lua PORTFILE [max_body]`). Layer: tests.
-- Routes exercise every part of moonhub.http; the port goes to PORTFILE.
local mh = require "moonhub"
local http = mh.http

local portfile, max_body = arg[1], tonumber(arg[2]) or 1024
local srv = assert(http.server{ port = 0, max_body = max_body })
local state = { gone = 0, closecb = 0, go = nil, holds = {} }

local routes = {}

routes["/hello"] = function(req)
   req:respond(200, { ["Content-Type"] = "text/plain" }, "hello " .. (req.args.name or "world"))
end

routes["/echo"] = function(req)
   local keys = {}
   for k in pairs(req.args) do keys[#keys + 1] = k end
   table.sort(keys)
   return 200, { ["X-Method"] = req.method, ["X-Remote-Ok"] = tostring(req.remote:match("^127%.0%.0%.1:%d+$") ~= nil) },
      string.format("%s|%s|%s|%s|%d|%s", req.method, req.path, req.query,
                    req.headers["x-test"] or "-", #req.body, req.body)
end

routes["/error"] = function() error("boom in handler") end

-- headers added before the answer join the handler's own (both ways of answering)
routes["/added"] = function(req)
   req:add_header("X-Added", "yes")
   if req.args.stream then
      req:start(200, { ["X-Own"] = "1" })
      req:write("streamed")
      return req:finish()
   end
   return 200, { ["X-Own"] = "1" }, "ok"
end

routes["/noresponse"] = function() end

local now = require("moonhub.core.sys").now

-- sleeps in short naps until s seconds have passed or /wake was called (a
-- spec that asserts "still sleeping" wakes it itself: no race with a clock)
routes["/slow"] = function(req)
   state.sleeping = (state.sleeping or 0) + 1
   local t0, s, woken = now(), tonumber(req.args.s) or 1, state.woken or 0
   repeat
      http.sleep(0.02)
   until (state.woken or 0) > woken or now() - t0 >= s
   state.sleeping = state.sleeping - 1
   req:respond(200, nil, "slow done")
end

routes["/wake"] = function(req)
   state.woken = (state.woken or 0) + 1
   req:respond(200, nil, "woken")
end

-- waits (napping on the loop) until the file ?f exists: lets a spec finish a
-- request in flight from outside, after the server stopped accepting
routes["/until_file"] = function(req)
   state.sleeping = (state.sleeping or 0) + 1
   local f = io.open(req.args.f or "")
   while not f do
      http.sleep(0.02)
      f = io.open(req.args.f or "")
   end
   f:close()
   state.sleeping = state.sleeping - 1
   req:respond(200, nil, "slow done")
end

routes["/sleeping"] = function(req) req:respond(200, nil, tostring(state.sleeping or 0)) end

routes["/fast"] = function(req) req:respond(200, nil, "fast done") end

-- /hold waits until /release; /held counts the waiting ones (for specs
-- that check concurrency by events instead of by elapsed time)
routes["/hold"] = function(req)
   local ch = http.channel()
   state.holds[#state.holds + 1] = ch
   ch:recv()
   req:respond(200, nil, "released")
end

routes["/held"] = function(req) req:respond(200, nil, tostring(#state.holds)) end

routes["/release"] = function(req)
   local holds = state.holds
   state.holds = {}
   for _, ch in ipairs(holds) do ch:push("go") end
   req:respond(200, nil, "released " .. #holds)
end

-- SSE: chunk 1 at once, then waits for /go before chunks 2 and 3
routes["/stream"] = function(req)
   req:start(200, { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" })
   req:write("data: chunk1\n\n")
   local ch = http.channel()
   state.go = ch
   ch:recv()
   req:write("data: chunk2\n\n")
   http.sleep(0.05)
   req:write("data: chunk3\n\n")
   req:write("data: [DONE]\n\n")
   req:finish()
end

routes["/go"] = function(req)
   if state.go then state.go:push("go") end
   req:respond(200, nil, state.go and "went" or "nothing")
end

-- streams until the client goes away (100 s at most)
routes["/endless"] = function(req)
   req:on_close(function() state.closecb = state.closecb + 1 end)
   req:start(200, { ["Content-Type"] = "text/event-stream" })
   for i = 1, 4000 do
      if not req:write("data: " .. i .. "\n\n") then
         state.gone = state.gone + 1
         return
      end
      http.sleep(0.025)
   end
   req:finish()
end

-- waits for a message a C thread pushes
routes["/thread"] = function(req)
   local ch = http.channel()
   ch:push_later_from_thread("from-thread", tonumber(req.args.ms) or 50, 42)
   local msg, tag = ch:recv()
   req:respond(200, nil, msg .. ":" .. tag)
end

routes["/status"] = function(req)
   req:respond(200, nil, string.format("gone=%d closecb=%d", state.gone, state.closecb))
end

routes["/stop"] = function(req)
   req:respond(200, nil, "stopping")
   http.stop()
end

srv:handle(function(req)
   local route = routes[req.path]
   if not route then
      return 404, { ["Content-Type"] = "application/json" },
         http.error_body("no route " .. req.path, "not_found")
   end
   return route(req)
end)

local f = assert(io.open(portfile .. ".tmp", "w"))
f:write(srv.port, "\n")
f:close()
os.rename(portfile .. ".tmp", portfile)
http.run()
io.stderr:write("app: loop ended\n")
