-- moonhub.jinja.render: walks a parsed template and writes its output.
-- Scopes follow Jinja: for-loops and macros open a scope, if does not;
-- `set` writes to the innermost scope; namespaces carry state outward.
-- Layer: lua/moonhub (pure Lua; uses moonhub.jinja.value and .library).
local V = require "moonhub.jinja.value"
local B = require "moonhub.jinja.library"

local M = {}
local kind, truthy, str, undef = V.kind, V.truthy, V.str, V.undef

local function fail(st, line, msg)
   error(string.format("jinja: line %d: %s", line or st.line or 0, msg), 0)
end

local function lookup(st, scope, name)
   while scope do
      local v = scope.vars[name]
      if v ~= nil then return v end
      scope = scope.parent
   end
   local v = st.ctx[name]
   if v ~= nil then return v end
   v = B.globals[name]
   if v ~= nil then return v end
   return undef(name)
end

local eval

local function eval_args(st, node, scope)
   local args, kw = {}, {}
   for i, a in ipairs(node.args) do args[i] = eval(st, a, scope) end
   for k, a in pairs(node.kw) do kw[k] = eval(st, a, scope) end
   return args, kw
end

local function undefined_error(st, line, v)
   fail(st, line, "'" .. tostring(v.name or "value") .. "' is undefined")
end

local E = {}

E.lit = function(_, node) return node.v end
E.none = function() return V.null end
E.name = function(st, node, scope) return lookup(st, scope, node.n) end

E.list = function(st, node, scope)
   local out = node.tuple and V.tuple() or V.list()
   for i, e in ipairs(node.items) do out[i] = eval(st, e, scope) end
   return out
end

