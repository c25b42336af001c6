-- moonhub eval: loss and perplexity of a model (with LoRA adapters) on a
-- dataset version, equal to the trainer's evaluate on the same rows, lower
-- after training on them, recorded on the run; the CLI verb and POST
-- /api/moonhub/eval; unknown model, dataset or adapter -> one-line error.
-- Layer: tests (moonhub.eval in-process, CLI through helpers.host, HTTP
-- through helpers.server; real model stories260K from ../shared).
local data = require "helpers.data"
local host = require "helpers.host"
local server = require "helpers.server"
local json = require "dkjson"
local mh = require "moonhub"
local registry = require "moonhub.registry"
local eval = require "moonhub.eval"
local mhdata = require "moonhub.data"

local MODEL = "models/stories260K.gguf"

-- a deterministic task: completions the base does not know
local ROWS = {
   { prompt = "Lily saw", completion = " a purple elephant." },
   { prompt = "Tom found", completion = " a green kite in the tree." },
   { prompt = "The cat said", completion = " hello to the moon." },
}

local function write_jsonl(path)
   local lines = {}
   for i, r in ipairs(ROWS) do lines[i] = json.encode(r) end
   host.write(path, table.concat(lines, "\n") .. "\n")
end

local function close(a, b) return math.abs(a - b) <= 1e-4 * math.max(1, math.abs(b)) end

