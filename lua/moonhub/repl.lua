-- moonhub.repl: the Lua half of the REPL. Layer: lua/moonhub (pure Lua; the
-- host engine/host/repl.c only reads lines and calls M.compile, M.show and
-- M.complete). Top-level `local`s are rewritten into the REPL's environment
-- so they persist across lines; values print nested with sorted keys,
-- cut to one screen (`:more` shows the rest); help(), %time, init.lua.
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

--- A readable, Lua-like rendering of v (strings quoted); opts.all lifts the
-- depth and entry limits.
function M.format(v, opts)
   if not (opts and opts.all) then return format_value(v, 0, {}, 0) end
   local depth, items = M.max_depth, M.max_items
   M.max_depth, M.max_items = math.huge, math.huge
   local ok, s = pcall(format_value, v, 0, {}, 0)
   M.max_depth, M.max_items = depth, items
   if not ok then error(s, 0) end
   return s
end

M.max_lines = 30     -- one screen: longer results stop with a :more hint
local last = { n = 0 }   -- the last results shown cut short, for :more
local MORE = "(:more or mh.show(x, {all = true}) shows all)"

-- One line for a value inside an overview: its kind and size, not its body.
local function brief(v)
   local tv = type(v)
   if tv == "string" then
      return #v > 40 and quote(v:sub(1, 37)) .. "..." or quote(v)
   elseif tv == "table" and not has_tostring(v) then
      local n = 0
      for _ in next, v do n = n + 1 end
      return n == 0 and "{}" or ("{...%d %s}"):format(n, n == 1 and "entry" or "entries")
   elseif tv == "function" then
      return "function"
   end
   return safe_tostring(v):gsub("\n.*", " ...")
end

