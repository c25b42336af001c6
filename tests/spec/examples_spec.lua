-- tests/spec/examples_spec.lua: the examples run to the end without errors:
-- examples/tour.lua (the tensor tour) and examples/lifecycle.lua (what
-- `make demo` shows: data -> LoRA job -> eval -> serve, on stories260K from
-- the shared test data). Runs the host as a child process, from the
-- repository root like tests/run.sh. Checks the steps and their order,
-- never how long they took.
local data = require "helpers.data"
local root = require("moonhub.core.host").root

local function run(args)
   local f = assert(io.popen(("cd '%s' && ./moonhub run %s 2>&1"):format(root, args)))
   local out = f:read("a")
   local ok, how, code = f:close()
   return out, ok, how, code
end

describe("examples #integration", function()
   it("examples/tour.lua runs and prints its sections", function()
      local out, ok, how, code = run("examples/tour.lua")
      assert.is_true(ok, ("tour exited with %s %s:\n%s"):format(how, code, out))
      assert.matches("== matmul and softmax", out, 1, true)
      assert.matches("single tensor round trip equal:%s+true", out)
      assert.matches("tour done", out, 1, true)
      assert.not_matches("differs", out, 1, true)
   end)

   it("examples/lifecycle.lua (make demo): every step in order, the fine-tuned answer", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local out, ok, how, code = run("examples/lifecycle.lua --model '" .. model .. "' --steps 40")
      assert.is_true(ok, ("lifecycle exited with %s %s:\n%s"):format(how, code, out))
      local seen = {}
      for k in out:gmatch("\n?%[%s*(%d+)/14%]") do seen[#seen + 1] = tonumber(k) end
      local want = {}
      for k = 1, 14 do want[k] = k end
      assert.same(want, seen, out)
      assert.matches("PII report: email 1, phone 1 %(2 of 48 rows hold PII%); redacted into secret@2\n", out)
      assert.matches("split secret@2 %(seed 1%): train %d+, val %d+, test %d+\n", out)
      assert.matches("job 1 succeeded in [%d.]+ s: 40 LoRA steps, loss [%d.]+ %-> [%d.]+\n", out)
      assert.matches("┤", out, 1, true)                                   -- the loss chart
      assert.matches("dataset secret@2:train, run 1\n", out, 1, true)     -- the lineage
      -- eval after is below eval before (the task is learnt), and the
      -- fine-tuned model answers with the phrase through the server
      local after, before = out:match("eval secret%-lora on secret:test: loss ([%d.]+), perplexity [%d.]+ "
         .. "%(base: ([%d.]+),")
      assert.is_true(tonumber(after) < tonumber(before) / 2, out)
      assert.matches("\n  What is the secret word%?%s+| [^\n]+| The secret word is moonhub%.", out)
      assert.matches("server stopped after 4 chat requests\n", out, 1, true)
      assert.matches("the fine-tuned model answers with the phrase", out, 1, true)
   end)
end)
