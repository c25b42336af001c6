-- Specs for moonhub.data.csv (RFC 4180 records through LPeg) and the row
-- reader over it (moonhub.data.rows with a column map). Layer: tests (pure).
local csv = require "moonhub.data.csv"
local rows = require "moonhub.data.rows"

describe("moonhub.data.csv #unit", function()
   it("keeps commas, doubled quotes and newlines inside quoted fields", function()
      local recs = assert(csv.parse('a,b,c\n"x, y","say ""hi""","two\nlines"\r\n,"",plain\n'))
      assert.same({ { "a", "b", "c" }, { "x, y", 'say "hi"', "two\nlines" }, { "", "", "plain" } }, recs)
   end)

   it("takes CRLF and LF endings, a missing last newline, blank lines and a BOM", function()
      assert.same({ { "h" }, { "1" }, { "2" } }, assert(csv.parse("\239\187\191h\r\n1\r\n\r\n2")))
      assert.same({ { "a", "b" }, { "", "" } }, assert(csv.parse("a,b\n,\n")))
      assert.same({ { "q" }, { "line\r\nbreak" } }, assert(csv.parse('q\r\n"line\r\nbreak"\r\n')))
   end)

   it("refuses a stray or unclosed quote with its line", function()
      local r, err = csv.parse('a,b\nx"y,1\n')
      assert.is_nil(r)
      assert.matches("CSV line 2: a quote that is not a whole field", err, 1, true)
      r, err = csv.parse('a,b\n1,2\n"open,3\n4,5\n')
      assert.is_nil(r)
      assert.matches("CSV line 3", err, 1, true)
      r, err = csv.parse('a\n"done"junk\n')
      assert.is_nil(r)
      assert.matches("CSV line 2", err, 1, true)
   end)

   it("maps records to the header and refuses a ragged record or a bad header", function()
      local header, list = csv.rows('q,a\n"1,5",x\n2,y\n')
      assert.same({ "q", "a" }, header)
      assert.same({ { q = "1,5", a = "x" }, { q = "2", a = "y" } }, list)
      assert.same({ nil, "CSV record 2 has 3 fields, the header has 2" }, { csv.rows("q,a\n1,2\n1,2,3\n") })
      assert.same({ nil, "CSV header: column 'q' appears twice" }, { csv.rows("q,q\n1,2\n") })
      assert.same({ nil, "CSV file is empty (expected a header line)" }, { csv.rows("") })
   end)

   it("reads CSV rows through a column map into completion or chat rows", function()
      local text = 'question,answer,topic\n"What is 2+2, exactly?","It is ""4""\nof course",math\n'
      local map = assert(rows.parse_map("prompt=question,completion=answer"))
      local res = assert(rows.read(text, { format = "csv", map = map }))
      assert.equal("completion", res.kind)
      assert.same({ { prompt = "What is 2+2, exactly?", completion = 'It is "4"\nof course', topic = "math" } },
         res.rows)
      res = assert(rows.read(text, { format = "csv", map = rows.parse_map("user=question,assistant=answer") }))
      assert.equal("chat", res.kind)
      assert.same({ { role = "user", content = "What is 2+2, exactly?" },
         { role = "assistant", content = 'It is "4"\nof course' } }, res.rows[1].messages)
      -- a mapped column that is not there is a problem of every row
      res = assert(rows.read(text, { format = "csv", map = rows.parse_map("prompt=q,completion=answer") }))
      assert.same({ { row = 1, msg = "missing field 'q' (a completion row has prompt and completion)" } }, res.problems)
      assert.same({ nil, "--map: unknown field 'answer' (prompt, completion, text, or system, user, "
         .. "assistant for chat)" },
         { rows.parse_map("answer=x") })
   end)
end)
