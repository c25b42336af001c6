-- moonhub.jinja.ops: Python semantics the renderer needs: attribute and
-- item access (with str/dict methods), slicing, arithmetic, comparison,
-- iteration. Errors are plain messages; the renderer adds the line.
-- Layer: lua/moonhub (pure Lua; uses moonhub.jinja.value).
local V = require "moonhub.jinja.value"

local M = {}
local kind, str, undef = V.kind, V.str, V.undef

M.FUNC_MT = { __jinja = "func" }
M.NS_MT = { __jinja = "ns" }
M.LOOP_MT = { __jinja = "loop" }

--- A Jinja-callable: fn(args, kw, state) -> value.
function M.callable(name, fn) return setmetatable({ name = name, fn = fn }, M.FUNC_MT) end

--- Positional-or-keyword argument i/name, or default.
function M.arg(args, kw, i, name, default)
   local v = args[i]
   if v == nil and name then v = kw[name] end
   if v == nil then return default end
   return v
end
local arg = M.arg

-- ===== strings =====

--- The characters of s (code points when s is valid UTF-8, else bytes).
function M.chars(s)
   local out = {}
   if not s:find("[\128-\255]") or not utf8.len(s) then
      for i = 1, #s do out[i] = s:sub(i, i) end
   else
      for _, c in utf8.codes(s) do out[#out + 1] = utf8.char(c) end
   end
   return out
end

function M.strlen(s)
   return utf8.len(s) or #s
end

local function char_set(chars)
   local set = {}
   for _, c in ipairs(M.chars(chars)) do set[c] = true end
   return set
end

local WS = { [" "] = true, ["\t"] = true, ["\n"] = true, ["\r"] = true, ["\f"] = true, ["\v"] = true }

--- Python str.strip/lstrip/rstrip (chars: a set string or nil for whitespace).
function M.strip(s, chars, left, right)
   local set = WS
   if chars ~= nil and kind(chars) ~= "none" then set = char_set(chars) end
   local cs = M.chars(s)
   local i, j = 1, #cs
   if left then while i <= j and set[cs[i]] do i = i + 1 end end
   if right then while j >= i and set[cs[j]] do j = j - 1 end end
   return table.concat(cs, "", i, j)
end

function M.split(s, sep, maxsplit)
   local out = V.list()
   maxsplit = maxsplit or -1
   if sep == nil or kind(sep) == "none" then
      local pos = 1
      while true do
         local i, j = s:find("%S+", pos)
         if not i then break end
         if maxsplit >= 0 and #out == maxsplit then
            out[#out + 1] = s:sub(i)
            return out
         end
         out[#out + 1] = s:sub(i, j)
         pos = j + 1
      end
      return out
   end
   if sep == "" then error("empty separator", 0) end
   local pos = 1
   while maxsplit < 0 or #out < maxsplit do
      local a, b = s:find(sep, pos, true)
      if not a then break end
      out[#out + 1] = s:sub(pos, a - 1)
      pos = b + 1
   end
   out[#out + 1] = s:sub(pos)
   return out
end

function M.replace(s, old, new, count)
   count = count or -1
   if old == "" then error("replace: empty substring is not supported", 0) end
   local out, pos, n = {}, 1, 0
   while count < 0 or n < count do
      local a, b = s:find(old, pos, true)
      if not a then break end
      out[#out + 1] = s:sub(pos, a - 1) .. new
      pos, n = b + 1, n + 1
   end
   out[#out + 1] = s:sub(pos)
   return table.concat(out)
end

function M.capitalize(s)
   return s:sub(1, 1):upper() .. s:sub(2):lower()
end

function M.title(s)
   local prev_cased = false
   return (s:gsub(".", function(c)
      local cased = c:match("%a") ~= nil
      local r = c
      if cased then r = prev_cased and c:lower() or c:upper() end
      prev_cased = cased
      return r
   end))
end

local function affix(s, fix, at_start)
   local list = kind(fix) == "list" and fix or { fix }
   for _, f in ipairs(list) do
      if at_start and s:sub(1, #f) == f then return true end
      if not at_start and (f == "" or s:sub(-#f) == f) then return true end
   end
   return false
end

-- Python str.format with {} {0} {name} fields.
local function format(s, args, kw)
   local auto = 0
   return (s:gsub("{([^{}]*)}", function(field)
      local v
      if field == "" then auto = auto + 1; v = args[auto]
      elseif field:match("^%d+$") then v = args[tonumber(field) + 1]
      else v = kw[field] end
      if v == nil then error("format: no value for field {" .. field .. "}", 0) end
      return str(v)
   end))
end

local STR_METHODS = {
   strip = function(s, a) return M.strip(s, a[1], true, true) end,
   lstrip = function(s, a) return M.strip(s, a[1], true, false) end,
   rstrip = function(s, a) return M.strip(s, a[1], false, true) end,
   split = function(s, a, kw) return M.split(s, arg(a, kw, 1, "sep"), arg(a, kw, 2, "maxsplit")) end,
   startswith = function(s, a) return affix(s, a[1], true) end,
   endswith = function(s, a) return affix(s, a[1], false) end,
   upper = function(s) return s:upper() end,
   lower = function(s) return s:lower() end,
   title = function(s) return M.title(s) end,
   capitalize = function(s) return M.capitalize(s) end,
   replace = function(s, a) return M.replace(s, a[1], a[2], a[3]) end,
   format = function(s, a, kw) return format(s, a, kw) end,
   find = function(s, a)
      local i = s:find(a[1], 1, true)
      return i and M.strlen(s:sub(1, i - 1)) or -1
   end,
   count = function(s, a)
      local n, pos = 0, 1
      while true do
         local i, j = s:find(a[1], pos, true)
         if not i or a[1] == "" then break end
         n, pos = n + 1, j + 1
      end
      return n
   end,
   join = function(s, a)
      local parts = {}
      for i, v in ipairs(M.iterate(a[1])) do parts[i] = str(v) end
      return table.concat(parts, s)
   end,
   splitlines = function(s)
      local out = V.list()
      for line in (s .. "\n"):gmatch("(.-)\r?\n") do out[#out + 1] = line end
      if s == "" or s:sub(-1) == "\n" then out[#out] = nil end
      return out
   end,
   isdigit = function(s) return s ~= "" and s:match("^%d+$") ~= nil end,
   isalpha = function(s) return s ~= "" and s:match("^%a+$") ~= nil end,
   isspace = function(s) return s ~= "" and s:match("^%s+$") ~= nil end,
}

-- ===== dicts =====

function M.items(d)
   local out = V.list()
   for _, k in ipairs(V.keys(d)) do out[#out + 1] = V.tuple({ k, d[k] }) end
   return out
end

local DICT_METHODS = {
   items = function(d) return M.items(d) end,
   keys = function(d) return V.list(V.keys(d)) end,
   values = function(d)
      local out = V.list()
      for _, k in ipairs(V.keys(d)) do out[#out + 1] = d[k] end
      return out
   end,
   get = function(d, a)
      local v = d[a[1]]
      if v == nil then
         if a[2] == nil then return V.null end
         return a[2]
      end
      return v
   end,
}

local function method(tbl, obj, name)
   local f = tbl[name]
   return M.callable(name, function(args, kw) return f(obj, args, kw) end)
end

-- ===== access =====

function M.getattr(obj, name)
   local k = kind(obj)
   local v
   if k == "dict" then
      if DICT_METHODS[name] then return method(DICT_METHODS, obj, name) end
      v = obj[name]
   elseif k == "str" then
      if STR_METHODS[name] then return method(STR_METHODS, obj, name) end
   elseif k == "ns" then
      v = obj.attrs[name]
   elseif k == "loop" then
      v = rawget(obj, name)
   end
   if v == nil then return undef(name) end
   return v
end

function M.getitem(obj, key)
   local k = kind(obj)
   local v
   if k == "dict" then
      v = obj[key]
      if v == nil and type(key) == "string" then return M.getattr(obj, key) end
   elseif k == "list" or k == "str" then
      if math.type(key) ~= "integer" then
         if type(key) == "string" then return M.getattr(obj, key) end
         return undef(str(key))
      end
      local items = k == "list" and obj or M.chars(obj)
      if key < 0 then key = key + #items end
      v = items[key + 1]
   elseif k == "ns" or k == "loop" then
      return M.getattr(obj, key)
   end
   if v == nil then return undef(str(key)) end
   return v
end

--- Python seq[a:b:c] on a list or a string.
function M.slice(obj, a, b, c)
   local items = kind(obj) == "str" and M.chars(obj) or obj
   local n = #items
   c = c or 1
   if c == 0 then error("slice step cannot be zero", 0) end
   local function norm(x, lo, hi)
      if x < 0 then x = x + n end
      if x < lo then x = lo elseif x > hi then x = hi end
      return x
   end
   if c > 0 then
      a = a and norm(a, 0, n) or 0
      b = b and norm(b, 0, n) or n
   else
      a = a and norm(a, -1, n - 1) or n - 1
      b = b and norm(b, -1, n - 1) or -1
   end
   local out = {}
   local i = a
   while (c > 0 and i < b) or (c < 0 and i > b) do
      out[#out + 1] = items[i + 1]
      i = i + c
   end
   if kind(obj) == "str" then return table.concat(out) end
   return V.list(out)
end

--- The items a for-loop walks: list items, dict keys, string characters.
function M.iterate(v)
   local k = kind(v)
   if k == "list" then return v end
   if k == "dict" then return V.keys(v) end
   if k == "str" then return M.chars(v) end
   if k == "undefined" then return {} end
   if k == "ns" then return V.keys(v.attrs) end
   error("'" .. k .. "' object is not iterable", 0)
end

-- ===== operators =====

local function isnum(k) return k == "int" or k == "float" end

local function ipow(a, b)
   local r = 1
   for _ = 1, b do r = r * a end
   return r
end

function M.arith(op, a, b)
   local ka, kb = kind(a), kind(b)
   if ka == "bool" then a, ka = (a and 1 or 0), "int" end
   if kb == "bool" then b, kb = (b and 1 or 0), "int" end
   if isnum(ka) and isnum(kb) then
      if op == "+" then return a + b end
      if op == "-" then return a - b end
      if op == "*" then return a * b end
      if op == "**" then
         if ka == "int" and kb == "int" and b >= 0 then return ipow(a, b) end
         return a ^ b
      end
      if b == 0 and (op == "/" or op == "//" or op == "%") then error("division by zero", 0) end
      if op == "/" then return a / b end
      if op == "//" then return a // b end
      if op == "%" then return a % b end
   elseif op == "+" and ka == "str" and kb == "str" then
      return a .. b
   elseif op == "+" and ka == "list" and kb == "list" then
      local out = V.list()
      for _, x in ipairs(a) do out[#out + 1] = x end
      for _, x in ipairs(b) do out[#out + 1] = x end
      return out
   elseif op == "*" and (ka == "str" or ka == "list") and kb == "int" then
      if ka == "str" then return a:rep(math.max(b, 0)) end
      local out = V.list()
      for _ = 1, b do for _, x in ipairs(a) do out[#out + 1] = x end end
      return out
   end
   error(string.format("unsupported operand type(s) for %s: '%s' and '%s'", op, ka, kb), 0)
end

function M.contains(container, item)
   local k = kind(container)
   if k == "str" then
      if kind(item) ~= "str" then error("'in <string>' requires string as left operand", 0) end
      return container:find(item, 1, true) ~= nil
   end
   if k == "list" then
      for _, x in ipairs(container) do if V.eq(x, item) then return true end end
      return false
   end
   if k == "dict" then return type(item) ~= "table" and container[item] ~= nil end
   if k == "ns" then return container.attrs[item] ~= nil end
   if k == "undefined" then return false end
   error("argument of type '" .. k .. "' is not iterable", 0)
end

function M.compare(op, a, b)
   if op == "==" then return V.eq(a, b) end
   if op == "!=" then return not V.eq(a, b) end
   if op == "in" then return M.contains(b, a) end
   if op == "notin" then return not M.contains(b, a) end
   local lt = V.lt(a, b)
   if lt == nil then
      error(string.format("'%s' not supported between '%s' and '%s'", op, kind(a), kind(b)), 0)
   end
   if op == "<" then return lt end
   if op == ">=" then return not lt end
   local gt = V.lt(b, a)
   if op == ">" then return gt end
   return not gt -- <=
end

return M
