-- Specs for moonhub.registry: models and immutable versions, tags that move,
-- aliases, lineage, removal, datasets, runs, conversations and messages.
-- Layer: tests (a temporary home per test).
local H = require "helpers.host"
local registry = require "moonhub.registry"

local SHA_A, SHA_B = ("a"):rep(64), ("b"):rep(64)

describe("moonhub.registry #unit", function()
   local home, reg
   before_each(function()
      home = H.tmpdir()
      reg = assert(registry.open(home))
   end)
   after_each(function()
      reg:close()
      H.rmdir(home)
   end)

   it("add_model creates a model and a version and moves latest", function()
      local v1 = reg:add_model { name = "llama", path = "/m/a.gguf", sha256 = SHA_A, quant = { "Q4_K", "Q6_K" },
         size = 5 * (1 << 32), params = 8030261248, arch = "llama", ctx = 8192,
         source_url = "https://huggingface.co/x/y", source_revision = "abc123" }
      assert.equal("llama", v1.model)
      assert.equal("v" .. v1.id, v1.tag)                -- no tag given: v<id>
      assert.equal("gguf", v1.format)
      assert.equal("Q4_K,Q6_K", v1.quant)
      assert.equal(5 * (1 << 32), v1.size)
      assert.equal(8030261248, v1.params)
      assert.equal("abc123", v1.source_revision)
      assert.equal("integer", math.type(v1.created_at))
      local v2 = reg:add_model { name = "llama", tag = "prod", path = "/m/b.safetensors", parent = "llama" }
      assert.equal("safetensors", v2.format)
      assert.equal(v1.id, v2.parent_id)
      assert.equal(v2.id, reg:resolve("llama").id)
      assert.equal(v2.id, reg:resolve("llama:latest").id)
      assert.equal(v2.id, reg:resolve("llama:prod").id)
      -- one row per tag; `latest` is a mark on the newest, not a row
      assert.same({ { "llama", "prod", v2.id, true }, { "llama", "v" .. v1.id, v1.id, false } },
         (function()
            local out = {}
            for _, r in ipairs(reg:list()) do out[#out + 1] = { r.name, r.tag, r.version_id, r.latest } end
            return out
         end)())
      local vs = reg:versions("llama")
      assert.equal(2, #vs)
      assert.equal(v2.id, vs[1].id)
      assert.same({ "prod", "latest" }, vs[1].tags)
      assert.same({ "v" .. v1.id }, vs[2].tags)
      -- latest is the model's pointer: no tag may take its name
      assert.has_error(function() reg:add_model { name = "llama", tag = "latest", path = "/m/c.gguf" } end,
         "registry.add_model: 'latest' is not a tag (it always names the newest version); pick another tag")
      assert.truthy(reg:set_tag("llama", "latest", v1.id))
      assert.equal(v1.id, reg:resolve("llama").id)
   end)

   it("reuses a version with the same sha256 instead of duplicating it", function()
      local v1 = reg:add_model { name = "m", path = "/m/a.gguf", sha256 = SHA_A }
      local again = reg:add_model { name = "m", tag = "stable", path = "/m/a.gguf", sha256 = SHA_A }
      assert.equal(v1.id, again.id)
      assert.equal(1, #reg:versions("m"))
      local other = reg:add_model { name = "m", path = "/m/b.gguf", sha256 = SHA_B }
      assert.not_equal(v1.id, other.id)
   end)

   it("versions are immutable in the database itself", function()
      local v = reg:add_model { name = "m", path = "/m/a.gguf" }
      local ok, err = pcall(reg.db.exec, reg.db, "UPDATE versions SET path = ? WHERE id = ?", "/evil", v.id)
      assert.is_false(ok)
      assert.truthy(err:find("versions are immutable", 1, true), err)
      assert.equal("/m/a.gguf", reg:resolve("m").path)
   end)

   it("resolve reports unknown models and tags as nil, msg", function()
      reg:add_model { name = "m", path = "/m/a.gguf" }
      local v, msg = reg:resolve("nope")
      assert.is_nil(v)
      assert.equal("registry: no model named 'nope'", msg)
      v, msg = reg:resolve("m:nope")
      assert.is_nil(v)
      assert.equal("registry: model 'm' has no tag 'nope'", msg)
      assert.has_error(function() reg:resolve(42) end)
      assert.has_error(function() reg:resolve("a:b:c") end)
      assert.has_error(function() reg:resolve("bad name") end)
   end)

   it("set_tag moves a tag, only within the model", function()
      local v1 = reg:add_model { name = "m", path = "/m/a.gguf" }
      local v2 = reg:add_model { name = "m", path = "/m/b.gguf" }
      local o = reg:add_model { name = "other", path = "/o.gguf" }
      assert.is_true(reg:set_tag("m", "prod", v1.id))
      assert.equal(v1.id, reg:resolve("m:prod").id)
      assert.is_true(reg:set_tag("m", "prod", v2.id))
      assert.equal(v2.id, reg:resolve("m:prod").id)
      local ok, msg = reg:set_tag("m", "prod", o.id)
      assert.is_nil(ok)
      assert.equal("registry: model 'm' has no version " .. o.id, msg)
      assert.is_nil((reg:set_tag("ghost", "prod", v1.id)))
      assert.has_error(function() reg:set_tag("m", "bad tag", v1.id) end)
      -- the schema refuses it even when the API is bypassed
      assert.has_error(function()
         reg.db:exec("UPDATE tags SET version_id = ? WHERE name = 'prod'", o.id)
      end)
   end)

   it("aliases resolve to their model and follow or pin tags", function()
      local v1 = reg:add_model { name = "m", tag = "prod", path = "/m/a.gguf" }
      local v2 = reg:add_model { name = "m", path = "/m/b.gguf" }
      assert.is_true(reg:alias("m", "assistant"))
      assert.equal(v2.id, reg:resolve("assistant").id)
      assert.equal(v1.id, reg:resolve("assistant:prod").id)
      assert.is_true(reg:alias("m:prod", "stable"))
      assert.equal(v1.id, reg:resolve("stable").id)
      reg:set_tag("m", "prod", v2.id)
      assert.equal(v2.id, reg:resolve("stable").id)     -- follows the moving tag
      assert.same({ "assistant", "stable" }, { reg:aliases()[1].name, reg:aliases()[2].name })
      assert.is_nil((reg:alias("m", "m")))
      assert.is_nil((reg:alias("ghost", "x")))
      assert.has_error(function() reg:add_model { name = "assistant", path = "/x.gguf" } end,
         "registry.add_model: 'assistant' is an alias; remove it first")
      local r = reg:remove("assistant")
      assert.equal("assistant", r.alias)
      assert.is_nil((reg:resolve("assistant")))
      assert.truthy(reg:resolve("m"))
   end)

   it("answers lineage queries both ways", function()
      local base = reg:add_model { name = "base", path = "/m/base.gguf" }
      local ft = reg:add_model { name = "tuned", path = "/m/tuned.gguf", parent = "base" }
      local q = reg:add_model { name = "tuned", tag = "q4", path = "/m/tuned-q4.gguf", parent = ft.id }
      reg:add_model { name = "other", path = "/m/other.gguf" }
      local up = assert(reg:lineage("tuned:q4"))
      assert.equal(2, #up)
      assert.equal(ft.id, up[1].id)
      assert.equal(base.id, up[2].id)
      assert.equal("base", up[2].model)
      assert.same({}, assert(reg:lineage("other")))
      local down = assert(reg:descendants("base"))
      assert.equal(2, #down)
      assert.equal(ft.id, down[1].id)
      assert.equal(q.id, down[2].id)
      assert.same({}, assert(reg:descendants("other")))
      local none, msg = reg:lineage("ghost")
      assert.is_nil(none)
      assert.matches("no model named 'ghost'", msg)
   end)

   it("remove name:tag drops that version and keeps latest valid", function()
      local v1 = reg:add_model { name = "m", path = "/m/a.gguf" }
      local v2 = reg:add_model { name = "m", path = "/m/b.gguf", parent = v1.id }
      local v3 = reg:add_model { name = "m", tag = "exp", path = "/m/c.gguf", parent = v2.id }
      local r = assert(reg:remove("m:exp"))
      assert.equal(1, #r.versions)
      assert.equal("/m/c.gguf", r.versions[1].path)
      assert.equal(v2.id, reg:resolve("m").id)      -- latest moved back
      r = assert(reg:remove("m:latest"))
      assert.equal(v2.id, r.versions[1].id)
      assert.equal(v1.id, reg:resolve("m").id)
      assert.is_nil(reg:versions("m")[2])
      assert.not_equal(v3.id, v1.id)
      r = assert(reg:remove("m:latest"))             -- the last version takes the model along
      assert.equal(v1.id, r.versions[1].id)
      assert.is_nil((reg:versions("m")))
      assert.same({}, reg:list())
      local ok, msg = reg:remove("m")
      assert.is_nil(ok)
      assert.equal("registry: no model named 'm'", msg)
   end)

   it("remove name drops the model with its versions, tags and aliases; lineage is cut, not broken", function()
      local base = reg:add_model { name = "base", path = "/m/base.gguf" }
      reg:add_model { name = "base", path = "/m/base2.gguf" }
      local ft = reg:add_model { name = "tuned", path = "/m/t.gguf", parent = "base" }
      reg:alias("base", "b")
      local r = assert(reg:remove("base"))
      assert.equal(2, #r.versions)
      assert.equal(base.id, r.versions[1].id)
      assert.is_nil((reg:resolve("b")))
      assert.same({}, reg:aliases())
      local t = reg:resolve("tuned")
      assert.equal(ft.id, t.id)
      assert.is_nil(t.parent_id)
      assert.equal(0, reg.db:first("SELECT count(*) AS c FROM tags WHERE model_id NOT IN (SELECT id FROM models)").c)
   end)

   it("add_model checks its arguments", function()
      assert.has_error(function() reg:add_model("x") end)
      assert.has_error(function() reg:add_model { name = "m" } end,
         "registry.add_model: path must be a non-empty string")
      assert.has_error(function() reg:add_model { name = "m", path = "/weights.bin" } end,
         "registry.add_model: format is required (cannot tell it from /weights.bin)")
      assert.has_error(function() reg:add_model { name = "m", path = "/a.gguf", size = 1.5 } end,
         "registry.add_model: size must be an integer, got 1.5")
      assert.has_error(function() reg:add_model { name = "m", path = "/a.gguf", parent = "ghost" } end,
         "registry.add_model: parent registry: no model named 'ghost'")
      assert.has_error(function() reg:add_model { name = "m", path = "/a.gguf", sha256 = "short" } end)
      assert.same({}, reg:list())                     -- failed adds leave nothing behind
      local v = reg:add_model { name = "org/model-1.5_b", tag = "v1.0", path = "/dir", format = "hf" }
      assert.equal("hf", v.format)
      assert.equal(v.id, reg:resolve("org/model-1.5_b:v1.0").id)
   end)

   it("stores conversations and messages in order", function()
      local c = reg:add_conversation { title = "greeting", model = "m:latest", system = "be brief" }
      assert.equal("integer", math.type(c))
      -- SQLite's TEXT holds a NUL byte; PostgreSQL's cannot, and says so
      local text = "hello\0with nul"
      if require("helpers.pg").dialect() == "postgres" then
         local ok, err = pcall(reg.add_message, reg, c, "user", text)
         assert.is_false(ok)
         assert.matches("a string with a NUL byte, which PostgreSQL text cannot hold", err)
         text = "hello with no nul"
      end
      reg:add_message(c, "user", text)
      reg:add_message(c, "assistant", "hi", { tokens = 2 })
      local msgs = reg:messages(c)
      assert.equal(2, #msgs)
      assert.same({ 1, "user", text }, { msgs[1].seq, msgs[1].role, msgs[1].content })
      assert.same({ 2, "assistant", 2 }, { msgs[2].seq, msgs[2].role, msgs[2].tokens })
      local c2 = reg:add_conversation()
      local list = reg:conversations()
      assert.equal(2, #list)
      assert.equal(c2, list[1].id)
      assert.equal(1, #reg:conversations { limit = 1 })
      local ok, msg = reg:add_message(999, "user", "x")
      assert.is_nil(ok)
      assert.equal("registry: no conversation 999", msg)
      assert.has_error(function() reg:add_message(c, "robot", "x") end,
         "registry.add_message: role must be system, user, assistant or tool, got robot")
      assert.is_true(reg:remove_conversation(c))
      assert.same({}, reg:messages(c))
      assert.is_false(reg:remove_conversation(c))
   end)

   it("records datasets and runs", function()
      local v = reg:add_model { name = "m", path = "/m/a.gguf" }
      local ds = reg:add_dataset { name = "alpaca", path = "/d/alpaca.jsonl", format = "jsonl", rows = 52002 }
      assert.equal("alpaca", reg:datasets()[1].name)
      assert.has_error(function() reg:add_dataset { name = "alpaca", path = "/d/x" } end)
      local run = reg:add_run { kind = "train", version_id = v.id, dataset_id = ds, config = '{"lr":1e-4}' }
      assert.equal("queued", reg:runs()[1].status)
      assert.is_true(reg:update_run(run, { status = "running", started_at = 100 }))
      assert.is_true(reg:update_run(run, { status = "succeeded", metrics = '{"loss":1.2}', finished_at = 200 }))
      local r = reg:runs()[1]
      assert.same({ "succeeded", 100, 200, '{"loss":1.2}' }, { r.status, r.started_at, r.finished_at, r.metrics })
      assert.has_error(function() reg:update_run(run, { status = "exploded" }) end)
      assert.has_error(function() reg:update_run(run, { bogus = 1 }) end, "registry.update_run: unknown field 'bogus'")
      assert.is_nil((reg:update_run(12345, { status = "succeeded" })))
   end)

   it("uses $MOONHUB_HOME when no home is given", function()
      local other = H.tmpdir()
      local out, err, code = H.run(other, "-e " .. H.q(
         "local r = assert(require('moonhub').registry.open()); print(r.path); r:close()"))
      assert.equal(0, code, err)
      if require("helpers.pg").dialect() == "postgres" then   -- the home's config names its database
         assert.matches("^postgresql://.*search_path%%3D", out)
      else
         assert.equal(other .. "/moonhub.db\n", out)
      end
      H.rmdir(other)
   end)
end)
