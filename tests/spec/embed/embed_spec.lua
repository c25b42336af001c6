-- Encoder embedding models (bert, nomic-bert) from every surface: the Lua
-- API (m:embed, batched), the `moonhub embed` verb, and `moonhub serve`'s
-- /v1/embeddings, /api/embed and /api/embeddings, on tiny files written
-- with `moonhub create` (and llama.cpp's vectors from tests/fixtures/bert).
-- Layer: tests. #integration
local H = require "helpers.host"
local S = require "helpers.server"
local mh = require "moonhub"
local json = require "dkjson"

local dir, bert, nomic
local fixture = json.decode(H.read("tests/fixtures/bert/tiny-bert-Q8_0.json"))

local function max_diff(a, b)
   local d = 0
   for i = 1, #b do d = math.max(d, math.abs(a[i] - b[i])) end
   return d
end

local function norm(v)
   local s = 0
   for _, x in ipairs(v) do s = s + x * x end
   return math.sqrt(s)
end

setup(function()
   dir = H.tmpdir()
   bert, nomic = dir .. "/tiny-bert-Q8_0.gguf", dir .. "/tiny-nomic-bert-F16.gguf"
   assert(mh.create.model({ preset = "tiny-bert", type = "Q8_0", seed = 1, name = "moonhub-tiny", out = bert }))
   assert(mh.create.model({ preset = "tiny-nomic-bert", type = "F16", seed = 1, name = "moonhub-tiny",
      out = nomic }))
end)

teardown(function() H.rmdir(dir) end)

describe("m:embed on encoder files #integration", function()
   it("gives llama.cpp's vectors, one forward for a batch, each text as alone", function()
      local m = assert(mh.load(bert, { ctx = 64 }))
      assert.is_true(m.info.encoder)
      assert.equal("cls", m.info.pooling)
      local all = m:embed(fixture.texts)
      assert.equal(#fixture.texts, #all)
      for i, text in ipairs(fixture.texts) do
         local v = all[i]:totable()
         assert.is_true(max_diff(v, fixture.embeddings[i]) < 5e-2)    -- Q8_0 bound of test_bert
         assert.is_true(math.abs(norm(v) - 1) < 1e-5)
         assert.is_true(max_diff(m:embed(text):totable(), v) < 1e-5)
      end
      -- ids give the same vector as the text they came from
      assert.is_true(max_diff(m:embed(fixture.tokens[2]):totable(), all[2]:totable()) < 1e-6)
      m:close()
   end)

   it("pools as the file says: mean for the nomic preset", function()
      local m = assert(mh.load(nomic, { ctx = 64 }))
      assert.equal("mean", m.info.pooling)
      assert.equal("nomic-bert", m.info.arch)
      m:close()
   end)

   it("refuses generation, and a text past the context unless truncated", function()
      local m = assert(mh.load(bert, { ctx = 64 }))
      local ok, err = pcall(m.generate, m, "hi", { max_tokens = 2 })
      assert.is_false(ok)
      assert.matches("is an embedding model: use moonhub embed or /v1/embeddings", err, 1, true)
      local long = string.rep("a ", 80)
      ok, err = pcall(m.embed, m, long)
      assert.is_false(ok)
      assert.matches("has 82 tokens but .* takes at most 64 %(pass truncate = true", err)
      assert.equal(64, #m:embed(long, { truncate = true }):totable())
      assert.has_error(function() m:embed({}) end, "embed: no texts to embed")
      m:close()
   end)
end)

describe("moonhub embed #integration", function()
   it("prints one vector per text, from an argument, a file or as JSON", function()
      local home = H.tmpdir()
      local out, err, code = H.run(home, "embed " .. H.q(bert) .. " " .. H.q(fixture.texts[2]))
      assert.equal(0, code, err)
      local v = {}
      for x in out:gmatch("%S+") do v[#v + 1] = tonumber(x) end
      assert.equal(64, #v)
      assert.is_true(max_diff(v, fixture.embeddings[2]) < 5e-2)
      H.write(home .. "/t.txt", fixture.texts[1] .. "\n" .. fixture.texts[2] .. "\n")
      out, err, code = H.run(home, "embed " .. H.q(bert) .. " --file " .. H.q(home .. "/t.txt") .. " --json")
      assert.equal(0, code, err)
      local j = json.decode(out)
      assert.equal(2, #j.embeddings)
      assert.equal(64, j.dims)
      assert.equal("cls", j.pooling)
      assert.equal(#fixture.tokens[1] + #fixture.tokens[2], j.tokens)
      assert.is_true(max_diff(j.embeddings[2], v) < 1e-6)
      local _
      _, err, code = H.run(home, "embed " .. H.q(bert) .. " " .. H.q(string.rep("a ", 80)))
      assert.equal(1, code)
      assert.matches("takes at most 64 (pass --truncate to cut it)", err, 1, true)
      _, err, code = H.run(home, "generate " .. H.q(bert) .. " hi")
      assert.equal(1, code)
      assert.matches("is an embedding model: use moonhub embed", err, 1, true)
      H.rmdir(home)
   end)
end)

describe("moonhub serve on a bert file #integration", function()
   local srv
   setup(function() srv = S.start(bert, "--threads 1") end)
   teardown(function() if srv then srv:stop() end end)

   it("/v1/embeddings: batched float and base64 vectors, usage, truncate", function()
      local r = srv:post("/v1/embeddings", { input = { fixture.texts[1], fixture.texts[2] } })
      assert.equal(200, r.status, r.body)
      assert.equal(2, #r.json.data)
      assert.equal(#fixture.tokens[1] + #fixture.tokens[2], r.json.usage.prompt_tokens)
      for i = 1, 2 do assert.is_true(max_diff(r.json.data[i].embedding, fixture.embeddings[i]) < 5e-2) end
      local b = srv:post("/v1/embeddings", { input = fixture.texts[2], encoding_format = "base64" })
      assert.equal(200, b.status, b.body)
      local raw = S.base64_decode(b.json.data[1].embedding)
      assert.equal(4 * 64, #raw)
      local f = { string.unpack("<" .. string.rep("f", 64), raw) }
      assert.is_true(max_diff(f, r.json.data[2].embedding) < 1e-6)
      local long = string.rep("a ", 80)
      local e = srv:post("/v1/embeddings", { input = long })
      assert.equal(400, e.status)
      assert.matches("has 82 tokens but the model takes at most 64", e.json.error.message, 1, true)
      local t = srv:post("/v1/embeddings", { input = long, truncate = true })
      assert.equal(200, t.status, t.body)
      assert.equal(64, t.json.usage.prompt_tokens)
   end)

   it("/api/embed and /api/embeddings (Ollama), truncate false refused", function()
      local name = srv.name
      local r = srv:post("/api/embed", { model = name, input = { fixture.texts[2], fixture.texts[3] } })
      assert.equal(200, r.status, r.body)
      assert.equal(2, #r.json.embeddings)
      assert.is_true(max_diff(r.json.embeddings[1], fixture.embeddings[2]) < 5e-2)
      assert.equal(#fixture.tokens[2] + #fixture.tokens[3], r.json.prompt_eval_count)
      local e = srv:post("/api/embed", { model = name, input = string.rep("a ", 80), truncate = false })
      assert.equal(400, e.status)
      assert.matches("takes at most 64 (or send truncate: true)", e.json.error, 1, true)
      local o = srv:post("/api/embeddings", { model = name, prompt = fixture.texts[2] })
      assert.equal(200, o.status, o.body)
      assert.is_true(max_diff(o.json.embedding, fixture.embeddings[2]) < 5e-2)
   end)

   it("refuses chat and completions: an embedding model", function()
      local r = srv:post("/v1/chat/completions", { messages = { { role = "user", content = "hi" } } })
      assert.equal(400, r.status)
      assert.matches("is an embedding model: use moonhub embed or /v1/embeddings", r.json.error.message, 1, true)
      r = srv:post("/api/generate", { model = srv.name, prompt = "hi", stream = false })
      assert.equal(400, r.status)
      assert.matches("is an embedding model", r.json.error, 1, true)
   end)
end)
