-- moonhub.grammar: constrained decoding, so generated text is always JSON
-- (json_object) or JSON valid under a schema (json_schema). Layer: lua/moonhub
-- (wraps moonhub.core.grammar). Design and the schema subset: docs/grammar.md.
--
--   local g = assert(mh.grammar.json_schema(model, {type = "object", ...}))
--   local text = model:generate(prompt, {logits_processor = g:processor()})
local core = require "moonhub.core.grammar"

local M = {}
local G = {}
G.__index = G

-- ===== schema tables -> JSON text =====

-- Keywords whose value is an array: an empty Lua table there means [].
local array_keys = { required = true, enum = true, anyOf = true, oneOf = true, allOf = true,
   type = true, examples = true }

local function is_seq(t)
   local n = #t
   if n == 0 then return false end
   local count = 0
   for _ in pairs(t) do count = count + 1 end
   return count == n
end

local function quote(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      local esc = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
      return esc[c] or string.format("\\u%04x", c:byte())
   end) .. '"'
end

-- Key order of an object: its metatable's __jsonorder (dkjson's convention)
-- first; for "properties", the schema's required list next (a Lua table has
-- no order, and the grammar emits properties in schema order); then sorted.
local function key_order(t, required)
   local keys, seen = {}, {}
   local mt = getmetatable(t)
   local function push(k)
      if t[k] ~= nil and not seen[k] then keys[#keys + 1] = k; seen[k] = true end
   end
   for _, k in ipairs(mt and mt.__jsonorder or {}) do push(k) end
   for _, k in ipairs(required or {}) do push(k) end
   local rest = {}
   for k in pairs(t) do
      if type(k) ~= "string" then error("grammar.json_schema: schema object keys must be strings", 5) end
      if not seen[k] then rest[#rest + 1] = k end
   end
   table.sort(rest)
   for _, k in ipairs(rest) do keys[#keys + 1] = k end
   return keys
end

local function encode(v, parent_key, required, out)
   local ty = type(v)
   if ty == "string" then out[#out + 1] = quote(v)
   elseif ty == "boolean" then out[#out + 1] = tostring(v)
   elseif ty == "number" then
      if v ~= v or v == math.huge or v == -math.huge then
         error("grammar.json_schema: schema numbers must be finite", 4)
      end
      out[#out + 1] = math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
   elseif ty == "table" then
      local mt = getmetatable(v)
      if is_seq(v) or (next(v) == nil and (array_keys[parent_key] or (mt and mt.__jsontype == "array"))) then
         out[#out + 1] = "["
         for i, x in ipairs(v) do
            if i > 1 then out[#out + 1] = "," end
            encode(x, nil, nil, out)
         end
         out[#out + 1] = "]"
      else
         out[#out + 1] = "{"
         local req = type(v.required) == "table" and v.required or nil
         for i, k in ipairs(key_order(v, parent_key == "properties" and required or nil)) do
            if i > 1 then out[#out + 1] = "," end
            out[#out + 1] = quote(k) .. ":"
            encode(v[k], k, k == "properties" and req or nil, out)
         end
         out[#out + 1] = "}"
      end
   else
      error("grammar.json_schema: a schema cannot hold a " .. ty, 4)
   end
end

-- The JSON text of a schema table (exposed for the server and tests).
function M.encode_schema(schema)
   local out = {}
   encode(schema, nil, nil, out)
   return table.concat(out)
end

-- ===== grammars =====

-- The core tokenizer handle of a tokenizer or a model.
local function handle(tok, fname)
   if type(tok) == "table" and type(tok.tokenizer) == "table" then tok = tok.tokenizer end
   if type(tok) == "table" and tok._h then return tok._h end
   error(fname .. ": argument 1 must be a tokenizer or a model, got " .. type(tok), 3)
end

local function wrap(g, kind) return setmetatable({ _g = g, kind = kind }, G) end

-- json_schema(tokenizer|model, schema table or JSON text) -> grammar | nil, msg
-- (msg names the unsupported or invalid construct: a client error).
function M.json_schema(tok, schema)
   local h = handle(tok, "grammar.json_schema")
   if type(schema) == "table" then
      -- a schema that came from a request body (an array where an object
      -- belongs) is bad input, not misuse: nil, msg like a bad JSON string
      local ok, text = pcall(M.encode_schema, schema)
      if not ok then return nil, (tostring(text):gsub("^[^\n]-%.lua:%d+: ", "")) end
      schema = text
   elseif type(schema) ~= "string" then
      error("grammar.json_schema: schema must be a table or a JSON string, got " .. type(schema), 2)
   end
   local g, msg = core.json_schema(h, schema)
   if not g then return nil, msg end
   return wrap(g, "json_schema")
end

-- json_object(tokenizer|model) -> grammar for any JSON object
function M.json_object(tok)
   return wrap(core.json_object(handle(tok, "grammar.json_object")), "json_object")
end

-- tool_call(tokenizer|model, tools[, name]) -> grammar | nil, msg: forces
-- one call {"name": ..., "arguments": {...}} to one of the OpenAI-style
-- tools (or to the named one), its arguments following that tool's
-- parameters schema. For tool_choice "required" and named tool choices.
function M.tool_call(tok, tools, name)
   local alts = {}
   for _, t in ipairs(tools or {}) do
      local f = t["function"] or t
      if not name or f.name == name then
         local params = type(f.parameters) == "table" and next(f.parameters) ~= nil and f.parameters
            or { type = "object" }
         alts[#alts + 1] = setmetatable({ type = "object",
            properties = setmetatable({ name = { const = f.name }, arguments = params },
               { __jsonorder = { "name", "arguments" } }),
            required = { "name", "arguments" }, additionalProperties = false }, { __jsonorder = {
               "type", "properties", "required", "additionalProperties" } })
      end
   end
   if #alts == 0 then return nil, "no tool matches the tool choice" end
   return M.json_schema(tok, #alts == 1 and alts[1] or { anyOf = alts })
end

local function check(self, fname)
   if getmetatable(self) ~= G then error("grammar:" .. fname .. ": call it with ':' on a grammar", 3) end
   return self._g
end

-- mask(logits[, row]) -> allowed count; sets disallowed logits to -inf in place
function G:mask(logits, row) return check(self, "mask"):mask(logits, row) end
-- accept(id): raises when id may not come next
function G:accept(id) check(self, "accept"):accept(id) end
-- allows(id) -> boolean, without changing the state
function G:allows(id) return check(self, "allows"):allows(id) end
-- done() -> true once the value is complete (end of generation allowed)
function G:done() return check(self, "done"):done() end
function G:reset() check(self, "reset"):reset() end
function G:free() check(self, "free"):free() end
G.__close = G.free
function G:__tostring() return tostring(self._g) end

-- processor() -> function(logits, tokens) for generate's logits_processor.
-- It accepts the ids generated since its last call (tokens: every id so far)
-- and then masks; an empty tokens list starts over (a new generation).
function G:processor()
   local g = check(self, "processor")
   local n = 0
   return function(logits, tokens)
      if #tokens < n or (#tokens == 0 and n > 0) then g:reset(); n = 0 end
      for i = n + 1, #tokens do g:accept(tokens[i]) end
      n = #tokens
      g:mask(logits)
   end
end

return M
