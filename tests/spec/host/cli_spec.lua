-- Specs for the host's command line: run, -e, -, verbs, help, --version,
-- exit codes and tracebacks. Layer: tests. Runs the real binary as a child
-- with a temporary MOONHUB_HOME.
local H = require "helpers.host"
local q = H.q

describe("moonhub command line #integration", function()
   local home

   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("--version and -v print the version", function()
      local mh = require "moonhub"
      for _, flag in ipairs({ "--version", "-v" }) do
         local out, _, code = H.run(home, flag)
         assert.equal(0, code)
         assert.equal("moonhub " .. mh.version .. " (" .. _VERSION, out:match("^(moonhub %S+ %(Lua 5%.4)"))
      end
   end)

   it("run FILE passes arg and ... as lua does", function()
      local script = home .. "/s.lua"
      H.write(script, [[
print(#arg, arg[0], arg[1], arg[2], arg[-1] ~= nil, select("#", ...), ...)
]])
      local out, err, code = H.run(home, "run " .. q(script) .. " one 'two words'")
      assert.equal(0, code, err)
      assert.equal(string.format("2\t%s\tone\ttwo words\ttrue\t2\tone\ttwo words\n", script), out)
   end)

   it("run with no file is a usage error", function()
      local _, err, code = H.run(home, "run")
      assert.equal(2, code)
      assert.truthy(err:find("needs an argument", 1, true))
   end)

   it("-e runs code with the remaining args", function()
      local out, _, code = H.run(home, "-e 'print(select(\"#\", ...), arg[1], ...)' x y")
      assert.equal(0, code)
      assert.equal("2\tx\tx\ty\n", out)
   end)

   it("- reads the script from stdin", function()
      local out, _, code = H.run(home, "- a b", "print(arg[0], ...)\nprint(6 * 7)\n")
      assert.equal(0, code)
      assert.equal("-\ta\tb\n42\n", out)
   end)

   it("a script error exits 1 with the message and a traceback", function()
      local script = home .. "/bad.lua"
      H.write(script, "local function f() error('boom') end\nf()\n")
      local out, err, code = H.run(home, "run " .. q(script))
      assert.equal(1, code)
      assert.equal("", out)
      assert.truthy(err:find("bad.lua:1: boom", 1, true), err)
      assert.truthy(err:find("stack traceback:", 1, true), err)
      assert.truthy(err:find("in local 'f'", 1, true) or err:find("in function 'f'", 1, true)
                    or err:find("in upvalue 'f'", 1, true), err)
   end)

   it("a syntax error exits 1", function()
      local _, err, code = H.run(home, "-e 'x = = 1'")
      assert.equal(1, code)
      assert.truthy(err:find("unexpected symbol", 1, true), err)
   end)

   it("os.exit in a script sets the exit code", function()
      local _, _, code = H.run(home, "-e 'os.exit(7)'")
      assert.equal(7, code)
   end)

   it("an unknown verb exits 2 with a message", function()
      local out, err, code = H.run(home, "frobnicate")
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal("moonhub: unknown command 'frobnicate' — see 'moonhub help'\n", err)
   end)

   it("verb names cannot escape the recipe folders", function()
      local _, err, code = H.run(home, q("../recipes/help"))
      assert.equal(2, code)
      assert.truthy(err:find("unknown command", 1, true))
   end)

   it("an unknown option exits 2", function()
      local _, err, code = H.run(home, "--frob")
      assert.equal(2, code)
      assert.truthy(err:find("unknown option '--frob'", 1, true))
   end)

   it("creates MOONHUB_HOME and its recipes folder", function()
      local fresh = home .. "/a/b/home"
      local f = io.popen(string.format("MOONHUB_HOME=%s %s -e %s && test -d %s/recipes && echo made",
                                       q(fresh), q(H.exe), q("print(require('moonhub').home())"),
                                       q(fresh)))
      local out = f:read("a")
      f:close()
      assert.equal(fresh .. "\nmade\n", out)
   end)
end)

describe("moonhub verbs #integration", function()
   local home

   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("runs a user recipe with arg and ... and uses its return as exit code", function()
      H.write(home .. "/recipes/greet.lua", [[
-- say hello to someone
local who = ...
print("hello " .. who, arg[0], arg[1], #arg)
return 3
]])
      local out, err, code = H.run(home, "greet world")
      assert.equal(3, code, err)
      assert.equal("hello world\tgreet\tworld\t1\n", out)
   end)

   it("a user recipe overrides a bundled one", function()
      H.write(home .. "/recipes/version.lua", "-- my own version\nprint('mine')\n")
      local out, _, code = H.run(home, "version")
      assert.equal(0, code)
      assert.equal("mine\n", out)
   end)

   it("the bundled version recipe prints details", function()
      local out, _, code = H.run(home, "version")
      assert.equal(0, code)
      assert.truthy(out:match("^moonhub %S+ %(Lua 5%.4%)"), out)
      assert.truthy(out:find("home:%s+" .. home:gsub("%p", "%%%0")), out)
   end)

   it("a failing recipe exits 1 with a traceback", function()
      H.write(home .. "/recipes/oops.lua", "-- fails\nerror('recipe broke')\n")
      local _, err, code = H.run(home, "oops")
      assert.equal(1, code)
      assert.truthy(err:find("oops.lua:2: recipe broke", 1, true), err)
      assert.truthy(err:find("stack traceback:", 1, true), err)
   end)

   it("help lists every verb with its description", function()
      H.write(home .. "/recipes/greet.lua", "-- say hello to someone\nprint('hi')\n")
      local out, _, code = H.run(home, "help")
      assert.equal(0, code)
      assert.truthy(out:find("\n  greet%s+say hello to someone"), out)
      assert.truthy(out:find("\n  help%s+list every verb"), out)
      assert.truthy(out:find("\n  version%s+print the version"), out)
      -- every bundled recipe is listed with a non-empty description
      local cli = require "moonhub.cli"
      for _, v in ipairs(cli.verbs()) do
         assert.is_true(#v.description > 0, v.path .. " lacks a `-- description` first line")
         assert.truthy(out:find("\n  " .. v.name:gsub("%p", "%%%0") .. " ", 1), v.name)
      end
   end)

   it("help VERB prints the description, or runs VERB --help", function()
      H.write(home .. "/recipes/plain.lua", "-- a plain recipe\nprint('ran')\n")
      H.write(home .. "/recipes/helpful.lua",
              "-- takes --help\nif ... == '--help' then print('usage: helpful X') return end\n")
      local out, _, code = H.run(home, "help plain")
      assert.equal(0, code)
      assert.truthy(out:find("moonhub plain: a plain recipe", 1, true), out)
      assert.falsy(out:find("ran", 1, true))
      out, _, code = H.run(home, "help helpful")
      assert.equal(0, code)
      assert.equal("usage: helpful X\n", out)
      local _, err
      _, err, code = H.run(home, "help nope")
      assert.equal(2, code)
      assert.truthy(err:find("unknown command 'nope'", 1, true))
   end)
end)

describe("moonhub environment #integration", function()
   local home

   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   local function env_run(env, code)
      local f = io.popen(string.format("env -u OPENBLAS_CORETYPE MOONHUB_HOME=%s %s %s -e %s 2>&1",
                                       q(home), env, q(H.exe), q(code)))
      local out = f:read("a")
      f:close()
      return out
   end

   it("sets OPENBLAS_CORETYPE on AVX-512 machines unless the user did", function()
      local _, best = require("moonhub").sys.cpu()
      local out = env_run("", "print(os.getenv('OPENBLAS_CORETYPE'), arg[0], ...)")
      local want = best == "avx512" and "SkylakeX" or "nil"
      -- the re-exec keeps argv: arg[0] is still the code
      assert.equal(want .. "\tprint(os.getenv('OPENBLAS_CORETYPE'), arg[0], ...)\n", out)
      assert.equal("Haswell\n", env_run("OPENBLAS_CORETYPE=Haswell",
                                        "print(os.getenv('OPENBLAS_CORETYPE'))"))
   end)

   it("MOONHUB_THREADS sets the thread count", function()
      local code = "print(require('moonhub').sys.threads())"
      assert.equal("1\n", env_run("MOONHUB_THREADS=1", code))
      assert.equal("2\n", env_run("MOONHUB_THREADS=2", code))
      assert.truthy(env_run("MOONHUB_THREADS=lots", code):find("ignoring MOONHUB_THREADS='lots'", 1, true))
   end)
end)
