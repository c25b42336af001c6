-- The one error contract (docs/errors.md): C fills a message, the binding
-- raises once naming the Lua function in place of the C label, and the host
-- prints a recipe's error as "moonhub VERB: message" once. Representative
-- errors from each layer, none with a doubled prefix.
-- Layer: tests (helpers.host, helpers.data; runs the real binary).
local data = require "helpers.data"
local H = require "helpers.host"
local mh = require "moonhub"

local function doubled(msg)
   -- "x: x:" or "x.y: y:" at the start: the same label twice
   local a, b = msg:match("^([%w_.:]+): ([%w_.]+):")
   return a ~= nil and (a == b or a:match("[.:]" .. b:gsub("%p", "%%%0") .. "$") ~= nil)
end

describe("one error contract", function()
   it("bindings name the Lua function once (model, tensor, grammar)", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(mh.load(path, { ctx = 64 }))
      local ok, err = pcall(m.forward, m, { 1, 2, 3, 4, 5, 6 }, m:new_cache(4))
      assert.is_false(ok)
      assert.matches("model%.forward: context full: 0 %+ 6 tokens exceed n_ctx 4$", err)
      assert.is_false(doubled(err:gsub("^[^:]+:%d+: ", "")))
      ok, err = pcall(function() return mh.tensor.zeros({ 2, 3 }):view({ 4 }) end)
      assert.is_false(ok)
      assert.matches("tensor%.view: shape %(4%) needs 4 elements, got 6$", err)
      local g = mh.grammar.json_object(m)
      ok, err = pcall(g.accept, g, 2 ^ 40)
      assert.is_false(ok)
      assert.matches("grammar:accept: ", err)
      assert.is_false(doubled(err:gsub("^[^:]+:%d+: ", "")))
      m:close()
   end)

   it("recipes print 'moonhub VERB: message' once, without a traceback for user errors", function()
      local home = H.tmpdir()
      local junk = home .. "/junk.gguf"
      H.write(junk, "junk")
      local _, err, code = H.run(home, "import " .. H.q(junk))
      assert.equal(1, code)
      assert.equal("moonhub import: gguf: " .. junk .. " is too short (4 bytes) to be a GGUF file\n", err)
      local path = data.path("models/stories260K.gguf")
      if path then
         _, err, code = H.run(home, "generate " .. H.q(path) .. " hi --json-schema '{\"type\": 5}'")
         assert.equal(1, code)
         assert.equal("moonhub generate: json schema: #: 'type' must be a string or an array of strings\n", err)
         _, err, code = H.run(home, "generate " .. H.q(path) .. " hi --top-p 2")
         assert.equal(1, code)
         assert.equal("moonhub generate: sampler: top_p must be in (0, 1], got 2\n", err)
      end
      -- a bug (an error with a source position) keeps its traceback
      H.write(home .. "/recipes/oops.lua", "-- fails\nerror('oops: recipe broke')\n")
      _, err, code = H.run(home, "oops")
      assert.equal(1, code)
      assert.truthy(err:find("^moonhub oops: .*oops%.lua:2: oops: recipe broke\nstack traceback:"), err)
      H.rmdir(home)
   end)
end)
