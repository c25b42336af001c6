-- moonhub compare (moonhub.compare, recipes/compare.lua, POST /api/moonhub/compare):
-- each column's answers are what that model alone answers (greedy), its
-- loss on a dataset is moonhub.eval's, an adapter (a --lora file or an
-- adapter version by name) is a column of its own; side-by-side printing
-- within the width; the CLI's JSON and errors; the HTTP route.
-- Layer: tests (real model stories260K and its Q4_0 from ../shared).
local data = require "helpers.data"
local host = require "helpers.host"
local server = require "helpers.server"
local json = require "dkjson"
local mh = require "moonhub"
local compare = require "moonhub.compare"
local registry = require "moonhub.registry"
local mhdata = require "moonhub.data"
local eval = require "moonhub.eval"

local MODEL, Q4 = "models/stories260K.gguf", "models/stories260K-Q4_0.gguf"

local ROWS = {
   { prompt = "Lily saw", completion = " a purple elephant." },
   { prompt = "Tom found", completion = " a green kite in the tree." },
   { prompt = "The cat said", completion = " hello to the moon." },
}

local function close(a, b) return math.abs(a - b) <= 1e-4 * math.max(1, math.abs(b)) end

describe("moonhub compare #integration", function()
   local dir, home, reg, ds
   local core_host = require "moonhub.core.host"
   local saved_home = core_host.home
   before_each(function()
      dir = host.tmpdir()
      home = dir .. "/home"
      assert(require("moonhub.fs").mkdirs(home))
      core_host.home = home                -- moonhub.compare opens the registry of mh.home()
   end)
   after_each(function()
      core_host.home = saved_home
      if reg then reg:close() reg = nil end
      host.rmdir(dir)
   end)

   local function setup_data()
      reg = assert(registry.open(home))
      local lines = {}
      for i, r in ipairs(ROWS) do lines[i] = json.encode(r) end
      host.write(dir .. "/tales.jsonl", table.concat(lines, "\n") .. "\n")
      ds = assert(mhdata.import(dir .. "/tales.jsonl", { name = "tales", reg = reg }))
   end

   -- a LoRA adapter trained on the tales rows (their loss drops)
   local function train_adapter(base)
      local m = assert(mh.load(base))
      local b = { tokens = {}, mask = {} }
      for row in ds:iter() do
         local ids, mask = assert(mhdata.encode(m, row))
         b.tokens[#b.tokens + 1], b.mask[#b.mask + 1] = ids, mask
      end
      local tr = mh.train.trainer(m, { method = "lora", seed = 1, lora = { rank = 4, alpha = 8, dropout = 0 },
         optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
      for _ = 1, 30 do tr:step(b) end
      local file = dir .. "/tales-lora.gguf"
      assert(tr:save(file))
      m:close()
      return file
   end

   it("answers each prompt with each model as that model alone does", function()
      local a, b = data.need(MODEL, pending), data.need(Q4, pending)
      if not (a and b) then return end
      local prompts = { "Once upon a time", "The little dog" }
      local res = assert(compare.run({ a, b }, { prompt = prompts, max_tokens = 8 }))
      assert.equal(2, #res.models)
      assert.same({ "stories260K", "stories260K-Q4_0" }, { res.models[1].name, res.models[2].name })
      assert.is_nil(res.data)
      for i, path in ipairs({ a, b }) do
         local m = assert(mh.load(path))
         for j, p in ipairs(prompts) do
            local msgs = { messages = { { role = "user", content = p } } }
            local text, st = m:generate(msgs, { max_tokens = 8, temperature = 0 })
            local r = res.models[i].results[j]
            assert.equal(text, r.text, path .. " / " .. p)
            assert.equal(st.generated, r.completion_tokens)
            assert.equal(#m:prompt_ids(msgs), r.prompt_tokens)
            assert.is_number(r.ttft_ms)
            assert.is_number(r.tokens_per_s)
         end
         m:close()
         assert.equal(res.models[i].results[1].completion_tokens + res.models[i].results[2].completion_tokens,
            res.models[i].completion_tokens)
      end
      -- refusals, as messages
      local none, err = compare.run({ a }, { prompt = "x" })
      assert.is_nil(none)
      assert.matches("two models or more", err)
      none, err = compare.run({ a, "nope-model" }, { prompt = "x", max_tokens = 2 })
      assert.is_nil(none)
      assert.matches("nope%-model", err)
      none, err = compare.run({ a, b }, { prompt = "x", data = "tales" })
      assert.is_nil(none)
      assert.matches("not both", err)
   end)

   it("scores a dataset: each column's loss is moonhub.eval's; a --lora column gets the adapter", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      setup_data()
      local adapter = train_adapter(base)
      local res = assert(compare.run({ base }, { data = "tales", n = 3, lora = { adapter }, max_tokens = 6 }))
      assert.equal("tales@1", res.data)
      assert.equal(3, #res.prompts)
      assert.equal("Lily saw", res.prompts[1].text)
      assert.equal(" a purple elephant.", res.prompts[1].reference)
      local r0 = assert(eval.run(reg, base, "tales", { progress = false }))
      local r1 = assert(eval.run(reg, base, "tales", { lora = { adapter }, progress = false }))
      assert.is_true(close(res.models[1].loss, r0.loss), res.models[1].loss .. " vs " .. r0.loss)
      assert.is_true(close(res.models[2].loss, r1.loss), res.models[2].loss .. " vs " .. r1.loss)
      assert.is_true(close(res.models[2].perplexity, math.exp(r1.loss)))
      assert.equal(r0.tokens, res.models[1].eval_tokens)
      assert.is_true(res.models[2].loss < res.models[1].loss)
      assert.equal("stories260K+tales-lora", res.models[2].name)
      -- the trained adapter answers its own row
      local m = assert(mh.load(base))
      require("moonhub.adapters").apply(m, { adapter })
      assert.equal((m:generate("Lily saw", { max_tokens = 6, temperature = 0 })), res.models[2].results[1].text)
      m:close()

      -- the CLI, an adapter version by name as a model of its own
      local b = reg:add_model({ name = "stories", path = base, format = "gguf", arch = "llama" })
      local run = reg:add_run({ kind = "train", version_id = b.id })
      reg:add_adapter_version({ base_version_id = b.id, path = adapter, run_id = run, dataset_version_id = ds.id,
         name = "stories-lora", copy = false })
      reg:close()
      reg = nil
      local out, err, code = host.run(home, "compare stories stories-lora --data tales -n 2 --max-tokens 4 --json")
      assert.equal(0, code, err)
      local j = assert(json.decode(out))
      assert.equal(2, #j.prompts)
      assert.is_true(close(j.models[2].loss, (assert(eval.run(assert(registry.open(home)), base, "tales",
         { lora = { adapter }, progress = false, limit = 2 })).loss)))
      assert.equal("stories-lora", j.models[2].name)
      -- printed side by side, the summary with loss and perplexity
      out, err, code = host.run(home, "compare stories stories-lora --data tales -n 1 --max-tokens 4 --width 70")
      assert.equal(0, code, err)
      assert.matches("== prompt 1: Lily saw", out)
      assert.matches("stories%s+| stories%-lora", out)
      assert.matches("model%s+tok/s%s+TTFT ms%s+tokens%s+loss%s+perplexity", out)
      for line in out:gmatch("[^\n]+") do assert.is_true((utf8.len(line) or #line) <= 70, line) end
      -- usage errors exit 2, others 1, one line each
      for _, c in ipairs({ { "compare stories --prompt hi", 2, "two models or more" },
                           { "compare stories stories-lora", 2, "give %-%-prompt" },
                           { "compare stories nope --prompt hi --max-tokens 2", 1, "nope" },
                           { "compare stories stories-lora --prompt hi --max-tokens 0", 2, "must be a positive" } }) do
         err, code = select(2, host.run(home, c[1]))
         assert.equal(c[2], code, c[1] .. ": " .. err)
         assert.matches(c[3], err)
      end
   end)

   it("prints columns within the width, and stacks them when they would be too narrow", function()
      local res = { prompts = { { text = "Why is the sky blue?" } }, models = {} }
      for i = 1, 3 do
         res.models[i] = { name = "model-" .. i, tokens_per_s = 10, ttft_ms = 5, completion_tokens = 9,
            results = { { text = string.rep("word" .. i .. " ", 30) .. "ünïcödé", prompt_tokens = 4,
               completion_tokens = 9, tokens_per_s = 10, ttft_ms = 5 } } }
      end
      local wide = compare.render(res, 90)
      local seen = 0
      for line in wide:gmatch("[^\n]+") do
         assert.is_true(utf8.len(line) <= 90, line)
         if line:find("word1", 1, true) and line:find("word3", 1, true) then seen = seen + 1 end
      end
      assert.is_true(seen > 0, "the answers stand side by side")
      local narrow = compare.render(res, 50)
      assert.matches("%-%- model%-1 %(", narrow)
      for line in narrow:gmatch("[^\n]+") do assert.is_true(utf8.len(line) <= 50, line) end
      assert.same({ "abcd", "efgh", "ij" }, compare.wrap("abcdefghij", 4))
      assert.same({ "a b", "", "c" }, compare.wrap("a b\n\nc", 10))
   end)

   it("answers POST /api/moonhub/compare from a child process", function()
      local a, b = data.need(MODEL, pending), data.need(Q4, pending)
      if not (a and b) then return end
      reg = assert(registry.open(home))
      reg:add_model({ name = "stories", path = a, format = "gguf", arch = "llama" })
      reg:add_model({ name = "stories-q4", path = b, format = "gguf", arch = "llama" })
      reg:close()
      reg = nil
      local s = server.start_in(home, "-q")
      finally(function() server.stop_in(s) end)
      local want = assert(compare.run({ a, b }, { prompt = "Once upon a time", max_tokens = 5 }))
      local function post(body)
         local f = dir .. "/body.json"
         host.write(f, json.encode(body))
         local p = io.popen(string.format("curl -s -m 120 -H 'Content-Type: application/json' --data-binary @%s "
            .. "-w '\\n%%{http_code}' %s/api/moonhub/compare", host.q(f), s.base))
         local text = p:read("a")
         p:close()
         local bodytext, status = text:match("^(.*)\n(%d+)$")
         return tonumber(status), json.decode(bodytext or "", 1, json.null), bodytext
      end
      local status, res, raw = post({ models = { "stories", "stories-q4" }, prompt = "Once upon a time",
         max_tokens = 5 })
      assert.equal(200, status, raw)
      assert.equal(want.models[1].results[1].text, res.models[1].results[1].text)
      assert.equal(want.models[2].results[1].text, res.models[2].results[1].text)
      for _, c in ipairs({
         { { models = { "stories" }, prompt = "x" }, 400, "two models" },
         { { models = { a, "stories" }, prompt = "x" }, 400, "not files" },
         { { models = { "stories", "stories-q4" } }, 400, "give 'prompt' or 'data'" },
         { { models = { "stories", "nope" }, prompt = "x", max_tokens = 2 }, 404, "nope" },
         { { models = { "stories", "stories-q4" }, prompt = "x", max_tokens = 9999 }, 400, "max_tokens" },
      }) do
         local st, r, body = post(c[1])
         assert.equal(c[2], st, body)
         assert.matches(c[3], r.error.message, 1, true)
      end
   end)
end)
