-- `moonhub chat` on a real terminal: tmux (private socket, own config-less
-- server) gives it a pseudo-terminal; keys go in with send-keys and the
-- screen is read with capture-pane. Two turns, Ctrl-C mid-answer, /reset
-- and /bye. Every wait polls the screen and is bounded.
-- Layer: tests (runs the binary; needs tmux, see docs/dependencies.md).
local data = require "helpers.data"
local H = require "helpers.host"
local tmux = require "helpers.tmux"
local q = H.q

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"

-- the stats lines on the screen: { {generated, processed, of, interrupted}, ... }
local function stats(out)
   local list = {}
   for n, p, of, rest in out:gmatch("%[(%d+) tokens, [%d.]+ tok/s, prompt processed (%d+) of (%d+) tokens([^%]]*)%]") do
      list[#list + 1] = { tonumber(n), tonumber(p), tonumber(of), rest == ", interrupted" }
   end
   return list
end

local function prompts(out)
   local n = 0
   for _ in ("\n" .. out):gmatch("\n>>> ") do n = n + 1 end
   return n
end

describe("moonhub chat on a pseudo-terminal #integration", function()
   local dir, term
   before_each(function() dir = H.tmpdir() end)
   after_each(function()
      if term then term.close() end
      term = nil
      H.rmdir(dir)
   end)

   it("two turns, Ctrl-C mid-answer, /reset and /bye", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      if not data.need_cmd("tmux", pending) then return end
      -- The shell prints the exit status: tmux 3.3 does not always reap a
      -- pane's process, so #{pane_dead_status} can stay empty. It catches
      -- SIGINT (Ctrl-C reaches the whole foreground group) so that it
      -- lives on to print it; moonhub starts with the default action.
      term = tmux.open(dir, string.format(
         "trap : INT; MOONHUB_HOME=%s %s chat %s --ignore-eos --max-tokens 8 --seed 3; echo \"[exit $?]\"",
         q(dir), q(H.exe), q(model)))
      local s = term.wait("the first prompt", function(o) return prompts(o) == 1 end)
      assert.matches("^moonhub chat: .*, template built%-in chatml %(detected%)%. /help for commands", s)

      term.type("Hello there")
      term.wait("turn 1", function(o) return #stats(o) == 1 and prompts(o) == 2 end)
      term.type("What comes next?")
      s = term.wait("turn 2", function(o) return #stats(o) == 2 and prompts(o) == 3 end)
      local st = stats(s)
      assert.are.equal(st[1][2], st[1][3])            -- turn 1: the whole prompt
      assert.is_true(st[2][2] < st[2][3] - st[1][3], s) -- turn 2: only the new suffix
      assert.is_true(st[1][1] == 8 and st[2][1] == 8, s)

      term.type("/set max_tokens 100000")
      term.wait("/set", function(o) return o:find("[max_tokens = 100000]", 1, true) and prompts(o) == 4 end)
      term.type("Tell me a long story")
      term.wait("the long answer to start", function(o)
         local after = o:match("\n>>> Tell me a long story\n(.*)$")
         return after and #after >= 200
      end)
      term.key("C-c")
      s = term.wait("the interrupted answer's stats and a prompt", function(o)
         return #stats(o) == 3 and prompts(o) == 5
      end)
      st = stats(s)
      assert.is_true(st[3][4], s)                     -- cut short by Ctrl-C
      assert.is_true(st[3][1] >= 1 and st[3][1] < 2048 - st[3][3], s)
      -- the token in flight when ^C is echoed may still land after it
      assert.matches("%^C[^\n]*\n%[%d+ tokens, [%d.]+ tok/s, "
         .. "prompt processed %d+ of %d+ tokens, interrupted%]\n>>> ", s)

      term.type("/reset")
      term.wait("/reset", function(o) return o:find("[conversation cleared]", 1, true) and prompts(o) == 6 end)
      term.type("/set max_tokens 4")
      term.wait("/set", function(o) return prompts(o) == 7 end)
      term.type("Hello there")
      s = term.wait("a turn after /reset", function(o) return #stats(o) == 4 and prompts(o) == 8 end)
      st = stats(s)
      -- the history is gone: the prompt is turn 1's again, and all of it
      -- is still in the KV cache but the last token
      assert.are.equal(st[1][3], st[4][3], s)
      assert.are.equal(1, st[4][2], s)
      assert.is_false(st[4][4])

      term.type("/bye")
      s = term.wait("the chat to exit", function(o) return o:find("\n%[exit %d+%]") end, 60)
      assert.matches("\n>>> /bye\n%[exit 0%]\n", s)
   end)
end)
