-- Renders the shared real chat templates (Qwen2.5, Llama-3.1/3.2, SmolLM3,
-- DeepSeek-R1-Distill, gemma-2, Phi-3.5, Mistral-Nemo) and compares with
-- fixtures/chat_cases.json, which Python jinja2 set up as HF transformers
-- does produced (fixtures/generate.py). Layer: tests for moonhub.jinja.
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

describe("jinja on real chat templates #unit", function()
   for _, c in ipairs(cases) do
      it(c.template .. ": " .. c.name, function()
         local path = data.need("vectors/chat_templates/" .. c.file, pending)
         if not path then return end
         local tpl = jinja.compile(read(path))
         if c.error then
            local ok, err = pcall(tpl.render, tpl, context(c))
            assert.is_false(ok)
            assert.are.equal(c.error, err)
         else
            assert.are.equal(c.expected, tpl:render(context(c)))
         end
      end)
   end

   it("compiles each template once (cache by source)", function()
      local path = data.need("vectors/chat_templates/google-gemma-2-2b-it.jinja", pending)
      if not path then return end
      local src = read(path)
      assert.are.equal(jinja.compile(src), jinja.compile(src))
   end)
end)
