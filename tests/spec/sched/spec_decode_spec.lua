-- Speculative decoding in the one generation loop (docs/speculative.md):
-- greedy output with a draft model or n-gram lookup is token for token the
-- output without speculation, on three model pairs, through Lua
-- (mh.load{draft=}), the CLI (generate --draft) and HTTP (serve --draft,
-- "speculative" per request); a drafted and a plain request batched
-- together; a grammar with speculation; the figures in usage, the stats
-- line and /metrics; bad settings refused. Layer: tests (helpers.server,
-- helpers.host, helpers.data).
local S = require "helpers.server"
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

local REPEAT = "The cat sat on the mat. The dog sat on the log. The cat sat on the mat. The dog sat on the"

-- target, draft ("ngram": prompt lookup), prompt
local PAIRS = {
   { "models/mh-smol-llama-17m-F16.gguf", "models/mh-smol-llama-17m-Q4_0.gguf", "Once upon a time, there was" },
   { "models/mh-smol-llama-17m-Q8_0.gguf", "ngram", REPEAT },
   { "models/stories260K-F16.gguf", "models/stories260K-Q4_0.gguf", "Once upon a time, there was" },
}

local function need_pair(pair, pending)
   local t = data.need(pair[1], pending)
   if not t then return nil end
   if pair[2] == "ngram" then return t, "ngram" end
   local d = data.need(pair[2], pending)
   if not d then return nil end
   return t, d
end

