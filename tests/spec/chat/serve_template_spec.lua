-- `moonhub serve --template mine` renders chat requests with a user template
-- from $MOONHUB_HOME/templates (the templates issue asks for chat, generate
-- and serve; chat and generate are covered in chat_spec.lua).
local data = require "helpers.data"
local host = require "helpers.host"
local json = require "dkjson"

local function wait_ready(log, deadline)
   while os.time() < deadline do
      local text = host.read(log) or ""
      local port = text:match("ready at http://127%.0%.0%.1:(%d+)/v1")
      if port then return port end
      os.execute("sleep 0.1")
   end
end

describe("serve --template #integration", function()
   it("uses a user template from $MOONHUB_HOME/templates", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local home = host.tmpdir()
      host.write(home .. "/templates/mine.lua", [[
return { name = "mine", description = "test: a fixed story opening before the user's words",
   render = function(messages) return "Once upon a time, " .. messages[#messages].content end,
   stop = {}, detect = function() return false end }
]])
      local log, pidf = home .. "/serve.log", home .. "/pid"
      os.execute(string.format("MOONHUB_HOME=%s %s serve --model %s --port 0 --parallel 1 --ctx 256 "
         .. "--template mine >%s 2>&1 & echo $! >%s", host.q(home), host.q(host.exe), host.q(model),
         host.q(log), host.q(pidf)))
      local port = wait_ready(log, os.time() + 60)
      local pid = (host.read(pidf) or ""):match("%d+")
      local ok, err = pcall(function()
         assert.is_truthy(port, "server did not start: " .. tostring(host.read(log)))
         local body = json.encode({ messages = { { role = "user", content = "there was" } },
            max_tokens = 12, temperature = 0 })
         local p = io.popen(string.format("curl -s -m 60 -H 'Content-Type: application/json' "
            .. "http://127.0.0.1:%s/v1/chat/completions -d %s",
            port, host.q(body)))
         local resp = json.decode(p:read("a"))
         p:close()
         local out = host.run(home, "generate " .. host.q(model)
            .. " 'Once upon a time, there was' -n 12 --temp 0")
         assert.are.equal(out:gsub("\n$", ""), resp.choices[1].message.content)
      end)
      if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
      host.rmdir(home)
      assert(ok, err)
   end)
end)
