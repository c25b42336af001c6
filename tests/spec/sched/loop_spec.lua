-- One generation loop: the same seed and parameters give the same tokens
-- through the Lua API (mh.load():generate), the CLI (`moonhub generate`) and
-- HTTP (/v1/completions on the real server), with and without a grammar;
-- the effective settings come back from the loop; text is always valid
-- UTF-8. Layer: tests (helpers.server, helpers.host, helpers.data).
local S = require "helpers.server"
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"

local SCHEMA = '{"type":"object","properties":{"name":{"type":"string","maxLength":8}},'
   .. '"required":["name"],"additionalProperties":false}'
local PARAMS = { max_tokens = 24, temperature = 1.3, top_k = 30, top_p = 0.9, min_p = 0.02, seed = 11 }

local function cli_args(p)
   return string.format("-n %d --temp %g --top-k %d --top-p %g --min-p %g --seed %d --ctx 256",
      p.max_tokens, p.temperature, p.top_k, p.top_p, p.min_p, p.seed)
end

for _, rel in ipairs({ "models/mh-smol-llama-17m-Q8_0.gguf", "models/stories260K.gguf" }) do
   describe("one generation loop on " .. rel .. " #integration", function()
      local srv, path, m, home

      setup(function()
         path = data.path(rel)
         if not path then return end
         srv = S.start(path, "--parallel 1 --ctx 256 --threads 1")
         m = assert(mh.load(path, { ctx = 256 }))
         home = host.tmpdir()
      end)
      teardown(function()
         if srv then srv:stop() end
         if home then host.rmdir(home) end
      end)

      local function need() if not srv then data.need(rel, pending) end return srv end

      -- Lua, CLI and HTTP for one prompt; returns the Lua text and stats.
      local function same_everywhere(prompt, extra)
         local opts = {}
         for k, v in pairs(PARAMS) do opts[k] = v end
         for k, v in pairs(extra.lua or {}) do opts[k] = v end
         local text, st = m:generate(prompt, opts)
         local out, err, code = host.run(home, "generate " .. host.q(path) .. " " .. host.q(prompt) .. " "
            .. cli_args(PARAMS) .. (extra.cli or ""))
         assert.equal(0, code, err)
         assert.equal(text .. "\n", out)
         local body = { prompt = prompt, logprobs = 0 }
         for k, v in pairs(PARAMS) do body[k] = v end
         for k, v in pairs(extra.http or {}) do body[k] = v end
         local r = srv:post("/v1/completions", body)
         assert.equal(200, r.status, r.body)
         local c = r.json.choices[1]
         assert.equal(text, c.text)
         assert.equal(st.prompt_tokens, r.json.usage.prompt_tokens)
         local pieces = {}
         -- a piece that is part of a character is U+FFFD in JSON (its bytes travel apart)
         local valid = require("moonhub.openai").valid_utf8
         for i, id in ipairs(st.tokens) do pieces[i] = valid(m.tokenizer:piece(id)) end
         assert.same(pieces, c.logprobs.tokens)
         return text, st
      end

      it("same seed and parameters: same tokens from Lua, CLI and HTTP", function()
         if not need() then return end
         local _, st = same_everywhere("Once upon a time", {})
         assert.equal(PARAMS.max_tokens, #st.tokens)
         -- the seed matters (else the comparison proves little)
         local _, other = m:generate("Once upon a time", setmetatable({ seed = 12 }, { __index = PARAMS }))
         assert.are_not.same(st.tokens, other.tokens)
      end)

      it("with a JSON-schema grammar: same tokens from Lua, CLI and HTTP", function()
         if not need() then return end
         local text = same_everywhere("My name is", {
            lua = { json_schema = SCHEMA }, cli = " --json-schema " .. host.q(SCHEMA),
            http = { response_format = { type = "json_schema",
               json_schema = { name = "p", schema = S.decode(SCHEMA) } } },
         })
         -- what the grammar allows so far: an object opening with "name"
         assert.matches('^%s*{%s*"', text)
      end)
   end)
end

describe("the loop's settings and defaults #integration", function()
   local m
   setup(function()
      local path = data.path("models/stories260K.gguf")
      if path then m = assert(mh.load(path, { ctx = 128 })) end
   end)

   it("reports the settings it ran with, defaults filled in from one place", function()
      if not m then return data.need("models/stories260K.gguf", pending) end
      local d = mh.model.defaults()
      local _, st = m:generate("Once", { max_tokens = 3, seed = 5, top_k = 7, stop = { "zz", "yy" } })
      local s = st.settings
      assert.equal(7, s.top_k)
      assert.equal(5, s.seed)
      assert.equal(3, s.max_tokens)
      assert.equal(2, s.n_stop)
      assert.near(d.temperature, s.temperature, 1e-6)
      assert.near(d.top_p, s.top_p, 1e-6)
      assert.near(d.min_p, s.min_p, 1e-6)
      assert.equal(d.repeat_last_n, s.repeat_last_n)
      assert.is_false(s.grammar)
      _, st = m:generate("Once", { max_tokens = 2, temperature = 0, repeat_penalty = 1.3,
         presence_penalty = 0.5, json_object = true, logprobs = true, top_logprobs = 2 })
      s = st.settings
      assert.equal(0, s.temperature)
      assert.near(1.3, s.repeat_penalty, 1e-6)
      assert.near(0.5, s.presence_penalty, 1e-6)
      assert.is_true(s.grammar)
      assert.is_true(s.logprobs)
      assert.equal(2, s.top_logprobs)
      assert.equal(256, d.max_tokens)
   end)

   it("a grammar object, a bad schema and a Lua processor error", function()
      if not m then return data.need("models/stories260K.gguf", pending) end
      local g = assert(mh.grammar.json_object(m))
      local text = m:generate("Once", { max_tokens = 16, seed = 1, grammar = g })
      assert.matches("^%s*{", text)
      assert.has_error(function() m:generate("Once", { max_tokens = 2, grammar = g }) end,
         "generate: grammar must be an unused grammar from mh.grammar")
      local ok, err = pcall(m.generate, m, "Once", { max_tokens = 2, json_schema = '{"type": 5}' })
      assert.is_false(ok)
      assert.matches("^generate: json schema: #: .type. must be", err)
      ok, err = pcall(m.generate, m, "Once", { max_tokens = 4, logits_processor = function() error("boom") end })
      assert.is_false(ok)
      assert.matches("^generate: logits_processor: .*boom", err)
      -- the model is still usable afterwards
      assert.equal("string", type((m:generate("Once", { max_tokens = 2, temperature = 0 }))))
   end)

   it("a Lua logits_processor is refused by the threaded scheduler (it cannot call Lua)", function()
      if not m then return data.need("models/stories260K.gguf", pending) end
      local s = assert(mh.sched.new(m, { ctx = 64 }))
      local ok, err = pcall(s.submit, s, { prompt = "Once", max_tokens = 2, logits_processor = function() end })
      assert.is_false(ok)
      assert.matches("logits_processor %(a Lua function%) needs synchronous use", err)
      assert.has_error(function() m:generate("Once", { max_tokens = 1 }) end)   -- lent to s
      s:close()
      assert.equal("string", type((m:generate("Once", { max_tokens = 1 }))))
   end)
end)
