-- moonhub.jinja.library: the filters, tests and globals templates may use,
-- with jinja2's defaults and HF's overrides (tojson keeps key order and
-- non-ASCII text; raise_exception; strftime_now). Re-exports moonhub.jinja.ops.
-- Layer: lua/moonhub (pure Lua; uses moonhub.jinja.value and .ops).
local V = require "moonhub.jinja.value"
local O = require "moonhub.jinja.ops"

local M = {}
for k, v in pairs(O) do M[k] = v end

local kind, str, truthy, undef, arg = V.kind, V.str, V.truthy, V.undef, O.arg

local function isnum(v) local k = kind(v); return k == "int" or k == "float" end

-- Attribute path "a.b.0" on an item, as map/selectattr/sort take it.
local function attr_path(item, path)
   local v = item
   for part in tostring(path):gmatch("[^.]+") do
      if kind(v) == "undefined" then return v end
      v = O.getitem(v, math.tointeger(tonumber(part)) or part)
   end
   return v
end

local function ensure_ascii(s)
   return (s:gsub(utf8.charpattern, function(c)
      if #c == 1 then return c end
      local cp = utf8.codepoint(c)
      if cp < 0x10000 then return string.format("\\u%04x", cp) end
      cp = cp - 0x10000
      return string.format("\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF))
   end))
end

-- ===== filters: f(value, args, kw, state) =====

local F = {}
M.filters = F

local function length(v)
   local k = kind(v)
   if k == "str" then return O.strlen(v) end
   if k == "list" then return #v end
   if k == "dict" then return #V.keys(v) end
   if k == "undefined" then return 0 end
   if k == "ns" then return #V.keys(v.attrs) end
   error("object of type '" .. k .. "' has no len()", 0)
end
F.length, F.count = function(v) return length(v) end, function(v) return length(v) end

F.tojson = function(v, a, kw)
   local indent = arg(a, kw, 1, "indent")
   if kind(indent) == "none" then indent = nil end
   local s = V.tojson(v, { indent = indent, separators = kw.separators, sort_keys = truthy(kw.sort_keys) })
   if truthy(kw.ensure_ascii) then s = ensure_ascii(s) end
   return s
end

F.trim = function(v, a, kw) return O.strip(str(v), arg(a, kw, 1, "chars"), true, true) end
F.string = function(v) return str(v) end
F.safe = function(v) return v end
F.upper = function(v) return str(v):upper() end
F.lower = function(v) return str(v):lower() end
F.capitalize = function(v) return O.capitalize(str(v)) end
F.title = function(v) return O.title(str(v)) end
F.replace = function(v, a, kw)
   return O.replace(str(v), str(a[1]), str(a[2]), arg(a, kw, 3, "count"))
end
F.escape = function(v)
   return (str(v):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                     ['"'] = "&#34;", ["'"] = "&#39;" }))
end
F.e = F.escape

F.default = function(v, a, kw)
   local d = arg(a, kw, 1, "default_value", "")
   local boolean = truthy(arg(a, kw, 2, "boolean", false))
   if kind(v) == "undefined" or (boolean and not truthy(v)) then return d end
   return v
end
F.d = F.default

F.join = function(v, a, kw)
   local sep, attribute = arg(a, kw, 1, "d", ""), arg(a, kw, 2, "attribute")
   local parts = {}
   for i, x in ipairs(O.iterate(v)) do
      if attribute ~= nil then x = attr_path(x, attribute) end
      parts[i] = str(x)
   end
   return table.concat(parts, str(sep))
end

F.first = function(v)
   local items = O.iterate(v)
   if items[1] == nil then return undef("first") end
   return items[1]
