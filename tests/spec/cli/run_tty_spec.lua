-- `moonhub run MODEL` with no prompt on a real terminal: a chat, in this
-- process (the chat verb) or against MOONHUB_HOST's server (one line, one
-- message, the conversation sent each turn). tmux gives the pseudo-terminal,
-- as in tests/spec/chat/pty_spec.lua; every wait polls the screen and is bounded.
-- Layer: tests (runs the binary; needs tmux; tests/spec/cli/fake_server.lua records requests).
local data = require "helpers.data"
local H = require "helpers.host"
local json = require "dkjson"
local http = require("moonhub").http
local q = H.q

local FAKE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/fake_server.lua"

local function terminal(dir, cmd)
   local t = { sock = dir .. "/tmux.sock" }
   function t.tmux(args)
      local p = io.popen("tmux -f /dev/null -S " .. q(t.sock) .. " " .. args .. " 2>&1")
      local out = p:read("a")
      p:close()
      return out
   end
   t.tmux("new-session -d -s run -x 200 -y 50 " .. q(cmd) .. " \\; set-option -w -t run remain-on-exit on")
   function t.screen() return t.tmux("capture-pane -p -J -S - -t run") end
   function t.type(line)
      t.tmux("send-keys -t run -l " .. q(line))
      t.tmux("send-keys -t run Enter")
   end
   function t.close() t.tmux("kill-server") end
   return t
end

local function count(s, pat)
   return select(2, s:gsub(pat, ""))
end

describe("moonhub run on a pseudo-terminal #integration", function()
   local dir, term, fake_pid
   before_each(function() dir = H.tmpdir() end)
   after_each(function()
      if term then term.close() end
      if fake_pid then os.execute("kill " .. fake_pid .. " 2>/dev/null") end
      term, fake_pid = nil, nil
      H.rmdir(dir)
   end)

   local function wait(what, pred)
      local t0 = os.time()
      local screen
      repeat
         screen = term.screen()
         if pred(screen) then return screen end
         os.execute("sleep 0.05")
      until os.time() - t0 > 30
      error("timed out waiting for " .. what .. "; screen:\n" .. screen, 2)
   end

   it("run MODEL without a prompt chats in this process, /bye leaves", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      if not data.need_cmd("tmux", pending) then return end
      term = terminal(dir, string.format("MOONHUB_HOME=%s %s run %s -n 4 --temp 0; echo \"[exit $?]\"",
         q(dir), q(H.exe), q(model)))
      wait("the chat's first prompt", function(s) return s:find("\n>>> ") ~= nil end)
      term.type("Once upon a time")
      wait("an answer and a new prompt", function(s) return count(s, "\n>>> ") == 2 end)
      term.type("/bye")
      local s = wait("the exit", function(o) return o:find("[exit ", 1, true) ~= nil end)
      assert.truthy(s:find("[exit 0]", 1, true), s)
      assert.truthy(s:find("moonhub chat: ", 1, true), s)      -- the chat verb's banner
   end)

   it("run MODEL without a prompt chats with MOONHUB_HOST's server, the whole conversation each turn", function()
      if not data.need_cmd("tmux", pending) then return end
      local log = dir .. "/fake.log"
      local p = io.popen(string.format("%s run %s %s >%s 2>/dev/null & echo $!", q(H.exe), q(FAKE), q(log),
         q(dir .. "/fake.port")))
      fake_pid = tonumber(p:read("l"))
      p:close()
      local port
      for _ = 1, 1200 do
         port = tonumber((H.read(dir .. "/fake.port") or ""):match("^(%d+)\n"))
         if port then break end
         http.sleep(0.05)
      end
      assert(port, "fake server did not start")
      term = terminal(dir, string.format("MOONHUB_HOST=127.0.0.1:%d MOONHUB_HOME=%s %s run some-model "
         .. "--system be-brief; echo \"[exit $?]\"", port, q(dir), q(H.exe)))
      wait("the first prompt", function(s) return s:find("\n>>> ") ~= nil end)
      term.type("first question")
      wait("the first answer", function(s) return s:find("echo: first question", 1, true) ~= nil end)
      term.type("second question")
      wait("the second answer", function(s) return s:find("echo: second question", 1, true) ~= nil end)
      term.type("/bye")
      local s = wait("the exit", function(o) return o:find("[exit ", 1, true) ~= nil end)
      assert.truthy(s:find("[exit 0]", 1, true), s)
      local reqs = {}
      for line in (H.read(log) or ""):gmatch("[^\n]+") do reqs[#reqs + 1] = json.decode(line) end
      assert.equal(2, #reqs)
      local msgs = json.decode(reqs[2].body).messages
      assert.same({
         { role = "system", content = "be-brief" },
         { role = "user", content = "first question" },
         { role = "assistant", content = "echo: first question" },
         { role = "user", content = "second question" },
      }, msgs)
   end)
end)
