-- LoRA adapters at inference: an adapter trained with mh.train and saved
-- PEFT-style loads with mh.load(base, {adapters = ...}) and gives the loss
-- the trainer measured; bad adapters are refused with clear messages.
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

describe("LoRA adapters at inference #integration", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   it("applies a trained adapter exactly as the trainer saw it", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(mh.load(path))
      local tok = m.tokenizer
      local prompt = tok:encode("Lily saw", { bos = true })
      local row, mask = {}, {}
      for _, id in ipairs(prompt) do row[#row + 1] = id; mask[#mask + 1] = 0 end
      for _, id in ipairs(tok:encode(" a purple elephant.", { bos = false })) do
         row[#row + 1] = id; mask[#mask + 1] = 1
      end
      local tr = mh.train.trainer(m, { method = "lora", seed = 1,
         lora = { rank = 8, alpha = 16, targets = { "q", "k", "v", "o", "gate", "up", "down" } },
         optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
      local batch = { tokens = { row }, mask = { mask } }
      for _ = 1, 40 do tr:step(batch) end
      local trained = tr:evaluate(batch).loss
      local file = dir .. "/adapter.safetensors"
      assert(tr:save(file))

      local with = assert(mh.load(path, { adapters = { file } }))
      local lp = with:forward(row, nil, { all = true }):log_softmax(2)
      local nll, n = 0, 0
      for i = #prompt, #row - 1 do nll = nll - lp[{ i, row[i + 1] + 1 }]; n = n + 1 end
      assert.is_true(math.abs(nll / n - trained) <= 1e-3 + 0.05 * trained,
         string.format("inference loss %g vs trained %g", nll / n, trained))
      local text = with:generate(prompt, { max_tokens = 10, temperature = 0 })
      assert.matches("^ a purple", text)

      -- removing the adapters gives the base back; setting them again, the tuned model
      local base_text = assert(mh.load(path)):generate(prompt, { max_tokens = 10, temperature = 0 })
      with:set_adapters({})
      assert.equal(base_text, (with:generate(prompt, { max_tokens = 10, temperature = 0 })))
      with:set_adapters({ { path = file, scale = 1.0 } })
      assert.equal(text, (with:generate(prompt, { max_tokens = 10, temperature = 0 })))
   end)

   it("saves a GGUF LoRA in llama.cpp's adapter format", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(mh.load(path))
      local tr = mh.train.trainer(m, { method = "lora", seed = 1,
         lora = { rank = 4, alpha = 8, targets = { "q", "down" } } })
      tr:step({ tokens = { m.tokenizer:encode("Once upon a time there was a dog", { bos = true }) } })
      local file = dir .. "/adapter.gguf"
      assert(tr:save(file))
      local g = assert(mh.gguf.open(file))
      assert.equal("adapter", g.metadata["general.type"])
      assert.equal("lora", g.metadata["adapter.type"])
      assert.equal(8, g.metadata["adapter.lora.alpha"])
      assert.equal("llama", g.metadata["general.architecture"])
      local t = assert(g:tensor("blk.0.attn_q.weight.lora_a"))
      assert.same({ 64, 4 }, t.shape)              -- ggml ne order: [in, r] for A (r, in)
      t = assert(g:tensor("blk.4.ffn_down.weight.lora_b"))
      assert.same({ 4, 64 }, t.shape)              -- [r, out] for B (out, r)
      assert.equal(2 * 2 * 5, #g:tensors())
      g:close()
   end)

   it("refuses missing files and adapters made for another model", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local ok, msg = mh.load(path, { adapters = { dir .. "/none.safetensors" } })
      assert.is_nil(ok)
      assert.matches("adapter .*none.safetensors", msg)
      local tiny = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny", seed = 1, out = tiny }))
      local tm = assert(mh.load(tiny))
      -- tiny's ffn is 128 wide, stories260K's 172: the gate adapter cannot fit
      local tr = mh.train.trainer(tm, { method = "lora", seed = 1,
         lora = { rank = 4, alpha = 8, targets = { "q", "gate" } } })
      local file = dir .. "/tiny-adapter.safetensors"
      assert(tr:save(file))
      ok, msg = mh.load(path, { adapters = { file } })
      assert.is_nil(ok)
      assert.matches("lora: .* has shape", msg)
   end)
end)
