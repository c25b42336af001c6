-- moonhub.repl: how the REPL shows values. Layer: lua/moonhub (pure Lua).
-- Tables print nested with sorted keys, cycle-safe and depth-limited; any
-- value whose metatable has __tostring (tensors) prints through tostring.
-- The host calls M.show(...) with the results of each line.
local M = {}

M.max_depth = 4      -- deeper tables print as {...}
M.max_items = 100    -- entries shown per table before "... (N more)"
M.width = 78         -- a table that fits on one line stays on one line

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
   local nil not or repeat return then true until while]]):gmatch("%a+") do
   KEYWORDS[w] = true
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3, table = 4,
                     ["function"] = 5, userdata = 6, thread = 7 }

local function key_less(a, b)
   local ta, tb = type(a), type(b)
   if ta ~= tb then return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9) end
   if ta == "number" or ta == "string" then return a < b end
   if ta == "boolean" then return (not a) and b end   -- false before true
   return tostring(a) < tostring(b)
end

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r",
                  ["\t"] = "\\t", ["\0"] = "\\0" }

local function quote(s)
   return '"' .. s:gsub('[%c\\"]', function(c)
      return ESCAPES[c] or string.format("\\%03d", c:byte())
   end) .. '"'
end

local function has_tostring(v)
   local mt = debug.getmetatable(v)
   return type(mt) == "table" and mt.__tostring ~= nil
end

-- tostring that cannot raise: a failing __tostring shows its error.
local function safe_tostring(v)
   local ok, s = pcall(tostring, v)
   if ok and type(s) == "string" then return s end
   return "<__tostring error: " .. tostring(s) .. ">"
end

local function is_ident(k)
   return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[k]
end

local format_value

local function format_key(k, depth, visiting)
   if is_ident(k) then return k end
   if type(k) == "table" and not has_tostring(k) then return "[" .. safe_tostring(k) .. "]" end
   return "[" .. format_value(k, depth, visiting, 0) .. "]"
end

-- The entries of t as strings: the sequence 1..n first, then the other keys
-- in sorted order; at most M.max_items of them.
local function entries(t, depth, visiting, indent)
   local items, seq = {}, 0
   while rawget(t, seq + 1) ~= nil do seq = seq + 1 end
   local keys = {}
   for k in next, t do
      if not (math.type(k) == "integer" and k >= 1 and k <= seq) then keys[#keys + 1] = k end
   end
   table.sort(keys, key_less)
   local total = seq + #keys
   for i = 1, math.min(seq, M.max_items) do
      items[#items + 1] = format_value(rawget(t, i), depth + 1, visiting, indent)
   end
   for _, k in ipairs(keys) do
      if #items >= M.max_items then break end
      items[#items + 1] = format_key(k, depth + 1, visiting) .. " = "
         .. format_value(rawget(t, k), depth + 1, visiting, indent)
   end
   if total > #items then items[#items + 1] = string.format("... (%d more)", total - #items) end
   return items
end

local function format_table(t, depth, visiting, indent)
   if visiting[t] then return "<cycle>" end
   if next(t) == nil then return "{}" end
   if depth >= M.max_depth then return "{...}" end
   visiting[t] = true
   local items = entries(t, depth, visiting, indent + 3)
   visiting[t] = nil
   local one = "{" .. table.concat(items, ", ") .. "}"
   if indent + #one <= M.width and not one:find("\n", 1, true) then return one end
   local pad = string.rep(" ", indent + 3)
   return "{\n" .. pad .. table.concat(items, ",\n" .. pad) .. "\n"
      .. string.rep(" ", indent) .. "}"
end

function format_value(v, depth, visiting, indent)
   local tv = type(v)
   if tv == "string" then return quote(v) end
   if has_tostring(v) then return safe_tostring(v) end
   if tv == "table" then return format_table(v, depth, visiting, indent) end
   return safe_tostring(v)
end

--- A readable, Lua-like rendering of v (strings quoted).
function M.format(v)
   return format_value(v, 0, {}, 0)
end

--- Prints the results of one REPL line, tab-separated; top-level strings
-- print bare, as lua.c does.
function M.show(...)
   local n = select("#", ...)
   if n == 0 then return end
   local parts = {}
   for i = 1, n do
      local v = select(i, ...)
      parts[i] = type(v) == "string" and v or M.format(v)
   end
   io.write(table.concat(parts, "\t"), "\n")
end

return M
