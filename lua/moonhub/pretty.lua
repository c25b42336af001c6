-- moonhub.pretty: readable text for tensors (tostring) and any Lua value (the
-- REPL). Layer: lua/moonhub, pure Lua; reads tensors only through their
-- public methods. Big tensors show their first and last `edgeitems` entries
-- per dim around "...", like NumPy and PyTorch.
local M = {}

M.options = {
   threshold = 1000,   -- more elements than this: elide with "..."
   edgeitems = 3,      -- entries kept at each end of an elided dim
   linewidth = 80,
   precision = 4,      -- digits after the point for floats
}

local ELL = {}         -- marks an elided run in gathered values

local function is_tensor(v)
   if type(v) ~= "userdata" then return false end
   return require("moonhub.core.tensor").is_tensor(v)
end

local function shape_str(shape)
   local parts = {}
   for i = 1, #shape do parts[i] = tostring(shape[i]) end
   return "(" .. table.concat(parts, ",") .. ")"
end

-- Visible positions of a dim of size n: all, or the edges around ELL.
local function positions(n, summarize, edge)
   local pos = {}
   if summarize and n > 2 * edge then
      for i = 1, edge do pos[#pos + 1] = i end
      pos[#pos + 1] = ELL
      for i = n - edge + 1, n do pos[#pos + 1] = i end
   else
      for i = 1, n do pos[i] = i end
   end
   return pos
end

-- Nested tables of the visible numbers of t (dims d..#shape); each number
-- is also appended to vals so one format fits them all.
local function gather(t, d, shape, summarize, edge, vals)
   local out = {}
   for _, i in ipairs(positions(shape[d], summarize, edge)) do
      if i == ELL then
         out[#out + 1] = ELL
      elseif d == #shape then
         local v = t[i]
         vals[#vals + 1] = v
         out[#out + 1] = v
      else
         out[#out + 1] = gather(t[i], d + 1, shape, summarize, edge, vals)
      end
   end
   return out
end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- A function number -> text for these values (integers, fixed or scientific).
local function number_format(vals, is_float, prec)
   local function special(v)
      if v ~= v then return "nan" end
      return v > 0 and "inf" or "-inf"
   end
   if not is_float then return function(v) return ("%d"):format(v) end end
   local integral, maxabs, minabs = true, 0, math.huge
   for _, v in ipairs(vals) do
      if finite(v) then
         local a = math.abs(v)
         if a ~= math.floor(a) then integral = false end
         if a > maxabs then maxabs = a end
         if a > 0 and a < minabs then minabs = a end
      end
   end
   local fmt
   if maxabs >= 1e8 or (not integral and minabs < 10 ^ -prec) then
      fmt = "%." .. prec .. "e"
   elseif integral then
      fmt = "%.0f."
   else
      fmt = "%." .. prec .. "f"
   end
   return function(v)
      if not finite(v) then return special(v) end
      return (fmt:format(v):gsub("^%-0(%.?)$", "0%1"))
   end
end

local function pad(s, w) return (" "):rep(w - #s) .. s end

-- Text of one gathered block at depth d; indent = column of its "[".
local function render(block, d, nd, fmt, width, indent, linewidth)
   local items = {}
   if d == nd then
      local per_line = math.max(1, (linewidth - indent - 2) // (width + 2))
      local lines, line = {}, {}
      for _, v in ipairs(block) do
         line[#line + 1] = v == ELL and pad("...", width) or pad(fmt(v), width)
         if #line == per_line then lines[#lines + 1] = table.concat(line, ", "); line = {} end
      end
      if #line > 0 then lines[#lines + 1] = table.concat(line, ", ") end
      return "[" .. table.concat(lines, ",\n" .. (" "):rep(indent + 1)) .. "]"
   end
   for _, sub in ipairs(block) do
      items[#items + 1] = sub == ELL and "..."
         or render(sub, d + 1, nd, fmt, width, indent + 1, linewidth)
   end
   local sep = "," .. ("\n"):rep(nd - d) .. (" "):rep(indent + 1)
   return "[" .. table.concat(items, sep) .. "]"
end

--- pretty.tensor(t): "tensor([[1., 2.], [3., 4.]], dtype=f32, shape=(2,2))"
-- laid out over lines, with "..." for elided parts of big tensors.
function M.tensor(t)
   local o = M.options
   local shape, dtype, n = t:shape(), t:dtype(), t:numel()
   local tail = (", dtype=%s, shape=%s)"):format(dtype, shape_str(shape))
   local is_float = dtype == "f32" or dtype == "f16" or dtype == "bf16"
   local plain = is_float or dtype == "i32" or dtype == "i64" or dtype == "u8" or dtype == "i8"
   if not plain then return "tensor(<" .. dtype .. " blocks>" .. tail end
   if #shape == 0 then
      local v = t:item()
      return "tensor(" .. number_format({ v }, is_float, o.precision)(v) .. tail
   end
   if n == 0 then return "tensor([]" .. tail end
   local vals, summarize = {}, n > o.threshold
   local block = gather(t, 1, shape, summarize, o.edgeitems, vals)
   local fmt = number_format(vals, is_float, o.precision)
   local width = summarize and 3 or 1
   for _, v in ipairs(vals) do width = math.max(width, #fmt(v)) end
   return "tensor(" .. render(block, 1, #shape, fmt, width, 7, o.linewidth) .. tail
end

--- pretty.summary(t): one line, "tensor<f32 (2,3)>" (for tensors inside tables).
function M.summary(t)
   return ("tensor<%s %s>"):format(t:dtype(), shape_str(t:shape()))
end

-- ===== any Lua value =====

local function is_ident(k)
   return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function key_text(k)
   if is_ident(k) then return k end
   if type(k) == "string" then return ("[%q]"):format(k) end
   return "[" .. tostring(k) .. "]"
end

-- Keys past the array part, in a stable order (numbers, then strings, ...).
local function other_keys(t, n)
   local keys = {}
   for k in pairs(t) do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
   end
   table.sort(keys, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      if ta == "number" or ta == "string" then return a < b end
      return tostring(a) < tostring(b)
   end)
   return keys
end

local format_value

local function format_table(t, depth, seen, indent)
   if seen[t] then return "<cycle>" end
   local mt = getmetatable(t)
   if mt and mt.__tostring then return tostring(t) end
   if depth > 4 then return "{...}" end
   seen[t] = true
   local items, n = {}, #t
   for i = 1, n do items[#items + 1] = format_value(t[i], depth + 1, seen, indent + 3) end
   for _, k in ipairs(other_keys(t, n)) do
      items[#items + 1] = key_text(k) .. " = " .. format_value(t[k], depth + 1, seen, indent + 3)
   end
   seen[t] = nil
   if #items == 0 then return "{}" end
   local one = "{ " .. table.concat(items, ", ") .. " }"
   if #one + indent <= M.options.linewidth and not one:find("\n") then return one end
   local pre = (" "):rep(indent + 3)
   return "{\n" .. pre .. table.concat(items, ",\n" .. pre) .. ",\n" .. (" "):rep(indent) .. "}"
end

function format_value(v, depth, seen, indent)
   local tv = type(v)
   if tv == "string" then return ("%q"):format(v) end
   if tv == "table" then return format_table(v, depth, seen, indent) end
   if is_tensor(v) then return depth > 0 and M.summary(v) or M.tensor(v) end
   if math.type(v) == "float" and v == math.floor(v) and finite(v) then
      return ("%.1f"):format(v)
   end
   return tostring(v)
end

--- pretty.format(v): text for any value: strings quoted, tables laid out
-- with sorted keys ("<cycle>" for cycles), tensors in full at top level.
function M.format(v)
   return format_value(v, 0, {}, 0)
end

return M
