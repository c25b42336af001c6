-- `moonhub template` verb: list, show, render by name, --jinja, .gguf, a
-- registry name (the MODEL resolution every verb uses),
-- and user templates from $MOONHUB_HOME/templates. Runs the real binary.
-- Layer: tests for recipes/template.lua.
local H = require "helpers.host"
local data = require "helpers.data"

describe("moonhub template verb #integration", function()
   local home
   before_each(function()
      home = H.tmpdir()
      H.write(home .. "/m.json", '[{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]')
   end)
   after_each(function() H.rmdir(home) end)

   it("lists built-ins and a user template", function()
      os.execute("mkdir -p " .. H.q(home .. "/templates"))
      H.write(home .. "/templates/mine.lua",
              'return { description = "my own", render = function() return "X" end }\n')
      local out, _, code = H.run(home, "template list")
      assert.are.equal(0, code)
      assert.matches("chatml%s+ChatML", out)
      assert.matches("mine%s+my own", out)
      out = H.run(home, "template render mine " .. H.q(home .. "/m.json"))
      assert.are.equal("X", out)
   end)

   it("shows a template", function()
      local out, _, code = H.run(home, "template show gemma")
      assert.are.equal(0, code)
      assert.matches('stop:%s+"<end_of_turn>"', out)
   end)

   it("renders by name, exactly", function()
      local out, _, code = H.run(home, "template render chatml " .. H.q(home .. "/m.json") .. " --no-generation-prompt")
      assert.are.equal(0, code)
      assert.are.equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n", out)
   end)

   it("renders a Jinja file with --bos", function()
      H.write(home .. "/t.jinja", "{{ bos_token }}{% for m in messages %}{{ m.content }};{% endfor %}")
      local out = H.run(home, "template render --jinja " .. H.q(home .. "/t.jinja") .. " "
                        .. H.q(home .. "/m.json") .. " --bos B")
      assert.are.equal("BS;Hi;", out)
   end)

   it("renders a GGUF model's chat template", function()
      local path = data.need("models/mh-smol-llama-17m-Q8_0.gguf", pending)
      if not path then return end
      local out, err, code = H.run(home, "template render " .. H.q(path) .. " " .. H.q(home .. "/m.json"))
      assert.are.equal(0, code, err)
      assert.are.equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", out)
   end)

   it("renders a registered model's chat template by name, name:tag and alias", function()
      local path = data.need("models/mh-smol-llama-17m-Q8_0.gguf", pending)
      if not path then return end
      local want = H.run(home, "template render " .. H.q(path) .. " " .. H.q(home .. "/m.json"))
      local _, ierr, icode = H.run(home, "import " .. H.q(path) .. " --name smol")
      assert.are.equal(0, icode, ierr)
      assert.are.equal(0, select(3, H.run(home, "cp smol:Q8_0 fav")))
      for _, ref in ipairs({ "smol", "smol:Q8_0", "smol:latest", "fav" }) do
         local out, err, code = H.run(home, "template render " .. ref .. " " .. H.q(home .. "/m.json"))
         assert.are.equal(0, code, ref .. ": " .. tostring(err))
         assert.are.equal(want, out)
      end
      -- a built-in template name still wins over a model
      local out = H.run(home, "template render chatml " .. H.q(home .. "/m.json") .. " --no-generation-prompt")
      assert.are.equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n", out)
   end)

   it("renders a Hugging Face folder's chat template, imported or by path", function()
      local dir = data.need("models/hf/mh-smol-llama-17m/config.json", pending)
      if not dir then return end
      dir = dir:match("^(.*)/config%.json$")
      local out, err, code = H.run(home, "template render " .. H.q(dir) .. " " .. H.q(home .. "/m.json"))
      assert.are.equal(0, code, err)
      assert.are.equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", out)
      assert.are.equal(0, select(3, H.run(home, "import " .. H.q(dir))))
      local by_name = H.run(home, "template render mh-smol-llama-17m " .. H.q(home .. "/m.json"))
      assert.are.equal(out, by_name)
   end)

   it("fails clearly on an unknown template", function()
      local _, err, code = H.run(home, "template render nope " .. H.q(home .. "/m.json"))
      assert.are.equal(2, code)
      assert.matches("unknown template 'nope'", err, 1, true)
      assert.matches("not a model either", err, 1, true)
   end)
end)
