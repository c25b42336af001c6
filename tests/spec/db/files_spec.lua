-- Specs for how the registry treats the database file: migrations are
-- idempotent, and a foreign or corrupt file is refused with a clear message
-- and left byte-identical, with no sidecar files. Layer: tests (temp dirs).
local H = require "helpers.host"
local registry = require "moonhub.registry"
local sqlite = require "moonhub.core.sqlite"

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local function write(path, s)
   local f = assert(io.open(path, "wb"))
   f:write(s)
   f:close()
end

local function exists(path)
   local f = io.open(path, "rb")
   if f then f:close() end
   return f ~= nil
end

describe("registry database file #unit", function()
   local home, path
   before_each(function()
      home = H.tmpdir()
      path = home .. "/" .. registry.FILE
   end)
   after_each(function() H.rmdir(home) end)

   local function refused(pattern)
      local before = read(path)
      local reg, msg = registry.open(home)
      assert.is_nil(reg)
      assert.is_string(msg)
      assert.truthy(msg:find(pattern, 1, true), msg)
      assert.equal(before, read(path))
      for _, suffix in ipairs({ "-wal", "-shm", "-journal" }) do
         assert.is_false(exists(path .. suffix), "left " .. suffix)
      end
      return msg
   end

   it("creates the schema once; reopening migrates nothing", function()
      local reg = assert(registry.open(home))
      local conn = reg.db
      assert.equal(registry.SCHEMA_VERSION, conn:first("PRAGMA user_version").user_version)
      assert.equal(registry.APP_ID, conn:first("PRAGMA application_id").application_id)
      assert.equal("wal", conn:first("PRAGMA journal_mode").journal_mode)
      assert.equal(1, conn:first("PRAGMA foreign_keys").foreign_keys)
      local schema = conn:query("SELECT type, name, sql FROM sqlite_master ORDER BY name")
      reg:add_model { name = "m", path = "/x.gguf" }
      reg:close()
      for _ = 1, 3 do
         reg = assert(registry.open(home))
         assert.same(schema, reg.db:query("SELECT type, name, sql FROM sqlite_master ORDER BY name"))
         assert.equal(1, #reg:list())
         reg:close()
      end
      local names = {}
      for _, r in ipairs(schema) do if r.type == "table" then names[#names + 1] = r.name end end
      assert.same({ "aliases", "conversations", "dataset_versions", "datasets", "messages", "messages_fts",
         "messages_fts_config",
         "messages_fts_data", "messages_fts_docsize", "messages_fts_idx", "models", "run_events", "run_metrics",
         "run_steps", "runs", "tags", "versions" }, names)
   end)

   it("refuses a database from a newer moonhub", function()
      assert(registry.open(home)):close()
      local c = assert(sqlite.open(path))
      c:exec("PRAGMA user_version = " .. (registry.SCHEMA_VERSION + 1))
      c:exec("PRAGMA journal_mode = DELETE")
      c:close()
      refused("newer than this moonhub")
   end)

   it("refuses a file that is not SQLite and leaves it byte-identical", function()
      local junk = {}
      for i = 1, 5000 do junk[i] = string.char((i * 37) % 256) end
      write(path, "not a database\n" .. table.concat(junk))
      refused("is not a SQLite database; refusing to touch it")
   end)

   it("refuses a SQLite file of another application and leaves it byte-identical", function()
      local c = assert(sqlite.open(path))
      c:exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT); INSERT INTO accounts (owner) VALUES ('x')")
      c:close()
      local msg = refused("another application")
      assert.truthy(msg:find("accounts", 1, true), msg)
   end)

   it("refuses a SQLite file with a foreign application_id even without tables", function()
      local c = assert(sqlite.open(path))
      c:exec("PRAGMA application_id = 1234")
      c:close()
      refused("application_id 1234")
   end)

   it("refuses a corrupt SQLite file and leaves it byte-identical", function()
      local reg = assert(registry.open(home))
      reg:add_model { name = "m", path = "/x.gguf" }
      reg:close()
      local good = read(path)
      -- keep the magic, break the page size and every page after the header
      write(path, good:sub(1, 16) .. "\255\255" .. string.rep("\171", #good - 18))
      refused("registry:")
   end)
end)
