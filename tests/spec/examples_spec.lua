-- tests/spec/examples_spec.lua: the examples run to the end without errors
-- (examples/tour.lua is what `make demo` shows). Runs the host as a child
-- process, from the repository root like tests/run.sh.
local root = require("moonhub.core.host").root

describe("examples #integration", function()
   it("examples/tour.lua runs and prints its sections", function()
      local cmd = ("cd '%s' && ./moonhub run examples/tour.lua 2>&1"):format(root)
      local f = assert(io.popen(cmd))
      local out = f:read("a")
      local ok, how, code = f:close()
      assert.is_true(ok, ("tour exited with %s %s:\n%s"):format(how, code, out))
      assert.matches("== matmul and softmax", out, 1, true)
      assert.matches("single tensor round trip equal:%s+true", out)
      assert.matches("tour done", out, 1, true)
      assert.not_matches("differs", out, 1, true)
   end)
end)
