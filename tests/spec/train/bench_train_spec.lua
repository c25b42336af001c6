-- Specs for moonhub.bench_train (`moonhub bench train`): one case on a tiny
-- created model in this process and through the worker child, and option
-- errors. PyTorch is never needed here (--no-torch paths only).
local host = require "helpers.host"
local mh = require "moonhub"
local bt = require "moonhub.bench_train"

describe("moonhub.bench_train", function()
   local dir, model
   setup(function()
      dir = host.tmpdir()
      model = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny", type = "F32", seed = 1, out = model }))
   end)
   teardown(function() host.rmdir(dir) end)

   it("times full and LoRA steps and reports memory", function()
      for _, case in ipairs({ "full", "lora" }) do
         local r = assert(bt.run_case({ case = case, model = model, steps = 2, threads = 1, seq = 16, batch = 2,
                                        rank = 4 }))
         assert.are.equal(2, #r.step_s)
         assert.is_true(r.tokens_per_s > 0 and r.peak_rss > 0 and r.loss > 0)
         assert.are.equal(259, r.vocab)
         if case == "full" then assert.are.equal(r.params, r.trainable)
         else assert.is_true(r.trainable > 0 and r.trainable < r.params / 4) end
      end
   end)

   it("runs a case as a child process that prints one JSON line", function()
      local p = io.popen(string.format("%s bench train --worker full --model %s --steps 1 -t 1 --seq 8 --batch 2",
         host.q(host.exe), host.q(model)))
      local out = p:read("a")
      p:close()
      local r = require("dkjson").decode(out)
      assert.is_table(r)
      assert.is_true(r.tokens_per_s > 0)
      assert.are.equal(1, r.threads)
   end)

   it("rejects bad options with a usage error", function()
      local function usage_of(args)
         local ok, e = pcall(bt.main, args)
         assert.is_false(ok)
         return e.usage
      end
      assert.are.equal("--steps needs a positive integer", usage_of({ "--steps", "0" }))
      assert.are.equal("--case must be lora, full or all", usage_of({ "--case", "qlora" }))
      assert.are.equal("unknown option --bogus", usage_of({ "--bogus" }))
      assert.are.equal("--worker needs --model", usage_of({ "--worker", "full" }))
      -- --help prints the usage: caught here, so it stays out of the suite's output
      local printed, real_print = {}, print
      _G.print = function(...) printed[#printed + 1] = table.concat({ ... }, "\t") end
      local ok, rc = pcall(bt.main, { "--help" })
      _G.print = real_print
      assert.is_true(ok, rc)
      assert.are.equal(0, rc)
      assert.are.equal(bt.usage, printed[1])
   end)
end)
