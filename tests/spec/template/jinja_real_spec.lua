-- Renders every shared chat template (Qwen2.5, Llama-3.1/3.2, SmolLM3,
-- DeepSeek-R1-Distill, gemma-2, Phi-3.5, Mistral-Nemo) and every shared
-- model's own template (read from the GGUF / tokenizer_config.json at test
-- time) and compares byte for byte with fixtures/chat_cases.json, which
-- Python jinja2 set up as HF transformers does produced
-- (tests/tools/gen_template_fixtures.py). Layer: tests for moonhub.jinja.
local jinja = require "moonhub.jinja"
local template = require "moonhub.template"
local tokenizer = require "moonhub.tokenizer"
local data = require "helpers.data"

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local cases = assert(jinja.decode(read(here .. "fixtures/chat_cases.json")))

-- strftime_now pinned to the case's date, as the generator pinned it.
local function clock(date)
   local y, m, d = date:match("^(%d+)-(%d+)-(%d+)$")
   local t = os.time({ year = tonumber(y), month = tonumber(m), day = tonumber(d), hour = 12 })
   return function(fmt) return os.date(fmt, t) end
end

local function context(c)
   local ctx = { messages = c.messages, add_generation_prompt = c.add_generation_prompt }
   if c.bos_token ~= jinja.null then ctx.bos_token = c.bos_token end
   if c.eos_token ~= jinja.null then ctx.eos_token = c.eos_token end
   for k, v in pairs(c.kwargs) do ctx[k] = v end
   if c.fixed_date ~= jinja.null then ctx.strftime_now = clock(c.fixed_date) end
   return ctx
end

local function check(c, tpl)
   if c.error then
      local ok, err = pcall(tpl.render, tpl, context(c))
      assert.is_false(ok)
      assert.are.equal(c.error, err)
   else
      assert.are.equal(c.expected, tpl:render(context(c)))
   end
end

-- a shared model's tokenizer (GGUF file or HF folder), loaded once
local toks = {}
local function model_tokenizer(rel)
   local probe = rel:match("%.gguf$") and rel or rel .. "/tokenizer_config.json"
   if not data.need(probe, pending) then return nil end
   toks[rel] = toks[rel] or assert(tokenizer.load(data.root() .. "/" .. rel))
   return toks[rel]
end

describe("jinja on the shared chat templates #unit", function()
   for _, c in ipairs(cases) do
      if c.file then
         it(c.template .. ": " .. c.name, function()
            local path = data.need("vectors/chat_templates/" .. c.file, pending)
            if not path then return end
            check(c, jinja.compile(read(path)))
         end)
      end
   end

   it("compiles each template once (cache by source)", function()
      local path = data.need("vectors/chat_templates/google-gemma-2-2b-it.jinja", pending)
      if not path then return end
      local src = read(path)
      assert.are.equal(jinja.compile(src), jinja.compile(src))
   end)
end)

describe("jinja on the shared models' own templates #unit", function()
   for _, c in ipairs(cases) do
      if c.model then
         it(c.template .. ": " .. c.name, function()
            local tok = model_tokenizer(c.model)
            if not tok then return end
            -- the special tokens moonhub hands the template are the ones
            -- the generator read from the file independently
            assert.are.equal(c.bos_token, tok:text(tok.bos))
            assert.are.equal(c.eos_token, tok:text(tok.eos))
            check(c, jinja.compile(assert(tok.chat_template, "no chat template in " .. c.model)))
            -- what chat / generate / serve really render for this model (a
            -- built-in when one is detected) is the same string
            local text = template.render_for_model({ tokenizer = tok }, c.messages,
               { add_generation_prompt = c.add_generation_prompt })
            assert.are.equal(c.expected, text)
         end)
      end
   end

   it("covers every shared model that has a chat template", function()
      local listed = {}
      for _, c in ipairs(cases) do if c.model then listed[c.model] = true end end
      local dir = data.root() .. "/models"
      local p = io.popen("ls " .. dir .. " 2>/dev/null")
      local names = p:read("a")
      p:close()
      if names == "" then return data.skip("no shared models in " .. dir, pending) end
      for name in names:gmatch("[^\n]+") do
         if name:match("%.gguf$") then
            local tok = assert(tokenizer.load(dir .. "/" .. name))
            assert.are.equal(tok.chat_template ~= nil, listed["models/" .. name] == true,
               name .. ": fixtures out of date (tests/tools/gen_template_fixtures.py)")
         end
      end
   end)
end)
