-- moonhub.data.csv: CSV text -> records, an LPeg grammar after RFC 4180:
-- quoted fields hold commas, CRLF/LF newlines and "" for a quote; records
-- end at CRLF or LF. Layer: lua/moonhub (pure Lua over lua-lpeg).
local lpeg = require "lpeg"

local P, C, Cs, Ct, Cp = lpeg.P, lpeg.C, lpeg.Cs, lpeg.Ct, lpeg.Cp

local M = {}

local sep = lpeg.S(",")
local eol = P("\r\n") + P("\n") + P("\r")
local quoted = P('"') * Cs(((P('""') / '"') + (1 - P('"'))) ^ 0) * P('"')
local plain = C((1 - (sep + eol + P('"'))) ^ 0)
local field = quoted + plain
-- a record and where it ended; a stray quote leaves the field unfinished
local record = Ct(field * (sep * field) ^ 0) * Cp()

-- where a record may go wrong: its line for the message
local function line_of(text, pos)
   local n = 1
   for _ in text:sub(1, pos - 1):gmatch("\n") do n = n + 1 end
   return n
end

-- parse(text) -> {records...} (each a list of strings) | nil, msg. Blank
-- lines between records are skipped; a field with a stray or unclosed
-- quote is an error naming its line.
function M.parse(text)
   if type(text) ~= "string" then error("csv.parse: text must be a string, got " .. type(text), 2) end
   if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end   -- a UTF-8 BOM
   local out, pos = {}, 1
   while pos <= #text do
      local e = eol:match(text, pos)
      if e then
         pos = e                                 -- a blank line
      else
         local rec, after = record:match(text, pos)
         local nxt = after and (eol:match(text, after) or (after > #text and after))
         if not nxt then
            return nil, string.format("CSV line %d: a quote that is not a whole field "
               .. "(quote the field and double the quotes inside: \"a \"\"b\"\"\")", line_of(text, after or pos))
         end
         out[#out + 1] = rec
         pos = nxt
      end
   end
   return out
end

-- rows(text) -> header, {{[column] = value}...}, line numbers | nil, msg.
-- The first record names the columns; a record with another field count
-- is an error naming its record number.
function M.rows(text)
   local recs, err = M.parse(text)
   if not recs then return nil, err end
   if #recs == 0 then return nil, "CSV file is empty (expected a header line)" end
   local header = recs[1]
   local seen = {}
   for i, h in ipairs(header) do
      if h == "" then return nil, string.format("CSV header: column %d has no name", i) end
      if seen[h] then return nil, string.format("CSV header: column '%s' appears twice", h) end
      seen[h] = true
   end
   local rows = {}
   for i = 2, #recs do
      local r = recs[i]
      if #r ~= #header then
         return nil, string.format("CSV record %d has %d fields, the header has %d", i - 1, #r, #header)
      end
      local row = {}
      for j, h in ipairs(header) do row[h] = r[j] end
      rows[#rows + 1] = row
   end
   return header, rows
end

return M
