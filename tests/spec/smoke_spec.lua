describe("moonhub #unit", function()
   it("loads and reports a version", function()
      local mh = require "moonhub"
      assert.is_string(mh.version)
   end)
end)
