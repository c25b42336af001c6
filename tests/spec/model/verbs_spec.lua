-- Specs for the model verbs `moonhub generate` and `moonhub show`, run as a
-- user would, through the binary.
local data = require "helpers.data"
local host = require "helpers.host"

describe("moonhub generate / show #integration", function()
   local home
   before_each(function() home = host.tmpdir() end)
   after_each(function() host.rmdir(home) end)

   it("generate streams text and ends with a stats line", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local out, err, code = host.run(home, "generate " .. host.q(model)
         .. " 'Once upon a time' --max-tokens 24 --temp 0.7 --seed 1")
      assert.are.equal(0, code)
      assert.is_true(#out > 20)
      assert.matches("prompt %d+ tokens, [%d.]+ tok/s | generated 24 tokens, [%d.]+ tok/s | "
         .. "first token %d+ ms", err)
      local out2 = host.run(home, "generate " .. host.q(model)
         .. " 'Once upon a time' --max-tokens 24 --temp 0.7 --seed 1")
      assert.are.equal(out, out2)
   end)

   it("generate reports a missing model and bad options", function()
      local _, err, code = host.run(home, "generate /nonexistent.gguf hi")
      assert.are.equal(1, code)
      assert.matches("cannot open /nonexistent.gguf: No such file", err)
      _, err, code = host.run(home, "generate")
      assert.are.equal(2, code)
      assert.matches("missing argument 'model'", err)
   end)

   it("show prints architecture, quantization, tokenizer, template and memory", function()
      local model = data.need("models/mh-smol-llama-17m-Q4_K_M.gguf", pending)
      if not model then return end
      local out, _, code = host.run(home, "show " .. host.q(model) .. " --ctx 2048")
      assert.are.equal(0, code)
      assert.matches("architecture%s+llama", out)
      assert.matches("parameters%s+15.7M", out)
      assert.matches("q4_K x24, q6_K x5", out)
      assert.matches("tokenizer%s+bpe", out)
      assert.matches("chat template", out)
      assert.matches("memory at ctx 2048", out)
      local json = host.run(home, "show " .. host.q(model) .. " --json")
      local facts = require("dkjson").decode(json)
      assert.are.equal(49152, facts.vocab)
   end)
end)

describe("moonhub bench MODEL #integration", function()
   it("prints llama-bench-like rows with threads and peak RSS", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local home = host.tmpdir()
      local out, err, code = host.run(home, "bench " .. host.q(model) .. " -p 16 -n 8 -r 1 -t 1")
      host.rmdir(home)
      assert.are.equal(0, code, err)
      assert.matches("| stories260K.gguf%s+|.-| pp16%s+|%s+[%d.]+ ±", out)
      assert.matches("| tg8 ", out, 1, true)
      assert.matches("peak RSS [%d.]+ MiB", out)
   end)
end)
