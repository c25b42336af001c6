-- The context serve/chat/generate choose when none is asked for (issue 20):
-- the model's trained context (GGUF <arch>.context_length) capped by memory,
-- printed once with the KV memory it costs; a context beyond the trained one
-- warns once. Layer: tests (./moonhub children on ../shared models, skipped
-- when missing). Memory caps use --mem-limit / --mem-budget-mb, not this machine.
local H = require "helpers.host"
local data = require "helpers.data"
local q = H.q

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"     -- trained at 2048

local function count(s, pat)
   local n = 0
   for _ in s:gmatch(pat) do n = n + 1 end
   return n
end

describe("context default", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   local function gen(model, flags)
      local _, err, rc = H.run(home, "generate " .. q(model) .. " Once -n 2 --temp 0 " .. flags)
      assert.equal(0, rc, err)
      return err
   end

   it("generate: the trained context, its KV memory printed (--verbose), no warning", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      local err = gen(model, "--verbose")
      assert.equal(1, count(err, "moonhub generate: context 2048 %(trained%), KV cache 4 MiB\n"))
      assert.equal(0, count(err, "warning"))
      assert.equal(0, count(gen(model, ""), "context"))   -- without --verbose, quiet
   end)

   it("generate: capped by the memory allowed, halving until weights + KV fit", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      -- the model needs ~122.4 MiB at 2048 and ~120.4 MiB at 1024 (weights + KV + scratch)
      local err = gen(model, "--verbose --mem-limit 121")
      assert.matches("moonhub generate: context 1024 %(trained 2048, capped by memory: 121 MiB%), "
         .. "KV cache 2 MiB\n", err)
      local _, e2, rc = H.run(home, "generate " .. q(model) .. " Once -n 2 --mem-limit 10")
      assert.equal(1, rc)
      assert.matches("needs 0%.12 GiB at ctx 256 but only 0%.01 GiB is allowed", e2)
   end)

   it("a context beyond the trained one warns once (generate, chat), one at it does not", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      local warn = "warning: context 4096 is beyond the model's trained context 2048"
      assert.equal(1, count(gen(model, "--ctx 4096"), warn))
      assert.equal(0, count(gen(model, "--ctx 2048"), "warning"))
      local _, err, rc = H.run(home, "chat " .. q(model) .. " --no-history --ctx 4096", "")
      assert.equal(0, rc, err)
      assert.equal(1, count(err, "moonhub chat: " .. warn))
   end)

   it("chat on a terminal: its context and KV memory under the banner, once", function()
      local model = data.need(SMOL, pending)
      if not model or not data.need_cmd("script", pending) then return end
      local out = home .. "/chat.out"
      local inner = string.format("MOONHUB_HOME=%s %s chat %s --no-history", q(home), q(H.exe), q(model))
      os.execute(string.format("printf '/bye\\n' | timeout 60 script -qec %s /dev/null >%s 2>&1", q(inner), q(out)))
      local text = H.read(out) or ""
      assert.equal(1, count(text, "moonhub chat: context 2048 %(trained%), KV cache 4 MiB\r?\n"), text)
   end)

   it("serve: no 4096 for a model trained at 2048; the choice and KV memory printed once", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      local pidf, out = home .. "/pid", home .. "/serve.out"
      os.execute(string.format("(exec env MOONHUB_HOME=%s %s serve --port 0 --parallel 2 %s) >%s 2>%s </dev/null "
         .. "& echo $! >%s", q(home), q(H.exe), q(model), q(out), q(home .. "/serve.err"), q(pidf)))
      local pid = tonumber(H.read(pidf))
      for _ = 1, 300 do                                   -- bounded wait for the ready line
         if (H.read(out) or ""):find("ready at", 1, true) or not os.execute("kill -0 " .. pid .. " 2>/dev/null") then
            break
         end
         os.execute("sleep 0.1")
      end
      os.execute("kill " .. pid .. " 2>/dev/null")
      local text = H.read(out) or ""
      assert.equal(1, count(text, "moonhub serve: context 2048 %(trained%), KV cache 8 MiB for 2 sequences\n"),
         text .. (H.read(home .. "/serve.err") or ""))
      assert.matches("%(2 parallel, ctx 2048%)", text)
   end)
end)

describe("mh.load without ctx: the same rule as serve/chat/generate", function()
   local mh = require "moonhub"
   local dir
   setup(function() dir = H.tmpdir() end)
   teardown(function() H.rmdir(dir) end)

   it("takes the whole trained context, past the old 4096 cap", function()
      local path = dir .. "/long.gguf"
      assert(mh.create.model({ out = path, type = "F32", config = { arch = "llama", n_layer = 1, n_embd = 32,
         n_ff = 64, n_head = 2, n_head_kv = 2, n_vocab = 259, n_ctx = 8192, tied = true } }))
      local m = assert(mh.load(path))
      assert.equal(8192, m.ctx)
      assert.equal("context 8192 (trained), KV cache 1 MiB", m.context_note)
      assert.equal(4096, assert(mh.load(path, { ctx = 4096 })).ctx)    -- an asked ctx is kept
   end)

   it("halves the trained context until weights + KV fit mem_limit, and says so", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      local m = assert(mh.load(model, { mem_limit = 121 * 2^20 }))
      assert.equal(1024, m.ctx)
      assert.equal("context 1024 (trained 2048, capped by memory: 121 MiB), KV cache 2 MiB", m.context_note)
   end)

   it("reads MOONHUB_CTX and the config file; verbose prints the choice and the warning", function()
      local model = data.need(SMOL, pending)
      if not model then return end
      local script = "local m = require('moonhub').load(" .. ("%q"):format(model) .. ", {verbose = true}) "
         .. "print(m.ctx)"
      -- H.run with MOONHUB_CTX set for the child
      local _, _, rc = os.execute(string.format("MOONHUB_CTX=4096 MOONHUB_HOME=%s %s -e %s >%s 2>%s </dev/null",
         q(dir), q(H.exe), q(script), q(dir .. "/.stdout"), q(dir .. "/.stderr")))
      local out, err = H.read(dir .. "/.stdout"), H.read(dir .. "/.stderr")
      assert.equal(0, rc, err)
      assert.equal("4096\n", out)
      assert.equal("moonhub.load: context 4096 (MOONHUB_CTX), KV cache 8 MiB\n"
         .. "moonhub.load: warning: context 4096 is beyond the model's trained context 2048; "
         .. "answers past 2048 tokens may degrade\n", err)
      H.write(dir .. "/config.lua", "return { ctx = 512 }\n")
      out, err, rc = H.run(dir, "-e " .. q(script))
      assert.equal(0, rc, err)
      assert.equal("512\n", out)
      assert.equal("moonhub.load: context 512 (config file), KV cache 1 MiB\n", err)
   end)
end)
