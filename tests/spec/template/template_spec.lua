-- moonhub.template: registry (list/get/detect/render, user templates) and
-- the built-in recipes checked against the real templates' renders in
-- fixtures/chat_cases.json (Python jinja2 with HF's settings).
-- Layer: tests for moonhub.template and recipes/templates.
local template = require "moonhub.template"
local jinja = require "moonhub.jinja"
local data = require "helpers.data"

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local cases = assert(jinja.decode(read(here .. "fixtures/chat_cases.json")))

-- recipe -> fixture template and the cases it must reproduce exactly
local PAIRS = {
   { "chatml", "qwen2.5", { "system+user+assistant+user", "system conversation, no generation prompt", "tools" } },
   { "llama3", "llama3.1", { "system+user+assistant+user", "system conversation, no generation prompt",
                             "user+assistant+user", "tools in user message", "two tool calls raise" } },
   { "llama3", "llama3.2", { "system+user+assistant+user", "user+assistant+user", "date from strftime_now", "tools" } },
   { "gemma", "gemma2", { "user+assistant+user", "roles must alternate" } },
   { "phi3", "phi3.5", "all" },
   { "mistral-tekken", "mistral-nemo", "all" },
   { "deepseek", "deepseek-r1", "all" },
}

local function wanted(list, name)
   if list == "all" then return true end
   for _, n in ipairs(list) do if n == name then return true end end
   return false
end

local function opts_for(c)
   local o = { add_generation_prompt = c.add_generation_prompt }
   if c.bos_token ~= jinja.null then o.bos_token = c.bos_token end
   if c.eos_token ~= jinja.null then o.eos_token = c.eos_token end
   for k, v in pairs(c.kwargs) do o[k] = v end
   if c.fixed_date ~= jinja.null then   -- what strftime_now("%d %b %Y") gave
      local y, m, d = c.fixed_date:match("^(%d+)-(%d+)-(%d+)$")
      o.date_string = os.date("%d %b %Y", os.time({ year = tonumber(y), month = tonumber(m),
                                                      day = tonumber(d), hour = 12 }))
   end
   return o
end

describe("built-in templates render like the real Jinja templates #unit", function()
   for _, pair in ipairs(PAIRS) do
      local recipe, tname, list = pair[1], pair[2], pair[3]
      for _, c in ipairs(cases) do
         if c.template == tname and wanted(list, c.name) then
            it(recipe .. " = " .. tname .. ": " .. c.name, function()
               local ok, out = pcall(template.render, recipe, c.messages, opts_for(c))
               if c.error then
                  assert.is_false(ok)
                  assert.are.equal(c.error, out)
               else
                  assert.is_true(ok, out)
                  assert.are.equal(c.expected, out)
               end
            end)
         end
      end
   end
end)

local CONV = {
   { role = "system", content = "Be kind." },
   { role = "user", content = "Hi" },
   { role = "assistant", content = "Hello!" },
   { role = "user", content = "Bye" },
}

describe("built-in templates without a shared reference #unit", function()
   it("llama2 folds the system prompt into the first [INST]", function()
      assert.are.equal("<s>[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]",
                       template.render("llama2", CONV, { add_generation_prompt = true }))
   end)
   it("mistral-instruct uses spaced [INST] and eos after answers", function()
      assert.are.equal("<s>[INST] Be kind.\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]",
                       template.render("mistral-instruct", CONV, {}))
   end)
   it("zephyr ends every turn with eos and a newline", function()
      assert.are.equal("<|system|>\nBe kind.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
                       .. "<|user|>\nBye</s>\n<|assistant|>\n",
                       template.render("zephyr", CONV, { add_generation_prompt = true }))
   end)
   it("gemma folds the system text into the first user turn", function()
      assert.are.equal("<bos><start_of_turn>user\nBe kind.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
                       .. "Hello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
                       template.render("gemma", CONV, { add_generation_prompt = true }))
   end)
   it("raw concatenates contents", function()
      assert.are.equal("Be kind.HiHello!Bye", template.render("raw", CONV))
   end)
   it("content given as a list of text parts", function()
      local msgs = { { role = "user", content = { { type = "text", text = "a" }, { type = "text", text = "b" } } } }
      assert.are.equal("<|im_start|>user\nab<|im_end|>\n", template.render("chatml", msgs))
   end)
end)

describe("template registry #unit", function()
   it("lists the built-ins with descriptions and stop strings", function()
      local names = {}
      for _, t in ipairs(template.list()) do
         names[t.name] = true
         assert.is_string(t.description)
         assert.is_true(#t.description > 0)
      end
      for _, n in ipairs({ "chatml", "llama2", "llama3", "mistral-instruct", "mistral-tekken", "gemma",
                          "phi3", "zephyr", "deepseek", "raw" }) do
         assert.is_true(names[n], n)
         local spec = assert(template.get(n))
         assert.are.equal(n, spec.name)
         assert.is_table(spec.stop)
      end
      assert.are.same({ "<|im_end|>", "<|endoftext|>" }, template.get("chatml").stop)
   end)

   it("reports unknown and bad names", function()
      local spec, err = template.get("nope")
      assert.is_nil(spec)
      assert.matches("unknown template 'nope'", err, 1, true)
      assert.is_nil((template.get("../etc/passwd")))
      assert.has_error(function() template.render("nope", {}) end, "template: unknown template 'nope'")
      assert.has_error(function() template.render("chatml", "hi") end,
                       "template.render: messages must be a list of tables, got string")
      assert.has_error(function() template.detect(nil) end,
                       "template.detect: chat template must be a string, got nil")
   end)

   it("detects the shared real templates", function()
      local expect = {
         ["Qwen-Qwen2.5-7B-Instruct.jinja"] = "chatml",
         ["HuggingFaceTB-SmolLM3-3B.jinja"] = "chatml",
         ["meta-llama-Llama-3.1-8B-Instruct.jinja"] = "llama3",
         ["meta-llama-Llama-3.2-3B-Instruct.jinja"] = "llama3",
         ["google-gemma-2-2b-it.jinja"] = "gemma",
         ["microsoft-Phi-3.5-mini-instruct.jinja"] = "phi3",
         ["mistralai-Mistral-Nemo-Instruct-2407.jinja"] = "mistral-tekken",
         ["deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"] = "deepseek",
      }
      for file, name in pairs(expect) do
         local path = data.need("vectors/chat_templates/" .. file, pending)
         if not path then return end
         assert.are.equal(name, template.detect(read(path)), file)
      end
      assert.are.equal("llama2", template.detect("{{ '[INST] <<SYS>>\\n' }}"))
      assert.are.equal("mistral-instruct", template.detect("{{ '[INST] ' + m['content'] + ' [/INST]' }}"))
      assert.are.equal("zephyr", template.detect("{{ '<|user|>\\n' + m['content'] + eos_token }}"))
      assert.is_nil(template.detect("{{ messages[0].content }}"))
   end)

   it("renders a Jinja source string like HF would", function()
      local src = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
         .. "{% if add_generation_prompt %}{{ bos_token }}>{% endif %}"
      assert.are.equal("[user:Hi]<s>>", template.render(src, { { role = "user", content = "Hi" } },
                                                     { add_generation_prompt = true, bos_token = "<s>" }))
   end)

   it("finds user templates in $MOONHUB_HOME/templates, before built-ins", function()
      local host = require "moonhub.core.host"
      local saved = host.home
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p '" .. dir .. "/templates'"))
      local f = assert(io.open(dir .. "/templates/mine.lua", "w"))
      f:write([[
-- a test template
return { name = "mine", description = "shouty", stop = { "END" },
   render = function(messages) return messages[1].content:upper() end,
   detect = function(src) return src:find("SHOUT", 1, true) ~= nil end }
]])
      f:close()
      host.home = dir
      local ok, err = pcall(function()
         assert.are.equal("HI", template.render("mine", { { role = "user", content = "hi" } }))
         assert.are.equal("mine", template.detect("{{ 'SHOUT' }}"))
         local found
         for _, t in ipairs(template.list()) do if t.name == "mine" then found = t end end
         assert.is_true(found.user)
         assert.are.equal("shouty", found.description)
      end)
      host.home = saved
      os.execute("rm -rf '" .. dir .. "'")
      assert(ok, err)
   end)
end)
