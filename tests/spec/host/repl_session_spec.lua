-- Specs for the REPL session (moonhub.repl, moonhub.repl_lex, moonhub.help):
-- locals that persist across lines, help() from the one docs table (and
-- docs/lua-api.md generated from it), completion candidates, one-screen
-- overviews with :more, %time, $MOONHUB_HOME/init.lua. Through a pipe and
-- as units. Layer: tests.
local H = require "helpers.host"

describe("REPL session through a pipe #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   local function repl(input)
      local out, err, code = H.run(home, "", input)
      assert.equal(0, code, err)
      return out, err
   end

   it("keeps top-level locals across lines; nested ones stay local", function()
      local out, err = repl(table.concat({
         'local mh = require "moonhub"',
         "local T = mh.tensor",
         "local a = T.tensor({{1, 2, 3}, {4, 5, 6}})",
         "a:sum(), a:shape()[2], a[2][3]",
         "local function fact(n) if n < 2 then return 1 end return n * fact(n - 1) end",
         "fact(5)",
         "local x, y <const> = 7",
         "x, y",
         "do local hidden = 1 end",
         "hidden",
         "local s = '-- local not_me = 1'",
         "not_me, s",
         "",
      }, "\n"))
      assert.equal("", err)
      assert.equal("21.0\t3\t6.0\n120\n7\tnil\nnil\nnil\t-- local not_me = 1\n", out)
   end)

   it("help() lists the modules; help(f) shows f's short doc; unknown values say so", function()
      local out = repl('local mh = require "moonhub"\nhelp()\nhelp(mh.tensor.randn)\nhelp(print)\n')
      assert.truthy(out:find("mh.tensor%s+n%-dimensional arrays"), out)
      assert.truthy(out:find("mh.load(model[, opts])", 1, true), out)
      assert.truthy(out:find("mh.tensor.randn(shape[, opts]) -> tensor\n  normal", 1, true), out)
      assert.truthy(out:find("no short doc for function: builtin", 1, true)
                    or out:find("no short doc for function", 1, true), out)
   end)

   it("cuts a big table to one screen; :more and mh.show(x, {all = true}) show all", function()
      local out = repl('big = {}\nfor i = 1, 200 do big["k" .. i] = i end\nbig\n:more\n'
                       .. 'require("moonhub").show(big, {all = true})\n')
      local first, rest = out:match("^(.-%(:more or mh%.show%(x, {all = true}%) shows all%)\n)(.*)$")
      assert.truthy(first, out)
      assert.truthy(first:find("{ -- 200 entries", 1, true), first)
      assert.truthy(first:find("k1 = 1,", 1, true), first)
      assert.truthy(first:find("... (", 1, true), first)
      local lines = select(2, first:gsub("\n", ""))
      assert.is_true(lines <= 30, first)
      -- both full views list every key, once each
      local _, n = rest:gsub("k%d+ = %d+", "")
      assert.equal(400, n)
      assert.falsy(rest:find("more)", 1, true))
   end)

   it("%time prints the time and the value", function()
      local out = repl("%time 6 * 7\n%time local z = 1\nz\n")
      assert.matches("^time: [%d.]+ ms wall, [%d.]+ ms cpu\n42\ntime: [%d.]+ ms wall, [%d.]+ ms cpu\n1\n$", out)
   end)

   it("runs $MOONHUB_HOME/init.lua first; its locals are there; its error is reported", function()
      H.write(home .. "/init.lua", "local greeting = 'hi from init'\n")
      assert.equal("hi from init\n", (repl("greeting\n")))
      H.write(home .. "/init.lua", "error('broken init')\n")
      local out, err = repl("1 + 1\n")
      assert.equal("2\n", out)
      assert.truthy(err:find("init.lua:1: broken init", 1, true), err)
   end)
end)