describe("speculative decoding #integration", function()
   for _, pair in ipairs(PAIRS) do
      it("gives the plain greedy tokens: " .. pair[1] .. " drafted by " .. pair[2], function()
         local t, d = need_pair(pair, pending)
         if not t then return end
         local plain = assert(mh.load(t, { ctx = 256 }))
         local spec = assert(mh.load(t, { ctx = 256, draft = d, draft_max = 6 }))
         local opts = { max_tokens = 48, temperature = 0, ignore_eos = true }
         local a, sa = plain:generate(pair[3], opts)
         local b, sb = spec:generate(pair[3], opts)
         assert.same(sa.tokens, sb.tokens)
         assert.equal(a, b)
         assert.equal(48, #sb.tokens)
         assert.is_nil(sa.draft_tokens)                 -- no speculation, no figures
         assert.is_true(sb.draft_tokens > 0, "nothing drafted")
         assert.is_true(sb.accepted_tokens > 0 and sb.accepted_tokens <= sb.draft_tokens)
         assert.is_true(sb.tokens_per_step > 1, "tokens per target step " .. sb.tokens_per_step)
         assert.equal(d == "ngram" and "ngram" or "draft", sb.settings.speculative)
         -- per call: off, or another n_max
         local c, sc = spec:generate(pair[3], { max_tokens = 48, temperature = 0, ignore_eos = true,
            speculative = false })
         assert.equal(a, c)
         assert.is_nil(sc.draft_tokens)
         local _, sd = spec:generate(pair[3], { max_tokens = 48, temperature = 0, ignore_eos = true,
            speculative = { n_max = 2 } })
         assert.same(sa.tokens, sd.tokens)
         assert.equal(2, sd.settings.draft_max)
         spec:close()
         plain:close()
      end)
   end

   it("runs a drafted and a plain slot in the same steps, each giving its plain tokens", function()
      local t, d = need_pair(PAIRS[3], pending)
      if not t then return end
      local m = assert(mh.load(t, { ctx = 256 }))
      local draft = assert(mh.load(d, { ctx = 256 }))
      local prompt = m.tokenizer:encode("Once upon a time, there was")
      local other = m.tokenizer:encode("The little dog ran")
      local function alone(tokens)
         local s = assert(mh.sched.new(m, { parallel = 1, ctx = 128 }))
         local ids = s:submit{ tokens = tokens, max_tokens = 40, temperature = 0, eog = false }:wait()
         local steps = s:stats().steps
         s:close()
         return ids, steps
      end
      local ref1, steps1 = alone(prompt)
      local ref2, steps2 = alone(other)
      local s = assert(mh.sched.new(m, { parallel = 2, ctx = 128, draft = draft, draft_max = 4 }))
      local rs = assert(s:submit_all{ { tokens = prompt, max_tokens = 40, temperature = 0, eog = false },
         { tokens = other, max_tokens = 40, temperature = 0, eog = false, speculative = false } })
      local r1, r2 = rs[1], rs[2]
      local ids1, ev1 = r1:wait()
      local ids2, ev2 = r2:wait()
      local st = s:stats()
      s:close()
      assert.same(ref1, ids1)
      assert.same(ref2, ids2)
      assert.is_true(ev1.usage.draft_tokens > 0)
      assert.is_nil(ev2.usage.draft_tokens)
      -- the two shared their steps (submitted together): far fewer than both apart
      assert.is_true(st.steps < steps1 + steps2 - 20,
         string.format("%d steps batched, %d and %d alone", st.steps, steps1, steps2))
      assert.is_true(st.spec_drafted > 0 and st.spec_accepted > 0 and st.spec_steps > 0)
      assert.equal(st.spec_drafted, ev1.usage.draft_tokens)
   end)

   it("keeps a grammar: the same JSON with and without speculation", function()
      local t, d = need_pair(PAIRS[1], pending)
      if not t then return end
      local plain = assert(mh.load(t, { ctx = 256 }))
      local schema = '{"type":"object","properties":{"name":{"type":"string","maxLength":12},'
         .. '"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}'
      local opts = { max_tokens = 40, temperature = 0, json_schema = schema }
      local a, sa = plain:generate("Describe a person as JSON:", opts)
      for _, draft in ipairs({ d, "ngram" }) do
         local spec = assert(mh.load(t, { ctx = 256, draft = draft }))
         local b, sb = spec:generate("Describe a person as JSON:", opts)
         assert.equal(a, b)
         assert.same(sa.tokens, sb.tokens)
         assert.is_true(sb.settings.grammar)
         assert.is_true(sb.draft_tokens > 0, "nothing drafted with " .. draft)
         spec:close()
      end
      local obj = require("dkjson").decode(a)
      assert.is_string(obj.name)
   end)

   it("refuses bad settings with a message", function()
      local t, d = need_pair(PAIRS[3], pending)
      if not t then return end
      local m = assert(mh.load(t, { ctx = 128 }))
      assert.has_error(function() m:generate("Hi", { speculative = "draft" }) end,
         "generate: speculative decoding with a draft model needs one loaded with the model "
         .. "(--draft MODEL, or {draft = ...}); ngram drafting needs none")
      assert.has_error(function() m:generate("Hi", { speculative = "fast" }) end)
      assert.has_error(function() m:generate("Hi", { speculative = { n_max = 99 } }) end)
      local ok, err = mh.load(t, { draft = data.path("models/mh-smol-llama-17m-Q4_0.gguf") or "x" })
      assert.is_nil(ok)
      assert.matches("vocabulary", err)
      ok, err = mh.load(t, { draft = d, draft_max = 0 })
      assert.is_nil(ok)
      assert.matches("draft_max", err)
      m:close()
   end)

   it("measures its step costs and starts the next generation on a model from them", function()
      local t, d = need_pair(PAIRS[3], pending)
      if not t then return end
      local core = require "moonhub.core.sched"
      local m = assert(mh.load(t, { ctx = 128 }))
      local d1, d2 = assert(mh.load(d, { ctx = 128 })), assert(mh.load(d, { ctx = 128 }))
      assert.is_true(m:set_draft(d1, 4))
      local given, new_sync = {}, core.new_sync
      core.new_sync = function(h, cache, hist, o)
         given[#given + 1] = o.spec_costs or false
         return new_sync(h, cache, hist, o)
      end
      local ok, e = pcall(function()
         local opts = { max_tokens = 24, temperature = 0, ignore_eos = true }
         m:generate("Once upon a time", opts)
         m:generate("Once upon a time", opts)
         assert.is_true(m:set_draft(d2, 4))         -- another draft model: learnt afresh
         m:generate("Once upon a time", opts)
         assert.is_true(m:set_draft(d1, 2))         -- the first again: its costs
         m:generate("Once upon a time", opts)
         assert.is_true(m:speculative_costs().draft_ms > 0)
      end)
      core.new_sync = new_sync
      m:close()
      d1:close()
      d2:close()
      assert(ok, e)
      assert.equal(false, given[1])
      assert.is_true(given[2].draft_ms > 0, "no draft round timed")
      local rows = 0
      for n, x in pairs(given[2].check_rounds) do
         assert.is_true(n >= 2 and n <= 5 and x > 0, n .. " rows")
         rows = rows + 1
      end
      assert.is_true(rows > 0, "no check timed")
      assert.equal(false, given[3])
      assert.is_table(given[4])
      assert.is_true(given[4].draft_ms > 0)
   end)

   it("carries the costs in the stats, and refuses bad ones", function()
      local t, d = need_pair(PAIRS[3], pending)
      if not t then return end
      local core = require "moonhub.core.sched"
      local m = assert(mh.load(t, { ctx = 64 }))
      local dm = assert(mh.load(d, { ctx = 64 }))
      local function new(costs) return core.new(m._h, { draft = dm._h, spec_costs = costs }) end
      local s = new({ draft_ms = 12, check_rounds = { [3] = 5, [9] = 8.5 } })
      local c = s:stats().spec_costs
      s:close()
      assert.near(12, c.draft_ms, 1e-9)
      assert.same({ [3] = 5, [9] = 8.5 }, c.check_rounds)
      assert.has_error(function() new({ draft_ms = -1 }) end,
         "sched.new: spec_costs.draft_ms must be a number >= 0, got -1")
      assert.has_error(function() new({ draft_ms = 1, check_rounds = { [1] = 5 } }) end,
         "sched.new: spec_costs.check_rounds is keyed by rows 2..33, got 1")
      assert.has_error(function() new({ check_rounds = 5 }) end,
         "sched.new: spec_costs.check_rounds must be a table {[rows] = rounds}, got number")
      assert.has_error(function() new({ check_rounds = { [4] = "x" } }) end,
         "sched.new: spec_costs.check_rounds[rows] must be a number >= 0, got x")
      assert.has_error(function() new("fast") end,
         "sched.new: spec_costs must be a table (as stats gives it), got string")
      dm:close()
      m:close()
   end)

   it("works from the CLI: same text, a speculative stats line", function()
      local t, d = need_pair(PAIRS[1], pending)
      if not t then return end
      local home = host.tmpdir()
      local args = host.q(t) .. " 'Once upon a time' -n 24 --temp 0 --ctx 128"
      local plain, _, c1 = host.run(home, "generate " .. args)
      local spec, err, c2 = host.run(home, "generate " .. args .. " --draft " .. host.q(d) .. " --draft-max 4")
      local _, err3, c3 = host.run(home, "generate " .. args .. " --draft-max 4")
      host.rmdir(home)
      assert.equal(0, c1)
      assert.equal(0, c2, err)
      assert.equal(plain, spec)
      assert.matches("speculative: %d+ drafted, %d+ accepted %(%d+%%%), [%d.]+ tokens per target step", err)
      assert.equal(2, c3)
      assert.matches("%-%-draft%-max and %-%-draft%-p%-min need %-%-draft", err3)
   end)

   it("works over HTTP: serve --draft, per-request options, usage and /metrics", function()
      local t, d = need_pair(PAIRS[1], pending)
      if not t then return end
      local srv = S.start(t, "--parallel 2 --ctx 256 --threads 1 --draft " .. host.q(d) .. " --draft-max 4")
      local ok, e = pcall(function()
         local body = { prompt = "Once upon a time", max_tokens = 24, temperature = 0 }
         local plain = srv:post("/v1/completions", {
            prompt = body.prompt, max_tokens = 24, temperature = 0, speculative = false })
         assert.equal(200, plain.status, plain.body)
         assert.is_nil(plain.json.usage.speculative)
         local r = srv:post("/v1/completions", body)
         assert.equal(200, r.status, r.body)
         assert.equal(plain.json.choices[1].text, r.json.choices[1].text)
         local u = r.json.usage
         assert.is_true(u.speculative.draft_tokens > 0)
         assert.equal(u.speculative.accepted_tokens, u.completion_tokens_details.accepted_prediction_tokens)
         assert.is_true(u.speculative.tokens_per_step > 1, r.body)
         -- ngram per request, and by the draft's name
         r = srv:post("/v1/completions", { prompt = REPEAT, max_tokens = 64, temperature = 0,
            speculative = { ngram = 3, n_max = 4 } })
         assert.equal(200, r.status, r.body)
         assert.is_true(r.json.usage.speculative.draft_tokens > 0)
         r = srv:post("/v1/completions", { prompt = body.prompt, max_tokens = 8, temperature = 0,
            draft_model = d:match("([^/]+)$") })
         assert.equal(200, r.status, r.body)
         r = srv:post("/v1/completions", { prompt = body.prompt, max_tokens = 8, draft_model = "other.gguf" })
         assert.equal(400, r.status)
         assert.matches("draft_model", r.body)
         r = srv:post("/v1/completions", { prompt = body.prompt, max_tokens = 8, speculative = "fast" })
         assert.equal(400, r.status)
         r = srv:post("/v1/completions", { prompt = body.prompt, max_tokens = 8, speculative = { n_max = 99 } })
         assert.equal(400, r.status)
         local m = srv:request("/metrics")
         assert.is_true(S.metric(m.body, "moonhub_spec_draft_tokens_total") > 0)
         assert.is_true(S.metric(m.body, "moonhub_spec_accepted_tokens_total") > 0)
      end)
      srv:stop()
      assert(ok, e)
   end)
end)
