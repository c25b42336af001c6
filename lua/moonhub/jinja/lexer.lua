-- moonhub.jinja.lexer: splits a Jinja template into text and tag tokens
-- (with whitespace control, trim_blocks, lstrip_blocks, raw blocks and
-- comments applied) and tokenizes the expressions inside tags.
-- Layer: lua/moonhub (pure Lua, no dependencies).
local M = {}

local function fail(line, msg)
   error(string.format("jinja: line %d: %s", line, msg), 0)
end
M.fail = fail

local function line_of(src, pos)
   local n = 1
   for _ in src:sub(1, pos - 1):gmatch("\n") do n = n + 1 end
   return n
end

-- Finds the end of a tag body starting at pos, skipping quoted strings so
-- that `{{ '}}' }}` works, and braces of dict literals inside {{ }}. Returns the index of the closing delimiter.
local function find_close(src, pos, close)
   local i, n, depth = pos, #src, 0
   while i <= n do
      local c = src:sub(i, i)
      if close == "}}" and c == "{" then
         depth, i = depth + 1, i + 1
      elseif close == "}}" and c == "}" and depth > 0 then
         depth, i = depth - 1, i + 1
      elseif c == "'" or c == '"' then
         local j = i + 1
         while j <= n and src:sub(j, j) ~= c do
            if src:sub(j, j) == "\\" then j = j + 1 end
            j = j + 1
         end
         i = j + 1
      elseif src:sub(i, i + #close - 1) == close then
         return i
      else
         i = i + 1
      end
   end
   return nil
end

local CLOSE = { ["{"] = "}}", ["%"] = "%}", ["#"] = "#}" }

-- Raw tokens: { kind = "text"|"var"|"block"|"comment", body, line,
-- lmod, rmod, start } where lmod/rmod are "-", "+" or "".
local function scan(src)
   local toks, pos = {}, 1
   while true do
      local s = src:find("{[{%%#]", pos)
      if not s then
         toks[#toks + 1] = { kind = "text", body = src:sub(pos), start = pos }
         break
      end
      toks[#toks + 1] = { kind = "text", body = src:sub(pos, s - 1), start = pos }
      local opener = src:sub(s + 1, s + 1)
      local close = CLOSE[opener]
      local line = line_of(src, s)
      local bstart, lmod = s + 2, ""
      local m = src:sub(bstart, bstart)
      if m == "-" or m == "+" then lmod, bstart = m, bstart + 1 end
      local e
      if opener == "#" then e = src:find("#}", bstart, true) else e = find_close(src, bstart, close) end
      if not e then fail(line, "unclosed '{" .. opener .. "' tag") end
      local bend, rmod = e - 1, ""
      local r = src:sub(bend, bend)
      if (r == "-" or r == "+") and bend >= bstart then rmod, bend = r, bend - 1 end
      local kind = (opener == "{" and "var") or (opener == "%" and "block") or "comment"
      local tok = { kind = kind, body = src:sub(bstart, bend), line = line,
                    lmod = lmod, rmod = rmod, start = s }
      pos = e + 2
      if kind == "block" and tok.body:match("^%s*raw%s*$") then
         -- everything up to {% endraw %} is literal text
         local rs, re_, inner_l, inner_r
         local p = pos
         while true do
            rs = src:find("{%", p, true)
            if not rs then fail(line, "unclosed 'raw' block") end
            local a, b, l2, r2 = src:find("^{%%([%-+]?)%s*endraw%s*([%-+]?)%%}", rs)
            if a then re_, inner_l, inner_r = b, l2, r2 break end
            p = rs + 2
         end
         toks[#toks + 1] = tok
         toks[#toks + 1] = { kind = "rawtext", body = src:sub(pos, rs - 1), start = pos }
         toks[#toks + 1] = { kind = "endraw", line = line_of(src, rs), lmod = inner_l,
                             rmod = inner_r, start = rs }
         pos = re_ + 1
      else
         toks[#toks + 1] = tok
      end
   end
   return toks
end

-- Applies Jinja's whitespace rules to the text between tags, the way
-- jinja2's lexer does (HF sets trim_blocks and lstrip_blocks).
function M.split(src, opts)
   opts = opts or {}
   src = src:gsub("\r\n", "\n")
   if not opts.keep_trailing_newline and src:sub(-1) == "\n" then src = src:sub(1, -2) end
   local toks = scan(src)
   local out = {}
   for i, t in ipairs(toks) do
      if t.kind == "text" or t.kind == "rawtext" then
         local text = t.body
         local prev, nxt = toks[i - 1], toks[i + 1]
         if prev and prev.rmod == "-" then
            text = text:gsub("^%s+", "")
         elseif prev and opts.trim_blocks and prev.rmod ~= "+" and prev.kind ~= "var" then
            text = text:gsub("^\n", "")
         end
         if nxt and nxt.lmod == "-" then
            text = text:gsub("%s+$", "")
         elseif nxt and opts.lstrip_blocks and nxt.lmod ~= "+" and nxt.kind ~= "var" then
            -- only whitespace between the start of the line and the tag
            local tail = t.body:match("\n([^\n]*)$") or (t.start == 1 and t.body) or ""
            if tail ~= "" and tail:match("^[ \t]+$") then
               text = text:gsub("[ \t]+$", "")
            end
         end
         if text ~= "" then out[#out + 1] = { kind = "text", body = text } end
      elseif t.kind == "var" or t.kind == "block" then
         out[#out + 1] = t
      elseif t.kind == "endraw" then
         out[#out + 1] = { kind = "block", body = "endraw", line = t.line }
      end
   end
   return out
end

-- ===== expression tokens =====

local ESC = { n = "\n", t = "\t", r = "\r", ["\\"] = "\\", ["'"] = "'", ['"'] = '"',
              ["0"] = "\0", a = "\a", b = "\b", f = "\f", v = "\v" }

local function read_string(s, i, line)
   local q, j, buf = s:sub(i, i), i + 1, {}
   while true do
      local c = s:sub(j, j)
      if c == "" then fail(line, "unterminated string literal") end
      if c == q then break end
      if c == "\\" then
         local d = s:sub(j + 1, j + 1)
         if d == "u" or d == "x" or d == "U" then
            local len = (d == "x" and 2) or (d == "u" and 4) or 8
            local hex = s:sub(j + 2, j + 1 + len)
            if not hex:match("^%x+$") or #hex ~= len then fail(line, "bad \\" .. d .. " escape") end
            buf[#buf + 1] = utf8.char(tonumber(hex, 16))
            j = j + 2 + len
         elseif ESC[d] then
            buf[#buf + 1] = ESC[d]; j = j + 2
         else
            buf[#buf + 1] = "\\" .. d; j = j + 2
         end
      else
         buf[#buf + 1] = c; j = j + 1
      end
   end
   return table.concat(buf), j + 1
end

local OPS3 = { ["**"] = true, ["//"] = true, ["=="] = true, ["!="] = true, ["<="] = true, [">="] = true }
local OPS1 = "+-*/%~<>()[]{},.:|="

-- Tokens: { t = "name"|"str"|"num"|"op", v = value }.
function M.tokens(s, line)
   local toks, i, n = {}, 1, #s
   while i <= n do
      local c = s:sub(i, i)
      if c:match("%s") then
         i = i + 1
      elseif c:match("[%a_]") then
         local w = s:match("^[%w_]+", i)
         toks[#toks + 1] = { t = "name", v = w }
         i = i + #w
      elseif c:match("%d") then
         local num = s:match("^%d[%d_]*%.%d[%d_]*[eE][%+%-]?%d+", i) or s:match("^%d[%d_]*%.%d[%d_]*", i)
            or s:match("^%d[%d_]*[eE][%+%-]?%d+", i)
         local v
         if num then
            v = tonumber((num:gsub("_", "")))
            v = v + 0.0
         else
            num = s:match("^%d[%d_]*", i)
            v = math.tointeger(tonumber((num:gsub("_", ""))))
         end
         toks[#toks + 1] = { t = "num", v = v }
         i = i + #num
      elseif c == "'" or c == '"' then
         local str, j = read_string(s, i, line)
         toks[#toks + 1] = { t = "str", v = str }
         i = j
      elseif OPS3[s:sub(i, i + 1)] then
         toks[#toks + 1] = { t = "op", v = s:sub(i, i + 1) }
         i = i + 2
      elseif OPS1:find(c, 1, true) then
         toks[#toks + 1] = { t = "op", v = c }
         i = i + 1
      else
         fail(line, "unexpected character '" .. c .. "' in expression")
      end
   end
   return toks
end

return M
