-- Pass-through specs (issue 22 item 2): every sampling and generation option
-- sent through HTTP (OpenAI chat and completions, plain and SSE), through
-- model:generate / model:stream and through `moonhub generate` flags reaches
-- the scheduler's sampler with its value, read back from the settings the
-- loop reports when a request ends. Layer: tests (helpers.server, .host).
local S = require "helpers.server"
local H = require "helpers.host"
local data = require "helpers.data"
local mh = require "moonhub"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"

-- Distinct values, none a default (engine or OpenAI) and no two alike, so a
-- dropped option or one read from another's key shows.
local V = { temperature = 0.55, top_k = 7, top_p = 0.83, min_p = 0.07, repeat_penalty = 1.13,
            presence_penalty = 0.31, frequency_penalty = 0.47, seed = 4242 }
local OPENAI_DEFAULTS = { temperature = 1.0, top_k = 0, top_p = 1.0, min_p = 0, repeat_penalty = 1.0,
                          presence_penalty = 0, frequency_penalty = 0 }

-- settings (as reported, float32 values) carry every V value.
local function assert_sampling(settings, seed, where)
   assert.is_table(settings, where .. ": no settings")
   for k, v in pairs(V) do
      local got = settings[k]
      if k == "seed" then v = seed or v end
      assert.is_number(got, where .. ": " .. k)
      assert.is_true(math.abs(got - v) < 1e-6,
         string.format("%s: %s arrived as %s, sent %s", where, k, tostring(got), tostring(v)))
   end
end

describe("pass-through: the values are not defaults #unit", function()
   it("every value differs from the engine's and OpenAI's default and from each other", function()
      local d = mh.model.defaults()
      local seen = {}
      for k, v in pairs(V) do
         if d[k] ~= nil then assert.is_true(math.abs(d[k] - v) > 1e-3, k) end
         if OPENAI_DEFAULTS[k] ~= nil then assert.is_true(math.abs(OPENAI_DEFAULTS[k] - v) > 1e-3, k) end
         assert.is_nil(seen[v], k)
         seen[v] = true
      end
   end)
end)

