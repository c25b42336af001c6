-- moonhub.jinja: a pure-Lua Jinja renderer for the subset chat templates
-- use, configured like HF transformers' apply_chat_template (trim_blocks,
-- lstrip_blocks, loop controls, tojson keeping order and non-ASCII text).
-- Layer: lua/moonhub (pure Lua; uses moonhub.jinja.* and dkjson).
--
-- Values: Lua strings, integers, floats and booleans are Python's str, int,
-- float and bool. `jinja.null` (= dkjson.null) is None; a missing key is
-- Undefined. A table is a list if it has [1] or is empty, else a dict;
-- dkjson's __jsontype metatable field ("array"/"object") settles the
-- ambiguous cases. Dicts iterate (and tojson) in the order listed in their
-- metatable's __jsonorder, then the remaining keys sorted; `jinja.decode`
-- builds such tables from JSON text, `jinja.dict(t, order)` by hand.
--
--   local t = jinja.compile(src)          -- cached by source + options
--   local s = t:render({ messages = msgs, add_generation_prompt = true })
local lexer = require "moonhub.jinja.lexer"
local parser = require "moonhub.jinja.parser"
local render = require "moonhub.jinja.render"
local value = require "moonhub.jinja.value"
local library = require "moonhub.jinja.library"

local M = {}

M.null = value.null
M.decode = value.decode
M.dict = value.dict
M.list = value.list
M.tojson = value.tojson
M.str = value.str
M.keys = value.keys
M.filters = library.filters
M.tests = library.tests

-- HF's environment: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
M.HF = { trim_blocks = true, lstrip_blocks = true }

local cache = setmetatable({}, { __mode = "v" })

local Template = {}
Template.__index = Template

-- Unknown filters and tests are compile errors in jinja2 too.
local function check_names(node, seen)
   if type(node) ~= "table" or seen[node] then return end
   seen[node] = true
   if node.k == "filter" or node.k == "filterblock" then
      if not library.filters[node.name] then
         lexer.fail(node.line or 0, "unknown filter '" .. node.name .. "'")
      end
   elseif node.k == "test" and not library.tests[node.name] then
      lexer.fail(node.line or 0, "unknown test '" .. node.name .. "'")
   end
   for _, child in pairs(node) do check_names(child, seen) end
end

--- Parses src once; errors name the construct and the template line.
function M.compile(src, opts)
   if type(src) ~= "string" then
      error("jinja.compile: template source must be a string, got " .. type(src), 2)
   end
   opts = opts or M.HF
   local key = (opts.trim_blocks and "T" or "t") .. (opts.lstrip_blocks and "L" or "l")
      .. (opts.keep_trailing_newline and "K" or "k") .. src
   local t = cache[key]
   if t then return t end
   local nodes = parser.template(lexer.split(src, opts))
   check_names(nodes, {})
   t = setmetatable({ nodes = nodes, source = src }, Template)
   cache[key] = t
   return t
end

--- Renders with ctx (variables). A raise_exception() in the template
--- raises its message as a Lua error; other errors start "jinja: line N:".
function Template:render(ctx)
   if ctx ~= nil and type(ctx) ~= "table" then
      error("jinja template:render: context must be a table, got " .. type(ctx), 2)
   end
   return render.run(self.nodes, ctx or {})
end

--- One-shot: compile (cached) and render.
function M.render(src, ctx, opts)
   return M.compile(src, opts):render(ctx)
end

return M