E.dict = function(st, node, scope)
   local out, order = {}, {}
   for i, ke in ipairs(node.keys) do
      local key = eval(st, ke, scope)
      if out[key] == nil then order[#order + 1] = key end
      out[key] = eval(st, node.vals[i], scope)
   end
   return V.dict(out, order)
end

E.getattr = function(st, node, scope)
   local obj = eval(st, node.o, scope)
   if kind(obj) == "undefined" then undefined_error(st, node.line, obj) end
   return B.getattr(obj, node.n)
end

E.getitem = function(st, node, scope)
   local obj = eval(st, node.o, scope)
   if kind(obj) == "undefined" then undefined_error(st, node.line, obj) end
   return B.getitem(obj, eval(st, node.i, scope))
end

E.slice = function(st, node, scope)
   local obj = eval(st, node.o, scope)
   local function opt(e)
      if not e then return nil end
      local v = eval(st, e, scope)
      if kind(v) == "none" then return nil end
      if kind(v) ~= "int" then fail(st, node.line, "slice indices must be integers") end
      return v
   end
   local k = kind(obj)
   if k ~= "list" and k ~= "str" then fail(st, node.line, "cannot slice a " .. k .. " value") end
   return B.slice(obj, opt(node.a), opt(node.b), opt(node.c))
end

E.call = function(st, node, scope)
   local f = eval(st, node.f, scope)
   local args, kw = eval_args(st, node, scope)
   local k = kind(f)
   if k == "func" then
      if type(f) == "function" then
         local a = { table.unpack(args, 1, #args) }
         if next(kw) then a[#a + 1] = kw end
         local r = f(table.unpack(a, 1, #a))
         if r == nil then return undef("call result") end
         return r
      end
      return f.fn(args, kw, st)
   end
   if k == "undefined" then undefined_error(st, node.line, f) end
   fail(st, node.line, "'" .. k .. "' object is not callable")
end

E.filter = function(st, node, scope)
   local f = B.filters[node.name]
   if not f then fail(st, node.line, "unknown filter '" .. node.name .. "'") end
   local v = eval(st, node.e, scope)
   local args, kw = eval_args(st, node, scope)
   return f(v, args, kw, st)
end

E.test = function(st, node, scope)
   local t = B.tests[node.name]
   if not t then fail(st, node.line, "unknown test '" .. node.name .. "'") end
   local v = eval(st, node.e, scope)
   local args = eval_args(st, node, scope)
   local r = t(v, args, st) and true or false
   if node.neg then return not r end
   return r
end

E["not"] = function(st, node, scope) return not truthy(eval(st, node.e, scope)) end

E["and"] = function(st, node, scope)
   local a = eval(st, node.a, scope)
   if not truthy(a) then return a end
   return eval(st, node.b, scope)
end

E["or"] = function(st, node, scope)
   local a = eval(st, node.a, scope)
   if truthy(a) then return a end
   return eval(st, node.b, scope)
end

E.cond = function(st, node, scope)
   if truthy(eval(st, node.c, scope)) then return eval(st, node.a, scope) end
   if node.b then return eval(st, node.b, scope) end
   return undef("else branch")
end

E.neg = function(st, node, scope)
   local v = eval(st, node.e, scope)
   local k = kind(v)
   if k ~= "int" and k ~= "float" then fail(st, node.line, "bad operand type for unary -: '" .. k .. "'") end
   return -v
end

E.concat = function(st, node, scope)
   local parts = {}
   for i, e in ipairs(node.items) do parts[i] = str(eval(st, e, scope)) end
   return table.concat(parts)
end

E.bin = function(st, node, scope)
   local a, b = eval(st, node.a, scope), eval(st, node.b, scope)
   local ok, r = pcall(B.arith, node.op, a, b)
   if not ok then fail(st, node.line, r) end
   return r
end

E.cmp = function(st, node, scope)
   local a = eval(st, node.e, scope)
   for i, op in ipairs(node.ops) do
      local b = eval(st, node.rest[i], scope)
      local ok, r = pcall(B.compare, op, a, b)
      if not ok then fail(st, node.line, r) end
      if not r then return false end
      a = b
   end
   return true
end

eval = function(st, node, scope)
   return E[node.k](st, node, scope)
end
M.eval = eval

-- ===== statements =====

local exec

local function new_scope(parent) return { vars = {}, parent = parent } end

local function capture(st, nodes, scope)
   local buf = {}
   local sig = exec(st, nodes, scope, buf)
   return table.concat(buf), sig
end

local function assign(st, scope, target, v, line)
   if target.name then
      scope.vars[target.name] = v
   elseif target.ns then
      local ns = lookup(st, scope, target.ns)
      if kind(ns) ~= "ns" then
         fail(st, line, "cannot assign attribute on non-namespace object '" .. target.ns .. "'")
      end
      ns.attrs[target.attr] = v
   else
      local k = kind(v)
      if k ~= "list" then fail(st, line, "cannot unpack a " .. k .. " value into " .. #target.names .. " names") end
      if #v ~= #target.names then
         fail(st, line, string.format("cannot unpack %d values into %d names", #v, #target.names))
      end
      for i, n in ipairs(target.names) do scope.vars[n] = v[i] end
   end
end

local S = {}

S.out = function(_, node, _, out) out[#out + 1] = node.text end

S.print = function(st, node, scope, out)
   st.line = node.line
   out[#out + 1] = str(eval(st, node.e, scope))
end

S["if"] = function(st, node, scope, out)
   st.line = node.line
   for i, c in ipairs(node.conds) do
      if truthy(eval(st, c, scope)) then return exec(st, node.bodies[i], scope, out) end
   end
   if node.else_ then return exec(st, node.else_, scope, out) end
end

local function loop_object(items, i, cycle)
   local n = #items
   return setmetatable({
      index = i, index0 = i - 1, revindex = n - i + 1, revindex0 = n - i,
      first = i == 1, last = i == n, length = n, depth = 1, depth0 = 0,
      previtem = i > 1 and items[i - 1] or undef("loop.previtem"),
      nextitem = i < n and items[i + 1] or undef("loop.nextitem"),
      cycle = cycle,
   }, B.LOOP_MT)
end

S["for"] = function(st, node, scope, out)
   st.line = node.line
   local iter = eval(st, node.iter, scope)
   local ok, items = pcall(B.iterate, iter)
   if not ok then fail(st, node.line, items) end
   if node.cond then
      local inner = new_scope(scope)
      local kept = {}
      for _, item in ipairs(items) do
         assign(st, inner, node.target, item, node.line)
         if truthy(eval(st, node.cond, inner)) then kept[#kept + 1] = item end
      end
      items = kept
   end
   if #items == 0 then
      if node.else_ then return exec(st, node.else_, scope, out) end
      return
   end
   for i, item in ipairs(items) do
      local inner = new_scope(scope)   -- jinja: sets in the body last one iteration
      local cycle = B.callable("loop.cycle", function(args)
         if #args == 0 then return undef("loop.cycle") end
         return args[(i - 1) % #args + 1]
      end)
      inner.vars.loop = loop_object(items, i, cycle)
      assign(st, inner, node.target, item, node.line)
      local sig = exec(st, node.body, inner, out)
      if sig == "break" then break end
   end
end

S.set = function(st, node, scope)
   st.line = node.line
   assign(st, scope, node.target, eval(st, node.e, scope), node.line)
end

S.setblock = function(st, node, scope)
   assign(st, scope, node.target, (capture(st, node.body, scope)), node.line)
end

S.macro = function(st, node, scope)
   local root = st.root
   scope.vars[node.name] = B.callable(node.name, function(args, kw)
      if #args > #node.params then
         fail(st, node.line, string.format("macro '%s' takes %d arguments, got %d", node.name, #node.params, #args))
      end
      local ms = new_scope(root)
      for i, p in ipairs(node.params) do
         local v = args[i]
         if v == nil then v = kw[p] end
         if v == nil and node.defaults[p] then v = eval(st, node.defaults[p], ms) end
         if v == nil then v = undef(p) end
         ms.vars[p] = v
      end
      local saved = st.line
      local s = capture(st, node.body, ms)
      st.line = saved
      return s
   end)
end

S["break"] = function() return "break" end
S["continue"] = function() return "continue" end

S.group = function(st, node, scope, out) return exec(st, node.body, scope, out) end

S.filterblock = function(st, node, scope, out)
   local f = B.filters[node.name]
   if not f then fail(st, node.line, "unknown filter '" .. node.name .. "'") end
   local text, sig = capture(st, node.body, scope)
   local args, kw = eval_args(st, node, scope)
   out[#out + 1] = str(f(text, args, kw, st))
   return sig
end

-- Runs nodes; returns "break"/"continue" when a loop control fired.
exec = function(st, nodes, scope, out)
   for _, node in ipairs(nodes) do
      local sig = S[node.k](st, node, scope, out)
      if sig then return sig end
   end
end

--- Renders a parsed template with ctx (a table of variables).
function M.run(nodes, ctx)
   local root = new_scope(nil)
   local st = { ctx = ctx or {}, root = root, line = 0 }
   local out = {}
   local ok, err = pcall(exec, st, nodes, root, out)
   if not ok then
      if type(err) == "table" and err.jinja_raise then error(err.message, 0) end
      if type(err) == "string" and not err:match("^jinja: ") then
         err = string.format("jinja: line %d: %s", st.line, err)
      end
      error(err, 0)
   end
   return table.concat(out)
end

return M
