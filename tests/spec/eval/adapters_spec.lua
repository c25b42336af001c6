-- Serving what was trained: a LoRA trained with mh.train on stories260K,
-- saved as GGUF, registered as an adapter version of its base
-- (reg:add_adapter_version), then used by `generate --lora`, loaded by name,
-- served by name through /v1/chat/completions, shown with its lineage, and
-- refused on another base. Layer: tests (CLI through helpers.host, HTTP
-- through helpers.server; real model from ../shared).
local data = require "helpers.data"
local host = require "helpers.host"
local server = require "helpers.server"
local json = require "dkjson"
local mh = require "moonhub"
local registry = require "moonhub.registry"

local MODEL = "models/stories260K.gguf"
local PROMPT = "Lily saw"

-- Trains a small LoRA until it answers PROMPT with " a purple elephant."
-- and saves it as GGUF and safetensors in dir -> gguf path, safetensors path
local function train_adapter(base, dir, steps)
   local m = assert(mh.load(base))
   local tok = m.tokenizer
   local row, mask = {}, {}
   for _, id in ipairs(tok:encode(PROMPT, { bos = true })) do row[#row + 1] = id; mask[#mask + 1] = 0 end
   for _, id in ipairs(tok:encode(" a purple elephant.", { bos = false })) do
      row[#row + 1] = id; mask[#mask + 1] = 1
   end
   local tr = mh.train.trainer(m, { method = "lora", seed = 1,
      lora = { rank = 4, alpha = 8, dropout = 0, targets = { "q", "k", "v", "o", "gate", "up", "down" } },
      optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
   for _ = 1, steps or 30 do tr:step({ tokens = { row }, mask = { mask } }) end
   local gguf, st = dir .. "/tales-lora.gguf", dir .. "/tales-lora.safetensors"
   assert(tr:save(gguf))
   assert(tr:save(st))
   tr:close()
   m:close()
   return gguf, st
end

-- Registers the base as "stories" and the adapter as "stories-lora" in
-- home's registry (in place) -> base version id, adapter version id, run id
local function register(home, base, adapter)
   local reg = assert(registry.open(home))
   local b = reg:add_model({ name = "stories", path = base, format = "gguf", arch = "llama" })
   local run = reg:add_run({ kind = "train", version_id = b.id })
   local vid = reg:add_adapter_version({ base_version_id = b.id, path = adapter, run_id = run,
      name = "stories-lora", tag = "r4", copy = false })
   reg:close()
   return b.id, vid, run
end

local function one_line(s) return s:gsub("\n$", ""):find("\n") == nil end

describe("LoRA adapters from the registry #integration", function()
   local dir, home
   before_each(function()
      dir = host.tmpdir()
      home = dir .. "/home"
      assert(require("moonhub.fs").mkdirs(home))
   end)
   after_each(function() host.rmdir(dir) end)

   it("a GGUF adapter applies as the same adapter saved as safetensors", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      local gguf, st = train_adapter(base, dir)
      local plain = assert(mh.load(base)):generate(PROMPT, { max_tokens = 12, temperature = 0 })
      local a = assert(mh.load(base, { adapters = { gguf } }))
      local b = assert(mh.load(base, { adapters = { st } }))
      local ta = a:generate(PROMPT, { max_tokens = 12, temperature = 0 })
      assert.matches("^ a purple", ta)
      assert.are_not.equal(plain, ta)
      assert.equal(ta, (b:generate(PROMPT, { max_tokens = 12, temperature = 0 })))
      -- the logits agree, not only the greedy text (f32 both ways)
      local ids = a.tokenizer:encode(PROMPT .. " a purple", { bos = true })
      local la, lb = a:forward(ids, nil, { all = true }), b:forward(ids, nil, { all = true })
      local worst = 0
      for i = 1, #ids do
         for j = 1, 32 do worst = math.max(worst, math.abs(la[{ i, j }] - lb[{ i, j }])) end
      end
      assert.is_true(worst < 1e-4, "logits differ by " .. worst)
      -- a GGUF that is a model, not an adapter, is refused by name
      local ok, msg = mh.load(base, { adapters = { base } })
      assert.is_nil(ok)
      assert.matches("is not a LoRA adapter", msg)
   end)

   it("generate --lora NAME differs from the base and equals mh.load with the adapter (same seed)", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      local gguf = train_adapter(base, dir)
      register(home, base, gguf)
      local args = "generate " .. host.q(base) .. " " .. host.q(PROMPT) .. " -n 16 --temp 0.8 --seed 7"
      local plain, err, code = host.run(home, args)
      assert.equal(0, code, err)
      local tuned, err2, code2 = host.run(home, args .. " --lora stories-lora")
      assert.equal(0, code2, err2)
      assert.are_not.equal(plain, tuned)
      local m = assert(mh.load(base, { adapters = { gguf } }))
      assert.equal(m:generate(PROMPT, { max_tokens = 16, temperature = 0.8, seed = 7 }) .. "\n", tuned)
      -- a scale of 0 is the base again; the adapter version by name is base + adapter
      local zero = host.run(home, args .. " --lora stories-lora:r4:0")
      assert.equal(plain, zero)
      -- chat --lora: the same adapter answers a chat turn
      local chat_plain = host.run(home, "chat stories --no-history --temp 0 -n 8", PROMPT .. "\n")
      local chat_tuned, cerr, ccode = host.run(home, "chat stories --no-history --temp 0 -n 8 --lora stories-lora",
         PROMPT .. "\n")
      assert.equal(0, ccode, cerr)
      assert.matches("a purple", chat_tuned)
      assert.is_nil(chat_plain:find("a purple", 1, true))
      local by_name, err3, code3 = host.run(home, "generate stories-lora " .. host.q(PROMPT)
         .. " -n 16 --temp 0.8 --seed 7")
      assert.equal(0, code3, err3)
      assert.equal(tuned, by_name)
   end)

   it("show prints the lineage and list marks the adapter", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      local gguf = train_adapter(base, dir)
      local bid, vid, run = register(home, base, gguf)
      local out, err, code = host.run(home, "show stories-lora")
      assert.equal(0, code, err)
      assert.matches("trained%s+LoRA adapter %(lora%-gguf%)", out)
      assert.matches("base model%s+stories:v" .. bid .. "  %(version " .. bid .. "%)", out)
      assert.matches("run%s+run " .. run .. "  %(train, queued%)", out)
      assert.matches("registry%s+stories%-lora:latest  %(version " .. vid .. "%)", out)
      -- the model row is the base it loads, the adapter row the adapter's file
      assert.matches("^  model%s+%S*stories260K%.gguf\n", out)
      assert.matches("\n  adapter%s+" .. gguf:gsub("%p", "%%%0") .. "\n", out)
      local list = host.run(home, "list")
      assert.matches("stories%-lora:r4%s+%S+ %S+%s+LoRA r4 ", list)
      local js = json.decode((host.run(home, "show stories-lora --json")))
      assert.equal("adapter", js.lineage.kind)
      -- the base itself has no training lineage
      local bout = host.run(home, "show stories")
      assert.is_nil(bout:find("trained", 1, true))
   end)

   it("registers a merged model (--merge) as a version of its own with the same lineage", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      local gguf = train_adapter(base, dir)
      local merged = dir .. "/merged.gguf"
      -- the merged export of the same adapter: W + alpha/r B A
      local m = assert(mh.load(base))
      local tr = mh.train.trainer(m, { method = "lora", seed = 1,
         lora = { rank = 4, alpha = 8, dropout = 0, targets = { "q", "k", "v", "o", "gate", "up", "down" } },
         optimizer = { lr = 1e-2, weight_decay = 0 }, schedule = { warmup = 5 } })
      local row, mask = {}, {}
      for _, id in ipairs(m.tokenizer:encode(PROMPT, { bos = true })) do row[#row + 1] = id; mask[#mask + 1] = 0 end
      for _, id in ipairs(m.tokenizer:encode(" a purple elephant.", { bos = false })) do
         row[#row + 1] = id; mask[#mask + 1] = 1
      end
      for _ = 1, 30 do tr:step({ tokens = { row }, mask = { mask } }) end
      assert(tr:export(merged, { type = "F32" }))
      local bid, _, run = register(home, base, gguf)
      local reg = assert(registry.open(home))
      local mid = reg:add_adapter_version({ base_version_id = bid, path = merged, run_id = run, merged = true })
      local v = assert(reg:resolve("stories-merged"))
      assert.equal(mid, v.id)
      assert.equal("gguf", v.format)
      assert.equal(bid, v.parent_id)
      -- copied under the home's models folder (a run folder may go), so rm removes it
      assert.matches("^" .. home:gsub("%p", "%%%0") .. "/models/local/stories%-merged/", v.path)
      reg:close()
      local out, err, code = host.run(home, "show stories-merged")
      assert.equal(0, code, err)
      assert.matches("trained%s+merged model", out)
      assert.matches("base model%s+stories:v" .. bid, out)
      assert.matches("run%s+run " .. run, out)
      -- the merged model answers as base + adapter does
      local a = host.run(home, "generate stories-merged " .. host.q(PROMPT) .. " -n 8 --temp 0")
      local b = host.run(home, "generate stories-lora " .. host.q(PROMPT) .. " -n 8 --temp 0")
      assert.equal(b, a)
      assert.matches("^ a purple", a)
   end)

   it("copies each adapter under the home by content; a failed registration leaves no copy", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      local fs = require "moonhub.fs"
      assert(fs.mkdirs(dir .. "/run1") and fs.mkdirs(dir .. "/run2"))
      local a1 = train_adapter(base, dir .. "/run1", 10)
      local a2 = train_adapter(base, dir .. "/run2", 20)     -- same file name, other content
      local reg = assert(registry.open(home))
      local b = reg:add_model({ name = "stories", path = base, format = "gguf", arch = "llama" })
      local v1 = reg:add_adapter_version({ base_version_id = b.id, path = a1, name = "tl" })
      local v2 = reg:add_adapter_version({ base_version_id = b.id, path = a2, name = "tl" })
      local r1, r2 = assert(reg:resolve("tl:v" .. v1)), assert(reg:resolve("tl:v" .. v2))
      assert.are_not.equal(r1.path, r2.path)
      assert.equal(host.read(a1), host.read(r1.path))
      assert.equal(host.read(a2), host.read(r2.path))
      -- the run folders may go: the registered copies stay usable
      host.rmdir(dir .. "/run1")
      local out, err, code = host.run(home, "generate tl:v" .. v1 .. " " .. host.q(PROMPT) .. " -n 4 --temp 0")
      assert.equal(0, code, err)
      assert.is_true(#out > 1)
      -- a name taken by an alias: refused, and no copy left behind
      assert(reg:alias("stories", "taken"))
      local before = #(fs.list(home .. "/models/local") or {})
      assert.error_matches(function()
         reg:add_adapter_version({ base_version_id = b.id, path = a2 .. "", name = "taken" })
      end, "is an alias")
      assert.equal(before, #(fs.list(home .. "/models/local") or {}))
      assert.is_nil(fs.stat(home .. "/models/local/taken"))
      reg:close()
   end)

   it("refuses unknown adapters and an adapter of another base, each in one line", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      local gguf = train_adapter(base, dir)
      register(home, base, gguf)
      local tiny = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny", seed = 1, out = tiny }))
      local stray = dir .. "/stray.gguf"           -- an adapter file nobody registered
      host.write(stray, host.read(gguf))
      local cases = {
         { "generate stories hi --lora nope", "no such adapter file or registered adapter: 'nope'" },
         { "generate stories hi --lora " .. host.q(dir .. "/none.gguf"), "no such adapter file: " },
         { "generate stories hi --lora stories", "'stories' is a model %(format gguf%), not a LoRA adapter" },
         { "generate " .. host.q(tiny) .. " hi --lora stories-lora",
            "adapter 'stories%-lora' was trained on stories %(version 1," },
         { "generate " .. host.q(tiny) .. " hi --lora " .. host.q(gguf), "has shape %(%d+,%d+%), the base needs" },
         { "generate " .. host.q(stray) .. " hi", "is a LoRA adapter, not a model: load its base model with" },
         { "serve --lora stories-lora", "%-%-lora needs %-%-model" },
      }
      for _, c in ipairs(cases) do
         local out, err, code = host.run(home, c[1])
         assert.are_not.equal(0, code, c[1])
         assert.equal("", out, c[1])
         assert.matches(c[2], err, 1, false, c[1])
         assert.is_true(one_line(err), c[1] .. ": " .. err)
      end
      -- registering: an adapter on an adapter, a base of another architecture, a model as adapter
      local reg = assert(registry.open(home))
      local lora = assert(reg:resolve("stories-lora"))
      assert.error_matches(function()
         reg:add_adapter_version({ base_version_id = lora.id, path = gguf })
      end, "is itself an adapter")
      local qpath = data.need("models/mh-tiny-qwen2-Q8_0.gguf", pending)
      if not qpath then reg:close() return end
      local q = reg:add_model({ name = "qwen", path = qpath, format = "gguf", arch = "qwen2" })
      assert.error_matches(function()
         reg:add_adapter_version({ base_version_id = q.id, path = gguf })
      end, "was trained on a llama model, but base version %d+ %(qwen%) is qwen2")
      assert.error_matches(function()
         reg:add_adapter_version({ base_version_id = q.id, path = base })
      end, "is not a LoRA adapter")
      assert.error_matches(function()
         reg:add_adapter_version({ base_version_id = 999, path = gguf })
      end, "no base version 999")
      assert.equal(3, #reg:list())            -- stories, stories-lora, qwen: no failure registered
      reg:close()
   end)

   it("the server serves the adapter version by name through /v1/chat/completions", function()
      local base = data.need(MODEL, pending)
      if not base then return end
      local gguf = train_adapter(base, dir)
      local s, s2 = server.start(base, "--template raw"), nil
      -- one finally per test: busted keeps only the last one given
      finally(function()
         s:stop()
         if s2 then s2:stop() end
      end)
      register(s.dir .. "/home", base, gguf)
      local function ask(model)
         local r = s:post("/v1/chat/completions", { model = model, max_tokens = 8, temperature = 0,
            messages = { { role = "user", content = PROMPT } } })
         assert.equal(200, r.status, r.body)
         return r.json.choices[1].message.content, r.json.model
      end
      local tuned, name = ask("stories-lora")
      assert.equal("stories-lora:latest", name)
      local plain = ask("stories")
      assert.are_not.equal(plain, tuned)
      local m = assert(mh.load(base, { adapters = { gguf } }))
      local want = m:generate({ messages = { { role = "user", content = PROMPT } } },
         { max_tokens = 8, temperature = 0, template = "raw" })
      assert.equal(want, tuned)
      -- the adapter version runs on the base's entry (shared weights, its own
      -- rows in the batch: docs/lora.md): no entry of its own is loaded
      -- serve --lora FILE: the default model answers with the adapter applied
      s2 = server.start(base, "--template raw --lora " .. host.q(gguf))
      local r2 = s2:post("/v1/chat/completions", { model = s2.name, max_tokens = 8, temperature = 0,
         messages = { { role = "user", content = PROMPT } } })
      assert.equal(200, r2.status, r2.body)
      assert.equal(want, r2.json.choices[1].message.content)
      local ps = s:request("/api/ps")
      assert.equal(200, ps.status)
      assert.is_true(#ps.json.models >= 1)
      for _, e in ipairs(ps.json.models) do assert.is_nil(e.name:find("lora", 1, true), e.name) end
   end)
end)