-- A table too long for one screen: one line per key, the first M.max_lines - 4
-- of them, each with the short doc when the value is documented.
local function overview(t)
   local keys = {}
   for k in next, t do keys[#keys + 1] = k end
   table.sort(keys, key_less)
   local help = require "moonhub.help"
   local out = { ("{ -- %d entries"):format(#keys) }
   for i, k in ipairs(keys) do
      if i > M.max_lines - 4 then
         out[#out + 1] = ("   ... (%d more)"):format(#keys - i + 1)
         break
      end
      local v = rawget(t, k)
      local doc = help.doc(v)
      out[#out + 1] = ("   %s = %s,%s"):format(format_key(k, 1, {}), brief(v),
                                               doc and "  -- " .. doc or "")
   end
   out[#out + 1] = "}"
   return table.concat(out, "\n")
end

--- Prints values tab-separated (top-level strings bare, as lua.c does). Past
-- M.max_lines lines the rest is cut with a hint; opts.all prints everything
-- with no depth or entry limit. mh.show(x, {all = true}) is this.
function M.show_values(vals, opts)
   local all = opts and opts.all
   local parts = {}
   for i = 1, vals.n do
      local v = vals[i]
      parts[i] = type(v) == "string" and v or M.format(v, { all = all })
   end
   local text = table.concat(parts, "\t")
   if not all then
      local lines, stop = 0, nil
      for pos in text:gmatch("()\n") do
         lines = lines + 1
         if lines == M.max_lines then stop = pos break end
      end
      if stop then
         last = vals
         if vals.n == 1 and type(vals[1]) == "table" and not has_tostring(vals[1]) then
            io.write(overview(vals[1]), "\n", MORE, "\n")
         else
            local rest = select(2, text:sub(stop):gsub("\n", "")) + 1
            io.write(text:sub(1, stop), ("... (%d more lines)\n"):format(rest), MORE, "\n")
         end
         return
      end
   end
   io.write(text, "\n")
end

--- The host's printer for the results of one line.
function M.show(...)
   if select("#", ...) == 0 then return end
   M.show_values(table.pack(...))
end

--- :more: the last results that were cut short, in full.
function M.more()
   if last.n == 0 then io.write("(nothing was cut short)\n") return end
   M.show_values(last, { all = true })
end


-- ===== the session: compiling lines, completion, %time, init.lua =====

local lex = require "moonhub.repl_lex"

--- The REPL's global environment: new names (and top-level locals) land
-- here; everything else is read through from _G.
M.env = setmetatable({}, { __index = _G })

local function load_env(text)
   return load(text, "=stdin", "t", M.env)
end

-- %time CHUNK: runs it and prints the wall time (and CPU time) it took.
local function timed(f)
   return function()
      local now = require("moonhub.core.sys").now
      local t0, c0 = now(), os.clock()
      local r = table.pack(f())
      io.write(("time: %.3f ms wall, %.3f ms cpu\n"):format((now() - t0) * 1e3,
                                                            (os.clock() - c0) * 1e3))
      return table.unpack(r, 1, r.n)
   end
end

--- compile(text) -> function | false, msg when the chunk is unfinished (the
-- host reads another line) | nil, msg on a syntax error. An expression
-- compiles as "return <text>" so that it prints; top-level locals are
-- rewritten to persist (see moonhub.repl_lex).
function M.compile(text)
   if text:match("^%s*:more%s*$") then return M.more end
   local rest = text:match("^%s*%%time%s+(.*)$")
   if rest then
      local f, msg = M.compile(rest)
      if not f then return f, msg end
      return timed(f)
   end
   local f = load_env("return " .. text .. ";")
   if f then return f end
   local g, msg = load_env(text)
   if not g then
      if msg:sub(-5) == "<eof>" then return false, msg end
      return nil, msg
   end
   return load_env(lex.rewrite(text)) or g
end

-- Names reachable with "." (or ":" for methods) from v: its own keys, its
-- metatable's __index table, and for documented modules the names of the
-- docs table (lazy submodules are not keys until first used).
local function fields(v, methods)
   local names, seen = {}, {}
   local function add(k, val)
      if is_ident(k) and not seen[k] and (not methods or type(val) == "function") then
         seen[k] = true
         names[#names + 1] = k
      end
   end
   local t = v
   -- a tensor's __index is a function: its methods are moonhub.tensor's
   if type(v) == "userdata" and require("moonhub.core.tensor").is_tensor(v) then
      t = require "moonhub.tensor"
   end
   for _ = 1, 3 do
      if type(t) == "table" then
         for k, val in next, t do add(k, val) end
      end
      local mt = debug.getmetatable(t)
      t = type(mt) == "table" and rawget(mt, "__index") or nil
      if type(t) ~= "table" then break end
   end
   if type(v) == "table" and not methods then
      for _, name in ipairs(require("moonhub.help").children(v)) do add(name, true) end
   end
   return names
end

--- complete(word) -> candidates for Tab: { substitution, match... } in the
-- form libedit wants (a lone match stands alone), or {} when none. word is
-- a.b.c, a.b:c or a global's prefix; only plain fields are read (no calls).
function M.complete(word)
   local path, sep, part = word:match("^(.-)([.:])([%w_]*)$")
   local v, names
   if path then
      v = M.env
      for name in path:gmatch("[^.]+") do
         if not is_ident(name) or type(v) ~= "table" and type(v) ~= "userdata" then return {} end
         local ok, nv = pcall(function() return v[name] end)
         if not ok or nv == nil then return {} end
         v = nv
      end
      names = fields(v, sep == ":")
   else
      path, sep, part = "", "", word
      names = fields(M.env)
      for k in pairs(KEYWORDS) do names[#names + 1] = k end
   end
   local out = {}
   for _, k in ipairs(names) do
      if k:sub(1, #part) == part then out[#out + 1] = path .. sep .. k end
   end
   table.sort(out)
   if #out <= 1 then return out end
   local pre = out[1]
   for _, c in ipairs(out) do
      while c:sub(1, #pre) ~= pre do pre = pre:sub(1, -2) end
   end
   table.insert(out, 1, pre)
   return out
end

--- Sets up the session: help in the environment, then $MOONHUB_HOME/init.lua
-- if there is one (its locals persist like the lines typed). Returns the
-- error of a failing init.lua, which the host reports before the prompt.
function M.start(home)
   M.env.help = require("moonhub.help").help
   local path = (home or "") .. "/init.lua"
   local f = io.open(path, "r")
   if not f then return nil end
   local src = f:read("a")
   f:close()
   local chunk, msg = load(lex.rewrite(src), "@" .. path, "t", M.env)
   if not chunk then return msg end
   local ok, err = xpcall(chunk, debug.traceback)
   if not ok then return err end
   return nil
end

return M