describe("pass-through: model:generate and model:stream #integration", function()
   local m

   setup(function()
      local p = data.path(SMOL)
      if p then m = assert(mh.load(p, { ctx = 128, threads = 1 })) end
   end)
   teardown(function() if m then m:close() end end)
   local function need() return data.started(m, SMOL, pending) end

   local function opts(extra)
      local o = { max_tokens = 5, repeat_last_n = 17, logprobs = true, top_logprobs = 3,
                  stop = { "zzqx", "qqzz" }, logit_bias = { [5] = 1.5, [9] = -2.5 } }
      for k, v in pairs(V) do o[k] = v end
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
   end

   local function assert_all(st, where)
      local s = st.settings
      assert_sampling(s, nil, where)
      assert.equal(17, s.repeat_last_n, where)
      assert.equal(5, s.max_tokens, where)
      assert.equal(2, s.n_stop, where)
      assert.equal(2, s.n_logit_bias, where)
      assert.is_true(s.logprobs, where)
      assert.equal(3, s.top_logprobs, where)
      assert.is_false(s.grammar, where)
      assert.equal(5, #st.logprobs, where)
      assert.equal(3, #st.logprobs[1].top_ids, where)
   end

   it("generate: every option arrives", function()
      if not need() then return end
      local _, st = m:generate("Once upon a time", opts())
      assert_all(st, "generate")
   end)

   it("stream: every option arrives", function()
      if not need() then return end
      local step, st = m:stream("Once upon a time", opts())
      for _ in step do end
      assert_all(st, "stream")
   end)

   it("json_object and grammar reach the loop as a constraint", function()
      if not need() then return end
      local _, st = m:generate("Once upon a time", { max_tokens = 3, json_object = true })
      assert.is_true(st.settings.grammar)
      _, st = m:generate("Once upon a time", { max_tokens = 3, json_schema = { type = "integer" } })
      assert.is_true(st.settings.grammar)
   end)

   it("logit_bias and stop act with their values", function()
      if not need() then return end
      local tok = m.tokenizer
      local plain = m:generate("Once upon a time", { max_tokens = 8, temperature = 0 })
      -- a forced token: +100 on an id the greedy text never picks
      local id = tok:encode(" banana")[1]
      local forced, st = m:generate("Once upon a time",
         { max_tokens = 4, temperature = 0, logit_bias = { [id] = 100 } })
      assert.same({ id, id, id, id }, st.tokens)
      assert.equal(string.rep(tok:piece(id), 4), forced)
      -- a stop string taken from the middle of the greedy text cuts it there
      local cut = plain:sub(4, 6)
      local text, st2 = m:generate("Once upon a time", { max_tokens = 8, temperature = 0, stop = cut })
      assert.equal("stop", st2.finish_reason)
      assert.equal(plain:sub(1, plain:find(cut, 1, true) - 1), text)
   end)
end)

describe("pass-through: moonhub generate flags #integration", function()
   it("every flag arrives (--verbose prints the settings)", function()
      local p = data.need(SMOL, pending)
      if not p then return end
      local home = H.tmpdir()
      local out, err, code = H.run(home, string.format("generate %s 'Once upon a time' -n 5 --temp %g --top-k %d "
         .. "--top-p %g --min-p %g --repeat-penalty %g --presence-penalty %g --frequency-penalty %g --seed %d "
         .. "--stop zzqx --stop qqzz --json --verbose", H.q(p), V.temperature, V.top_k, V.top_p, V.min_p,
         V.repeat_penalty, V.presence_penalty, V.frequency_penalty, V.seed))
      H.rmdir(home)
      assert.equal(0, code, err)
      assert.is_string(out)
      local line = assert(err:match("settings: ([^\n]+)"), err)
      local s = {}
      for k, v in line:gmatch("(%S+)=(%S+)") do
         if v == "true" or v == "false" then s[k] = v == "true" else s[k] = tonumber(v) or v end
      end
      assert_sampling(s, nil, "cli")
      assert.equal(5, s.max_tokens)
      assert.equal(2, s.n_stop)
      assert.is_true(s.grammar)
   end)
end)

describe("pass-through: OpenAI HTTP #integration", function()
   local srv

   setup(function()
      local p = data.path(SMOL)
      if p then srv = S.start(p, "--parallel 2 --ctx 256 --threads 1") end
   end)
   teardown(function() if srv then srv:stop() end end)
   local function need() return data.started(srv, SMOL, pending) end

   local ECHO = { echo_settings = true }

   local function body(extra)
      local b = { max_tokens = 6, repetition_penalty = V.repeat_penalty, n = 2, logprobs = true,
                  stop = { "zzqx", "qqzz" }, logit_bias = { ["5"] = 1.5, ["9"] = -2.5 }, moonhub = ECHO }
      for k, v in pairs(V) do if k ~= "repeat_penalty" then b[k] = v end end
      for k, v in pairs(extra or {}) do b[k] = v end
      return b
   end

   -- n_stop of a chat request with no stop: the template's own
   local function template_stops()
      local r = srv:post("/v1/chat/completions", { messages = { { role = "user", content = "Hi" } },
         max_tokens = 1, moonhub = ECHO })
      assert.equal(200, r.status, r.body)
      return r.json.choices[1].moonhub.settings.n_stop
   end

   local function assert_choice(s, i, n_stop, top, where)
      assert_sampling(s, V.seed + i, where)
      assert.equal(6, s.max_tokens, where)
      assert.equal(n_stop, s.n_stop, where)
      assert.equal(2, s.n_logit_bias, where)
      assert.is_true(s.logprobs, where)
      assert.equal(top, s.top_logprobs, where)
      assert.is_false(s.grammar, where)
   end

   it("no echo unless asked; a bad moonhub object is a 400", function()
      if not need() then return end
      local r = srv:post("/v1/completions", { prompt = "Hi", max_tokens = 1 })
      assert.equal(200, r.status, r.body)
      assert.is_nil(r.json.choices[1].moonhub)
      r = srv:post("/v1/completions", { prompt = "Hi", max_tokens = 1, moonhub = { echo = true } })
      assert.equal(400, r.status)
      assert.equal("moonhub", r.json.error.param)
      r = srv:post("/v1/completions", { prompt = "Hi", max_tokens = 1, moonhub = { echo_settings = 1 } })
      assert.equal(400, r.status)
   end)

   it("chat: every option arrives, per choice (n = 2, seeds in turn)", function()
      if not need() then return end
      local base = template_stops()
      local r = srv:post("/v1/chat/completions", body({ messages = { { role = "user", content = "Hi" } },
         top_logprobs = 4 }))
      assert.equal(200, r.status, r.body)
      assert.equal(2, #r.json.choices)
      for i, c in ipairs(r.json.choices) do
         assert_choice(c.moonhub.settings, i - 1, base + 2, 4, "chat choice " .. i)
         assert.equal(4, #c.logprobs.content[1].top_logprobs)
      end
   end)

   it("chat stream: the final chunk of each choice carries its settings", function()
      if not need() then return end
      local base = template_stops()
      local r = srv:post("/v1/chat/completions", body({ messages = { { role = "user", content = "Hi" } },
         top_logprobs = 4, stream = true }))
      assert.equal(200, r.status, r.body)
      local seen = {}
      for _, e in ipairs(S.sse(r.body)) do
         local c = type(e) == "table" and e.choices[1]
         if c and c.moonhub then
            assert.are_not.equal(S.null, c.finish_reason)
            assert_choice(c.moonhub.settings, c.index, base + 2, 4, "chat stream choice " .. c.index)
            seen[#seen + 1] = c.index
         end
      end
      table.sort(seen)
      assert.same({ 0, 1 }, seen)
   end)

   it("completions (plain and stream): every option arrives", function()
      if not need() then return end
      local r = srv:post("/v1/completions", body({ prompt = "Once upon a time", logprobs = 3 }))
      assert.equal(200, r.status, r.body)
      assert.equal(2, #r.json.choices)
      for i, c in ipairs(r.json.choices) do assert_choice(c.moonhub.settings, i - 1, 2, 3, "completion " .. i) end
      r = srv:post("/v1/completions", body({ prompt = "Once upon a time", logprobs = 3, stream = true }))
      assert.equal(200, r.status, r.body)
      local n = 0
      for _, e in ipairs(S.sse(r.body)) do
         local c = type(e) == "table" and e.choices[1]
         if c and c.moonhub then
            assert_choice(c.moonhub.settings, c.index, 2, 3, "completion stream " .. c.index)
            n = n + 1
         end
      end
      assert.equal(2, n)
   end)

   it("response_format reaches the loop as a constraint", function()
      if not need() then return end
      for _, rf in ipairs({ { type = "json_object" }, { type = "json_schema", json_schema = { name = "n",
                            schema = { type = "integer" } } } }) do
         local r = srv:post("/v1/chat/completions", { messages = { { role = "user", content = "Hi" } },
            max_tokens = 2, response_format = rf, moonhub = ECHO })
         assert.equal(200, r.status, r.body)
         assert.is_true(r.json.choices[1].moonhub.settings.grammar, rf.type)
      end
   end)

   it("logit_bias and stop act with their values", function()
      if not need() then return end
      local tk = srv:post("/tokenize", { content = " banana", with_pieces = true })
      assert.equal(200, tk.status, tk.body)
      local first = tk.json.tokens[1]
      local id, piece = first.id, first.piece
      local r = srv:post("/v1/completions", { prompt = "Once upon a time", max_tokens = 4, temperature = 0,
         logit_bias = { [tostring(id)] = 100 } })
      assert.equal(200, r.status, r.body)
      assert.equal(string.rep(piece, 4), r.json.choices[1].text)
      local plain = srv:post("/v1/completions", { prompt = "Once upon a time", max_tokens = 8, temperature = 0 })
      local text = plain.json.choices[1].text
      local cut = text:sub(4, 6)
      r = srv:post("/v1/completions", { prompt = "Once upon a time", max_tokens = 8, temperature = 0, stop = cut })
      assert.equal("stop", r.json.choices[1].finish_reason)
      assert.equal(text:sub(1, text:find(cut, 1, true) - 1), r.json.choices[1].text)
   end)
end)
