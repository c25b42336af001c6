-- Specs for moonhub.data over a registry in a temporary home: import and
-- open, nothing registered on a failed import, unknown datasets, seeded and
-- stratified splits, dedupe, PII versions with lineage, removal, and
-- encode/validate on real models from ../shared/models. Layer: tests.
local H = require "helpers.host"
local D = require "helpers.data"
local registry = require "moonhub.registry"
local data = require "moonhub.data"

local function jsonl(list) return table.concat(list, "\n") .. "\n" end

-- rows "{"text": "row i", "label": a|b}" with 70 a and 30 b
local function labelled(n_a, n_b)
   local out = {}
   for i = 1, n_a + n_b do
      out[i] = string.format('{"text": "row %d", "label": "%s"}', i, i <= n_a and "a" or "b")
   end
   return jsonl(out)
end

local function files_under(dir)
   local p = io.popen("find " .. H.q(dir) .. " -type f 2>/dev/null | sort")
   local out = {}
   for line in p:lines() do out[#out + 1] = line end
   p:close()
   return out
end

describe("moonhub.data #integration", function()
   local home, reg
   before_each(function()
      home = H.tmpdir()
      reg = assert(registry.open(home))
   end)
   after_each(function()
      reg:close()
      H.rmdir(home)
   end)

   local function import(name, text, opts)
      local path = home .. "/" .. name .. ((opts and opts.ext) or ".jsonl")
      H.write(path, text)
      local o = { reg = reg, name = name }
      for k, v in pairs(opts or {}) do if k ~= "ext" then o[k] = v end end
      return data.import(path, o)
   end

   it("imports a file as a version and opens it by name, version and id", function()
      local ds = assert(import("qa", jsonl({ '{"prompt": "2+2?", "completion": "4", "topic": "math"}',
         '{"completion": "blue", "prompt": "sky?"}' })))
      assert.equal("qa@1", ds:ref())
      assert.same({ "completion", 2, "import" }, { ds.kind, ds.rows, ds.op })
      assert.equal(require("moonhub.hub").sha256_file(ds.path), ds.sha256)
      local back = assert(data.open(reg, "qa"))
      assert.equal(ds.id, back.id)
      assert.same({ { prompt = "2+2?", completion = "4", topic = "math" }, { prompt = "sky?", completion = "blue" } },
         back:read())
      assert.equal(ds.id, reg:dataset_version(ds.id).id)
      -- the same content again is the same version; new content is version 2
      local again = assert(import("qa", jsonl({ '{"prompt": "2+2?", "completion": "4", "topic": "math"}',
         '{"prompt": "sky?", "completion": "blue"}' })))
      assert.same({ ds.id, true }, { again.id, again.existing })
      local v2 = assert(import("qa", jsonl({ '{"prompt": "3+3?", "completion": "6"}' })))
      assert.equal("qa@2", v2:ref())
      assert.equal(ds.id, assert(data.open(reg, "qa@1")).id)
      assert.equal(v2.id, assert(data.open(reg, "qa")).id)
   end)

   it("registers nothing when a row is bad or registration fails", function()
      local ds, err, problems = import("bad", jsonl({ '{"text": "fine"}', '{"text": ', '{"text": ""}' }))
      assert.is_nil(ds)
      assert.equal("2 of 3 rows have problems (first: row 2: bad JSON: value expected at line 1, column 10); "
         .. "'moonhub data validate FILE' lists them all, --skip-invalid imports the rest", err)
      assert.same({ 2, 3 }, { problems[1].row, problems[2].row })
      assert.same({}, reg:datasets())
      assert.same({}, files_under(home .. "/datasets"))
      -- a failure past the file write: the file goes again, no row stays
      local real = reg.add_dataset_version
      reg.add_dataset_version = function() error("injected: database is full", 0) end
      ds, err = import("late", jsonl({ '{"text": "fine"}' }))
      reg.add_dataset_version = real
      assert.is_nil(ds)
      assert.equal("data: cannot register late: injected: database is full", err)
      assert.same({}, reg.db:query("SELECT * FROM dataset_versions"))
      assert.same({}, files_under(home .. "/datasets"))
      -- a temp file a killed writer left behind goes at the next store there
      local dead = io.popen("sh -c 'echo $$'"):read("l")
      H.write(home .. "/datasets/late/import.tmp." .. dead .. ".1", "half a file")
      assert(import("late", jsonl({ '{"text": "fine"}' })))
      assert.equal(1, #files_under(home .. "/datasets/late"))
      -- --skip-invalid keeps the good rows and counts the rest
      local ok, info = import("bad", jsonl({ '{"text": "fine"}', '{"text": ', '{"text": ""}' }),
         { skip_invalid = true })
      assert.same({ 1, 2 }, { ok.rows, info.skipped })
   end)

   it("answers unknown datasets, versions and splits with one line", function()
      assert.same({ nil, "no dataset named 'nope' (see 'moonhub data list')" }, { data.open(reg, "nope") })
      assert(import("x", jsonl({ '{"text": "t"}' })))
      assert.same({ nil, "dataset 'x' has no version 7" }, { data.open(reg, "x@7") })
      assert.same({ nil, "dataset 'x' version 1 has no train split (make one with 'moonhub data split x')" },
         { data.open(reg, "x:train") })
      assert.same({ nil, "unknown split 'dev' in 'x:dev' (train, val or test)" }, { data.open(reg, "x:dev") })
      assert.same({ nil, "'x/y' is not a dataset reference NAME[@VERSION][:SPLIT]" }, { data.open(reg, "x/y") })
      assert.same({ nil, "no dataset named 'nope' (see 'moonhub data list')" }, { data.split(reg, "nope", {}) })
      assert.same({ nil, "no dataset named 'nope' (see 'moonhub data list')" }, { data.remove(reg, "nope") })
   end)

   it("splits by fractions, the same way for the same seed", function()
      local src = assert(import("lab", labelled(70, 30)))
      local s1 = assert(data.split(reg, "lab", { train = 0.8, val = 0.1, test = 0.1, seed = 1 }))
      assert.same({ 80, 10, 10 }, { s1.train.rows, s1.val.rows, s1.test.rows })
      assert.same({ src.id, "split", 1 }, { s1.train.parent_id, s1.train.op, s1.train.version })
      -- every row lands in exactly one split
      local seen = {}
      for _, s in ipairs({ "train", "val", "test" }) do
         for r in assert(data.open(reg, "lab:" .. s)):iter() do
            assert.is_nil(seen[r.text])
            seen[r.text] = true
         end
      end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.equal(100, n)
      -- again with seed 1: the same files; seed 2: another shuffle
      local again = assert(data.split(reg, "lab@1", { train = 0.8, val = 0.1, test = 0.1, seed = 1 }))
      for _, s in ipairs({ "train", "val", "test" }) do assert.equal(s1[s].sha256, again[s].sha256) end
      assert.equal(again.train.id, assert(data.open(reg, "lab@1:train")).id)   -- the new split replaced the old
      local s2 = assert(data.split(reg, "lab", { seed = 2 }))
      assert.not_equal(s1.train.sha256, s2.train.sha256)
      assert.equal(4, #files_under(home .. "/datasets/lab"))   -- seed 1's split files went with their rows
      -- a split not made again is gone, with its file
      local two = assert(data.split(reg, "lab", { train = 0.5, val = 0.5, test = 0, seed = 2 }))
      assert.is_nil(two.test)
      assert.same({ nil, "dataset 'lab' version 1 has no test split (make one with 'moonhub data split lab')" },
         { data.open(reg, "lab:test") })
      assert.equal(3, #files_under(home .. "/datasets/lab"))
      -- pinned: a split made today is the same split tomorrow (the generator
      -- is the module's own splitmix64, not math.random)
      local again1 = assert(data.split(reg, "lab", { seed = 1 }))
      local val = {}
      for r in again1.val:iter() do val[#val + 1] = r.text end
      assert.same({ "row 98", "row 64", "row 38", "row 14", "row 60", "row 5", "row 57", "row 73", "row 72", "row 89" },
         val)
   end)

   it("keeps each label's share in every split when stratified", function()
      assert(import("lab", labelled(70, 30)))
      local s = assert(data.split(reg, "lab", { train = 0.8, val = 0.1, test = 0.1, seed = 5, stratify = "label" }))
      for name, want in pairs({ train = { a = 56, b = 24 }, val = { a = 7, b = 3 }, test = { a = 7, b = 3 } }) do
         local got = { a = 0, b = 0 }
         for r in s[name]:iter() do got[r.label] = got[r.label] + 1 end
         assert.same(want, got, name)
      end
      -- fractions that do not divide the rows: every row still lands somewhere (largest remainder)
      assert(import("seven", labelled(7, 0)))
      local odd = assert(data.split(reg, "seven", { train = 0.5, val = 0.25, test = 0.25 }))
      assert.same({ 3, 2, 2 }, { odd.train.rows, odd.val.rows, odd.test.rows })
      assert.same({ nil, "--stratify topic: row 1 has no field 'topic'" },
         { data.split(reg, "lab", { stratify = "topic" }) })
      assert.same({ nil, "--train, --val and --test must add up to 1, got 1.1" },
         { data.split(reg, "lab", { train = 0.9, val = 0.1, test = 0.1 }) })
   end)

   it("dedupes exact and normalized repeats into a new version", function()
      local src = assert(import("d", jsonl({ '{"text": "Hello world"}', '{"text": "Hello world"}',
         '{"text": "  hello   WORLD "}', '{"text": "other"}' })))
      local exact = assert(data.dedupe(reg, "d", { normalized = false }))
      assert.same({ 1, 0, 3 }, { exact.exact, exact.normalized, exact.kept })
      local both = assert(data.dedupe(reg, "d@1"))
      assert.same({ 1, 1, 2 }, { both.exact, both.normalized, both.kept })
      assert.same({ "d@3", src.id, "dedupe" }, { both.ds:ref(), both.ds.parent_id, both.ds.op })
      assert.same({ { text = "Hello world" }, { text = "other" } }, both.ds:read())
      local none = assert(data.dedupe(reg, "d"))
      assert.same({ 0, 0, 2 }, { none.exact, none.normalized, none.kept })
      assert.is_nil(none.ds)
   end)

   it("reports PII per kind; redact and drop write a version whose parent is the original", function()
      local src = assert(import("p", jsonl({ '{"text": "mail ann@example.org or 4111 1111 1111 1111"}',
         '{"text": "nothing to see"}', '{"text": "ip 10.1.2.3"}' })))
      local rep = assert(data.pii(reg, "p"))
      assert.same({ email = 1, card = 1, ipv4 = 1 }, rep.counts)
      assert.same({ 2, 3 }, { rep.rows, rep.total })
      assert.is_nil(rep.ds)
      local red = assert(data.pii(reg, "p", { mode = "redact" }))
      assert.same({ "p@2", src.id, "redact" }, { red.ds:ref(), red.ds.parent_id, red.ds.op })
      assert.same({ { text = "mail [EMAIL] or [CARD]" }, { text = "nothing to see" }, { text = "ip [IPV4]" } },
         red.ds:read())
      local drop = assert(data.pii(reg, "p@1", { mode = "drop" }))
      assert.same({ { text = "nothing to see" } }, drop.ds:read())
      assert.equal(src.id, drop.ds.parent_id)
      assert.same({ nil, "unknown PII kind 'mail' (aws_key, github_token, openai_key, email, iban, ssn, card, "
         .. "ipv6, ipv4, phone, secret)" }, { data.pii(reg, "p", { kinds = { mail = true } }) })
   end)

   it("removes a version or a dataset with the files no other version names", function()
      local v1 = assert(import("r", jsonl({ '{"text": "one"}' })))
      local v2 = assert(import("r", jsonl({ '{"text": "two"}' })))
      assert(data.split(reg, "r@1", { train = 1, val = 0, test = 0 }))
      local out = assert(data.remove(reg, "r@1"))
      assert.equal(2, #out.versions)                   -- the version and its split
      assert.is_nil(io.open(v1.path))
      assert.equal(v2.id, assert(data.open(reg, "r")).id)
      assert(data.remove(reg, "r"))
      assert.same({}, reg:datasets())
      assert.same({}, files_under(home .. "/datasets"))
      assert.same({ nil, "remove a whole version (NAME or NAME@VERSION), not a split" },
         { data.remove(reg, "r:train") })
   end)

   it("keeps versions immutable in the database", function()
      local ds = assert(import("i", jsonl({ '{"text": "t"}' })))
      assert.has_error(function() reg.db:exec("UPDATE dataset_versions SET rows = 9 WHERE id = ?", ds.id) end)
      assert.equal(1, reg:dataset_version(ds.id).rows)
      assert.equal("ok", reg:integrity_check())
   end)

   it("encodes rows with a loss mask on the trained tokens (stories260K)", function()
      local path = D.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(require("moonhub").load(path, { ctx = 64 }))
      local tok = m.tokenizer
      local ids, mask = data.encode(m, { prompt = "Once upon", completion = " a time" })
      local on, off = {}, {}
      for i, id in ipairs(ids) do table.insert(mask[i] == 1 and on or off, id) end
      assert.equal("a time", tok:decode(on, { skip_special = true }))   -- the completion and its EOS
      assert.equal(tok.eos, on[#on])
      assert.equal("Once upon", tok:decode(off, { skip_special = true }))
      assert.equal(tok.bos, off[1])
      ids, mask = data.encode(m, { text = "Tom had a dog." })
      assert.same({ tok.bos, 0 }, { ids[1], mask[1] })
      for i = 2, #ids do assert.equal(1, mask[i]) end
      assert.same({ nil, "row is " .. #ids .. " tokens, over the context of 4" },
         { data.encode(m, { text = "Tom had a dog." }, { ctx = 4 }) })
      m:close()
   end)

   it("masks the assistant's turns of a chat through the model's template (mh-smol)", function()
      local path = D.need("models/mh-smol-llama-17m-Q8_0.gguf", pending)
      if not path then return end
      local m = assert(require("moonhub").load(path, { ctx = 128 }))
      local ids, mask = data.encode(m, { messages = { { role = "system", content = "Be brief." },
         { role = "user", content = "Say hi" }, { role = "assistant", content = "Hello there" },
         { role = "user", content = "Again" }, { role = "assistant", content = "Hi again" } } })
      local on, off = {}, {}
      for i, id in ipairs(ids) do table.insert(mask[i] == 1 and on or off, id) end
      local trained = m.tokenizer:decode(on)
      assert.matches("^Hello there<|im_end|>\nHi again<|im_end|>\n$", trained:gsub("%%", ""))
      local prompt = m.tokenizer:decode(off)
      assert.is_nil(prompt:find("Hello", 1, true))
      assert.truthy(prompt:find("Say hi", 1, true) and prompt:find("Be brief.", 1, true))
      m:close()
   end)

   it("ends a chat answer with EOS when the template closes no turn (stories260K has none)", function()
      local path = D.need("models/stories260K.gguf", pending)
      if not path then return end
      local m = assert(require("moonhub").load(path, { ctx = 128 }))
      local tok = m.tokenizer
      local ids, mask = data.encode(m, { messages = { { role = "user", content = "Say hi" },
         { role = "assistant", content = "Hello there" } } })
      assert.same({ tok.eos, 1 }, { ids[#ids], mask[#ids] })
      local on = {}
      for i, id in ipairs(ids) do if mask[i] == 1 then on[#on + 1] = id end end
      assert.matches("Hello there$", tok:decode(on, { skip_special = true }))
      -- a row ending on the user's turn learns nothing more
      local ids2, mask2 = data.encode(m, { messages = { { role = "user", content = "Say hi" } } })
      assert.equal(0, mask2[#ids2])
      m:close()
   end)

   it("validates rows against a real model's context", function()
      local path = D.need("models/stories260K.gguf", pending)
      if not path then return end
      assert(import("v", jsonl({ '{"text": "Tom"}', '{"text": "Tom had a big red ball and a small blue cup."}' })))
      local res = assert(data.validate(reg, "v", { model = path, ctx = 8 }))
      assert.equal(2, res.total)
      assert.equal(1, #res.problems)
      assert.equal(2, res.problems[1].row)
      assert.matches("^row is %d+ tokens, over the context of 8$", res.problems[1].msg)
      assert.same({}, assert(data.validate(reg, "v", { model = path })).problems)   -- trained context 2048
      assert.same({ nil, "no dataset named 'w' (see 'moonhub data list')" }, { data.validate(reg, "w", {}) })
      assert.same({ nil, "--ctx needs --model (a context is counted in a model's tokens)" },
         { data.validate(reg, "v", { ctx = 8 }) })
      -- a file is checked before import; file = false (HTTP) never reads one
      local f = home .. "/f.jsonl"
      H.write(f, '{"text": ""}\n')
      assert.same({ { row = 1, msg = "empty text" } }, assert(data.validate(reg, f)).problems)
      assert.is_nil(data.validate(reg, f, { file = false }))
   end)
end)
