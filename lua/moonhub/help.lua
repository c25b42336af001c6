-- moonhub.help: help() for the REPL and the Markdown reference, both read
-- from moonhub.docs_table so they cannot disagree. Layer: lua/moonhub
-- (pure Lua; resolves documented paths by indexing require "moonhub").
local M = {}

local TABLE = require "moonhub.docs_table"

-- path of an entry: the signature up to "(" or " " ("mh.tensor.randn");
-- a method "Model:generate" is found in its class (TABLE.classes.Model)
local function path_of(sig)
   local class, method = sig:match("^(%u[%w_]*):([%w_]+)")
   if class then
      local at = TABLE.classes and TABLE.classes[class]
      return at and at .. "." .. method or sig:match("^[%w_.:]+")
   end
   return sig:match("^[%w_.]+")
end

local entries, by_path = {}, {}
for _, e in ipairs(TABLE) do
   if type(e) == "table" then
      local d = { sig = e[1], doc = e[2], path = path_of(e[1]) }
      entries[#entries + 1] = d
      by_path[d.path] = d
   end
end
M.entries = entries

--- resolve(path) -> the value a documented path names ("mh" is the
-- moonhub module), or nil.
function M.resolve(path)
   local v
   for name in path:gmatch("[^.]+") do
      if v == nil then
         if name ~= "mh" then return nil end
         v = require "moonhub"
      elseif type(v) == "table" then
         v = v[name]
      else
         return nil
      end
   end
   return v
end

-- value -> entry, built on first use (resolving loads the documented
-- modules); only functions and tables, whose identity is unambiguous.
local by_value
local function entry_of(v)
   if not by_value then
      by_value = {}
      for _, d in ipairs(entries) do
         local ok, val = pcall(M.resolve, d.path)
         local tv = type(val)
         if ok and (tv == "function" or tv == "table") and not by_value[val] then
            by_value[val] = d
         end
      end
   end
   return by_value[v]
end

--- children(v) -> names of the documented fields of v when v is a
-- documented module (lazy submodules included), else {}.
function M.children(v)
   local d = entry_of(v)
   if not d then return {} end
   local names, prefix = {}, d.path .. "."
   for _, e in ipairs(entries) do
      local rest = e.path:sub(1, #prefix) == prefix and e.path:sub(#prefix + 1)
      if rest and not rest:find(".", 1, true) then names[#names + 1] = rest end
   end
   return names
end

--- doc(v) -> the one-line doc of a documented function or module, or nil.
function M.doc(v)
   local tv = type(v)
   if tv ~= "function" and tv ~= "table" then return nil end
   local d = entry_of(v)
   return d and d.doc
end

local function line(d) return ("  %-44s %s"):format(d.sig, d.doc) end

--- text(x) -> the help text for x: a documented value or path, or the
-- overview when x is nil.
function M.text(x)
   if x == nil then
      local out = {
         "moonhub REPL: Lua 5.4 with the moonhub API. help(f) shows the doc of f.",
         "",
      }
      for _, d in ipairs(entries) do
         if d.path == "mh" or d.path:match("^mh%.[%w_]+$") then out[#out + 1] = line(d) end
      end
      for _, s in ipairs {
         "",
         "  local x = ...       persists across lines (the REPL keeps top-level locals)",
         "  Tab                 completes globals, fields (mh.ten -> mh.tensor) and methods",
         "  %time EXPR          runs EXPR and prints the time it took",
         "  :more               shows in full the last value cut to one screen",
         "  mh.show(x, {all = true})   prints all of x",
         "  $MOONHUB_HOME/init.lua     runs when the REPL starts",
         "  docs/lua-api.md     the full reference",
      } do out[#out + 1] = s end
      return table.concat(out, "\n")
   end
   local d = type(x) == "string" and by_path[x] or entry_of(x)
   -- an instance (a model, a tokenizer): its class's listing
   if not d and type(x) == "table" and getmetatable(x) then d = entry_of(getmetatable(x)) end
   if not d then
      return ("no short doc for %s; help() lists the documented modules"):format(
         type(x) == "string" and x or tostring(x))
   end
   local out = { d.sig, "  " .. d.doc }
   local kids = M.children(M.resolve(d.path))
   if #kids > 0 then
      out[#out + 1] = ""
      for _, name in ipairs(kids) do out[#out + 1] = line(by_path[d.path .. "." .. name]) end
   end
   return table.concat(out, "\n")
end

--- help([x]): prints the overview, or the short doc of x (a function,
-- module or a path such as "mh.tensor.randn").
function M.help(x)
   io.write(M.text(x), "\n")
end

--- markdown() -> the generated reference section of docs/lua-api.md.
function M.markdown()
   local out = {}
   for _, e in ipairs(TABLE) do
      if type(e) == "string" then
         if #out > 0 then out[#out + 1] = "" end
         out[#out + 1] = "### " .. e
         out[#out + 1] = ""
         out[#out + 1] = "| call | |"
         out[#out + 1] = "|---|---|"
      else
         out[#out + 1] = ("| `%s` | %s |"):format((e[1]:gsub("|", "\\|")), (e[2]:gsub("|", "\\|")))
      end
   end
   return table.concat(out, "\n") .. "\n"
end

return M
