-- Per-request LoRA adapters and Lua logits processors over HTTP: serve
-- --lora NAME=PATH adapters that requests pick with "lora" (OpenAI, Ollama,
-- Responses, Messages bodies), batched together with the base and matching
-- their single-request answers; "processors" with the built-ins' effect, a
-- user's processor from $MOONHUB_HOME/processors, errors that fail one
-- request (400 for names and args, 500 naming the processor) and never the
-- server. Layer: tests (helpers.server; stories260K from ../shared).
local data = require "helpers.data"
local host = require "helpers.host"
local lora = require "helpers.lora"
local S = require "helpers.server"

local PROMPT = "Lily saw"

describe("per-request LoRA and processors over HTTP #integration", function()
   local s, dir
   local function start()
      local base = data.need("models/stories260K.gguf", pending)
      if not base then return nil end
      dir = host.tmpdir()
      local a = lora.train(base, PROMPT, " a purple elephant.", dir .. "/a.gguf")
      local b = lora.train(base, PROMPT, " a green frog.", dir .. "/b.gguf")
      s = S.start(base, "--template raw --parallel 3 --lora purple=" .. host.q(a) .. " --lora green="
         .. host.q(b) .. ":1.0")
      return s
   end
   after_each(function()
      if s then s:stop() end
      if dir then host.rmdir(dir) end
      s, dir = nil, nil
   end)

   local function completion(extra)
      local body = { model = s.name, prompt = PROMPT, max_tokens = 12, temperature = 0, logprobs = 1 }
      for k, v in pairs(extra or {}) do body[k] = v end
      return { "/v1/completions", { body = body } }
   end

   it("adapters chosen per request batch together and each matches its answer alone", function()
      if not start() then return end
      local asks = { completion({ lora = { { name = "purple" } } }), completion({ lora = { { name = "green" } } }),
         completion() }
      local alone = {}
      for i, q in ipairs(asks) do
         local r = s:request(q[1], q[2])
         assert.equal(200, r.status, r.body)
         alone[i] = r.json.choices[1]
      end
      assert.equal(" a purple", alone[1].text:sub(1, 9))
      assert.equal(" a green", alone[2].text:sub(1, 8))
      assert.is_nil(alone[3].text:find("purple", 1, true))
      for _ = 1, 2 do
         local together = s:many(asks)
         for i, r in ipairs(together) do
            assert.equal(200, r.status, r.body)
            local c = r.json.choices[1]
            assert.equal(alone[i].text, c.text)
            for k, lp in ipairs(c.logprobs.token_logprobs) do
               assert.is_true(math.abs(lp - alone[i].logprobs.token_logprobs[k]) < 2e-3)
            end
         end
      end
      -- scale 0 is the base; the other protocols take the same field
      local r0 = s:request(table.unpack(completion({ lora = { { name = "purple", scale = 0 } } })))
      assert.equal(alone[3].text, r0.json.choices[1].text)
      local chat = s:post("/v1/chat/completions", { model = s.name, max_tokens = 8, temperature = 0,
         messages = { { role = "user", content = PROMPT } }, lora = { { name = "purple" } } })
      assert.equal(200, chat.status, chat.body)
      assert.matches("purple", chat.json.choices[1].message.content)
      local ol = s:post("/api/generate", { model = s.name, prompt = PROMPT, stream = false,
         options = { temperature = 0, num_predict = 8 }, lora = { { name = "green" } } })
      assert.equal(200, ol.status, ol.body)
      assert.matches("green", ol.json.response)
      local resp = s:post("/v1/responses", { model = s.name, input = PROMPT, max_output_tokens = 8, temperature = 0,
         lora = { { name = "purple" } } })
      assert.equal(200, resp.status, resp.body)
      assert.matches("purple", resp.json.output[1].content[1].text)
      local msg = s:post("/v1/messages", { model = s.name, max_tokens = 8, temperature = 0,
         messages = { { role = "user", content = PROMPT } }, lora = { { name = "green" } } })
      assert.equal(200, msg.status, msg.body)
      assert.matches("green", msg.json.content[1].text)
      -- unknown or malformed: 400 naming what was wrong
      local bad = s:request(table.unpack(completion({ lora = { { name = "blue" } } })))
      assert.equal(400, bad.status)
      assert.matches("unknown adapter 'blue': this model serves green, purple", bad.json.error.message)
      assert.equal("lora", bad.json.error.param)
      bad = s:request(table.unpack(completion({ lora = { { name = "purple", weight = 2 } } })))
      assert.equal(400, bad.status)
      assert.matches("'lora%[0%]%.weight' is not an option", bad.json.error.message)
      bad = s:post("/api/generate", { model = s.name, prompt = PROMPT, stream = false, lora = "purple" })
      assert.equal(400, bad.status)
      assert.matches("'lora' must be an array", bad.json.error)
   end)

   it("processors: built-ins, a user's file, and errors that fail one request only", function()
      if not start() then return end
      local base = s:request(table.unpack(completion({ max_tokens = 60, prompt = "Once upon a time" })))
      assert.equal(200, base.status, base.body)
      local text = base.json.choices[1].text
      assert.truthy(text:find("Lily", 1, true))
      local function with(procs, p)
         return s:request(table.unpack(completion({ max_tokens = 60, prompt = p or "Once upon a time",
            processors = procs })))
      end
      local r = with({ { name = "ban_words", args = { words = { "Lily" } } } })
      assert.equal(200, r.status, r.body)
      assert.is_nil(r.json.choices[1].text:find("Lily", 1, true))
      r = with({ { name = "max_line_length", args = { length = 20 } } })
      assert.equal(200, r.status, r.body)
      for line in (r.json.choices[1].text .. "\n"):gmatch("([^\n]*)\n") do assert.is_true(#line <= 20, line) end
      local ol = s:post("/api/generate", { model = s.name, prompt = "Once upon a time", stream = false,
         options = { temperature = 0, num_predict = 10 },
         processors = { { name = "force_prefix", args = { prefix = "The dragon" } } } })
      assert.equal(200, ol.status, ol.body)
      assert.equal("The dragon", ol.json.response:sub(1, 10))
      -- a user's processor, loaded from the home folder on first use
      local pdir = s.dir .. "/home/processors"
      assert(require("moonhub.fs").mkdirs(pdir))
      host.write(pdir .. "/no_e.lua", [[
return function(logits, tokens, args, ctx)
   for id0, p in ipairs(ctx.pieces()) do
      if p:find("e", 1, true) then logits[{ 1, id0 }] = -math.huge end
   end
end]])
      host.write(pdir .. "/fails.lua", [[
return function(logits, tokens) if #tokens >= 2 then error("fails on purpose") end end]])
      r = with({ { name = "no_e" } })
      assert.equal(200, r.status, r.body)
      assert.is_nil(r.json.choices[1].text:find("e", 1, true), r.json.choices[1].text)
      -- errors: 400 for names and args, 500 naming the processor at run time
      local cases = {
         { { { name = "nope" } }, 400, "unknown processor 'nope'", "unknown_processor" },
         { { { name = "ban_words", args = { words = { 1 } } } }, 400, "processor 'ban_words': args.words%[1%]",
            "invalid_processor_args" },
         { { { name = "ban_words", args = "x" } }, 400, "'processors%[0%]%.args' must be an object" },
      }
      for _, c in ipairs(cases) do
         r = with(c[1])
         assert.equal(c[2], r.status, r.body)
         assert.matches(c[3], r.json.error.message)
         if c[4] then assert.equal(c[4], r.json.error.code) end
      end
      local both = s:many({ completion({ max_tokens = 60, prompt = "Once upon a time",
         processors = { { name = "fails" } } }), completion({ max_tokens = 60, prompt = "Once upon a time" }) })
      assert.equal(500, both[1].status, both[1].body)
      assert.matches("processor 'fails' failed: .*fails on purpose", both[1].json.error.message)
      assert.equal(200, both[2].status, both[2].body)
      assert.equal(text, both[2].json.choices[1].text)
      -- streamed: the error arrives as the stream's error event
      local st = s:post("/v1/chat/completions", { model = s.name, max_tokens = 20, temperature = 0, stream = true,
         messages = { { role = "user", content = "Once upon a time" } }, processors = { { name = "fails" } } })
      assert.equal(200, st.status)
      assert.matches("processor 'fails' failed", st.body)
      assert.equal(200, s:request("/health").status)
      assert.is_true(s:alive())
   end)
end)
