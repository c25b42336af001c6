-- moonhub.repl_lex: rewrites a REPL chunk so that its top-level `local`
-- declarations become assignments to the REPL's environment, which is what
-- makes `local mh = require "moonhub"` visible on the next line.
-- Layer: lua/moonhub (pure Lua; a small Lua tokenizer, no loading).
local M = {}

-- The position just past a long bracket opened at i ("[==[" ... "]==]").
local function long_end(src, i, level)
   local _, e = src:find("]" .. level .. "]", i, true)
   return (e or #src) + 1
end

-- Names, keywords and operators with their positions; strings, comments
-- and numbers are skipped (a `local` inside them is no declaration).
function M.tokens(src)
   local toks, i, n = {}, 1, #src
   while i <= n do
      local c = src:sub(i, i)
      if c:match("%s") then
         i = i + 1
      elseif src:find("^%-%-", i) then
         local level = src:match("^%-%-%[(=*)%[", i)
         if level then i = long_end(src, i, level)
         else i = (src:find("\n", i, true) or n) + 1 end
      elseif c == '"' or c == "'" then
         local j = i + 1
         while j <= n and src:sub(j, j) ~= c do
            j = j + (src:sub(j, j) == "\\" and 2 or 1)
         end
         i = j + 1
      elseif src:find("^%[=*%[", i) then
         i = long_end(src, i, src:match("^%[(=*)%[", i))
      elseif c:match("[%a_]") then
         local s, e = src:find("^[%w_]+", i)
         toks[#toks + 1] = { name = true, text = src:sub(s, e), s = s, e = e }
         i = e + 1
      elseif c:match("%d") then
         i = select(2, src:find("^[%w_.]+", i)) + 1   -- 1e-5 splits harmlessly
      else
         local op = src:match("^[=~<>]=", i) or src:match("^%.%.%.?", i)
            or src:match("^::", i) or c
         toks[#toks + 1] = { text = op, s = i, e = i + #op - 1 }
         i = i + #op
      end
   end
   return toks
end

local OPEN = { ["function"] = true, ["do"] = true, ["if"] = true, ["repeat"] = true }
local CLOSE = { ["end"] = true, ["until"] = true }

-- Edits for the declaration whose `local` is toks[k]: drop the keyword and
-- any <attrib>, and give a bare `local x` its nil.
local function declaration(toks, k, edits)
   local t = toks[k]
   edits[#edits + 1] = { t.s, t.e, "" }
   local j = k + 1
   if toks[j] and toks[j].text == "function" then return end
   local last
   while toks[j] and toks[j].name do
      last = toks[j]
      j = j + 1
      if toks[j] and toks[j].text == "<" and toks[j + 2] and toks[j + 2].text == ">" then
         edits[#edits + 1] = { toks[j].s, toks[j + 2].e, "" }
         j = j + 3
      end
      if not (toks[j] and toks[j].text == ",") then break end
      j = j + 1
   end
   if last and not (toks[j] and toks[j].text == "=") then
      edits[#edits + 1] = { last.e + 1, last.e, " = nil" }
   end
end

--- rewrite(src) -> src with its top-level (not nested in any block) `local`
-- declarations turned into plain assignments; the rest is left as it is.
function M.rewrite(src)
   local toks, edits, depth = M.tokens(src), {}, 0
   for k, t in ipairs(toks) do
      if t.name then
         if OPEN[t.text] then depth = depth + 1
         elseif CLOSE[t.text] then depth = depth - 1
         elseif t.text == "local" and depth == 0 then declaration(toks, k, edits) end
      end
   end
   for i = #edits, 1, -1 do
      local s, e, text = edits[i][1], edits[i][2], edits[i][3]
      src = src:sub(1, s - 1) .. text .. src:sub(e + 1)
   end
   return src
end

return M
