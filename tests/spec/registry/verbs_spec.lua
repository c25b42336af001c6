-- Specs for the local registry verbs: import, list, show, cp, rm, and
-- models by name in generate/tokenize; unknown names and a corrupt registry.
-- Layer: tests (runs ./moonhub as a child with a temporary MOONHUB_HOME).
local H = require "helpers.host"
local data = require "helpers.data"

describe("registry verbs", function()
   local home, st, st8

   before_each(function()
      home = H.tmpdir()
      st = data.path("models/stories260K.gguf")
      st8 = data.path("models/stories260K-Q8_0.gguf")
   end)
   after_each(function() H.rmdir(home) end)

   local function need()
      if st and st8 then return true end
      data.skip("models/stories260K{,-Q8_0}.gguf missing", pending)
      return false
   end

   it("imports in place, lists, shows and runs by name", function()
      if not need() then return end
      local out, err, code = H.run(home, "import " .. H.q(st) .. " --name stories")
      assert.equal(0, code, err)
      assert.matches("imported stories:latest %(F32, 1%.1 MiB%)", out)
      out, err, code = H.run(home, "import " .. H.q(st8) .. " --name stories --parent stories:latest")
      assert.equal(0, code, err)
      assert.matches("imported stories:Q8_0", out)
      out, err, code = H.run(home, "list")
      assert.equal(0, code, err)
      assert.matches("NAME%s+SIZE%s+QUANT%s+PARAMS%s+CONTEXT%s+MODIFIED", out)
      assert.matches("stories:Q8_0%s+370%.3 KiB%s+Q8_0,F16%s+292%.8K%s+2048%s+%d%d%d%d%-%d%d%-%d%d", out)
      out, err, code = H.run(home, "show stories:Q8_0")
      assert.equal(0, code, err)
      assert.matches("registry%s+stories:Q8_0", out)
      assert.matches("tags%s+Q8_0, latest", out)
      assert.matches("parent%s+stories@1\n", out)   -- version 1 lost `latest` to version 2
      assert.matches("memory at ctx 4096", out)
      assert.matches("sha256%s+" .. require("moonhub.core.fetch").sha256_file(st8), out)
      out, err, code = H.run(home, "generate stories 'Once upon' -n 4 --temp 0")
      assert.equal(0, code, err)
      assert.is_true(#out > 1)
      local _, terr, tcode = H.run(home, "tokenize stories:Q8_0 'Once upon a time'")
      assert.equal(0, tcode, terr)
   end)

   it("copies into the home with --copy and removes only its own files", function()
      if not need() then return end
      local out, err, code = H.run(home, "import " .. H.q(st8) .. " --name mine --copy")
      assert.equal(0, code, err)
      local copy = home .. "/models/local/mine/stories260K-Q8_0.gguf"
      assert.matches(copy, out, 1, true)
      assert.truthy(io.open(copy, "rb"))
      local _, ierr, icode = H.run(home, "import " .. H.q(st8) .. " --name theirs")
      assert.equal(0, icode, ierr)
      assert.equal(0, code, err)
      out, err, code = H.run(home, "rm mine theirs")
      assert.equal(0, code, err)
      assert.matches("deleted " .. copy, out, 1, true)
      assert.matches("kept " .. require("moonhub.fs").realpath(st8), out, 1, true)
      assert.is_nil(io.open(copy, "rb"))
      assert.truthy(io.open(st8, "rb"))
      out = H.run(home, "list")
      assert.matches("no models yet", out)
   end)

   it("cp makes an alias that resolves and rm removes it", function()
      if not need() then return end
      assert.equal(0, select(3, H.run(home, "import " .. H.q(st8) .. " --name base")))
      local out, err, code = H.run(home, "cp base:Q8_0 fav")
      assert.equal(0, code, err)
      assert.equal("fav -> base:Q8_0\n", out)
      assert.equal(0, select(3, H.run(home, "generate fav hi -n 2 --temp 0")))
      local _, cerr, ccode = H.run(home, "cp nothing other")
      assert.equal(1, ccode)
      assert.matches("no model named 'nothing'", cerr)
      out, err, code = H.run(home, "rm fav")
      assert.equal(0, code, err)
      assert.equal("removed alias fav\n", out)
   end)

   it("names close models when a name is unknown", function()
      if not need() then return end
      assert.equal(0, select(3, H.run(home, "import " .. H.q(st8) .. " --name stories-tiny")))
      local _, err, code = H.run(home, "generate storeis-tiny hi")
      assert.equal(1, code)
      assert.matches("no such file or registered model: 'storeis%-tiny'; close names: stories%-tiny", err)
      _, err, code = H.run(home, "show nothing")
      assert.equal(1, code)
      assert.matches("no such file or registered model: 'nothing'", err)
      _, err, code = H.run(home, "rm nothing")
      assert.equal(1, code)
      assert.matches("no model named 'nothing'", err)
   end)

   it("passes on the registry's own error for a corrupt database", function()
      H.write(home .. "/moonhub.db", "this is not sqlite at all, just text")
      local _, err, code = H.run(home, "generate somemodel hi")
      assert.equal(1, code)
      assert.matches("is not a SQLite database; refusing to touch it", err)
      _, err, code = H.run(home, "list")
      assert.equal(1, code)
      assert.matches("is not a SQLite database", err)
   end)

   it("does not create a registry when resolving a missing name", function()
      local _, _, code = H.run(home, "generate ghost hi")
      assert.equal(1, code)
      assert.is_nil(io.open(home .. "/moonhub.db", "rb"))
   end)
end)
