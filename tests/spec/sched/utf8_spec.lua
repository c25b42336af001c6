-- Text from the generation loop is valid UTF-8: a character split across
-- byte tokens waits for its last byte, and bytes that never complete one
-- become U+FFFD, in Lua (stream and generate) and in HTTP JSON (plain and
-- SSE). stories260K has SentencePiece byte tokens (<0xC3> <0xA9> = "é");
-- mh-smol's byte-level BPE has "Ã" "©" for the same bytes.
-- Layer: tests (helpers.server, helpers.data).
local S = require "helpers.server"
local data = require "helpers.data"
local mh = require "moonhub"

local REPLACEMENT = "\xEF\xBF\xBD"

-- A logits processor forcing ids in order (then the last one again).
local function force(ids)
   return function(logits, tokens)
      logits:fill_(-1e9)
      logits[{ 1, ids[math.min(#tokens + 1, #ids)] + 1 }] = 0
   end
end

for _, case in ipairs({
   { rel = "models/stories260K.gguf", lead = "<0xC3>", cont = "<0xA9>", lone = "<0xE9>", stray = "<0x80>" },
   { rel = "models/mh-smol-llama-17m-Q8_0.gguf", lead = "Ã", cont = "©" },
}) do
   describe("UTF-8 across tokens on " .. case.rel .. " #integration", function()
      local m, tok
      setup(function()
         local path = data.path(case.rel)
         if path then m = assert(mh.load(path, { ctx = 64 })) tok = m.tokenizer end
      end)
      local function need() if not m then data.need(case.rel, pending) end return m end

      it("a character split over two tokens comes out whole, in one piece", function()
         if not need() then return end
         local lead, cont = assert(tok:id(case.lead)), assert(tok:id(case.cont))
         local step = m:stream("Once", { max_tokens = 2, ignore_eos = true, logits_processor = force({ lead, cont }) })
         local pieces = {}
         for piece in step do pieces[#pieces + 1] = piece end
         assert.same({ "é" }, pieces)
      end)

      it("a lead byte cut off by the end becomes U+FFFD, never a lone byte", function()
         if not need() then return end
         local lead, cont = assert(tok:id(case.lead)), assert(tok:id(case.cont))
         local text = m:generate("Once", { max_tokens = 3, ignore_eos = true,
            logits_processor = force({ lead, cont, lead }) })
         assert.equal("é" .. REPLACEMENT, text)
         assert.truthy(utf8.len(text))
      end)
   end)
end

describe("UTF-8 in HTTP responses (stories260K) #integration", function()
   local REL = "models/stories260K.gguf"
   local srv, lone, stray

   setup(function()
      local path = data.path(REL)
      if not path then return end
      local m = assert(mh.load(path, { ctx = 64 }))
      lone, stray = m.tokenizer:id("<0xE9>"), m.tokenizer:id("<0x80>")
      m:close()
      srv = S.start(path, "--parallel 1 --ctx 128 --threads 1")
   end)
   teardown(function() if srv then srv:stop() end end)

   local function body(id, stream)
      return { prompt = "Once", max_tokens = 1, temperature = 0, stream = stream,
               logit_bias = { [tostring(id)] = 100 } }
   end

   it("logprobs name a partial multi-byte token as U+FFFD and keep its raw bytes", function()
      if not srv then return data.need(REL, pending) end
      local r = srv:post("/v1/completions", { prompt = "Once", max_tokens = 1, temperature = 0, logprobs = 3,
         logit_bias = { [tostring(lone)] = 100 } })
      assert.equal(200, r.status, r.body)
      assert.truthy(utf8.len(r.body), "the completion logprobs are not valid UTF-8")
      assert.equal(REPLACEMENT, r.json.choices[1].logprobs.tokens[1])
      r = srv:post("/v1/chat/completions", { messages = { { role = "user", content = "Once" } }, max_tokens = 1,
         temperature = 0, logprobs = true, top_logprobs = 2, logit_bias = { [tostring(lone)] = 100 } })
      assert.equal(200, r.status, r.body)
      assert.truthy(utf8.len(r.body), "the chat logprobs are not valid UTF-8")
      local c = r.json.choices[1].logprobs.content[1]
      assert.equal(REPLACEMENT, c.token)
      assert.same({ 0xE9 }, c.bytes)
   end)

   it("a partial multi-byte token is U+FFFD in plain and streamed JSON", function()
      if not srv then return data.need(REL, pending) end
      for _, id in ipairs({ lone, stray }) do
         local r = srv:post("/v1/completions", body(id, false))
         assert.equal(200, r.status, r.body)
         assert.truthy(utf8.len(r.body), "the response is not valid UTF-8")
         assert.equal(REPLACEMENT, r.json.choices[1].text)
         r = srv:post("/v1/completions", body(id, true))
         assert.equal(200, r.status, r.body)
         assert.truthy(utf8.len(r.body), "the stream is not valid UTF-8")
         local text = {}
         for _, ev in ipairs(S.sse(r.body)) do
            if type(ev) == "table" then text[#text + 1] = ev.choices[1].text end
         end
         assert.equal(REPLACEMENT, table.concat(text))
      end
   end)
end)
