-- Specs for moonhub.data.rows: shape detection and every row problem, by
-- row number, on JSONL text the tests write. Layer: tests (pure).
local rows = require "moonhub.data.rows"

local function chat(...)
   local msgs = {}
   for i, m in ipairs({ ... }) do
      msgs[i] = string.format('{"role":"%s","content":"%s"}', m[1], m[2])
   end
   return '{"messages":[' .. table.concat(msgs, ",") .. ']}'
end

describe("moonhub.data.rows #unit", function()
   it("detects chat, completion and text rows and keeps extra scalar fields", function()
      local res = assert(rows.read(chat({ "system", "be brief" }, { "user", "hi" }, { "assistant", "hello" }) .. "\n"))
      assert.equal("chat", res.kind)
      assert.same({ { role = "system", content = "be brief" }, { role = "user", content = "hi" },
         { role = "assistant", content = "hello" } }, res.rows[1].messages)
      res = assert(rows.read('{"prompt":"p","completion":"c","label":"x","n":2,"skip":{"a":1}}\n'))
      assert.equal("completion", res.kind)
      assert.same({ prompt = "p", completion = "c", label = "x", n = 2 }, res.rows[1])
      res = assert(rows.read('\239\187\191{"text":"t"}'))      -- a UTF-8 BOM first (dkjson skips it)
      assert.equal("text", res.kind)
      assert.equal(1, #res.rows)
   end)

   it("lists every malformed row by its line number", function()
      local text = table.concat({
         chat({ "user", "hi" }, { "assistant", "yo" }),          -- 1 good
         '{"messages": [{"role": "user", "content": "x"}',         -- 2 bad JSON
         "",                                                       -- 3 blank: skipped
         '["not", "an", "object"]',                                -- 4
         '{"prompt": "only a prompt"}',                            -- 5
         chat({ "user", "hi" }, { "bot", "yo" }),                  -- 6 unknown role
         chat({ "user", "   " }, { "assistant", "yo" }),           -- 7 empty content
         chat({ "assistant", "yo" }, { "user", "hi" }),            -- 8 wrong order
         chat({ "user", "a" }, { "user", "b" }, { "assistant", "c" }),   -- 9 two users
         chat({ "user", "hi" }),                                   -- 10 no answer
         '{"text": "a text row"}',                                 -- 11 other kind
         '{"messages": {"role": "user"}}',                         -- 12 not an array
         '{"title": "no known field"}',                            -- 13
         '{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":null}]}',   -- 14
         chat({ "user", "q" }, { "system", "late" }, { "assistant", "a" }),                   -- 15
         '{"prompt": "p", "completion": ""}',                      -- 16
      }, "\n")
      local res = assert(rows.read(text))
      assert.equal("chat", res.kind)
      assert.equal(1, #res.rows)
      assert.equal(15, res.total)
      local got = {}
      for _, p in ipairs(res.problems) do got[#got + 1] = { p.row, p.msg } end
      assert.same({
         { 2, "bad JSON: unterminated array at line 1, column 14" },
         { 4, "not a JSON object" },
         { 5, "missing field 'completion' (a completion row has prompt and completion)" },
         { 6, "message 2 has unknown role 'bot' (system, user, assistant)" },
         { 7, "message 1 (user) has empty content" },
         { 8, "message 1: assistant after nothing (expected: system first, then user and assistant in turn)" },
         { 9, "message 2: user after user (expected: system first, then user and assistant in turn)" },
         { 10, "the last message is user's; a row ends with the assistant's answer" },
         { 11, "a text row in a chat dataset (rows 1 on are chat rows)" },
         { 12, "'messages' must be an array of {role, content}" },
         { 13, "missing fields: a row has 'messages', 'prompt' and 'completion', or 'text' "
            .. "(a --map renames other columns)" },
         { 14, "message 2 (assistant) has no content" },
         { 15, "message 2: system after user (expected: system first, then user and assistant in turn)" },
         { 16, "empty completion" },
      }, got)
   end)

   it("writes equal rows as equal bytes whatever order their keys came in", function()
      local a = assert(rows.read('{"label":"x","completion":"c","prompt":"p","id":1}')).rows[1]
      local b = assert(rows.read('{"id":1,"prompt":"p","completion":"c","label":"x"}')).rows[1]
      assert.equal(rows.encode(a), rows.encode(b))
      assert.equal('{"prompt":"p","completion":"c","id":1,"label":"x"}', rows.encode(a))
   end)

   it("tells CSV from JSONL by extension, else by the first byte", function()
      assert.equal("csv", rows.format_of("x.CSV", "{"))
      assert.equal("jsonl", rows.format_of("x.ndjson", "a,b"))
      assert.equal("jsonl", rows.format_of("upload", '  {"text": 1}'))
      assert.equal("csv", rows.format_of("upload", "text\n"))
   end)
end)
