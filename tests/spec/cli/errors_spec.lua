-- Specs for the command line's errors: one line "moonhub VERB: what was
-- wrong — what to do", the closest verb or option suggested, option errors
-- naming the option, negative numbers taken as values, a busy port
-- answered with --port. Layer: tests (helpers.host; runs the real binary).
local H = require "helpers.host"

-- err is exactly one line, "moonhub VERB: ... — ..."; returns its text after the label
local function one_line(verb, err)
   assert.truthy(err:match("^[^\n]*\n$"), err)
   local label = verb and ("moonhub " .. verb .. ": ") or "moonhub: "
   assert.equal(label, err:sub(1, #label), err)
   assert.truthy(err:find(" — ", 1, true), err)
   return err:sub(#label + 1, -2)
end

describe("cli errors #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("an unknown verb suggests the closest one (aliases count), else points at help", function()
      local _, out, err, code
      out, err, code = H.run(home, "genrate m hi")
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal("unknown command 'genrate' — did you mean 'generate'?", one_line(nil, err))
      _, err = H.run(home, "lss")
      assert.equal("unknown command 'lss' — did you mean 'ls'?", one_line(nil, err))
      _, err = H.run(home, "sevre")
      assert.equal("unknown command 'sevre' — did you mean 'serve'?", one_line(nil, err))
      _, err, code = H.run(home, "frobnicate")
      assert.equal(2, code)
      assert.equal("unknown command 'frobnicate' — see 'moonhub help'", one_line(nil, err))
   end)

   it("the host's own errors are one line too", function()
      local _, err, code = H.run(home, "run")
      assert.equal(2, code)
      assert.equal("'run' needs an argument — moonhub run FILE.lua [args], or moonhub run MODEL [PROMPT]",
         one_line(nil, err))
      _, err, code = H.run(home, "--frob")
      assert.equal(2, code)
      assert.equal("unknown option '--frob' — see 'moonhub --help'", one_line(nil, err))
   end)

   it("an unknown option suggests the closest option of that verb", function()
      local _, err, code = H.run(home, "generate m hi --tmep 0.5")
      assert.equal(2, code)
      assert.equal("unknown option '--tmep' — did you mean '--temp'?", one_line("generate", err))
      _, err, code = H.run(home, "serve --prot 8080")
      assert.equal(2, code)
      assert.equal("unknown option '--prot' — did you mean '--port'?", one_line("serve", err))
      _, err = H.run(home, "chat m --ctx-sise 64")
      assert.equal("unknown option '--ctx-sise' — did you mean '--ctx-size'?", one_line("chat", err))
      _, err = H.run(home, "generate m hi --zzzzzz")
      assert.equal("unknown option '--zzzzzz' — see 'moonhub generate --help'", one_line("generate", err))
   end)

   it("a value that does not convert names the option the user typed", function()
      local cases = {
         { "generate m hi -n abc", "generate", "-n: expected an integer, got 'abc'" },
         { "generate m hi --n-predict abc", "generate", "--n-predict: expected an integer, got 'abc'" },
         { "generate m hi --temp warm", "generate", "--temp: expected a number, got 'warm'" },
         { "chat m -c big", "chat", "-c: expected an integer, got 'big'" },
         { "serve --port abc", "serve", "--port: expected an integer, got 'abc'" },
         { "serve -np x", "serve", "-np: expected an integer, got 'x'" },
         { "run m hi -s 1.5", "run", "-s: expected an integer, got '1.5'" },
         { "bench m -t 0", "bench", "-t: expected an integer >= 1, got '0'" },
         { "ps --bogus", "ps", "unknown option '--bogus'" },
      }
      for _, c in ipairs(cases) do
         local _, err, code = H.run(home, c[1])
         assert.equal(2, code, c[1])
         local msg = one_line(c[2], err)
         assert.equal(c[3] .. " — see 'moonhub " .. c[2] .. " --help'", msg, c[1])
      end
   end)

   it("a negative number after an option is its value, not an option", function()
      -- the run gets as far as the model: the options were all taken
      local _, err, code = H.run(home, "generate no-such-model hi --presence-penalty -0.5 "
         .. "--frequency-penalty -.5 -s -1 --temp=-0 --top-k -1")
      assert.equal(1, code, err)
      assert.truthy(one_line("generate", err):find("^no such file or registered model: 'no%-such%-model'"), err)
      -- a flag takes no value: the number stays an (unknown) option
      _, err, code = H.run(home, "generate m hi --json -5")
      assert.equal(2, code)
      assert.truthy(one_line("generate", err):find("^unknown option '%-5'"), err)
   end)

   it("a model that is not there: one line that says where to look", function()
      local _, err, code = H.run(home, "run no-such-model hi")
      assert.equal(1, code)
      assert.truthy(one_line("run", err):find("^no such file or registered model: 'no%-such%-model'"), err)
      _, err, code = H.run(home, "generate")
      assert.equal(2, code)
      assert.equal("missing argument 'model' — moonhub generate MODEL PROMPT (or -m MODEL -p PROMPT)",
         one_line("generate", err))
      _, err, code = H.run(home, "generate -m some-model")
      assert.equal(2, code)
      assert.equal("missing argument 'prompt' — moonhub generate MODEL PROMPT (or -m MODEL -p PROMPT)",
         one_line("generate", err))
      _, err, code = H.run(home, "stop some-model")
      assert.equal(1, code)
      assert.equal("no server is running — start one with 'moonhub serve', or set MOONHUB_HOST",
         one_line("stop", err))
   end)

   it("serve on a busy port says to pick another with --port", function()
      local srv = require("moonhub").http.server({ host = "127.0.0.1", port = 0 })
      local _, err, code = H.run(home, "serve --port " .. srv.port)
      srv:close()
      assert.equal(1, code)
      local msg = one_line("serve", err)
      assert.truthy(msg:find("cannot listen on 127.0.0.1:" .. srv.port, 1, true), err)
      assert.truthy(msg:find("— another server holds the port: pick another with --port N", 1, true), err)
   end)
end)
