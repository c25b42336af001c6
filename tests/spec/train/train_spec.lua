-- Specs for moonhub.train: LoRA overfitting on stories260K, determinism,
-- the NaN guard, training a fresh `tiny` model from scratch, checkpoints,
-- adapters and merged export. Only the first needs shared test data.
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

local names = { "Lily", "Tom", "Ben", "Sue", "Max" }
local things = { "a red ball", "a big dog", "a small cat", "a blue kite" }
local verbs = { "saw", "liked", "found", "had" }

-- 20 prompt/answer pairs; the mask hides the prompt ("Lily saw") from the
-- loss, so the answers are learnable by heart (prompts are not).
local function examples(tok)
   local b = { tokens = {}, mask = {} }
   for i = 1, 20 do
      local p = tok:encode(names[(i - 1) % 5 + 1] .. " " .. verbs[(i - 1) % 4 + 1], { bos = true })
      local a = tok:encode(things[(i * 3 - 1) % 4 + 1] .. ".", { bos = false })
      local row, mask = {}, {}
      for _, id in ipairs(p) do row[#row + 1] = id; mask[#mask + 1] = 0 end
      for _, id in ipairs(a) do row[#row + 1] = id; mask[#mask + 1] = 1 end
      b.tokens[i], b.mask[i] = row, mask
   end
   return b
end

-- A regular byte-level corpus for the from-scratch spec.
local function corpus(tok, n, seed)
   local rows, x = {}, seed
   for i = 1, n do
      x = (x * 1103515245 + 12345) % 2147483648
      local s = string.format("%s %s %s. ", names[x % 5 + 1], verbs[(x // 5) % 4 + 1], things[(x // 20) % 4 + 1])
      rows[i] = tok:encode(s .. s, { bos = false })
   end
   return { tokens = rows }
end

local function tiny(dir)
   local path = dir .. "/tiny.gguf"
   assert(mh.create.model({ preset = "tiny", seed = 1, out = path }))
   return assert(mh.load(path)), path
end

describe("moonhub.train #integration", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   it("LoRA on stories260K overfits 20 examples (loss < 0.1)", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(mh.load(path))
      local tr = mh.train.trainer(m, { method = "lora", seed = 1,
         lora = { rank = 8, alpha = 16, targets = { "q", "k", "v", "o", "gate", "up", "down" } },
         optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
      local batch = examples(m.tokenizer)
      local first = tr:evaluate(batch).loss
      for _ = 1, 150 do
         local r = tr:step(batch)
         assert.equal("ok", r.status)
         if r.loss < 0.05 then break end
      end
      assert.is_true(first > 1.0)
      local final = tr:evaluate(batch)
      assert.is_true(final.loss < 0.1, "final loss " .. final.loss)
      assert.is_true(final.perplexity < 1.11)
      tr:close()
      m:close()
   end)

   it("same seed and threads give bitwise the same losses; the NaN guard skips bad steps", function()
      local m = tiny(dir)
      local b = corpus(m.tokenizer, 4, 3)
      local function run(seed, lr)
         local tr = mh.train.trainer(m, { lora = { rank = 4, dropout = 0.1, targets = { "q", "v", "up" } },
            optimizer = { lr = lr }, seed = seed, accumulate = 2 })
         local out = {}
         for i = 1, 4 do out[i] = tr:step(b) end
         tr:close()
         return out
      end
      local a, c = run(1, 1e-2), run(1, 1e-2)
      for i = 1, 4 do assert.equal(a[i].loss, c[i].loss) end
      assert.are_not.equal(a[4].loss, run(2, 1e-2)[4].loss)
      local statuses = {}
      for _, r in ipairs(run(1, 1e30)) do statuses[r.status] = true end
      assert.is_true(statuses.nan, "an absurd learning rate must trip the NaN guard")
      m:close()
   end)

   it("trains a fresh tiny model from scratch (validation loss < 1.6)", function()
      local m = tiny(dir)
      local val = corpus(m.tokenizer, 8, 99)
      local tr = mh.train.trainer(m, { method = "full", optimizer = { lr = 3e-3, weight_decay = 0.01 },
         schedule = { warmup = 10, decay = "cosine", total = 120, min_lr = 3e-4 }, seq = 64 })
      local before = tr:evaluate(val).loss
      for s = 1, 120 do assert.equal("ok", tr:step(corpus(m.tokenizer, 8, s)).status) end
      local after = tr:evaluate(val).loss
      assert.is_true(before > 5, "random init starts near ln(259): " .. before)
      assert.is_true(after < 1.6, "validation loss " .. after)
      m:close()
   end)

   it("checkpoint + resume continue with identical losses; save and export write files", function()
      local m, path = tiny(dir)
      local opts = { lora = { rank = 4, dropout = 0.05 }, optimizer = { lr = 1e-2 }, seed = 5 }
      local tr = mh.train.trainer(m, opts)
      for s = 1, 2 do tr:step(corpus(m.tokenizer, 2, s)) end
      assert.is_true(tr:checkpoint(dir .. "/ck"))
      local want = { tr:step(corpus(m.tokenizer, 2, 3)).loss, tr:step(corpus(m.tokenizer, 2, 4)).loss }
      local re = assert(mh.train.resume(dir .. "/ck"))
      assert.equal(2, re:info().step)
      assert.equal(want[1], re:step(corpus(m.tokenizer, 2, 3)).loss)
      assert.equal(want[2], re:step(corpus(m.tokenizer, 2, 4)).loss)
      assert.is_true(tr:save(dir .. "/adapter.safetensors"))
      local st = assert(require("moonhub.safetensors").open(dir .. "/adapter.safetensors"))
      assert.is_truthy(st:info("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"))
      assert.is_true(tr:export(dir .. "/fused.gguf", { type = "Q8_0" }))
      local f = assert(mh.load(dir .. "/fused.gguf"))
      assert.equal(259, f.info.n_vocab)
      f:close()
      assert.is_truthy(path)
      m:close()
   end)

   it("raises clear errors on misuse", function()
      local m = tiny(dir)
      assert.has_error(function() mh.train.trainer(m, { method = "sgd" }) end,
         'train.trainer: method must be "lora" or "full", got "sgd"')
      assert.has_error(function() mh.train.trainer(m, { lora = { targets = { "x" } } }) end)
      assert.has_error(function() mh.train.trainer(m, { schedule = { decay = "cosine" } }) end)
      assert.has_error(function() mh.train.trainer({}, {}) end)
      local tr = mh.train.trainer(m, {})
      assert.has_error(function() tr:step({ tokens = { { 1, 2, 9999 } } }) end)
      assert.has_error(function() tr:step({ tokens = { { 1 } } }) end)
      assert.has_error(function() tr:step({}) end)
      m:close()
      assert.has_error(function() tr:step({ tokens = { { 1, 2, 3 } } }) end,
         "trainer:step: the trainer's model has been closed")
   end)
end)
