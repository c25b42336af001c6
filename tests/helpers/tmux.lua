-- helpers.tmux: a program on a real terminal for the specs that drive one
-- (the REPL, chat): a tmux server of our own (private socket, no config)
-- with one pane running cmd; keys go in with send-keys, the screen comes
-- back with capture-pane. Layer: tests (pure module: does nothing on require).
local H = require "helpers.host"
local q = H.q

local M = {}

--- open(dir, cmd) -> t: t.screen(), t.keys(text), t.type(line) (text +
-- Enter), t.key(name), t.wait(what, pred[, limit]), t.close(). The pane
-- stays after the program exits, so its last words can be read.
function M.open(dir, cmd)
   local t = { sock = dir .. "/tmux.sock" }
   function t.tmux(args)
      local p = io.popen("tmux -f /dev/null -S " .. q(t.sock) .. " " .. args .. " 2>&1")
      local out = p:read("a")
      p:close()
      return out
   end
   t.tmux("new-session -d -s pane -x 200 -y 50 " .. q(cmd) .. " \\; set-option -w -t pane remain-on-exit on")
   function t.screen() return t.tmux("capture-pane -p -J -S - -t pane") end
   function t.keys(s) t.tmux("send-keys -t pane -l " .. q(s)) end
   function t.type(line)
      t.keys(line)
      t.key("Enter")
   end
   function t.key(k) t.tmux("send-keys -t pane " .. k) end
   function t.close() t.tmux("kill-server") end
   -- polls the screen until pred(screen) holds; fails with the screen after
   -- limit seconds (default 30): a bound on waiting, not an assertion on time
   function t.wait(what, pred, limit)
      local t0 = os.time()
      local screen
      repeat
         screen = t.screen()
         if pred(screen) then return screen end
         os.execute("sleep 0.05")
      until os.time() - t0 > (limit or 30)
      error("timed out waiting for " .. what .. "; screen:\n" .. screen, 2)
   end
   return t
end

return M