end
F.last = function(v)
   local items = O.iterate(v)
   if #items == 0 then return undef("last") end
   return items[#items]
end

F.list = function(v)
   local out = V.list()
   for i, x in ipairs(O.iterate(v)) do out[i] = x end
   return out
end

F.items = function(v)
   local k = kind(v)
   if k == "undefined" then return V.list() end
   if k ~= "dict" then error("items: expected a mapping, got " .. k, 0) end
   return O.items(v)
end

F.reverse = function(v)
   if kind(v) == "str" then return O.slice(v, nil, nil, -1) end
   return O.slice(F.list(v), nil, nil, -1)
end

local function apply_test(name, x, targs, st)
   local t = M.tests[name]
   if not t then error("unknown test '" .. tostring(name) .. "'", 0) end
   return t(x, targs, st)
end

local function rest(a, from)
   local out = {}
   for i = from, #a do out[#out + 1] = a[i] end
   return out
end

F.map = function(v, a, kw, st)
   local out = V.list()
   if kw.attribute ~= nil then
      for i, x in ipairs(O.iterate(v)) do
         local y = attr_path(x, kw.attribute)
         if kind(y) == "undefined" and kw.default ~= nil then y = kw.default end
         out[i] = y
      end
      return out
   end
   local f = F[a[1]]
   if not f then error("map: unknown filter '" .. tostring(a[1]) .. "'", 0) end
   for i, x in ipairs(O.iterate(v)) do out[i] = f(x, rest(a, 2), kw, st) end
   return out
end

local function select_items(v, a, st, on_attr, want)
   local out = V.list()
   local first = on_attr and 2 or 1
   for _, x in ipairs(O.iterate(v)) do
      local y = on_attr and attr_path(x, a[1]) or x
      local ok
      if a[first] == nil then ok = truthy(y) else ok = apply_test(a[first], y, rest(a, first + 1), st) end
      if (ok and true or false) == want then out[#out + 1] = x end
   end
   return out
end
F.select = function(v, a, _, st) return select_items(v, a, st, false, true) end
F.reject = function(v, a, _, st) return select_items(v, a, st, false, false) end
F.selectattr = function(v, a, _, st) return select_items(v, a, st, true, true) end
F.rejectattr = function(v, a, _, st) return select_items(v, a, st, true, false) end

local function sort_key(x, case_sensitive)
   if not case_sensitive and kind(x) == "str" then return x:lower() end
   return x
end

F.unique = function(v, a, kw)
   local cs = truthy(arg(a, kw, 1, "case_sensitive", false))
   local attribute = arg(a, kw, 2, "attribute")
   local out, seen = V.list(), {}
   for _, x in ipairs(O.iterate(v)) do
      local key = sort_key(attribute ~= nil and attr_path(x, attribute) or x, cs)
      local dup = false
      for _, s in ipairs(seen) do if V.eq(s, key) then dup = true break end end
      if not dup then seen[#seen + 1] = key; out[#out + 1] = x end
   end
   return out
end

local function sorted(items, keyf, reverse)
   local idx = {}
   for i = 1, #items do idx[i] = i end
   table.sort(idx, function(i, j)   -- stable: ties keep input order
      local ki, kj = keyf(items[i]), keyf(items[j])
      local lt = V.lt(ki, kj)
      if lt == nil then error("sort: cannot order " .. kind(ki) .. " and " .. kind(kj), 0) end
      if reverse then lt = V.lt(kj, ki) end
      if lt then return true end
      if V.eq(ki, kj) then return i < j end
      return false
   end)
   local out = V.list()
   for n, i in ipairs(idx) do out[n] = items[i] end
   return out
end

F.sort = function(v, a, kw)
   local reverse = truthy(arg(a, kw, 1, "reverse", false))
   local cs = truthy(arg(a, kw, 2, "case_sensitive", false))
   local attribute = arg(a, kw, 3, "attribute")
   return sorted(O.iterate(v), function(x)
      return sort_key(attribute ~= nil and attr_path(x, attribute) or x, cs)
   end, reverse)
end

F.dictsort = function(v, a, kw)
   local cs = truthy(arg(a, kw, 1, "case_sensitive", false))
   local by = arg(a, kw, 2, "by", "key")
   local reverse = truthy(arg(a, kw, 3, "reverse", false))
   local pos = by == "value" and 2 or 1
   return sorted(F.items(v), function(p) return sort_key(p[pos], cs) end, reverse)
end

local function to_number(v, default, want_int)
   local k = kind(v)
   local n
   if k == "int" or k == "float" then n = v
   elseif k == "bool" then n = v and 1 or 0
   elseif k == "str" then n = tonumber((O.strip(v, nil, true, true):gsub("_", ""))) end
   if n == nil then return default end
   if want_int then
      if n ~= n or n == math.huge or n == -math.huge then return default end
      return math.tointeger(n < 0 and math.ceil(n) or math.floor(n))
   end
   return n + 0.0
end
F.int = function(v, a, kw) return to_number(v, arg(a, kw, 1, "default", 0), true) end
F.float = function(v, a, kw) return to_number(v, arg(a, kw, 1, "default", 0.0), false) end

F.abs = function(v)
   if not isnum(v) then error("abs: expected a number, got " .. kind(v), 0) end
   return math.abs(v)
end

F.round = function(v, a, kw)
   local precision = arg(a, kw, 1, "precision", 0)
   local method = arg(a, kw, 2, "method", "common")
   local m = 10.0 ^ precision
   local x = v * m
   if method == "ceil" then x = math.ceil(x)
   elseif method == "floor" then x = math.floor(x)
   else
      local f = math.floor(x)
      local d = x - f
      if d > 0.5 or (d == 0.5 and f % 2 == 1) then f = f + 1 end  -- Python rounds half to even
      x = f
   end
   return x / m
end

F.indent = function(v, a, kw)
   local width = arg(a, kw, 1, "width", 4)
   local first = truthy(arg(a, kw, 2, "first", false))
   local blank = truthy(arg(a, kw, 3, "blank", false))
   local ind = type(width) == "string" and width or string.rep(" ", width)
   local lines = {}
   for line in (str(v) .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
   local out = { lines[1] or "" }
   for i = 2, #lines do
      out[i] = (blank or lines[i] ~= "") and ind .. lines[i] or lines[i]
   end
   local s = table.concat(out, "\n")
   if first then s = ind .. s end
   return s
end

F.min = function(v) return sorted(O.iterate(v), function(x) return sort_key(x, false) end)[1] or undef("min") end
F.max = function(v)
   local s = sorted(O.iterate(v), function(x) return sort_key(x, false) end)
   return s[#s] or undef("max")
end
F.sum = function(v, a, kw)
   local attribute, total = arg(a, kw, 1, "attribute"), arg(a, kw, 2, "start", 0)
   for _, x in ipairs(O.iterate(v)) do
      total = O.arith("+", total, attribute ~= nil and attr_path(x, attribute) or x)
   end
   return total
end
F.attr = function(v, a) return O.getattr(v, a[1]) end
F.wordcount = function(v) local n = 0; for _ in str(v):gmatch("%S+") do n = n + 1 end; return n end
F.format = function(v, a)
   local i = 0
   return (str(v):gsub("%%([%%sdfr])", function(c)
      if c == "%" then return "%" end
      i = i + 1
      local x = a[i]
      if c == "d" then return string.format("%d", math.tointeger(x) or math.floor(x)) end
      if c == "f" then return string.format("%f", x) end
      if c == "r" then return V.repr(x) end
      return str(x)
   end))
end

-- ===== tests: t(value, args, state) -> bool =====

local T = {}
M.tests = T

T.defined = function(v) return kind(v) ~= "undefined" end
T.undefined = function(v) return kind(v) == "undefined" end
T.none = function(v) return kind(v) == "none" end
T.string = function(v) return kind(v) == "str" end
T.number = function(v) local k = kind(v); return k == "int" or k == "float" or k == "bool" end
T.integer = function(v) return kind(v) == "int" end
T.float = function(v) return kind(v) == "float" end
T.mapping = function(v) return kind(v) == "dict" end
T.boolean = function(v) return kind(v) == "bool" end
T["true"] = function(v) return v == true end
T["false"] = function(v) return v == false end
T.callable = function(v) return kind(v) == "func" end
T.iterable = function(v)
   local k = kind(v)
   return k == "str" or k == "list" or k == "dict" or k == "undefined" or k == "ns"
end
T.sequence = function(v) local k = kind(v); return k == "str" or k == "list" or k == "dict" end
T.eq = function(v, a) return V.eq(v, a[1]) end
T.equalto, T["=="] = T.eq, T.eq
T.ne = function(v, a) return not V.eq(v, a[1]) end
T["!="] = T.ne
T.sameas = function(v, a) return v == a[1] or (kind(v) == "none" and kind(a[1]) == "none") end
T.odd = function(v) return math.tointeger(v) ~= nil and v % 2 == 1 end
T.even = function(v) return math.tointeger(v) ~= nil and v % 2 == 0 end
T.divisibleby = function(v, a) return a[1] ~= 0 and v % a[1] == 0 end
T["in"] = function(v, a) return O.contains(a[1], v) end
T.lower = function(v) return kind(v) == "str" and v:lower() == v end
T.upper = function(v) return kind(v) == "str" and v:upper() == v end
T.lt = function(v, a) return O.compare("<", v, a[1]) end
T.le = function(v, a) return O.compare("<=", v, a[1]) end
T.gt = function(v, a) return O.compare(">", v, a[1]) end
T.ge = function(v, a) return O.compare(">=", v, a[1]) end
T["<"], T["<="], T[">"], T[">="] = T.lt, T.le, T.gt, T.ge
T.filter = function(v) return F[v] ~= nil end
T.test = function(v) return T[v] ~= nil end

-- ===== globals =====

local G = {}
M.globals = G

G.raise_exception = O.callable("raise_exception", function(a)
   error({ jinja_raise = true, message = str(a[1]) }, 0)
end)

G.strftime_now = O.callable("strftime_now", function(a)
   local ok, s = pcall(os.date, str(a[1]))
   if not ok then error("strftime_now: " .. tostring(s), 0) end
   return s
end)

G.range = O.callable("range", function(a)
   local start, stop, step = a[1], a[2], a[3] or 1
   if stop == nil then start, stop = 0, start end
   for _, x in ipairs({ start, stop, step }) do
      if math.type(x) ~= "integer" then error("range: arguments must be integers", 0) end
   end
   if step == 0 then error("range: step must not be zero", 0) end
   local out = V.list()
   local i = start
   while (step > 0 and i < stop) or (step < 0 and i > stop) do
      out[#out + 1] = i
      if #out > 1000000 then error("range: too many items", 0) end
      i = i + step
   end
   return out
end)

local function kw_dict(a, kw)
   local d = V.dict()
   local base = a[1]
   if kind(base) == "dict" then
      for _, k in ipairs(V.keys(base)) do d[k] = base[k] end
   end
   local names = {}
   for k in pairs(kw) do names[#names + 1] = k end
   table.sort(names)
   for _, k in ipairs(names) do d[k] = kw[k] end
   return d
end

G.namespace = O.callable("namespace", function(a, kw)
   return setmetatable({ attrs = kw_dict(a, kw) }, O.NS_MT)
end)

G.dict = O.callable("dict", function(a, kw) return kw_dict(a, kw) end)

return M
