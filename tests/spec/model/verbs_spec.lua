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
      assert.matches("| tg8 .- %d+%% of bandwidth\n", out)
      assert.matches("memory bandwidth [%d.]+ GB/s %(%d+ MiB read by 1 threads", out)
   end)

   it("--json: tg rows carry their share of the bandwidth ceiling; --membw probes alone", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local json = require "dkjson"
      local home = host.tmpdir()
      local out, err, code = host.run(home, "bench " .. host.q(model) .. " -p 0 -n 8 -r 1 -t 1 --json")
      local probe_out, probe_err, probe_code = host.run(home, "bench --membw --json -t 1")
      host.rmdir(home)
      assert.are.equal(0, code, err)
      local r = json.decode(out)
      -- the untied 512x64 f32 embedding table is read one row per token
      assert.are.equal(1171200 - 512 * 64 * 4 + 64 * 4, r.info.bytes_per_token)
      local tg = r.rows[1]
      assert.are.equal("tg8", tg.test)
      assert.near(100 * tg.mean * r.info.bytes_per_token / r.info.membw.bytes_per_s, tg.bw_pct, 1e-9 * tg.bw_pct)
      assert.are.equal(0, probe_code, probe_err)
      local p = json.decode(probe_out)
      assert.is_true(p.bytes_per_s > 0 and p.buffer_bytes >= 256 * 2^20 and p.threads == 1)
   end)
end)
