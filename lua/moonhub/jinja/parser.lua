-- moonhub.jinja.parser: turns lexer tokens into a syntax tree (plain
-- tables, `k` names the node kind) for the renderer to walk.
-- Layer: lua/moonhub (pure Lua; uses moonhub.jinja.lexer).
-- Precedence follows jinja2's parser: filters/tests bind tighter than math.
local lexer = require "moonhub.jinja.lexer"

local M = {}
local fail = lexer.fail

-- ===== expressions =====

local P = {}
P.__index = P

local function new_stream(toks, line)
   return setmetatable({ toks = toks, i = 1, line = line }, P)
end

function P:peek(o) return self.toks[self.i + (o or 0)] end
function P:next() local t = self.toks[self.i]; self.i = self.i + 1; return t end
function P:is(t, v, o)
   local tok = self.toks[self.i + (o or 0)]
   return tok ~= nil and tok.t == t and (v == nil or tok.v == v)
end
function P:accept(t, v)
   if self:is(t, v) then return self:next() end
   return nil
end
function P:expect(t, v)
   local tok = self:next()
   if not tok or tok.t ~= t or (v ~= nil and tok.v ~= v) then
      fail(self.line, string.format("expected %s, got %s", v and ("'" .. v .. "'") or t,
                                    tok and ("'" .. tostring(tok.v) .. "'") or "end of tag"))
   end
   return tok
end
function P:done() return self.i > #self.toks end
function P:node(k, fields)
   fields.k, fields.line = k, self.line
   return fields
end

function P:expr(no_cond)
   local e = self:or_()
   if not no_cond and self:accept("name", "if") then
      local c = self:or_()
      local other
      if self:accept("name", "else") then other = self:expr() end
      return self:node("cond", { c = c, a = e, b = other })
   end
   return e
end

function P:or_()
   local e = self:and_()
   while self:accept("name", "or") do e = self:node("or", { a = e, b = self:and_() }) end
   return e
end

function P:and_()
   local e = self:not_()
   while self:accept("name", "and") do e = self:node("and", { a = e, b = self:not_() }) end
   return e
end

function P:not_()
   if self:accept("name", "not") then return self:node("not", { e = self:not_() }) end
   return self:compare()
end

local CMP = { ["=="] = true, ["!="] = true, ["<"] = true, [">"] = true, ["<="] = true, [">="] = true }

