-- Role mapping per template (moonhub.template.map_roles, applied in
-- render_for_model): system folded into the first user turn for templates
-- without a system role, developer -> system, a recipe's own role names.
-- Layer: tests for moonhub.template, on the shared real chat templates.
local template = require "moonhub.template"
local data = require "helpers.data"

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

-- a loaded model is only asked for its tokenizer's special tokens here
local FAKE = { tokenizer = {} }

local function render(messages, opts)
   return (template.render_for_model(FAKE, messages, opts))
end

describe("role mapping per template #unit", function()
   it("folds the system text into the first user turn of Gemma's real Jinja (which raises on it)", function()
      local path = data.need("vectors/chat_templates/google-gemma-2-2b-it.jinja", pending)
      if not path then return end
      local msgs = { { role = "system", content = "Answer in French." },
                     { role = "user", content = "Hello" },
                     { role = "assistant", content = "Bonjour" },
                     { role = "user", content = "Thanks" } }
      -- the template itself refuses a system message
      assert.has_error(function() template.render(read(path), msgs, { bos_token = "<bos>" }) end)
      local out = render(msgs, { template = path })
      assert.are.equal("<start_of_turn>user\nAnswer in French.\n\nHello<end_of_turn>\n"
         .. "<start_of_turn>model\nBonjour<end_of_turn>\n<start_of_turn>user\nThanks<end_of_turn>\n"
         .. "<start_of_turn>model\n", out)
      -- the same text the built-in gemma recipe writes
      assert.are.equal(out, render(msgs, { template = "gemma" }):gsub("^<bos>", ""))
      -- a developer message is a system message, folded the same way
      msgs[1].role = "developer"
      assert.are.equal(out, render(msgs, { template = path }))
   end)

   it("keeps the system turn where the template has one, and maps developer to it (Qwen2.5, Llama 3.1)", function()
      for _, file in ipairs({ "Qwen-Qwen2.5-7B-Instruct.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja" }) do
         local path = data.need("vectors/chat_templates/" .. file, pending)
         if not path then return end
         local sys = render({ { role = "system", content = "Be brief." }, { role = "user", content = "Hi" } },
            { template = path, template_kwargs = { date_string = "01 Jan 2026" } })
         assert.truthy(sys:find("system", 1, true), file)
         assert.truthy(sys:find("Be brief.", 1, true), file)
         local dev = render({ { role = "developer", content = "Be brief." }, { role = "user", content = "Hi" } },
            { template = path, template_kwargs = { date_string = "01 Jan 2026" } })
         assert.are.equal(sys, dev, file)
      end
   end)

   it("renames roles as a recipe's roles table (and the caller's opts.roles) say", function()
      local seen = {}
      local recipe = { name = "t", stop = {}, roles = { tool = "ipython", critic = "user" },
         render = function(messages)
            local out = {}
            for _, m in ipairs(messages) do out[#out + 1] = m.role .. "=" .. template.text(m.content) end
            seen = messages
            return table.concat(out, "|")
         end }
      local choice = { spec = recipe }
      local msgs = { { role = "developer", content = "d" }, { role = "user", content = "u" },
                     { role = "tool", content = "42" }, { role = "critic", content = "c" } }
      assert.are.same({ "system=d", "user=u", "ipython=42", "user=c" },
         { template.render(recipe, template.map_roles(choice, msgs)):match("^(.-)|(.-)|(.-)|(.-)$") })
      assert.are.equal("developer", msgs[1].role)          -- the caller's messages are not changed
      assert.are.equal(4, #seen)
      -- the caller's map wins; false keeps a role as it is
      local out = template.render(recipe, template.map_roles(choice, msgs, { tool = "function", developer = false }))
      assert.are.equal("developer=d|user=u|function=42|user=c", out)
   end)

   it("folds for a recipe that says system = false, system turns anywhere in the chat", function()
      local recipe = { name = "nosys", stop = {}, system = false,
         render = function(messages)
            local out = {}
            for _, m in ipairs(messages) do out[#out + 1] = m.role .. "=" .. m.content end
            return table.concat(out, "|")
         end }
      local msgs = { { role = "system", content = "S1" }, { role = "user", content = "u1" },
                     { role = "assistant", content = "a1" }, { role = "system", content = "S2" },
                     { role = "user", content = "u2" } }
      assert.are.equal("user=S1\n\nu1|assistant=a1|user=S2\n\nu2",
         template.render(recipe, template.map_roles({ spec = recipe }, msgs)))
      -- a system message with no user turn after it becomes one
      assert.are.equal("user=S", template.render(recipe, template.map_roles({ spec = recipe },
         { { role = "system", content = "S" } })))
   end)

   it("maps roles in `moonhub template render` too", function()
      local path = data.need("vectors/chat_templates/google-gemma-2-2b-it.jinja", pending)
      if not path then return end
      local H = require "helpers.host"
      local home = H.tmpdir()
      H.write(home .. "/m.json", '[{"role": "developer", "content": "S"}, {"role": "user", "content": "Hi"}]')
      local out, err, code = H.run(home, "template render --jinja " .. H.q(path) .. " " .. H.q(home .. "/m.json")
         .. " --bos '<bos>'")
      H.rmdir(home)
      assert.equal(0, code, err)
      assert.equal("<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n", out)
   end)

   it("says what is wrong with a bad roles table", function()
      assert.has_error(function()
         render({ { role = "user", content = "x" } }, { template = "chatml", roles = { tool = 3 } })
      end, "template: roles maps role names to role names (or false to keep a role), got tool = 3")
   end)
end)
