-- `moonhub bench serve --long`: cold time to first token of fresh prompts of
-- the given lengths and the server's peak RSS; its option checks (a length
-- the context cannot hold is refused before any server starts).
-- Layer: tests (helpers.host, .data).
local H = require "helpers.host"
local data = require "helpers.data"
local q = H.q

local STORIES = "models/stories260K.gguf"

describe("moonhub bench serve --long", function()
   it("refuses a prompt length the context cannot hold, and a bad list", function()
      local home = H.tmpdir()
      local _, err, code = H.run(home, "bench serve nothing.gguf --ctx 256 --long 40,300")
      assert.equal(2, code)
      assert.matches("%-%-long 300 needs %-%-ctx above it %(now 256%)", err)
      _, err, code = H.run(home, "bench serve nothing.gguf --long 1000,x")
      assert.equal(2, code)
      assert.matches("%-%-long needs prompt lengths like 1000,4000", err)
      H.rmdir(home)
   end)

   it("#integration prints one cold TTFT row per length", function()
      local p = data.need(STORIES, pending)
      if not p then return end
      local home = H.tmpdir()
      local out, err, code = H.run(home, "bench serve " .. q(p)
         .. " --threads 1 --parallel 1 --ctx 256 --long 40,120 --reps 2")
      H.rmdir(home)
      assert.equal(0, code, err)
      for _, n in ipairs({ 40, 120 }) do
         local v = out:match("\nTTFT cold, ~" .. n .. "%-token prompt, ms %(median%) +([%d.]+)\n")
         assert.is_number(tonumber(v), n .. " in:\n" .. out)
      end
      assert.is_nil(out:match("generated tok/s"), out)   -- only the long-prompt figures
      local rss = tonumber(out:match("\npeak RSS %(VmHWM%) so far, MiB +([%d.]+)\n"))
      assert.is_true(rss ~= nil and rss > 1, out)          -- the server's own, read from /proc
      local notes = {}
      for l in err:gmatch("[^\n]+") do
         local note = l:match("^bench serve +[%d.]+%% .-ETA %S+  (.*)$")
         if note then notes[#notes + 1] = note end
      end
      assert.same({ "warm-up moonhub", "TTFT 40 tokens rep 1/2 moonhub", "TTFT 120 tokens rep 1/2 moonhub",
                    "TTFT 40 tokens rep 2/2 moonhub", "TTFT 120 tokens rep 2/2 moonhub", "done" }, notes)
   end)
end)
