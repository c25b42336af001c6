-- Specs for moonhub.chat sessions driven in-process (no terminal): turns,
-- commands, edits that reuse the KV cache's common prefix, and
-- template.for_model, the template choice shared by generate, chat and serve.
-- Layer: tests for lua/moonhub/chat.lua and lua/moonhub/template.lua.
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"
local chat = require "moonhub.chat"
local template = require "moonhub.template"

local models = {}
local function load(rel)
   local p = data.need(rel, pending)
   if not p then return nil end
   models[rel] = models[rel] or assert(mh.load(p, { ctx = 512 }))
   return models[rel]
end

-- a session whose output lands in out.text / out.warn
local function session(model, opts)
   local out = { text = "", warn = "" }
   opts = opts or {}
   opts.write = function(s) out.text = out.text .. s end
   opts.warn = function(s) out.warn = out.warn .. s end
   local s = assert(chat.new(model, opts))
   return s, out
end

describe("template.for_model", function()
   -- a stand-in model: only the tokenizer fields for_model reads
   local function fake(chat_template)
      local texts = { [1] = "<s>", [2] = "</s>" }
      return { tokenizer = { chat_template = chat_template, bos = 1, eos = 2, add_bos = true,
                             text = function(_, id) return texts[id] end } }
   end
   local msgs = { { role = "user", content = "Hi" } }

   it("prefers a built-in whose detect() matches the embedded template", function()
      local c = template.for_model(fake("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}"))
      assert.are.equal("chatml", c.name)
      assert.are.equal("detected", c.how)
      assert.are.equal("built-in chatml (detected)", c.label)
      assert.are.same({ "x", "<|im_end|>", "<|endoftext|>" }, c:stops({ "x", "<|im_end|>" }))
   end)

   it("renders an unknown embedded template with moonhub.jinja, bos/eos from the tokenizer", function()
      local m = fake("{{ bos_token }}{% for m in messages %}Q: {{ m.content }}{{ eos_token }}{% endfor %}"
         .. "{% if add_generation_prompt %}A:{% endif %}")
      local c = template.for_model(m)
      assert.are.equal("embedded", c.how)
      assert.are.equal("embedded Jinja", c.label)
      local text, enc = template.render_for_model(m, msgs)
      assert.are.equal("<s>Q: Hi</s>A:", text)
      -- the template wrote BOS itself: the tokenizer must not add another
      assert.are.same({ special = true, bos = false }, enc)
      text = template.render_for_model(m, msgs, { add_generation_prompt = false })
      assert.are.equal("<s>Q: Hi</s>", text)
   end)

   it("falls back to raw without a template, or when the template does not compile", function()
      local c = template.for_model(fake(nil))
      assert.are.equal("raw", c.how)
      assert.are.equal("raw", c.label)
      c = template.for_model(fake("{% for m in messages %}{{ m.content | nosuchfilter }}{% endfor %}"))
      assert.are.equal("raw", c.how)
      assert.matches("^raw %(embedded Jinja does not compile: .*nosuchfilter", c.label)
      local text, enc = template.render_for_model(fake(nil), { { role = "user", content = "a" },
         { role = "assistant", content = "b" } })
      assert.are.equal("ab", text)
      assert.are.same({ special = true }, enc)
   end)

   it("takes an explicit name, a .jinja file, and names the known ones on a bad name", function()
      local m = fake(nil)
      local c = template.for_model(m, "llama3")
      assert.are.equal("explicit", c.how)
      assert.are.equal("built-in llama3 (--template)", c.label)
      local dir = host.tmpdir()
      host.write(dir .. "/t.jinja", "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}")
      c = template.for_model(m, dir .. "/t.jinja")
      assert.are.equal("Jinja file " .. dir .. "/t.jinja (--template)", c.label)
      assert.are.equal("[user] Hi\n", (template.render_for_model(m, msgs, { template = c })))
      local none, err = template.for_model(m, "nope")
      assert.is_nil(none)
      assert.matches("unknown template 'nope' %(known: chatml, .*llama3.*; or a path to a %.jinja file%)", err)
      none, err = template.for_model(m, dir .. "/missing.jinja")
      assert.is_nil(none)
      assert.matches("cannot read Jinja template file", err)
      host.rmdir(dir)
      assert.has_error(function() template.for_model("x") end,
         "template.for_model: model must be a loaded model, got string")
   end)
end)

