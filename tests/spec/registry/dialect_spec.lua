-- Specs for the registry's split and its dialect seam: the handle's methods
-- come from models / runs / conversations over one db handle; SQLite's own
-- SQL (PRAGMA, FTS5, triggers) lives in moonhub.db.sqlite only; the public
-- helpers models.lua uses (path_in_use, version_label, integrity_check).
-- Layer: tests (unit; temp homes).
local H = require "helpers.host"
local fs = require "moonhub.fs"
local registry = require "moonhub.registry"
local sqlite_it = require("helpers.pg").sqlite_it(it)   -- SQLite-file specs: not under test-pg
-- under make test-pg the same specs run on PostgreSQL (helpers.pg)
local DIALECT = os.getenv("MOONHUB_TEST_DB") and "postgres" or "sqlite"

describe("registry modules and dialect #unit", function()
   local home, reg
   before_each(function()
      home = H.tmpdir()
      reg = assert(registry.open(home))
   end)
   after_each(function()
      reg:close()
      H.rmdir(home)
   end)

   it("one handle carries the three modules' methods over one db handle", function()
      assert.equal(DIALECT, reg.dialect.name)
      assert.equal(DIALECT, reg.db.dialect)
      for _, part in ipairs({ "models", "runs", "conversations" }) do
         for k, fn in pairs(require("moonhub.registry." .. part)) do
            if type(fn) == "function" and k ~= "check_name" then assert.equal(fn, reg[k], part .. "." .. k) end
         end
      end
      local v = reg:add_model({ name = "m", path = "/m.gguf", tag = "q8", sha256 = string.rep("a", 64) })
      local child = reg:add_model({ name = "m2", path = "/m2.gguf", parent = "m:q8" })
      assert.equal("m:q8", reg:version_label(v.id))        -- a named tag before `latest`
      assert.is_nil(reg:version_label(child.id + 1))
      assert.is_true(reg:path_in_use("/m.gguf"))
      assert.is_false(reg:path_in_use("/other.gguf"))
      local run = reg:add_run({ kind = "train", version_id = v.id })
      assert.is_true(reg:update_run(run, { status = "succeeded" }))
      local cid = reg:add_conversation({ model = "m" })
      assert(reg:add_message(cid, "user", "hello"))
      assert.equal("ok", reg:integrity_check())
      assert.has_error(function() registry.dialect("oracle") end, "registry: no dialect for database 'oracle'")
   end)

   it("keeps SQLite's own SQL behind the dialect", function()
      local root = require("moonhub.cli").root()
      local files = { "lua/moonhub/registry.lua", "lua/moonhub/history.lua" }
      for _, name in ipairs(fs.list(root .. "/lua/moonhub/registry")) do
         files[#files + 1] = "lua/moonhub/registry/" .. name
      end
      for _, f in ipairs(files) do
         local src = assert(fs.read(root .. "/" .. f)):gsub("%-%-[^\n]*", "")   -- code, not comments
         for _, word in ipairs({ "PRAGMA", "fts5", "MATCH", "TRIGGER", "sqlite_master", "snippet(" }) do
            assert.is_nil(src:find(word, 1, true), f .. " uses " .. word)
         end
      end
   end)

   sqlite_it("integrity_check reports a broken full-text index", function()
      local cid = reg:add_conversation({})
      assert(reg:add_message(cid, "user", "walrus"))
      -- the index loses its row behind the table's back
      reg.db:exec("INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', 1, 'walrus')")
      assert.matches("^messages_fts: ", reg:integrity_check())
   end)
end)