function P:compare()
   local e = self:math1()
   local ops, rest = {}, {}
   while true do
      local t = self:peek()
      if t and t.t == "op" and CMP[t.v] then
         self:next(); ops[#ops + 1] = t.v
      elseif self:is("name", "in") then
         self:next(); ops[#ops + 1] = "in"
      elseif self:is("name", "not") and self:is("name", "in", 1) then
         self.i = self.i + 2; ops[#ops + 1] = "notin"
      else
         break
      end
      rest[#rest + 1] = self:math1()
   end
   if #ops == 0 then return e end
   return self:node("cmp", { e = e, ops = ops, rest = rest })
end

function P:math1()
   local e = self:concat()
   while self:is("op", "+") or self:is("op", "-") do
      local op = self:next().v
      e = self:node("bin", { op = op, a = e, b = self:concat() })
   end
   return e
end

function P:concat()
   local e = self:math2()
   if not self:is("op", "~") then return e end
   local items = { e }
   while self:accept("op", "~") do items[#items + 1] = self:math2() end
   return self:node("concat", { items = items })
end

function P:math2()
   local e = self:pow()
   while self:is("op", "*") or self:is("op", "/") or self:is("op", "//") or self:is("op", "%") do
      local op = self:next().v
      e = self:node("bin", { op = op, a = e, b = self:pow() })
   end
   return e
end

function P:pow()
   local e = self:unary(true)
   while self:accept("op", "**") do e = self:node("bin", { op = "**", a = e, b = self:unary(true) }) end
   return e
end

function P:unary(with_filter)
   local e
   if self:accept("op", "-") then
      e = self:node("neg", { e = self:unary(false) })
   elseif self:accept("op", "+") then
      e = self:unary(false)
   else
      e = self:postfix(self:primary())
   end
   if with_filter then e = self:filter_expr(e) end
   return e
end

local LIT = { ["true"] = true, ["True"] = true, ["false"] = false, ["False"] = false }

function P:primary()
   local t = self:next()
   if not t then fail(self.line, "unexpected end of expression") end
   if t.t == "name" then
      if LIT[t.v] ~= nil then return self:node("lit", { v = LIT[t.v] }) end
      if t.v == "none" or t.v == "None" then return self:node("none", {}) end
      return self:node("name", { n = t.v })
   elseif t.t == "str" then
      local s = t.v
      while self:is("str") do s = s .. self:next().v end
      return self:node("lit", { v = s })
   elseif t.t == "num" then
      return self:node("lit", { v = t.v })
   elseif t.t == "op" and t.v == "(" then
      if self:accept("op", ")") then return self:node("list", { items = {}, tuple = true }) end
      local e = self:expr()
      if self:is("op", ",") then
         local items = { e }
         while self:accept("op", ",") do
            if self:is("op", ")") then break end
            items[#items + 1] = self:expr()
         end
         e = self:node("list", { items = items, tuple = true })
      end
      self:expect("op", ")")
      return e
   elseif t.t == "op" and t.v == "[" then
      local items = {}
      while not self:accept("op", "]") do
         if #items > 0 then self:expect("op", ",") end
         if self:accept("op", "]") then break end
         items[#items + 1] = self:expr()
      end
      return self:node("list", { items = items })
   elseif t.t == "op" and t.v == "{" then
      local keys, vals = {}, {}
      while not self:accept("op", "}") do
         if #keys > 0 then self:expect("op", ",") end
         if self:accept("op", "}") then break end
         keys[#keys + 1] = self:expr()
         self:expect("op", ":")
         vals[#vals + 1] = self:expr()
      end
      return self:node("dict", { keys = keys, vals = vals })
   end
   fail(self.line, "unexpected '" .. tostring(t.v) .. "' in expression")
end

function P:args()
   local args, kw = {}, {}
   self:expect("op", "(")
   while not self:accept("op", ")") do
      if #args > 0 or next(kw) then self:expect("op", ",") end
      if self:accept("op", ")") then break end
      if self:is("op", "*") or self:is("op", "**") then
         fail(self.line, "unsupported construct: *args/**kwargs in call")
      end
      if self:is("name") and self:is("op", "=", 1) then
         local name = self:next().v
         self:next()
         kw[name] = self:expr()
      else
         args[#args + 1] = self:expr()
      end
   end
   return args, kw
end

function P:subscript(obj)
   local function part()
      if self:is("op", ":") or self:is("op", "]") then return nil end
      return self:expr()
   end
   local a = part()
   if self:accept("op", ":") then
      local b = part()
      local c
      if self:accept("op", ":") then c = part() end
      self:expect("op", "]")
      return self:node("slice", { o = obj, a = a, b = b, c = c })
   end
   self:expect("op", "]")
   return self:node("getitem", { o = obj, i = a })
end

function P:postfix(e)
   while true do
      if self:accept("op", ".") then
         local t = self:next()
         if not t or (t.t ~= "name" and t.t ~= "num") then fail(self.line, "expected attribute name after '.'") end
         if t.t == "num" then
            e = self:node("getitem", { o = e, i = self:node("lit", { v = t.v }) })
         else
            e = self:node("getattr", { o = e, n = t.v })
         end
      elseif self:accept("op", "[") then
         e = self:subscript(e)
      elseif self:is("op", "(") then
         local args, kw = self:args()
         e = self:node("call", { f = e, args = args, kw = kw })
      else
         return e
      end
   end
end

local NOT_TEST_ARG = { ["else"] = true, ["or"] = true, ["and"] = true, ["if"] = true,
                       ["in"] = true, ["is"] = true, ["not"] = true }

function P:filter_expr(e)
   while true do
      if self:accept("op", "|") then
         local name = self:expect("name").v
         local args, kw = {}, {}
         if self:is("op", "(") then args, kw = self:args() end
         e = self:node("filter", { e = e, name = name, args = args, kw = kw })
      elseif self:accept("name", "is") then
         local neg = self:accept("name", "not") ~= nil
         local name = self:next()
         if not name or (name.t ~= "name" and not (name.t == "op" and CMP[name.v])) then
            fail(self.line, "expected a test name after 'is'")
         end
         local args, kw = {}, {}
         local t = self:peek()
         if self:is("op", "(") then
            args, kw = self:args()
         elseif t and (t.t == "str" or t.t == "num" or (t.t == "name" and not NOT_TEST_ARG[t.v])
                       or (t.t == "op" and (t.v == "[" or t.v == "{"))) then
            args = { self:postfix(self:primary()) }
         end
         e = self:node("test", { e = e, name = name.v, args = args, kw = kw, neg = neg })
      elseif self:is("op", "(") then
         local args, kw = self:args()
         e = self:node("call", { f = e, args = args, kw = kw })
      else
         return e
      end
   end
end

-- Parses one whole expression tag body.
function M.expression(src, line)
   local s = new_stream(lexer.tokens(src, line), line)
   local e = s:expr()
   if not s:done() then fail(line, "unexpected '" .. tostring(s:peek().v) .. "' after expression") end
   return e
end

-- ===== statements =====

local function assign_target(s)
   local names = {}
   local paren = s:accept("op", "(")
   repeat
      local n = s:expect("name").v
      if s:accept("op", ".") then
         return { ns = n, attr = s:expect("name").v }
      end
      names[#names + 1] = n
   until not s:accept("op", ",")
   if paren then s:expect("op", ")") end
   if #names == 1 then return { name = names[1] } end
   return { names = names }
end

local Block = {}

-- Body parser: consumes tokens until one of the end keywords; returns the
-- list of nodes and the keyword (with its stream) that stopped it.
local function body(st, ends)
   local nodes = {}
   while true do
      local t = st.toks[st.i]
      if not t then
         if ends then
            fail(st.last_line or 1, "missing '" .. ends[#ends] .. "' (template ended)")
         end
         return nodes
      end
      st.i = st.i + 1
      if t.kind == "text" then
         nodes[#nodes + 1] = { k = "out", text = t.body }
      elseif t.kind == "var" then
         st.last_line = t.line
         nodes[#nodes + 1] = { k = "print", e = M.expression(t.body, t.line), line = t.line }
      else
         st.last_line = t.line
         local s = new_stream(lexer.tokens(t.body, t.line), t.line)
         local kw = s:expect("name").v
         if ends then
            for _, e in ipairs(ends) do
               if kw == e then return nodes, kw, s end
            end
         end
         local f = Block[kw]
         if not f then
            if kw:match("^end") or kw == "else" or kw == "elif" then
               fail(t.line, "unexpected '" .. kw .. "' tag")
            end
            fail(t.line, "unsupported construct: '" .. kw .. "' tag")
         end
         nodes[#nodes + 1] = f(st, s, t.line)
      end
   end
end

local function finish(s)
   if not s:done() then fail(s.line, "unexpected '" .. tostring(s:peek().v) .. "' in tag") end
end

Block["if"] = function(st, s, line)
   local node = { k = "if", conds = {}, bodies = {}, line = line }
   local cond = s:expr()
   finish(s)
   while true do
      local nodes, kw, s2 = body(st, { "elif", "else", "endif" })
      node.conds[#node.conds + 1] = cond
      node.bodies[#node.bodies + 1] = nodes
      if kw == "elif" then
         cond = s2:expr(); finish(s2)
      elseif kw == "else" then
         finish(s2)
         local els, _, s3 = body(st, { "endif" })
         finish(s3)
         node.else_ = els
         return node
      else
         finish(s2)
         return node
      end
   end
end

Block["for"] = function(st, s, line)
   local target = assign_target(s)
   if target.ns then fail(line, "for loop target cannot be an attribute") end
   s:expect("name", "in")
   local iter = s:expr(true)
   local cond
   if s:accept("name", "if") then cond = s:expr(true) end
   if s:accept("name", "recursive") then fail(line, "unsupported construct: recursive for loop") end
   finish(s)
   local nodes, kw, s2 = body(st, { "else", "endfor" })
   finish(s2)
   local node = { k = "for", target = target, iter = iter, cond = cond, body = nodes, line = line }
   if kw == "else" then
      local els, _, s3 = body(st, { "endfor" })
      finish(s3)
      node.else_ = els
   end
   return node
end

Block["set"] = function(st, s, line)
   local target = assign_target(s)
   if s:accept("op", "=") then
      local e = s:expr()
      if s:is("op", ",") then
         local items = { e }
         while s:accept("op", ",") do items[#items + 1] = s:expr() end
         e = { k = "list", items = items, line = line }
      end
      finish(s)
      return { k = "set", target = target, e = e, line = line }
   end
   if s:is("op", "|") then fail(line, "unsupported construct: filtered set block") end
   finish(s)
   local nodes, _, s2 = body(st, { "endset" })
   finish(s2)
   return { k = "setblock", target = target, body = nodes, line = line }
end

Block["macro"] = function(st, s, line)
   local name = s:expect("name").v
   local params, defaults = {}, {}
   s:expect("op", "(")
   while not s:accept("op", ")") do
      if #params > 0 then s:expect("op", ",") end
      local p = s:expect("name").v
      params[#params + 1] = p
      if s:accept("op", "=") then defaults[p] = s:expr() end
   end
   finish(s)
   local nodes, _, s2 = body(st, { "endmacro" })
   s2:accept("name", name)
   finish(s2)
   return { k = "macro", name = name, params = params, defaults = defaults, body = nodes, line = line }
end

Block["break"] = function(_, s, line) finish(s); return { k = "break", line = line } end
Block["continue"] = function(_, s, line) finish(s); return { k = "continue", line = line } end

-- HF's AssistantTracker extension: {% generation %} only marks a span.
Block["generation"] = function(st, s, line)
   finish(s)
   local nodes, _, s2 = body(st, { "endgeneration" })
   finish(s2)
   return { k = "group", body = nodes, line = line }
end

Block["filter"] = function(st, s, line)
   local name = s:expect("name").v
   local args, kw = {}, {}
   if s:is("op", "(") then args, kw = s:args() end
   finish(s)
   local nodes, _, s2 = body(st, { "endfilter" })
   finish(s2)
   return { k = "filterblock", name = name, args = args, kw = kw, body = nodes, line = line }
end

Block["raw"] = function(st, s, line)
   finish(s)
   local t = st.toks[st.i]
   local text = (t and t.kind == "text") and t.body or ""
   if t and t.kind == "text" then st.i = st.i + 1 end
   local _, _, s2 = body(st, { "endraw" })
   finish(s2)
   return { k = "out", text = text, line = line }
end

-- Parses a whole template (tokens from lexer.split) into a node list.
function M.template(toks)
   local st = { toks = toks, i = 1 }
   return body(st, nil)
end

return M