describe("moonhub.repl_lex.rewrite #unit", function()
   local lex = require "moonhub.repl_lex"
   it("turns top-level locals into assignments, leaves nested ones", function()
      assert.equal(" x = 1", lex.rewrite("local x = 1"))
      assert.equal(" a, b = 1, 2;  c = nil", lex.rewrite("local a, b = 1, 2; local c"))
      assert.equal(" k  = 3", lex.rewrite("local k <const> = 3"))
      assert.equal(" function f() local y = 1 return y end",
                   lex.rewrite("local function f() local y = 1 return y end"))
      assert.equal("if c then local y = 1 end  z = 2", lex.rewrite("if c then local y = 1 end local z = 2"))
      assert.equal("while c do local y = 1 end", lex.rewrite("while c do local y = 1 end"))
      assert.equal("repeat local y = 1 until y  w = 1", lex.rewrite("repeat local y = 1 until y local w = 1"))
   end)
   it("ignores 'local' in strings and comments", function()
      for _, src in ipairs {
         "s = 'local x'", 's = "a\\"local x"', "s = [==[local x]==]",
         "-- local x = 1\ny = 2", "--[[ local x ]] y = 2",
      } do assert.equal(src, lex.rewrite(src)) end
   end)
end)

describe("moonhub.repl.complete #unit", function()
   local R = require "moonhub.repl"
   before_each(function() R.env.mh = require "moonhub" end)
   after_each(function() R.env.mh = nil end)

   it("completes a lazy submodule from the docs table", function()
      assert.same({ "mh.tensor" }, R.complete("mh.ten"))
   end)
   it("lists several matches after their common prefix", function()
      assert.same({ "mh.tensor.rand", "mh.tensor.rand", "mh.tensor.randn" }, R.complete("mh.tensor.ran"))
   end)
   it("completes globals, keywords and tensor methods", function()
      assert.same({ "print" }, R.complete("prin"))
      assert.same({ "function" }, R.complete("functi"))
      R.env.t = require("moonhub").tensor.zeros(2)
      local c = R.complete("t:resh")
      R.env.t = nil
      assert.same({ "t:reshape" }, c)
   end)
   it("offers nothing for unknown paths, without raising", function()
      assert.same({}, R.complete("nope.x"))
      assert.same({}, R.complete("mh.version.x"))
   end)
end)

describe("the docs table #unit", function()
   local help = require "moonhub.help"

   it("names only real values", function()
      for _, d in ipairs(help.entries) do
         assert.is_not_nil(help.resolve(d.path), d.path)
      end
   end)

   -- Every function a user reaches: mh's own, each lazy submodule's (the
   -- list init.lua keeps in its metatable, so a new module is checked too)
   -- and the methods of the documented classes (Model, Tokenizer, Trainer).
   local function undocumented()
      local mh = require "moonhub"
      local mods = { mh = mh }
      for name in pairs(getmetatable(mh).modules) do mods["mh." .. name] = mh[name] end
      for _, at in pairs(require("moonhub.docs_table").classes) do mods[at] = help.resolve(at) end
      local missing = {}
      for prefix, mod in pairs(mods) do
         for k, v in pairs(mod) do
            if type(v) == "function" and not k:find("^_") and not help.doc(v) then
               missing[#missing + 1] = prefix .. "." .. k
            end
         end
      end
      table.sort(missing)
      return missing
   end

   it("documents every public function of every mh.* module and class", function()
      assert.same({}, undocumented(), "add these to lua/moonhub/docs_table.lua")
   end)

   it("finds a module function without a doc", function()
      local m = require("moonhub").model
      m.undocumented_probe = function() end
      local missing = undocumented()
      m.undocumented_probe = nil
      assert.same({ "mh.model.undocumented_probe" }, missing)
   end)

   it("finds a class method without a doc, and shows a method's doc", function()
      local Model = require("moonhub").model.Model
      Model.undocumented_probe = function() end
      local missing = undocumented()
      Model.undocumented_probe = nil
      assert.same({ "mh.model.Model.undocumented_probe" }, missing)
      assert.truthy(help.text(Model.generate):find("^Model:generate%("))
      assert.truthy(help.text(require("moonhub").train.Trainer):find("Trainer:step", 1, true))
   end)

   it("is what docs/lua-api.md shows (tools/gen_lua_api.lua)", function()
      local gen = dofile("tools/gen_lua_api.lua")
      local doc = H.read("docs/lua-api.md")
      assert.truthy(doc:find(gen.BEGIN, 1, true), "docs/lua-api.md has no generated section")
      assert.is_true(gen.splice(doc) == doc,
         "docs/lua-api.md is out of date: run ./moonhub run tools/gen_lua_api.lua")
   end)
end)
