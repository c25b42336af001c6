-- Specs for chat /save and /load keeping the KV cache (FILE.kvstate beside
-- the JSON): the turn after /load processes only its new tokens, a session
-- loading the text alone processes them all, and a cache from another model
-- is reported while the text still loads. Layer: tests (lua/moonhub/chat.lua).
local data = require "helpers.data"
local host = require "helpers.host"
local mh = require "moonhub"
local chat = require "moonhub.chat"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local STORIES = "models/stories260K.gguf"

local function session(model, opts)
   local out = { text = "", warn = "" }
   opts = opts or {}
   opts.write = function(s) out.text = out.text .. s end
   opts.warn = function(s) out.warn = out.warn .. s end
   return assert(chat.new(model, opts)), out
end

describe("chat /save and /load", function()
   local m, dir
   before_each(function()
      local p = data.need(SMOL, pending)
      if p then m = m or assert(mh.load(p, { ctx = 512 })) end
      dir = host.tmpdir()
   end)
   after_each(function() host.rmdir(dir) end)

   it("keep the KV cache: the next turn reuses it", function()
      if not m then return end
      local file = dir .. "/c.json"
      local s, o1 = session(m, { system = "Be brief.", max_tokens = 6, temp = 0 })
      s:input("Tell me about foxes and their dens")
      s:input("/save " .. file)
      local n = #m:cache_tokens(s.cache)
      assert.matches("%[saved 3 messages to .*c%.json, with the KV cache of " .. n .. " tokens%]", o1.text)
      assert.truthy(host.read(file .. ".kvstate"))
      local warm, ow = session(m, { max_tokens = 6, temp = 0 })
      warm:input("/load " .. file)
      assert.matches("%[loaded 3 messages from .*c%.json, with the KV cache of " .. n .. " tokens%]", ow.text)
      local a, st = warm:send("And wolves?")
      -- only the new message (and the answer's end) is processed
      assert.is_true(st.prompt_processed < st.prompt_tokens - n + 8,
         st.prompt_processed .. " of " .. st.prompt_tokens .. " with " .. n .. " cached")
      os.remove(file .. ".kvstate")
      local cold, out = session(m, { max_tokens = 6, temp = 0 })
      cold:input("/load " .. file)
      assert.matches("%[loaded 3 messages from .*c%.json%]", out.text)
      local b, st2 = cold:send("And wolves?")
      assert.equal(st2.prompt_tokens, st2.prompt_processed)
      assert.equal(a, b)                     -- the same answer, warm or cold
   end)

   it("load the text and say why when the cache belongs to another model", function()
      if not m then return end
      local sp = data.need(STORIES, pending)
      if not sp then return end
      local s = session(m, { max_tokens = 3, temp = 0 })
      s:input("Hello")
      s:input("/save " .. dir .. "/c.json")
      local other = assert(mh.load(sp, { ctx = 256 }))
      local s2, o2 = session(other, { max_tokens = 3 })
      s2:input("/load " .. dir .. "/c.json")
      assert.matches("/load: the KV cache was not restored: .*c%.json%.kvstate was saved from another model", o2.warn)
      assert.matches("%[loaded 2 messages from ", o2.text)
      assert.equal(2, #s2.messages)
   end)
end)
