-- Specs for the PostgreSQL dialect (moonhub.db.postgres) and for choosing a
-- home's database: migrating an old schema, refusing a schema that is not
-- ours or is newer, two homes (nodes) sharing one database and agreeing on
-- a model by its digest, MOONHUB_DB / --db / config `db` reaching the verbs.
-- Layer: tests (integration: a real server, $MOONHUB_TEST_DB or helpers.pg).
local H = require "helpers.host"
local data = require "helpers.data"
local pg = require "helpers.pg"
local db = require "moonhub.db"
local registry = require "moonhub.registry"
local dialect = require "moonhub.db.postgres"

describe("the PostgreSQL dialect #integration", function()
   local cluster, url, admin
   local homes = {}
   setup(function()
      url = os.getenv("MOONHUB_TEST_DB")
      if not url then
         cluster = pg.start()
         url = cluster and cluster.url
      end
      admin = url and assert(db.open(url))
   end)
   teardown(function()
      if admin then admin:close() end
      if cluster then cluster.stop() end
   end)
   after_each(function()
      for _, h in ipairs(homes) do H.rmdir(h) end
      homes = {}
   end)

   local function need()
      if url then return true end
      data.skip("no PostgreSQL server binaries (apt-get install postgresql)", pending)
      return false
   end

   -- a fresh schema and its URL
   local n = 0
   local function schema()
      n = n + 1
      local name = string.format("spec_%d_%d", require("moonhub.fs").pid(), n)
      admin:exec("CREATE SCHEMA " .. name)
      return name, pg.url_with_schema(url, name)
   end

   local function home(s)
      local h = os.tmpname()
      os.remove(h)
      assert(os.execute("mkdir -p " .. H.q(h)))
      homes[#homes + 1] = h
      pg.bind_home(h, url, s)
      return h
   end

   it("migrates a schema-2 hub: `latest` tag rows become the model's pointer", function()
      if not need() then return end
      local _, u = schema()
      local c = assert(db.open(u))
      c:exec(dialect.migrations[1])
      c:exec(dialect.migrations[2])
      c:exec("CREATE TABLE moonhub_schema (app TEXT NOT NULL, version BIGINT NOT NULL)")
      c:exec("INSERT INTO moonhub_schema VALUES ('moonhub', 2)")
      c:exec([[INSERT INTO models (id, name, created_at) VALUES (1, 'smol', 1), (2, 'solo', 1);
         INSERT INTO versions (id, model_id, path, format, quant, created_at) VALUES
            (1, 1, '/m/smol-Q4_0.gguf', 'gguf', 'Q4_0,Q6_K', 1),
            (2, 1, '/m/smol-Q8_0.gguf', 'gguf', 'Q8_0', 2),
            (3, 2, '/m/solo.gguf', 'gguf', 'F16,F32', 3);
         SELECT setval('models_id_seq', 2); SELECT setval('versions_id_seq', 3);
         INSERT INTO tags (model_id, name, version_id, updated_at) VALUES
            (1, 'Q4_0', 1, 1), (1, 'Q8_0', 2, 2), (1, 'latest', 2, 2), (2, 'latest', 3, 3)]])
      c:close()
      local reg = assert(registry.open(home(), { db = u }))
      assert.equal(dialect.SCHEMA_VERSION, dialect.schema_version(reg.db))
      local tags = {}
      for _, r in ipairs(reg:list()) do tags[#tags + 1] = r.name .. ":" .. r.tag .. (r.latest and "*" or "") end
      assert.same({ "smol:Q4_0", "smol:Q8_0*", "solo:F16*" }, tags)
      assert.equal(2, reg:resolve("smol").id)
      assert.has_error(function() reg.db:exec("INSERT INTO tags VALUES (1, 'latest', 1, 1)") end)
      -- the ids go on after the migrated rows
      assert.equal(4, reg:add_model({ name = "smol", path = "/m/new.gguf" }).id)
      assert.equal("ok", reg:integrity_check())
      reg:close()
   end)

   it("refuses a schema of another application, or of a newer moonhub, untouched", function()
      if not need() then return end
      local _, u = schema()
      local c = assert(db.open(u))
      c:exec("CREATE TABLE accounts (id BIGINT)")
      local reg, msg = registry.open(home(), { db = u })
      assert.is_nil(reg)
      assert.matches("already holds tables of another application %(accounts%); refusing to modify it", msg)
      assert.is_nil(c:first([[SELECT 1 AS x FROM pg_tables WHERE tablename = 'models'
         AND schemaname = current_schema()]]))
      local _, u2 = schema()
      reg = assert(registry.open(home(), { db = u2 }))
      reg.db:exec("UPDATE moonhub_schema SET version = 99")
      reg:close()
      reg, msg = registry.open(home(), { db = u2 })
      assert.is_nil(reg)
      assert.matches("has schema version 99, newer than this moonhub %(" .. dialect.SCHEMA_VERSION .. "%)", msg)
      assert.is_nil(msg:find("password", 1, true))
      c:close()
   end)

   it("two nodes share one hub: a model imported on one resolves by digest on the other", function()
      if not need() then return end
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local s = schema()
      local a, b = home(s), home(s)                      -- two homes, one database: two nodes
      local out, err, code = H.run(a, "import " .. H.q(model) .. " --name shared --tag q")
      assert.equal(0, code, err)
      assert.matches("imported shared:q", out)
      local sha = require("moonhub.core.fetch").sha256_file(model)
      out, err, code = H.run(b, "show sha256:" .. sha:sub(1, 16))
      assert.equal(0, code, err)
      assert.matches("registry%s+shared:q", out)
      assert.matches(sha, out, 1, true)
      local rb = assert(registry.open(b))
      local v = assert(rb:resolve("sha256:" .. sha))
      assert.same({ "shared", sha, require("moonhub.fs").realpath(model) }, { v.model, v.sha256, v.path })
      assert.equal(sha, require("moonhub.core.fetch").sha256_file(v.path))   -- the shared file is that one
      local none, why = rb:resolve("sha256:" .. string.rep("0", 12))
      assert.is_nil(none)
      assert.matches("no version with sha256 000000000000", why)
      rb:close()
   end)

   it("MOONHUB_DB and --db name the database for every verb", function()
      if not need() then return end
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local _, u = schema()
      local h = os.tmpname()
      os.remove(h)
      assert(os.execute("mkdir -p " .. H.q(h)))
      homes[#homes + 1] = h                              -- no config: the flag or variable decides
      local _, err, code = H.run(h, "import " .. H.q(model) .. " --name viaflag --db " .. H.q(u))
      assert.equal(0, code, err)
      assert.is_nil(io.open(h .. "/moonhub.db"))         -- nothing went to SQLite
      local out = H.run(h, "list --db=" .. H.q(u))
      assert.matches("viaflag:F32", out)
      out = H.run(h, "list")                             -- without it: the home's own (empty) SQLite
      assert.not_matches("viaflag", out)
      local cmd = string.format("MOONHUB_DB=%s MOONHUB_HOME=%s %s list", H.q(u), H.q(h), H.q(H.exe))
      local p = io.popen(cmd)
      out = p:read("a")
      p:close()
      assert.matches("viaflag:F32", out)
      _, err, code = H.run(h, "list --db")
      assert.equal(1, code)
      assert.matches("%-%-db: expected a SQLite path or a postgresql:// URL", err)
   end)
end)
