-- Specs for the local registry verbs: import, list, show, cp, rm, and
-- models by name in generate/tokenize; the naming rule (one row per import,
-- `latest` a mark); the migration of a schema-2 registry; unknown names and
-- a corrupt registry.
-- Layer: tests (runs ./moonhub as a child with a temporary MOONHUB_HOME).
local H = require "helpers.host"
local data = require "helpers.data"
local sqlite_it = require("helpers.pg").sqlite_it(it)   -- SQLite-file specs: not under test-pg

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
      assert.matches("imported stories:F32 %(F32, 1%.1 MiB%)", out)
      out, err, code = H.run(home, "import " .. H.q(st8) .. " --name stories --parent stories:latest")
      assert.equal(0, code, err)
      assert.matches("imported stories:Q8_0", out)
      out, err, code = H.run(home, "list")
      assert.equal(0, code, err)
      assert.matches("NAME%s+SIZE%s+QUANT%s+PARAMS%s+CONTEXT%s+MODIFIED%s+LATEST", out)
      assert.matches("stories:Q8_0%s+370%.3 KiB%s+Q8_0,F16%s+292%.8K%s+2048%s+%d%d%d%d%-%d%d%-%d%d %d%d:%d%d%s+%*\n",
         out)
      assert.matches("stories:F32%s+1%.1 MiB%s+F32 .-%d%d:%d%d\n", out)   -- no longer latest: no mark
      assert.not_matches("stories:latest", out)
      out, err, code = H.run(home, "show stories:Q8_0")
      assert.equal(0, code, err)
      assert.matches("registry%s+stories:Q8_0", out)
      assert.matches("tags%s+Q8_0, latest", out)
      assert.matches("parent%s+stories:F32\n", out)   -- version 1 kept its own tag
      assert.matches("memory at ctx 2048", out)       -- the trained context unless --ctx says
      assert.matches("sha256%s+" .. require("moonhub.core.fetch").sha256_file(st8), out)
      out, err, code = H.run(home, "generate stories 'Once upon' -n 4 --temp 0")
      assert.equal(0, code, err)
      assert.is_true(#out > 1)
      local _, terr, tcode = H.run(home, "tokenize stories:Q8_0 'Once upon a time'")
      assert.equal(0, tcode, terr)
   end)

   -- the naming rule (docs/registry.md, "Names"): NAME from the file name
   -- without .gguf and quant suffix, TAG the quant; one row, latest a mark
   it("names an import NAME:QUANT, one row with latest as a mark, not a second row", function()
      if not need() then return end
      local out, err, code = H.run(home, "import " .. H.q(st8))
      assert.equal(0, code, err)
      assert.matches("imported stories260K:Q8_0 ", out)
      local js = require("dkjson").decode((H.run(home, "list --json")))
      assert.equal(1, #js.models)
      assert.equal("stories260K", js.models[1].name)
      assert.equal("Q8_0", js.models[1].tag)
      assert.is_true(js.models[1].latest)
      -- the same file again is the same version, still one row
      assert.equal(0, select(3, H.run(home, "import " .. H.q(st8))))
      js = require("dkjson").decode((H.run(home, "list --json")))
      assert.equal(1, #js.models)
      -- name, name:latest and name:tag all reach it
      for _, ref in ipairs({ "stories260K", "stories260K:latest", "stories260K:Q8_0" }) do
         local _, terr, tcode = H.run(home, "tokenize " .. ref .. " 'Once upon'")
         assert.equal(0, tcode, ref .. ": " .. tostring(terr))
      end
      local _, terr, tcode = H.run(home, "import " .. H.q(st8) .. " --name x --tag latest")
      assert.equal(1, tcode)
      assert.matches("'latest' is not a tag", terr)
   end)

   -- a registry written before the rule (schema 2) stored `latest` as a
   -- second tag row; opening it migrates: one row per version, latest kept
   sqlite_it("migrates a schema-2 registry with its two rows to one row and a latest mark", function()
      local sqlite = require "moonhub.core.sqlite"
      local dialect = require "moonhub.db.sqlite"
      local c = assert(sqlite.open(home .. "/moonhub.db"))
      c:exec(dialect.migrations[1])
      c:exec(dialect.migrations[2])
      c:exec("PRAGMA user_version = 2; PRAGMA application_id = " .. dialect.APP_ID)
      c:exec([[INSERT INTO models (id, name, created_at) VALUES (1, 'smol', 1), (2, 'solo', 1);
         INSERT INTO versions (id, model_id, path, format, quant, created_at) VALUES
            (1, 1, '/m/smol-Q4_0.gguf', 'gguf', 'Q4_0,Q6_K', 1),
            (2, 1, '/m/smol-Q8_0.gguf', 'gguf', 'Q8_0', 2),
            (3, 2, '/m/solo.gguf', 'gguf', 'F16,F32', 3);
         INSERT INTO tags (model_id, name, version_id, updated_at) VALUES
            (1, 'Q4_0', 1, 1), (1, 'Q8_0', 2, 2), (1, 'latest', 2, 2), (2, 'latest', 3, 3)]])
      c:close()
      local reg = assert(require("moonhub.registry").open(home))
      assert.equal(require("moonhub.registry").SCHEMA_VERSION, reg.db:first("PRAGMA user_version").user_version)
      local rows = {}
      for _, r in ipairs(reg:list()) do rows[#rows + 1] = { r.name .. ":" .. r.tag, r.version_id, r.latest } end
      assert.same({ { "smol:Q4_0", 1, false }, { "smol:Q8_0", 2, true }, { "solo:F16", 3, true } }, rows)
      assert.equal(2, reg:resolve("smol").id)
      assert.equal(2, reg:resolve("smol:latest").id)
      assert.equal(3, reg:resolve("solo:latest").id)
      -- and a new import moves latest without a second row
      local v = reg:add_model { name = "smol", tag = "F16", path = "/m/smol-F16.gguf" }
      assert.equal(v.id, reg:resolve("smol").id)
      assert.equal(0, reg.db:first("SELECT count(*) AS n FROM tags WHERE name = 'latest'").n)
      reg:close()
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

   sqlite_it("passes on the registry's own error for a corrupt database", function()
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
