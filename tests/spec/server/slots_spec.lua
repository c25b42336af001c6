-- Specs for KV state on disk through `moonhub serve`: llama-server's
-- POST /slots/ID?action=save|restore|erase under --slot-save-path (fields,
-- reuse of a restored slot, traversal and foreign files refused, 501
-- without the flag), and --cache-dir: a restarted server answers a long
-- shared prefix warm (usage and /metrics). Layer: tests (helpers.server).
local S = require "helpers.server"
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local STORIES = "models/stories260K.gguf"

-- A prompt of about n words that no other spec uses.
local function long_prompt(n, tag)
   local w = {}
   for i = 1, n do w[i] = tag .. (i * 7919 % 1000) end
   return table.concat(w, " ")
end

local function complete(srv, prompt)
   local r = srv:post("/v1/completions", { prompt = prompt, max_tokens = 3, temperature = 0 })
   assert.equal(200, r.status, r.body)
   return r.json
end

local function slot(srv, id, action, body)
   return srv:post("/slots/" .. id .. "?action=" .. action, body or "{}")   -- {} would encode as []
end

describe("serve --slot-save-path", function()
   local srv, dir, path
   -- a prefix store too small for any entry: only the slots hold prefixes
   setup(function()
      path = data.path(SMOL)
      dir = host.tmpdir()
      if path then
         srv = S.start(path, "--parallel 2 --ctx 512 --threads 1 --cache-mb 0.001 --slot-save-path " .. dir)
      end
   end)
   teardown(function()
      if srv then srv:stop() end
      host.rmdir(dir)
   end)

   it("saves a slot, erases it and restores it into another: the next prompt reuses it", function()
      if not data.started(srv, SMOL, pending) then return end
      local p = long_prompt(120, "alpha")
      local first = complete(srv, p)
      assert.equal(0, first.usage.prompt_tokens_details.cached_tokens)
      -- the request ran in one of the two slots: save whichever holds it
      local saved, id
      for i = 0, 1 do
         local r = slot(srv, i, "save", { filename = "alpha.state" })
         if r.status == 200 then saved, id = r.json, i break end
         assert.equal(400, r.status, r.body)
         assert.matches("holds no tokens to save", r.json.error.message)
      end
      assert(saved, "no slot held the prompt")
      assert.equal(id, saved.id_slot)
      assert.equal("alpha.state", saved.filename)
      assert.is_true(saved.n_saved >= first.usage.prompt_tokens)
      assert.equal(saved.n_written, #host.read(dir .. "/alpha.state"))
      assert.equal("number", type(saved.timings.save_ms))
      local erased = slot(srv, id, "erase")
      assert.equal(200, erased.status, erased.body)
      assert.same({ id_slot = id, n_erased = saved.n_saved }, erased.json)
      local other = 1 - id
      assert.equal(200, slot(srv, other, "erase").status)   -- neither slot holds the prefix now
      local restored = slot(srv, other, "restore", { filename = "alpha.state" })
      assert.equal(200, restored.status, restored.body)
      assert.same({ other, "alpha.state", saved.n_saved, saved.n_written },
         { restored.json.id_slot, restored.json.filename, restored.json.n_restored, restored.json.n_read })
      assert.equal("number", type(restored.json.timings.restore_ms))
      local again = complete(srv, p .. " and more")
      assert.is_true(again.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1,
         again.usage.prompt_tokens_details.cached_tokens)
      assert.equal(0, S.metric(srv:request("/metrics").body, "moonhub_prefix_store_entries"))
   end)

   it("refuses bad names, actions, slots, missing and foreign files", function()
      if not data.started(srv, SMOL, pending) then return end
      for _, name in ipairs({ "../x", "/etc/passwd", "a/b", ".hidden", "", ("x"):rep(201) }) do
         local r = slot(srv, 0, "save", { filename = name })
         assert.equal(400, r.status, name)
         assert.equal("filename", r.json.error.param)
      end
      local r = slot(srv, 0, "save")
      assert.equal(400, r.status)
      assert.matches("'filename' must be a non%-empty string", r.json.error.message)
      r = slot(srv, 0, "frobnicate", { filename = "a" })
      assert.equal(400, r.status)
      assert.matches("'action' must be save, restore or erase, got \"frobnicate\"", r.json.error.message)
      r = slot(srv, 7, "restore", { filename = "a" })
      assert.equal(400, r.status)
      assert.matches("slot 7 does not exist: the server has 2 %(0..1%)", r.json.error.message)
      r = slot(srv, "x", "erase")
      assert.equal(400, r.status)
      r = slot(srv, 0, "restore", { filename = "missing.state" })
      assert.equal(404, r.status, r.body)
      assert.matches("cannot open missing%.state", r.json.error.message)
      assert.is_nil(r.json.error.message:find(dir, 1, true))     -- the server's folder is not told
      -- a state another model saved
      local sp = data.need(STORIES, pending)
      if not sp then return end
      local m = assert(mh.load(sp, { ctx = 64 }))
      local cache = m:new_cache()
      m:generate("Once upon a time", { cache = cache, max_tokens = 2, temperature = 0 })
      assert(m:save_state(dir .. "/stories.state", cache))
      r = slot(srv, 0, "restore", { filename = "stories.state" })
      assert.equal(400, r.status, r.body)
      assert.matches("stories%.state was saved from another model .* restore it into the model that saved it",
         r.json.error.message)
      host.write(dir .. "/junk.state", "MHKVSTAT junk")
      r = slot(srv, 0, "restore", { filename = "junk.state" })
      assert.equal(400, r.status, r.body)
      assert.matches("KV state version", r.json.error.message)
   end)
end)

describe("serve without --slot-save-path", function()
   local srv
   setup(function()
      local path = data.path(STORIES)
      if path then srv = S.start(path, "--parallel 1 --ctx 128 --threads 1") end
   end)
   teardown(function() if srv then srv:stop() end end)

   it("answers 501 to save and restore", function()
      if not data.started(srv, STORIES, pending) then return end
      local r = slot(srv, 0, "save", { filename = "a" })
      assert.equal(501, r.status, r.body)
      assert.matches("start it with %-%-slot%-save%-path DIR", r.json.error.message)
   end)
end)

describe("serve --cache-dir", function()
   it("answers a long shared prefix warm after a restart", function()
      local path = data.need(SMOL, pending)
      if not path then return end
      local dir = host.tmpdir()
      local args = "--parallel 1 --ctx 1024 --threads 1 --cache-dir " .. dir .. "/cache"
      local p = long_prompt(200, "beta")
      local srv = S.start(path, args)
      local cold = complete(srv, p .. " first")
      assert.equal(0, cold.usage.prompt_tokens_details.cached_tokens)
      srv:stop()
      srv = S.start(path, args)
      local ok, err = pcall(function()
         local warm = complete(srv, p .. " second")
         assert.is_true(warm.usage.prompt_tokens_details.cached_tokens >= cold.usage.prompt_tokens - 4,
            require("dkjson").encode(warm.usage))
         local text = srv:request("/metrics").body
         assert.equal(1, S.metric(text, "moonhub_prefix_store_hits_total"))
         assert.equal(1, S.metric(text, "moonhub_prefix_store_disk_hits_total"))
         assert.is_true(S.metric(text, "moonhub_prefix_store_disk_entries") >= 1)
      end)
      srv:stop()
      host.rmdir(dir)
      assert(ok, err)
   end)

   it("checks its flags where they arrive", function()
      local path = data.need(STORIES, pending)
      if not path then return end
      local home = host.tmpdir()
      local out, err, code = host.run(home, "serve --model " .. host.q(path) .. " --cache-dir-mb 5")
      assert.equal(2, code, out)
      assert.matches("%-%-cache%-dir%-mb needs %-%-cache%-dir DIR", err)
      out, err, code = host.run(home, "serve --model " .. host.q(path) .. " --cache-dir " .. host.q(home .. "/c")
         .. " --cache-mb 0")
      host.rmdir(home)
      assert.equal(2, code, out)
      assert.matches("%-%-cache%-dir needs the prefix cache", err)
   end)
end)
