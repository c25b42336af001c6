-- moonhub.jinja: one feature per case against fixtures/feature_cases.json
-- (rendered by Python jinja2 with HF's settings, tests/tools/gen_template_fixtures.py),
-- plus errors, options and the value representation.
-- Layer: tests for moonhub.jinja.
local jinja = require "moonhub.jinja"

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local features = assert(jinja.decode(read(here .. "fixtures/feature_cases.json")))

describe("jinja features vs jinja2 #unit", function()
   for i, c in ipairs(features) do
      it(string.format("case %d: %s", i, c.template:sub(1, 60)), function()
         assert.are.equal(c.expected, jinja.render(c.template, c.context))
      end)
   end
end)

describe("jinja errors #unit", function()
   local function err(src, ctx)
      local ok, e = pcall(jinja.render, src, ctx)
      assert.is_false(ok)
      return e
   end

   it("names unsupported constructs and the line", function()
      assert.matches("line 2: unsupported construct: 'call' tag", err("x\n{% call foo() %}{% endcall %}"), 1, true)
      assert.matches("line 1: unsupported construct: 'extends' tag", err("{% extends 'a' %}"), 1, true)
      assert.matches("line 3: unknown filter 'shout'", err("\n\n{{ x | shout }}"), 1, true)
      assert.matches("unknown test 'weird'", err("{% if x is weird %}{% endif %}"), 1, true)
      assert.matches("line 1: missing 'endif'", err("{% if x %}a"), 1, true)
      assert.matches("unexpected 'endfor' tag", err("{% endfor %}"), 1, true)
      assert.matches("unclosed '{{' tag", err("a {{ b"), 1, true)
   end)

   it("raises runtime errors with the line", function()
      assert.matches("line 2: 'x' is undefined", err("\n{{ x.y }}"), 1, true)
      assert.matches("unsupported operand type(s) for +: 'str' and 'int'", err("{{ 'a' + 1 }}"), 1, true)
      assert.matches("division by zero", err("{{ 1 // 0 }}"), 1, true)
      assert.matches("not iterable", err("{% for x in 3 %}{% endfor %}"), 1, true)
   end)

   it("raise_exception raises exactly its message", function()
      assert.are.equal("bad roles", err("{{ raise_exception('bad roles') }}"))
   end)

   it("checks its arguments", function()
      assert.has_error(function() jinja.compile(42) end,
                       "jinja.compile: template source must be a string, got number")
   end)
end)

describe("jinja values and options #unit", function()
   it("keeps dict key order from decode and dict()", function()
      local v = jinja.decode('{"z": 1, "a": {"y": null, "b": []}}')
      assert.are.equal('{"z": 1, "a": {"y": null, "b": []}}', jinja.render("{{ v | tojson }}", { v = v }))
      local d = jinja.dict({ b = 1, a = 2 }, { "b", "a" })
      assert.are.equal("b a", jinja.render("{{ d | join(' ') }}", { d = d }))
      assert.are.equal('{"a": 2, "b": 1}', jinja.render("{{ d | tojson }}", { d = { b = 1, a = 2 } }))
   end)

   it("treats jinja.null as None and missing keys as undefined", function()
      assert.are.equal("None|True|False", jinja.render("{{ n }}|{{ n is none }}|{{ m.k is defined }}",
                                                     { n = jinja.null, m = {} }))
   end)

   it("calls Lua functions from the context", function()
      assert.are.equal("6", jinja.render("{{ add(1, 5) }}", { add = function(a, b) return a + b end }))
   end)

   it("honours trim_blocks/lstrip_blocks being off", function()
      local src = "a\n  {% if true %}\nb\n  {% endif %}\nc"
      assert.are.equal("a\n  \nb\n  \nc", jinja.render(src, {}, {}))
      assert.are.equal("a\nb\nc", jinja.render(src, {}))
   end)

   it("strftime_now formats the current date", function()
      assert.are.equal(os.date("%Y"), jinja.render("{{ strftime_now('%Y') }}"))
   end)
end)
