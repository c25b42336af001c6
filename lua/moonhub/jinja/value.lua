-- moonhub.jinja.value: how Lua values stand for Jinja/Python values, and
-- Python's view of them: kinds, truthiness, str()/repr(), equality, order,
-- json.dumps (as HF's tojson calls it) and an order-keeping JSON decode.
-- Layer: lua/moonhub (pure Lua; uses dkjson for its null and for parsing).
--
-- Representation (see moonhub.jinja for the user-facing summary):
--   string -> str, integer -> int, float -> float, boolean -> bool,
--   dkjson.null -> None, a table -> list when it has a [1] or is empty
--   (or carries dkjson's __jsontype = "array"), dict otherwise (or with
--   __jsontype = "object"). A dict keeps key order when its metatable has
--   __jsonorder = {key, ...} (dkjson's convention); other keys follow, sorted.
local json = require "dkjson"

local M = {}

local NULL = json.null
M.null = NULL

local UNDEF_MT = { __jinja = "undefined" }

--- A fresh Undefined that remembers what was looked up (for messages).
function M.undef(name) return setmetatable({ name = name }, UNDEF_MT) end

function M.kind(v)
   local t = type(v)
   if t == "string" then return "str" end
   if t == "number" then return math.type(v) == "integer" and "int" or "float" end
   if t == "boolean" then return "bool" end
   if t == "nil" then return "undefined" end
   if t == "function" then return "func" end
   if t == "table" then
      if v == NULL then return "none" end
      local mt = getmetatable(v)
      if mt then
         if mt.__jinja then return mt.__jinja end
         if mt.__jsontype == "array" then return "list" end
         if mt.__jsontype == "object" then return "dict" end
      end
      if v[1] ~= nil or next(v) == nil then return "list" end
      return "dict"
   end
   return t
end
local kind = M.kind

--- A list (dkjson-marked, so an empty one still encodes as []).
local LIST_MT = { __jsontype = "array" }
function M.list(t) return setmetatable(t or {}, LIST_MT) end

--- A tuple: a list that prints as (a, b).
local TUPLE_MT = { __jsontype = "array", __tuple = true }
function M.tuple(t) return setmetatable(t or {}, TUPLE_MT) end

--- A dict with the given key order.
function M.dict(t, order)
   return setmetatable(t or {}, { __jsontype = "object", __jsonorder = order or {} })
end

local function key_less(a, b)
   local ta, tb = type(a), type(b)
   if ta ~= tb then return ta < tb end
   if ta == "number" or ta == "string" then return a < b end
   return tostring(a) < tostring(b)
end

--- Keys of a dict in iteration order (declared order, then sorted rest).
function M.keys(d)
   local mt = getmetatable(d)
   local order = mt and mt.__jsonorder
   local out, seen = {}, {}
   if order then
      for _, k in ipairs(order) do
         if d[k] ~= nil and not seen[k] then seen[k] = true; out[#out + 1] = k end
      end
   end
   local rest = {}
   for k in pairs(d) do
      if not seen[k] then rest[#rest + 1] = k end
   end
   table.sort(rest, key_less)
   for _, k in ipairs(rest) do out[#out + 1] = k end
   return out
end

function M.truthy(v)
   local k = kind(v)
   if k == "bool" then return v end
   if k == "undefined" or k == "none" then return false end
   if k == "int" or k == "float" then return v ~= 0 end
   if k == "str" then return v ~= "" end
   if k == "list" or k == "dict" then return next(v) ~= nil end
   return true
end

-- ===== str() and repr() =====

function M.float_repr(x)
   if x ~= x then return "nan" end
   if x == math.huge then return "inf" end
   if x == -math.huge then return "-inf" end
   local s, p
   for digits = 0, 16 do
      p = digits
      s = string.format("%." .. p .. "e", x)
      if tonumber(s) == x then break end
   end
   local e = tonumber(s:match("e([-+]%d+)$"))
   if e >= -4 and e < 16 then
      local dec = math.max(0, p - e)
      local f = string.format("%." .. dec .. "f", x)
      if dec == 0 then f = f .. ".0" end
      return f
   end
   local mant, exp = s:match("^(.-)e([-+]%d+)$")
   local sign, ed = exp:sub(1, 1), exp:sub(2):gsub("^0+", "")
   if #ed < 2 then ed = string.rep("0", 2 - #ed) .. ed end
   return mant .. "e" .. sign .. ed
end

local function str_repr(s)
   local q = "'"
   if s:find("'", 1, true) and not s:find('"', 1, true) then q = '"' end
   local body = s:gsub("[%c\\'\"]", function(c)
      if c == "\\" then return "\\\\" end
      if c == "\n" then return "\\n" end
      if c == "\r" then return "\\r" end
      if c == "\t" then return "\\t" end
      if c == q then return "\\" .. q end
      if c == "'" or c == '"' then return c end
      return string.format("\\x%02x", c:byte())
   end)
   return q .. body .. q
end

local repr

--- Python str() of a value, as {{ x }} prints it.
function M.str(v)
   local k = kind(v)
   if k == "str" then return v end
   if k == "undefined" then return "" end
   return repr(v)
end

repr = function(v)
   local k = kind(v)
   if k == "str" then return str_repr(v) end
   if k == "int" then return string.format("%d", v) end
   if k == "float" then return M.float_repr(v) end
   if k == "bool" then return v and "True" or "False" end
   if k == "none" then return "None" end
   if k == "undefined" then return "" end
   if k == "list" then
      local parts = {}
      for i = 1, #v do parts[i] = repr(v[i]) end
      if getmetatable(v) == TUPLE_MT then
         return "(" .. table.concat(parts, ", ") .. (#v == 1 and ",)" or ")")
      end
      return "[" .. table.concat(parts, ", ") .. "]"
   end
   if k == "dict" then
      local parts = {}
      for _, key in ipairs(M.keys(v)) do parts[#parts + 1] = repr(key) .. ": " .. repr(v[key]) end
      return "{" .. table.concat(parts, ", ") .. "}"
   end
   if k == "ns" then return "<Namespace>" end
   return "<" .. k .. ">"
end
M.repr = repr

-- ===== equality and order =====

local function eq(a, b)
   local ka, kb = kind(a), kind(b)
   if ka == "bool" and (kb == "int" or kb == "float") then a, ka = (a and 1 or 0), "int" end
   if kb == "bool" and (ka == "int" or ka == "float") then b, kb = (b and 1 or 0), "int" end
   local na, nb = ka == "int" or ka == "float", kb == "int" or kb == "float"
   if na and nb then return a == b end
   if ka ~= kb then return false end
   if ka == "list" then
      if #a ~= #b then return false end
      for i = 1, #a do if not eq(a[i], b[i]) then return false end end
      return true
   end
   if ka == "dict" then
      for key, val in pairs(a) do if b[key] == nil or not eq(val, b[key]) then return false end end
      for key in pairs(b) do if a[key] == nil then return false end end
      return true
   end
   if ka == "undefined" then return true end
   return a == b
end
M.eq = eq

--- a < b with Python's rules for numbers, strings and lists; nil if the
--- kinds cannot be ordered.
function M.lt(a, b)
   local ka, kb = kind(a), kind(b)
   if ka == "bool" then a, ka = (a and 1 or 0), "int" end
   if kb == "bool" then b, kb = (b and 1 or 0), "int" end
   local na, nb = ka == "int" or ka == "float", kb == "int" or kb == "float"
   if na and nb then return a < b end
   if ka == "str" and kb == "str" then return a < b end
   if ka == "list" and kb == "list" then
      for i = 1, math.min(#a, #b) do
         if not eq(a[i], b[i]) then return M.lt(a[i], b[i]) end
      end
      return #a < #b
   end
   return nil
end

-- ===== JSON (Python json.dumps with ensure_ascii=False) =====

local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
                   ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f" }

function M.json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      return JSON_ESC[c] or (c:byte() < 32 and string.format("\\u%04x", c:byte())) or c
   end) .. '"'
end

-- opts: indent (integer or string), item_sep, key_sep, sort_keys.
local function dumps(v, opts, depth, out)
   local k = kind(v)
   if k == "str" then out[#out + 1] = M.json_string(v); return end
   if k == "int" then out[#out + 1] = string.format("%d", v); return end
   if k == "float" then
      if v ~= v then out[#out + 1] = "NaN"
      elseif v == math.huge then out[#out + 1] = "Infinity"
      elseif v == -math.huge then out[#out + 1] = "-Infinity"
      else out[#out + 1] = M.float_repr(v) end
      return
   end
   if k == "bool" then out[#out + 1] = v and "true" or "false"; return end
   if k == "none" then out[#out + 1] = "null"; return end
   if k == "ns" then v, k = v.attrs, "dict" end
   if k ~= "list" and k ~= "dict" then
      error("Object of type " .. k .. " is not JSON serializable", 0)
   end
   local keys
   if k == "dict" then
      keys = M.keys(v)
      if opts.sort_keys then table.sort(keys, key_less) end
   end
   local n = k == "list" and #v or #keys
   local open, close = k == "list" and "[" or "{", k == "list" and "]" or "}"
   if n == 0 then out[#out + 1] = open .. close; return end
   local nl_in, nl_out = "", ""
   if opts.indent then
      nl_in = "\n" .. string.rep(opts.indent, depth + 1)
      nl_out = "\n" .. string.rep(opts.indent, depth)
   end
   out[#out + 1] = open
   for i = 1, n do
      out[#out + 1] = (i > 1 and opts.item_sep or "") .. nl_in
      if k == "list" then
         dumps(v[i], opts, depth + 1, out)
      else
         local key = keys[i]
         local ks = type(key) == "string" and key or M.str(key)
         out[#out + 1] = M.json_string(ks) .. opts.key_sep
         dumps(v[key], opts, depth + 1, out)
      end
   end
   out[#out + 1] = nl_out .. close
end

--- json.dumps(v, ensure_ascii=False, indent=, separators=, sort_keys=).
function M.tojson(v, opts)
   if opts ~= nil and type(opts) ~= "table" then
      error("jinja.tojson: opts must be a table, got " .. type(opts), 2)
   end
   opts = opts or {}
   local o = { sort_keys = opts.sort_keys }
   local ind = opts.indent
   if type(ind) == "number" then o.indent = string.rep(" ", ind)
   elseif type(ind) == "string" then o.indent = ind end
   if opts.separators then
      o.item_sep, o.key_sep = opts.separators[1], opts.separators[2]
   else
      o.item_sep, o.key_sep = o.indent and "," or ", ", ": "
   end
   local out = {}
   dumps(v, o, 0, out)
   return table.concat(out)
end

--- Decodes JSON keeping each object's key order (as __jsonorder) and
--- JSON null as dkjson.null, from pos (default 1). Returns the value and
--- the position after it, or nil, message.
function M.decode(str, pos)
   local orders = setmetatable({}, { __mode = "k" })
   local objmeta = {
      __jsontype = "object",
      __newindex = function(t, key, val)
         local o = orders[t]
         if not o then o = {}; orders[t] = o end
         o[#o + 1] = key
         rawset(t, key, val)
      end,
   }
   local val, nextpos, err = json.decode(str, pos or 1, NULL, objmeta, LIST_MT)
   if err then return nil, err end
   if val == nil then return nil, "no JSON value" end
   local function fix(t)
      if type(t) ~= "table" or t == NULL then return end
      if getmetatable(t) == objmeta then
         setmetatable(t, { __jsontype = "object", __jsonorder = orders[t] or {} })
      end
      for _, x in pairs(t) do fix(x) end
   end
   fix(val)
   return val, nextpos
end

return M