describe("chat session #integration", function()
   it("keeps the history, reuses the KV cache across turns and adds the template's stops", function()
      local m = load("models/mh-smol-llama-17m-Q8_0.gguf")
      if not m then return end
      local s, out = session(m, { system = "Be brief.", seed = 7, max_tokens = 12 })
      assert.are.equal("chatml", s.choice.name)
      local a1, st1 = s:send("Hello there")
      local a2, st2 = s:send("And then?")
      assert.are.equal(5, #s.messages)
      assert.are.same({ role = "assistant", content = a1 }, s.messages[3])
      assert.are.same({ role = "assistant", content = a2 }, s.messages[5])
      assert.are.equal(st1.prompt_tokens, st1.prompt_processed)
      -- turn 2 must not process turn 1's prompt again
      assert.is_true(st2.prompt_processed <= st2.prompt_tokens - st1.prompt_tokens,
         string.format("processed %d of %d (turn 1 prompt %d)", st2.prompt_processed,
            st2.prompt_tokens, st1.prompt_tokens))
      assert.matches("%[%d+ tokens, [%d.]+ tok/s, prompt processed " .. st2.prompt_processed
         .. " of " .. st2.prompt_tokens .. " tokens%]\n$", out.text)
      assert.are.same({ "<|im_end|>", "<|endoftext|>" }, s.choice:stops())
   end)

   it("handles /set, /system, /reset, /template, /help, /bye and unknown commands", function()
      local m = load("models/stories260K.gguf")
      if not m then return end
      local s, out = session(m)
      assert.is_nil(s:input("/set temp 0.25"))
      assert.are.equal(0.25, s.settings.temp)
      s:input("/set top-k 5")
      assert.are.equal(5, s.settings.top_k)
      s:input("/set seed 3")
      s:input("/set seed none")
      assert.is_nil(s.settings.seed)
      s:input("/set max_tokens 2.5")
      s:input("/set colour blue")
      assert.matches("max_tokens must be an integer >= 1, got 2.5", out.warn)
      assert.matches("unknown setting 'colour'", out.warn)
      s:input("/system You tell stories.")
      assert.are.same({ { role = "system", content = "You tell stories." } }, s.messages)
      s:input("/set max_tokens 4")
      s:input("Once upon a time")
      assert.are.equal(3, #s.messages)
      s:input("/reset")
      assert.are.same({ { role = "system", content = "You tell stories." } }, s.messages)
      s:input("/system")
      assert.are.same({}, s.messages)
      s:input("/template chatml")
      assert.are.equal("chatml", s.choice.name)
      s:input("/template nope")
      assert.matches("/template: template: unknown template 'nope'", out.warn)
      assert.are.equal("chatml", s.choice.name)
      s:input("/help")
      assert.matches("/save FILE", out.text)
      s:input("/frobnicate")
      assert.matches("unknown command /frobnicate %(/help lists them%)", out.warn)
      assert.are.equal("quit", s:input("/bye"))
   end)

   it("/save and /load round-trip the conversation; bad files are reported", function()
      local m = load("models/stories260K.gguf")
      if not m then return end
      local dir = host.tmpdir()
      local s = session(m, { system = "S", max_tokens = 3, seed = 1 })
      s:input("One")
      s:input("Two")
      s:input("/save " .. dir .. "/c.json")
      local s2, out2 = session(m)
      s2:input("/load " .. dir .. "/c.json")
      assert.are.same(s.messages, s2.messages)
      assert.matches("%[loaded 5 messages from ", out2.text)
      host.write(dir .. "/bad.json", '[{"role": "user"}]')
      s2:input("/load " .. dir .. "/bad.json")
      s2:input("/load " .. dir .. "/missing.json")
      assert.matches("message 1 needs string 'role' and 'content'", out2.warn)
      assert.matches("/load: .*missing.json: No such file", out2.warn)
      assert.are.same(s.messages, s2.messages)
      host.rmdir(dir)
   end)

   it("joins a \"\"\" block into one message", function()
      local m = load("models/stories260K.gguf")
      if not m then return end
      local s = session(m, { max_tokens = 2 })
      s:input('"""')
      assert.is_true(s:continuing())
      s:input("line one")
      s:input("/not a command here")
      s:input('"""')
      assert.is_false(s:continuing())
      assert.are.equal("line one\n/not a command here", s.messages[1].content)
   end)

   it("an interrupted answer keeps its partial text and the next turn still matches a fresh run", function()
      local m = load("models/stories260K.gguf")
      if not m then return end
      local s, out = session(m, { temp = 0, max_tokens = 40, ignore_eos = true })
      -- Ctrl-C raises "interrupted!" from the host's hook at the next Lua
      -- call; here it strikes as the 8th step of the generation loop is
      -- about to run (the loop is moonhub.core.sched's, stepped by next())
      local core = require "moonhub.core.sched"
      local real, calls = core.new_sync, 0
      core.new_sync = function(...)
         local run = real(...)
         return setmetatable({}, { __index = function(_, k)
            return function(_, ...)
               if k == "next" then
                  calls = calls + 1
                  if calls == 8 then error("stdin:1: interrupted!") end
               end
               return run[k](run, ...)
            end
         end })
      end
      local ok, a1, st1 = pcall(s.send, s, "Once upon a time")
      core.new_sync = real
      assert(ok, a1)
      assert.is_true(st1.interrupted)
      assert.is_true(a1 ~= "" and st1.generated < 40)
      assert.are.same({ role = "assistant", content = a1 }, s.messages[2])
      assert.matches("interrupted%]\n$", out.text)
      local a2, st2 = s:send(" Then")
      assert.is_false(st2.interrupted)
      assert.is_true(st2.prompt_processed < st2.prompt_tokens)
      -- the same history through a fresh cache gives the same greedy answer
      local fresh = session(m, { temp = 0, max_tokens = 40, ignore_eos = true })
      fresh.messages = { s.messages[1], s.messages[2] }
      local b2 = fresh:send(" Then")
      assert.are.equal(b2, a2)
   end)

   it("reuses only what a cache really holds (an interrupted stream can record more)", function()
      local m = load("models/stories260K.gguf")
      if not m then return end
      local cache = m:new_cache(128)
      local ids = m:prompt_ids("Once upon a time")
      m:generate(ids, { cache = cache, temperature = 0, max_tokens = 10 })
      cache:truncate(3)
      local a, st = m:generate(ids, { cache = cache, temperature = 0, max_tokens = 10 })
      assert.are.equal(#ids - 3, st.prompt_processed)
      assert.are.equal(m:generate(ids, { temperature = 0, max_tokens = 10 }), a)
   end)

   -- the prompt ids of s's first n messages (a scratch view: s is not changed)
   local function ids_of(s, n)
      return (s.prompt_ids(setmetatable({ messages = { table.unpack(s.messages, 1, n) } }, { __index = s })))
   end
   local function common(a, b)
      local n = 0
      while n < #a and n < #b and a[n + 1] == b[n + 1] do n = n + 1 end
      return n
   end

   it("an edited message re-processes only from its first changed token", function()
      local m = load("models/mh-smol-llama-17m-Q8_0.gguf")
      if not m then return end
      local s = session(m, { system = "Be brief.", temp = 0, max_tokens = 8 })
      s:send("Hello there")
      s:send("What is your name?")
      s:send("Tell me more")
      assert.are.equal(7, #s.messages)
      local before = ids_of(s, 6)           -- what the cache holds (then turn 3's answer)
      assert.is_true(s:edit(4, "What is your favourite colour?"))
      assert.are.equal(4, #s.messages)
      assert.are.same({ role = "user", content = "What is your favourite colour?" }, s.messages[4])
      local after = ids_of(s, 4)
      local keep = common(before, after)
      assert.is_true(keep >= #ids_of(s, 3) - 1 and keep < #after)
      local a, st = s:reply()
      assert.are.equal(#after, st.prompt_tokens)
      assert.are.equal(#after - keep, st.prompt_processed)
      assert.are.same({ role = "assistant", content = a }, s.messages[5])
      -- the reused prefix gives what a fresh cache gives
      local fresh = session(m, { temp = 0, max_tokens = 8 })
      fresh.messages = { table.unpack(s.messages, 1, 4) }
      local b, fst = fresh:reply()
      assert.are.equal(b, a)
      assert.are.equal(fst.prompt_tokens, fst.prompt_processed)
      -- an edited answer too: the next turn starts at the change
      local held = ids_of(s, 4)
      s:edit(3, "Hi.")
      local _, st2 = s:send("Again?")
      assert.are.equal(st2.prompt_tokens - common(held, ids_of(s, 4)), st2.prompt_processed)
      assert.is_true(st2.prompt_processed < st2.prompt_tokens)
   end)

   it("/retry answers the same prompt again (one token processed), /edit replaces the last message", function()
      local m = load("models/mh-smol-llama-17m-Q8_0.gguf")
      if not m then return end
      local s, out = session(m, { temp = 0, max_tokens = 6 })
      s:input("/retry")
      assert.matches("nothing to answer yet", out.warn)
      s:input("Hello there")
      s:input("How are you?")
      local first = s.messages[4].content
      s:input("/retry")
      assert.are.equal(4, #s.messages)
      assert.are.equal(first, s.messages[4].content)  -- greedy: the same answer
      assert.are.equal(1, s.turns[3].prompt_processed)
      s:input("/edit How old are you?")
      assert.are.equal(4, #s.messages)
      assert.are.same({ role = "user", content = "How old are you?" }, s.messages[3])
      local st = s.turns[4]
      assert.is_true(st.prompt_processed > 1 and st.prompt_processed < st.prompt_tokens)
      s:input("/edit")
      assert.matches("/edit needs the new TEXT", out.warn)
      assert.are.equal(4, #s.turns)
      assert.matches("/retry", chat.HELP)
   end)

   it("edit, truncate and reply check what they are given", function()
      local m = load("models/stories260K.gguf")
      if not m then return end
      local s = session(m, { system = "S", max_tokens = 2, seed = 1 })
      s:send("One")
      assert.are.equal(3, #s.messages)
      local ok, err = s:edit(9, "x")
      assert.is_nil(ok)
      assert.are.equal("edit: no message 9 (the conversation has 3)", err)
      assert.has_error(function() s:edit("1", "x") end, "chat session:edit: index must be an integer, got 1")
      assert.has_error(function() s:edit(1, nil) end, "chat session:edit: content must be a string, got nil")
      assert.has_error(function() s:truncate(1.5) end, "chat session:truncate: index must be an integer, got 1.5")
      assert.has_error(function() s:send(3) end, "chat session:send: text must be a string, got number")
      assert.are.same({ nil, "truncate: no message 4 (the conversation has 3)" }, { s:truncate(4) })
      ok, err = s:reply()
      assert.is_nil(ok)
      assert.matches("^nothing to answer", err)
      assert.is_true(s:truncate(1))
      assert.are.same({ { role = "system", content = "S" } }, s.messages)
      assert.is_nil((s:reply()))
      assert.is_true(s:truncate(0))
      assert.are.same({}, s.messages)
   end)

   it("drops the oldest turns when the conversation outgrows the context", function()
      local p = data.need("models/stories260K.gguf", pending)
      if not p then return end
      local m = assert(mh.load(p, { ctx = 64 }))
      local s, out = session(m, { system = "Sys.", max_tokens = 8, seed = 2 })
      for i = 1, 6 do s:send("Once upon a time there was a little girl number " .. i) end
      assert.matches("%[dropped the %d+ oldest messages to fit the context of 64 tokens%]", out.warn)
      assert.are.same({ role = "system", content = "Sys." }, s.messages[1])
      assert.matches("number 6$", s.messages[#s.messages - 1].content)
      local _, err = s:send(string.rep("a very long message ", 40))
      assert.matches("the message needs %d+ tokens, more than the context of 64 leaves", err)
      m:close()
   end)
end)
