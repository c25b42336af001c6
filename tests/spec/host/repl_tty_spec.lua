-- The REPL on a real terminal: tmux (private socket, config-less server)
-- gives it a pseudo-terminal. It types README.md's Lua tour line by line
-- (with `local`, which must persist), then help(), then Tab on "mh.ten".
-- Every wait polls the screen and is bounded. Layer: tests (runs the
-- binary; needs tmux and, for the tour's model lines, a shared model).
local data = require "helpers.data"
local H = require "helpers.host"
local tmux = require "helpers.tmux"
local q = H.q

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"

-- the lines of README.md's "A short Lua tour" block
local function tour_lines()
   local readme = assert(H.read("README.md"))
   local block = readme:match("\n## A short Lua tour\n.-\n```lua\n(.-)\n```\n")
   assert(block, "README.md has no Lua tour block")
   local lines = {}
   for l in (block .. "\n"):gmatch("(.-)\n") do
      if l:find("%S") then lines[#lines + 1] = l end
   end
   return lines
end

-- prompts on the screen: lines that start with "> " or ">> "
local function prompts(s)
   local n = 0
   for _ in ("\n" .. s):gmatch("\n>>? ") do n = n + 1 end
   return n
end

describe("moonhub REPL on a pseudo-terminal #integration", function()
   local dir, term
   before_each(function() dir = H.tmpdir() end)
   after_each(function()
      if term then term.close() end
      term = nil
      H.rmdir(dir)
   end)

   it("runs the README tour line by line, help(), and Tab completes mh.ten", function()
      if not data.need_cmd("tmux", pending) then return end
      local model, missing = data.path(SMOL)
      local lines = tour_lines()
      if not model then
         -- no shared model: the tour up to its first model line still runs
         for i, l in ipairs(lines) do
            if l:find("mh.load", 1, true) then
               for j = #lines, i, -1 do lines[j] = nil end
               break
            end
         end
      end
      local text = dir .. "/text.txt"
      H.write(text, string.rep("Once upon a time there was a little fox who lived in the forest. ", 20))
      term = tmux.open(dir, string.format("MOONHUB_HOME=%s %s; echo \"[exit $?]\"", q(dir), q(H.exe)))
      term.wait("the first prompt", function(s) return prompts(s) == 1 end)
      -- after each line: its echo, then a prompt ending the screen (a
      -- prompt may follow output with no newline, as after io.write)
      local from = 1
      for _, l in ipairs(lines) do
         l = l:gsub('"model%.gguf"', ('%q'):format(model or "")):gsub('"text%.txt"', ('%q'):format(text))
         term.type(l)
         term.wait("the prompt after: " .. l, function(s)
            local _, e = s:find(l, from, true)
            if e and s:sub(e + 1):gsub("%s+$", ""):find("\n[^\n]*>>?$") then
               from = e + 1
               return true
            end
         end)
      end
      local s = term.screen()
      local n = prompts(s)
      assert.falsy(s:find("attempt to", 1, true), s)
      assert.falsy(s:find("stack traceback", 1, true), s)
      assert.truthy(s:find("21.0%s+3%s+6.0"), s)              -- print(a:sum(), ...) with a from line 3
      assert.truthy(s:find("dtype=bf16, shape=(3,2))", 1, true), s)
      if model then
         assert.truthy(s:find("\n> local m = mh.load(", 1, true), s)
         assert.matches("\n%d+%.%d+[^\n]*\n> $", s:gsub("%s+$", " "))   -- the perplexity, a number
      end

      term.type("help()")
      s = term.wait("help()", function(o)
         return o:find("mh.tensor%s+n%-dimensional arrays") and prompts(o) >= n + 1
      end)
      n = n + 1
      assert.truthy(s:find("mh.load(model[, opts])", 1, true), s)

      term.keys("mh.ten")
      term.key("Tab")
      term.wait("the completion", function(o) return o:find("\n> mh%.tensor\n?%s*$") end, 60)
      term.type(".zeros(2, 3):shape()")
      s = term.wait("the completed line's result", function(o) return prompts(o) >= n + 1 end)
      assert.truthy(s:find("\n> mh.tensor.zeros(2, 3):shape()\n{2, 3}\n", 1, true), s)

      term.key("C-d")
      s = term.wait("the REPL to exit", function(o) return o:find("\n%[exit %d+%]") end, 60)
      assert.truthy(s:find("[exit 0]", 1, true), s)
      if not model then return data.skip(missing .. " (the tour's model lines did not run)", pending) end
   end)
end)
