-- A stand-in for a running server that records what the client verbs send
-- (stop, ps, run with MOONHUB_HOST): it answers Ollama's unload
-- (POST /api/generate with keep_alive 0), the admin /api/moonhub/ps and a
-- streamed /v1/chat/completions. Layer: tests. Run as a script:
--   ./moonhub run tests/spec/cli/fake_server.lua LOG   prints its port, appends one JSON line per request to LOG
local json = require "dkjson"
local http = require("moonhub").http

local log_path = assert(..., "usage: moonhub run fake_server.lua LOG")
local srv = assert(http.server{ host = "127.0.0.1", port = 0 })

local function log(req)
   local f = assert(io.open(log_path, "a"))
   f:write(json.encode({ method = req.method, path = req.path, body = req.body,
      auth = req.headers.authorization }), "\n")
   f:close()
end

local JSON = { ["Content-Type"] = "application/json" }
srv:handle(function(req)
   log(req)
   local body = req.body and req.body ~= "" and json.decode(req.body) or {}
   if req.method == "POST" and req.path == "/api/generate" then
      if body.model ~= "loaded-model" then
         return req:respond(404, JSON, json.encode({ error = "model '" .. tostring(body.model) .. "' not found" }))
      end
      return req:respond(200, JSON, json.encode({ model = body.model, done = true, done_reason = "unload" }))
   elseif req.method == "GET" and req.path == "/api/moonhub/ps" then
      return req:respond(200, JSON, json.encode({ port = srv.port, models = {
         { name = "loaded-model", size = 1048576, ctx = 512 } } }))
   elseif req.method == "POST" and req.path == "/v1/chat/completions" then
      req:start(200, { ["Content-Type"] = "text/event-stream" })
      for _, piece in ipairs({ "echo:", " ", tostring(body.messages[#body.messages].content) }) do
         req:write("data: " .. json.encode({ choices = { { index = 0, delta = { content = piece } } } }) .. "\n\n")
      end
      req:write("data: [DONE]\n\n")
      return req:finish()
   end
   req:respond(404, JSON, json.encode({ error = "no route for " .. req.method .. " " .. req.path }))
end)
io.stdout:write(srv.port, "\n")
io.stdout:flush()
http.timer(120, function() http.stop(0) end, { once = true })   -- never outlive a forgotten teardown
http.run()
