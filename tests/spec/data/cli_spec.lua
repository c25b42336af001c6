-- Specs for `moonhub data ...` as a user runs it: output lines, exit codes,
-- one-line errors, the progress line and --quiet. Layer: tests (runs the
-- moonhub binary with a temporary MOONHUB_HOME).
local H = require "helpers.host"
local D = require "helpers.data"

describe("moonhub data #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   local function file(name, text)
      H.write(home .. "/" .. name, text)
      return H.q(home .. "/" .. name)
   end

   it("imports a CSV with quoted fields through --map, with a progress line unless --quiet", function()
      local f = file("qa.csv", 'question,answer,topic\n"Hi, you?","Fine, ""thanks""\nand you?",x\nq2,a2,y\n')
      local out, err, code = H.run(home, "data import " .. f .. " --map prompt=question,completion=answer")
      assert.equal(0, code, err)
      assert.matches("^imported qa@1: 2 completion rows, %d+ B, sha256 %x+\n$", out)
      assert.matches("import .*qa.csv 100.0%% 2/2 rows", err)
      out = H.run(home, "data preview qa -n 1")
      assert.equal('--- row 1\n[prompt] Hi, you?\n[completion] Fine, "thanks"\nand you?\n', out:match("\n(.*)$"))
      out, err, code = H.run(home, "data import -q " .. f .. " --map prompt=question,completion=answer")
      assert.same({ 0, "" }, { code, err })
      assert.matches("^unchanged %(this content is already qa@1", out)
   end)

   it("fails a bad file with its rows, registers nothing, and says so in one line for unknown names", function()
      local f = file("bad.jsonl", '{"text": "ok"}\n{"text": 3}\n{"txt": "x"}\n')
      local out, err, code = H.run(home, "data import -q " .. f)
      assert.same({ 1, "" }, { code, out })
      assert.equal("  row 2: text must be a string\n  row 3: missing fields: a row has 'messages', 'prompt' and "
         .. "'completion', or 'text' (a --map renames other columns)\nmoonhub data import: 2 of 3 rows have "
         .. "problems (first: row 2: text must be a string); 'moonhub data validate FILE' lists them all, "
         .. "--skip-invalid imports the rest\n", err)
      out = H.run(home, "data list")
      assert.equal("no datasets yet: try 'moonhub data import FILE.jsonl'\n", out)
      out, err, code = H.run(home, "data validate " .. f)
      assert.equal("", err)
      assert.equal(1, code)
      assert.matches("^row 2: text must be a string\nrow 3: missing fields", out)
      assert.matches("bad.jsonl: 3 rows, 2 problems\n$", out)
      for _, verb in ipairs({ "preview", "stats", "pii", "split", "dedupe", "validate", "rm", "show" }) do
         out, err, code = H.run(home, "data " .. verb .. " nope")
         assert.same({ 1, "", "moonhub data " .. verb .. ": no dataset named 'nope' (see 'moonhub data list')\n" },
            { code, out, err })
      end
   end)

   it("reports PII, splits, dedupes, draws the length histogram and lists", function()
      local rows = {}
      for i = 1, 20 do
         rows[i] = string.format('{"text": "%s", "label": "%s"}', ("word "):rep(i), i % 2 == 0 and "even" or "odd")
      end
      rows[21] = '{"text": "reach me at kim@example.com", "label": "odd"}'
      rows[22] = '{"text": "reach me at kim@example.com", "label": "odd"}'
      assert.equal(0, select(3, H.run(home, "data import -q " .. file("w.jsonl", table.concat(rows, "\n")))))
      local out, _, code = H.run(home, "data pii w")
      assert.equal(0, code)
      assert.equal("email         2\n  row 21: email kim**********om\n  row 22: email kim**********om\n"
         .. "w@1: 2 of 22 rows hold PII\n", out)
      out = H.run(home, "data pii w --mode redact")
      assert.matches("redacted: w@2: 22 text rows", out)
      out = H.run(home, "data dedupe w")
      assert.matches("^w@2: 1 exact and 0 normalized duplicates, 21 rows kept\nnew version w@3: 21 text rows", out)
      out = H.run(home, "data split w --train 0.5 --val 0.5 --test 0 --seed 3 --stratify label")
      assert.matches("^w@3:train: 11 text rows.*\nw@3:val: 10 text rows.*\ntest: no rows\n"
         .. "split w@3 %(seed 3, stratified by label%)\n$", out)
      out = H.run(home, "data stats w@3:train")
      assert.matches("length in characters: min %d+", out)
      assert.matches("\n +%d+%-%d+ | #+ +%d+\n", out)
      out = H.run(home, "data list")
      assert.matches("\nw +3 text +21 +[%d.]+ %a*B +train,val ", out)
      out = H.run(home, "data show w")
      assert.matches("^w@3: 21 text rows, [^\n]*%[dedupe of w@2, [^\n]*\n"
         .. "w@3:train: 11 text rows, [^\n]*%[split of w@3, [^\n]*\n"
         .. "w@3:val: 10 text rows, [^\n]*%[split of w@3, [^\n]*\n"
         .. "w@2: 22 text rows, [^\n]*%[redact of w@1, [^\n]*\n"
         .. "w@1: 22 text rows, [^\n]*%[import, [^\n]*\n$", out)
      out = H.run(home, "data rm w@1")
      assert.matches("^removed w@1\n  deleted ", out)
   end)

   it("validates rows over a model's context (stories260K)", function()
      local model = D.need("models/stories260K.gguf", pending)
      if not model then return end
      local f = file("s.jsonl", '{"text": "Tom"}\n{"text": "Tom had a big red ball and a small blue cup."}\n')
      local out, _, code = H.run(home, "data import -q " .. f .. " --name s --model " .. H.q(model))
      assert.equal(0, code)
      assert.matches("\ntokens %(stories260K.gguf%): %d+ in all, per row min %d+, mean [%d.]+, p50 %d+, p95 %d+, "
         .. "max %d+\n$", out)
      out, _, code = H.run(home, "data validate s --model " .. H.q(model) .. " --ctx 8")
      assert.equal(1, code)
      assert.matches("^row 2: row is %d+ tokens, over the context of 8\ns@1: 2 rows, 1 problems %(context 8%)\n$", out)
      out, _, code = H.run(home, "data validate s --model " .. H.q(model))
      assert.same({ 0, "s@1: 2 rows, 0 problems (context 2048)\n" }, { code, out })
   end)
end)
