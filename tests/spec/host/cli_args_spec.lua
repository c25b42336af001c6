-- Specs for the recipe-argument helpers of moonhub.cli (parser, parse,
-- fail, count, int_list) and the verbs that use them, bench and tokenize.
-- Layer: tests (unit + ./moonhub children).
local H = require "helpers.host"
local cli = require "moonhub.cli"

describe("moonhub.cli recipe arguments #unit", function()
   it("parses into a table; converters check where the option arrives", function()
      local p = cli.parser("demo", "a demo verb")
      p:argument("model")
      p:option("-p"):convert(cli.int_list)
      p:option("-r"):default("3"):convert(cli.count(1))
      local a = assert(cli.parse(p, { "m.gguf", "-p", "128,0,512" }))
      assert.equal("m.gguf", a.model)
      assert.same({ 128, 512 }, a.p)               -- 0 turns a size off
      assert.equal(3, a.r)
      assert.same({ nil, "expected an integer >= 1, got '0'" }, { cli.count(1)("0") })
      assert.same({ nil, "expected an integer >= 2, got 'x'" }, { cli.count(2)("x") })
      assert.same({ nil, "expected a list of counts such as 128,512, got '1,-2'" }, { cli.int_list("1,-2") })
      assert.has_error(function() cli.parser(nil) end, "cli.parser: verb must be a non-empty string, got nil")
   end)

   it("a usage error is one line 'moonhub VERB: option: what — what to do', exit code 2", function()
      local home = H.tmpdir()
      local code = [[local cli = require "moonhub.cli"
         local p = cli.parser("demo", "a demo verb")
         p:argument("model")
         p:option("-r"):convert(cli.count(1))
         local a, rc = cli.parse(p, { ... })
         if not a then os.exit(rc) end
         os.exit(cli.fail("demo", "cannot open " .. a.model))]]
      H.write(home .. "/demo.lua", code)
      local _, err, rc = H.run(home, "run " .. H.q(home .. "/demo.lua") .. " m -r zero")
      assert.equal(2, rc)
      assert.equal("moonhub demo: -r: expected an integer >= 1, got 'zero' — see 'moonhub demo --help'\n", err)
      _, err, rc = H.run(home, "run " .. H.q(home .. "/demo.lua"))
      assert.equal(2, rc)
      assert.equal("moonhub demo: missing argument 'model' — see 'moonhub demo --help'\n", err)
      _, err, rc = H.run(home, "run " .. H.q(home .. "/demo.lua") .. " x.gguf")
      assert.equal(1, rc)
      assert.equal("moonhub demo: cannot open x.gguf\n", err)
      -- the verbs that used to parse by hand
      _, err, rc = H.run(home, "bench tokenize a b --rounds 0")
      assert.equal(2, rc)
      assert.equal("moonhub bench tokenize: --rounds: expected an integer >= 1, got '0' — "
         .. "see 'moonhub bench tokenize --help'\n", err)
      _, err, rc = H.run(home, "bench m.gguf -p 1,x")
      assert.equal(2, rc)
      assert.matches("^moonhub bench: %-p: expected a list of counts", err)
      _, err, rc = H.run(home, "tokenize only-a-model")
      assert.equal(2, rc)
      assert.matches("^moonhub tokenize: give the text to tokenize, or %-%-ids", err)
      _, err, rc = H.run(home, "tokenize m --bogus")
      assert.equal(2, rc)
      assert.matches("^moonhub tokenize: unknown option '%-%-bogus'", err)
      local out = H.run(home, "help tokenize")
      assert.matches("Usage: moonhub tokenize", out)
      H.rmdir(home)
   end)
end)