describe("moonhub eval #integration", function()
   local dir, home, reg, base, ds
   before_each(function()
      dir = host.tmpdir()
      home = dir .. "/home"
      assert(require("moonhub.fs").mkdirs(home))
   end)
   after_each(function()
      if reg then reg:close() reg = nil end
      host.rmdir(dir)
   end)

   -- registry in home with the dataset "tales" and the base "stories"
   local function setup()
      base = data.need(MODEL, pending)
      if not base then return nil end
      reg = assert(registry.open(home))
      write_jsonl(dir .. "/tales.jsonl")
      ds = assert(mhdata.import(dir .. "/tales.jsonl", { name = "tales", reg = reg }))
      return true
   end

   -- the dataset's rows as one trainer batch (data.encode, as eval encodes them)
   local function batch_of(m)
      local b = { tokens = {}, mask = {} }
      for row in ds:iter() do
         local ids, mask = assert(mhdata.encode(m, row))
         b.tokens[#b.tokens + 1], b.mask[#b.mask + 1] = ids, mask
      end
      return b
   end

   it("equals trainer:evaluate on the same rows, and is lower after training on them", function()
      if not setup() then return end
      local m = assert(mh.load(base))
      local batch = batch_of(m)
      local tr = mh.train.trainer(m, { method = "lora", seed = 1,
         lora = { rank = 4, alpha = 8, dropout = 0, targets = { "q", "k", "v", "o", "gate", "up", "down" } },
         optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
      local before = tr:evaluate(batch)               -- B = 0: the base model
      local r0 = assert(eval.run(reg, base, "tales", { progress = false }))
      assert.is_true(close(r0.loss, before.loss), string.format("eval %g vs trainer %g", r0.loss, before.loss))
      assert.equal(before.tokens, r0.tokens)
      assert.equal(3, r0.rows)
      assert.is_true(close(r0.perplexity, math.exp(r0.loss)))
      assert.equal("tales@1", r0.dataset)
      assert.equal(ds.id, r0.dataset_version_id)

      for _ = 1, 30 do tr:step(batch) end
      local after = tr:evaluate(batch)
      local file = dir .. "/tales-lora.gguf"
      assert(tr:save(file))
      local r1 = assert(eval.run(reg, base, "tales", { lora = { file }, progress = false }))
      assert.is_true(close(r1.loss, after.loss), string.format("eval %g vs trainer %g", r1.loss, after.loss))
      assert.is_true(r1.loss < 0.5 * r0.loss, string.format("after %g, before %g", r1.loss, r0.loss))
      -- a loaded model keeps its own adapters after an eval with more
      local r2 = assert(eval.run(reg, m, "tales", { lora = { file }, progress = false }))
      assert.is_true(close(r2.loss, r1.loss))
      assert.same({}, m.adapters or {})
      assert.is_true(close(assert(eval.run(reg, m, "tales", { progress = false })).loss, r0.loss))
   end)

   it("records the result on the run named, or on the run that trained the adapter", function()
      if not setup() then return end
      local m = assert(mh.load(base))
      local tr = mh.train.trainer(m, { method = "lora", seed = 1, lora = { rank = 4, alpha = 8, dropout = 0 },
         optimizer = { lr = 1e-2, weight_decay = 0 } })
      for _ = 1, 5 do tr:step(batch_of(m)) end
      local file = dir .. "/a.gguf"
      assert(tr:save(file))
      local b = reg:add_model({ name = "stories", path = base, format = "gguf", arch = "llama" })
      local run = reg:add_run({ kind = "train", version_id = b.id })
      reg:add_adapter_version({ base_version_id = b.id, path = file, run_id = run, dataset_version_id = ds.id,
         name = "stories-lora", copy = false })
      local r = assert(eval.run(reg, base, "tales", { lora = { file }, run_id = run, progress = false }))
      assert.equal(run, r.run_id)
      local metrics = json.decode(reg:runs()[1].metrics)
      assert.is_true(close(metrics.eval["tales@1"].loss, r.loss))
      assert.equal(r.tokens, metrics.eval["tales@1"].tokens)
      assert.equal(file, metrics.eval["tales@1"].lora[1])
      local none, msg = eval.run(reg, base, "tales", { run_id = 99, progress = false })
      assert.is_nil(none)
      assert.matches("no run 99", msg)
      reg:close()
      reg = nil

      -- the CLI on the adapter version by name: the run that made it gets the result
      local out, err, code = host.run(home, "eval stories-lora --data tales --json")
      assert.equal(0, code, err)
      local res = json.decode(out)
      assert.equal(run, res.run_id)
      assert.is_true(close(res.loss, r.loss), string.format("%g vs %g", res.loss, r.loss))
      -- the progress line went to stderr, ending at 3/3 rows
      assert.matches("eval tales@1 .*3/3 rows", err)
      -- show names the dataset version the adapter was trained on
      local shown = host.run(home, "show stories-lora")
      assert.matches("dataset%s+tales@1  %(dataset version " .. ds.id .. "%)", shown)
      -- and the base with --lora NAME gives the same loss
      local out2, err2, code2 = host.run(home, "eval stories --data tales --lora stories-lora")
      assert.equal(0, code2, err2)
      assert.matches(string.format("^stories on tales@1: loss %.4f, perplexity ", r.loss), out2)
   end)

   it("answers POST /api/moonhub/eval as the CLI does", function()
      if not setup() then return end
      local want = assert(eval.run(reg, base, "tales", { progress = false }))
      local s = server.start(base)
      finally(function() s:stop() end)
      local sreg = assert(registry.open(s.dir .. "/home"))
      sreg:add_model({ name = "stories", path = base, format = "gguf", arch = "llama" })
      write_jsonl(dir .. "/t2.jsonl")
      assert(mhdata.import(dir .. "/t2.jsonl", { name = "tales", reg = sreg }))
      sreg:close()
      local r = s:post("/api/moonhub/eval", { model = "stories", data = "tales" })
      assert.equal(200, r.status, r.body)
      assert.is_true(close(r.json.loss, want.loss))
      assert.equal(want.tokens, r.json.tokens)
      local bad = {
         { { model = "stories", data = "nope" }, 404, "no dataset named 'nope'" },
         { { model = "nope", data = "tales" }, 404, "no such file or registered model: 'nope'" },
         { { model = "stories", data = "tales", lora = "zz" }, 404, "no such adapter" },
         { { model = "stories", data = "tales", lora = { 1 } }, 400, "lora must be a string or a list" },
         { { model = base, data = "tales" }, 400, "model must be a registry name" },
         { { data = "tales" }, 400, "model is required" },
         { { model = "stories", data = "tales", run_id = 0 }, 400, "run_id must be a positive integer" },
         { { model = "stories", data = "tales", run_id = 9 }, 404, "no run 9" },
      }
      for _, c in ipairs(bad) do
         local res = s:post("/api/moonhub/eval", c[1])
         assert.equal(c[2], res.status, res.body)
         assert.matches(c[3], res.json.error.message, 1, true)
      end
   end)

   it("gives one-line errors for an unknown model, dataset, split or adapter", function()
      if not setup() then return end
      reg:add_model({ name = "stories", path = base, format = "gguf", arch = "llama" })
      local cases = {
         { "eval stories --data nope", "no dataset named 'nope'" },
         { "eval nope --data tales", "no such file or registered model: 'nope'" },
         { "eval stories --data tales:val", "has no val split" },
         { "eval stories --data tales --lora zz", "no such adapter file or registered adapter: 'zz'" },
         { "eval stories --data tales --run 42", "no run 42" },
         { "eval stories", "give the dataset: %-%-data" },
         { "eval stories --data tales --limit 0", "%-%-limit must be a positive integer" },
      }
      for _, c in ipairs(cases) do
         local out, err, code = host.run(home, c[1])
         assert.are_not.equal(0, code, c[1])
         assert.equal("", out, c[1])
         assert.matches(c[2], err, 1, false, c[1])
         assert.is_nil(err:gsub("\n$", ""):find("\n"), c[1] .. ": " .. err)
      end
      -- rows over the context are skipped and counted; none left is an error
      local r = assert(eval.run(reg, base, "tales", { ctx = 16, progress = false }))
      assert.is_true(r.skipped >= 1 and r.rows >= 1 and r.rows + r.skipped == 3, r.rows .. " rows")
      local none, msg = eval.run(reg, base, "tales", { ctx = 2, progress = false })
      assert.is_nil(none)
      assert.matches("has no tokens to evaluate %(3 rows over the context of 2%)", msg)
   end)
end)
