-- Every verb reports a bad argument or an unknown model the same way: one
-- line "moonhub VERB: message" on stderr (usage errors add the usage
-- after it), no doubled label, no traceback; exit code 1 for a failure, 2
-- for a usage error (docs/errors.md). Layer: tests (helpers.host,
-- helpers.data; runs the real binary).
local H = require "helpers.host"
local data = require "helpers.data"

-- err is "moonhub VERB: msg\n" and msg repeats no label; a usage error
-- ends "— see 'moonhub VERB --help'" (or a did-you-mean), still one line
local function one_line(verb, err, usage)
   local head = verb:match("^%S+")
   local first, rest = err:match("^([^\n]*)\n(.*)$")
   assert.truthy(first, err)
   assert.truthy(first:find("^moonhub " .. verb:gsub("%p", "%%%0") .. ": "), err)
   local msg = first:sub(#("moonhub " .. verb .. ": ") + 1)
   assert.is_nil(msg:match("^moonhub[ .]"), err)
   assert.is_nil(msg:match("^" .. head .. ": "), err)
   assert.is_nil(err:find("stack traceback", 1, true), err)
   assert.is_nil(err:find("%.lua:%d+:"), err)
   assert.equal("", rest)
   if usage then
      msg = msg:match("^(.-) — see 'moonhub " .. verb:gsub("%p", "%%%0") .. " %-%-help'$")
      assert.truthy(msg, err)
   end
   return msg
end

describe("verb errors #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("an unknown model: one line, exit 1, for every verb that loads one", function()
      for _, verb in ipairs({ "generate", "show", "chat", "bench", "tokenize", "serve" }) do
         local args = verb .. " no-such-model" .. ((verb == "generate" or verb == "tokenize") and " hi" or "")
            .. (verb == "serve" and " --port 0" or "")
         local _, err, code = H.run(home, args)
         assert.equal(1, code, verb .. ": " .. tostring(err))
         local msg = one_line(verb, err)
         assert.truthy(msg:find("^no such file or registered model: 'no%-such%-model'"), err)
      end
      local _, err, code = H.run(home, "rm no-such-model")
      assert.equal(1, code)
      assert.equal("registry: no model named 'no-such-model'", one_line("rm", err))
   end)

   it("labels the library adds are not repeated (pull, template, history)", function()
      local _, err, code = H.run(home, "pull bad//name")
      assert.equal(1, code)
      assert.truthy(one_line("pull", err):find("^hub: 'bad//name' is not a Hub reference"), err)
      _, err, code = H.run(home, "template show nope")
      assert.equal(2, code)
      assert.truthy(one_line("template", err):find("^unknown template 'nope'"), err)
      _, err, code = H.run(home, "history show 5")
      assert.equal(1, code)
      assert.equal("no conversation 5", one_line("history", err))
   end)

   it("usage errors: the parser's message once, on one line; exit 2 (generate, serve)", function()
      local _, err, code = H.run(home, "generate m hi --bogus")
      assert.equal(2, code)
      assert.equal("unknown option '--bogus'", one_line("generate", err, true))
      _, err, code = H.run(home, "serve --port abc")
      assert.equal(2, code)
      assert.equal("--port: expected an integer, got 'abc'", one_line("serve", err, true))
      _, err, code = H.run(home, "serve --kv-type q3 --port 0 m")
      assert.equal(2, code)
      one_line("serve", err, true)
      _, err, code = H.run(home, "serve --port 70000 m")
      assert.equal(2, code)
      assert.equal("--port must be at most 65535", one_line("serve", err))
   end)

   it("a value the library refuses is the user's error: one line, no traceback", function()
      local path = data.need("models/stories260K.gguf", pending)
      if not path then return end
      local _, err, code = H.run(home, "generate " .. H.q(path) .. " hi --ctx 0")
      assert.equal(1, code)
      assert.equal("ctx must be a positive integer, got 0", one_line("generate", err))
      _, err, code = H.run(home, "show " .. H.q(path) .. " --ctx 0")
      assert.equal(1, code)
      assert.equal("ctx must be a positive integer, got 0", one_line("show", err))
      _, err, code = H.run(home, "tokenize " .. H.q(path) .. " --ids 99999")
      assert.equal(1, code)
      one_line("tokenize", err)
      _, err, code = H.run(home, "serve " .. H.q(path) .. " --port 0 --threads 0")
      assert.equal(2, code)
      assert.equal("--threads must be a positive integer", one_line("serve", err))
   end)

   it("the host's rule, as cli.fail uses it", function()
      local vm = require("moonhub.core.host").verb_message
      assert.equal("gguf: x", vm("import", "moonhub import: import: gguf: x"))
      assert.equal("no such file", vm("generate", "moonhub.load: no such file"))
      assert.equal("template: unknown", vm("show", "template: unknown"))
      assert.equal("moonhub.core.x: y", vm("show", "moonhub.core.x: y"))
   end)
end)
