-- Lua logits processors in the one generation loop: the built-ins have
-- their effect (ban_words never emits the words, force_prefix starts the
-- output with the prefix, max_line_length keeps every line short) on
-- model:generate (the loop on this thread) and through the threaded
-- scheduler (logits handed to the Lua side between steps) with the same
-- output; a processor's error fails its request alone; unknown names and
-- bad args are refused. Layer: tests (mh.processors, mh.sched, mh.load;
-- stories260K from ../shared; the CLI through helpers.host).
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"
local P = require "moonhub.processors"

local PROMPT = "Once upon a time"

local function lines_within(text, n)
   for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      if utf8.len(line) > n then return false, line end
   end
   return true
end

-- The text of a threaded request and its final event.
local function drain(r)
   local parts = {}
   while true do
      local ev = r:next()
      if not ev then return table.concat(parts), nil end
      parts[#parts + 1] = ev.text
      if ev.done then return table.concat(parts), ev end
   end
end

describe("Lua logits processors #integration", function()
   local m
   local function model()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return nil end
      m = m or assert(mh.load(path, { ctx = 256 }))
      return m
   end

   it("built-ins have their effect, the same on this thread and through the scheduler", function()
      if not model() then return end
      local base = m:generate(PROMPT, { max_tokens = 120, temperature = 0 })
      -- what the processors below must change is there without them
      assert.truthy(base:find("Lily", 1, true))
      assert.truthy(base:find("park", 1, true))
      assert.is_false((lines_within(base, 24)))
      local cases = {
         { { { name = "ban_words", args = { words = { "Lily", "park" } } } }, function(t)
            assert.is_nil(t:find("Lily", 1, true), t)
            assert.is_nil(t:find("park", 1, true), t)
         end },
         { { { name = "force_prefix", args = { prefix = "The dragon" } } }, function(t)
            assert.equal("The dragon", t:sub(1, 10))
         end },
         { { { name = "max_line_length", args = { length = 24 } } }, function(t)
            assert.is_true(lines_within(t, 24), t)
            assert.is_true(#t > 100, t)             -- it kept writing, in short lines
         end },
         { { "ban_words" and { name = "ban_words", args = { words = { "Lily" } } },
             { name = "max_line_length", args = { length = 30 } } }, function(t)
            assert.is_nil(t:find("Lily", 1, true), t)
            assert.is_true(lines_within(t, 30), t)
         end },
      }
      local texts = {}
      for i, c in ipairs(cases) do
         texts[i] = m:generate(PROMPT, { max_tokens = 120, temperature = 0, processors = c[1] })
         c[2](texts[i])
      end
      local s = assert(mh.sched.new(m, { parallel = 2, ctx = 256 }))
      finally(function() s:close() end)
      for i, c in ipairs(cases) do
         local r = assert(s:submit({ prompt = PROMPT, max_tokens = 120, temperature = 0, processors = c[1] }))
         local threaded, done = drain(r)
         assert.equal("error" ~= done.reason and done.reason or done.error, done.reason)
         assert.is_true(done.settings.logits_processor)
         assert.equal(texts[i], threaded)
      end
      assert.is_true(s:stats().parks >= 100)
   end)

   it("ban_words holds when sampling, whatever the spelling", function()
      if not model() then return end
      for seed = 1, 6 do
         local t = m:generate(PROMPT, { max_tokens = 80, temperature = 1.2, seed = seed,
            processors = { { name = "ban_words", args = { words = { "Lily", "the" } } } } })
         assert.is_nil(t:find("Lily", 1, true), t)
         assert.is_nil(t:find("the", 1, true), t)
      end
   end)

   it("a processor's error fails its request alone; the batch goes on", function()
      if not model() then return end
      assert(P.register("boom_after3", function(_, tokens)
         if #tokens >= 3 then error("boom at token " .. #tokens) end
      end))
      assert(P.register("spin", function() while true do end end))
      finally(function() P.register("boom_after3", nil) P.register("spin", nil) end)
      local alone = m:generate(PROMPT, { max_tokens = 40, temperature = 0 })
      -- on this thread the error ends the call
      local ok, perr = pcall(m.generate, m, PROMPT, { max_tokens = 40, temperature = 0,
         processors = { "boom_after3" } })
      assert.is_false(ok)
      assert.matches("^generate: .*processor 'boom_after3' failed: .*boom at token 3", perr)
      local s = assert(mh.sched.new(m, { parallel = 3, ctx = 256 }))
      finally(function() s:close() end)
      local bad = assert(s:submit({ prompt = PROMPT, max_tokens = 40, temperature = 0,
         processors = { { name = "boom_after3" } } }))
      local good = assert(s:submit({ prompt = PROMPT, max_tokens = 40, temperature = 0 }))
      local slow = assert(s:submit({ prompt = PROMPT, max_tokens = 40, temperature = 0,
         processors = { "spin" } }))
      local btext, bdone = drain(bad)
      assert.equal("error", bdone.reason)
      assert.matches("processor 'boom_after3' failed: .*boom at token 3", bdone.error)
      assert.equal(3, bdone.usage.completion_tokens)
      assert.equal(alone:sub(1, #btext), btext)
      local _, sdone = drain(slow)
      assert.equal("error", sdone.reason)
      assert.matches("processor 'spin' failed: ran over", sdone.error)
      local gtext, gdone = drain(good)
      assert.equal("length", gdone.reason)
      assert.equal(alone, gtext)
      -- the scheduler still serves
      local again, adone = drain(assert(s:submit({ prompt = PROMPT, max_tokens = 40, temperature = 0 })))
      assert.equal("length", adone.reason)
      assert.equal(alone, again)
   end)

   it("refuses unknown processors and bad args, naming them", function()
      if not model() then return end
      local cases = {
         { { { name = "nope" } }, "unknown processor 'nope': the built%-ins are ban_words, force_prefix, "
            .. "max_line_length" },
         { { { name = "ban_words" } }, "processor 'ban_words': args.words must be a non%-empty list" },
         { { { name = "ban_words", args = { words = { "" } } } }, "args.words%[1%] must be a non%-empty string" },
         { { { name = "force_prefix", args = { prefix = 3 } } }, "processor 'force_prefix': args.prefix" },
         { { { name = "max_line_length", args = { length = 0 } } },
            "processor 'max_line_length': args.length must be" },
         { { { name = "../etc/x" } }, "processor names are letters" },
      }
      for _, c in ipairs(cases) do
         local ok, err = P.prepare(c[1], m)
         assert.is_nil(ok)
         assert.matches(c[2], err)
         local gok, gerr = pcall(m.generate, m, PROMPT, { max_tokens = 2, processors = c[1] })
         assert.is_false(gok)
         assert.matches("^generate: .*" .. c[2], gerr)
      end
      local s = assert(mh.sched.new(m, { parallel = 1, ctx = 256 }))
      finally(function() s:close() end)
      local r, err = s:submit({ prompt = PROMPT, processors = { { name = "nope" } } })
      assert.is_nil(r)
      assert.matches("unknown processor 'nope'", err)
   end)

   it("moonhub generate --processor runs built-ins and the home folder's, and names a failing one", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local dir = host.tmpdir()
      finally(function() host.rmdir(dir) end)
      local home = dir .. "/home"
      assert(require("moonhub.fs").mkdirs(home .. "/processors"))
      host.write(home .. "/processors/shout.lua", [[
-- a user's processor: only tokens whose text has no lowercase letter
return {
   setup = function(args, ctx)
      local ok = {}
      for id0, p in ipairs(ctx.pieces()) do
         if p ~= "" and not p:find("%l") then ok[#ok + 1] = id0 - 1 end
      end
      return { ok = ok }
   end,
   process = function(state, logits)
      require("moonhub.processors").only(logits, state.ok)
   end,
}]])
      host.write(home .. "/processors/broken.lua", "return function(logits, tokens) error('no luck') end")
      local cmd = "generate " .. host.q(path) .. " " .. host.q(PROMPT) .. " -n 30 --temp 0"
      local out, err, code = host.run(home, cmd .. " --processor 'force_prefix:{\"prefix\":\"Tom and Sam\"}'")
      assert.equal(0, code, err)
      assert.equal("Tom and Sam", out:sub(1, 11))
      out, err, code = host.run(home, cmd .. " --processor shout")
      assert.equal(0, code, err)
      assert.is_nil(out:find("%l"), out)
      assert.truthy(out:find("%u"), out)
      local _
      _, err, code = host.run(home, cmd .. " --processor broken")
      assert.are_not.equal(0, code)
      assert.matches("processor 'broken' failed: .*no luck", err)
      _, err, code = host.run(home, cmd .. " --processor nope")
      assert.equal(1, code)
      assert.matches("unknown processor 'nope'", err)
      _, err, code = host.run(home, cmd .. " --processor 'ban_words:[1'")
      assert.equal(2, code)
      assert.matches("the args must be a JSON object", err)
   end)
end)
