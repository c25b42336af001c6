-- Specs for KV state files from Lua (model:save_state / load_state,
-- moonhub.core.kvstate): a round trip gives bitwise the same next-token
-- logits (f16 and q8_0 caches); another model, another KV type, a cache too
-- small, a truncated, corrupt or foreign file are refused with a clear
-- message and leave the cache as it was. Layer: tests (shared models).
local mh = require "moonhub"
local data = require "helpers.data"
local host = require "helpers.host"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local SMOL_Q4 = "models/mh-smol-llama-17m-Q4_0.gguf"
local STORIES = "models/stories260K.gguf"

local loaded = {}
local function load(rel, kv_type)
   local p = data.need(rel, pending)
   if not p then return nil end
   local key = rel .. (kv_type or "")
   loaded[key] = loaded[key] or assert(mh.load(p, { ctx = 256, kv_type = kv_type }))
   return loaded[key]
end

local function read(path) return host.read(path) end
local function write(path, bytes) host.write(path, bytes) end

-- Logits of one more token on cache, as a plain list (bitwise comparable).
local function next_logits(m, cache, id)
   local t = m:forward({ id }, cache)
   local out = {}
   for i = 1, m.info.n_vocab do out[i] = t[{ 1, i }] end
   return out
end

local function same_bits(a, b)
   if #a ~= #b then return false end
   for i = 1, #a do
      if string.pack("<f", a[i]) ~= string.pack("<f", b[i]) then return false, i end
   end
   return true
end

describe("KV state files", function()
   local dir
   before_each(function() dir = host.tmpdir() end)
   after_each(function() host.rmdir(dir) end)

   for _, kv in ipairs({ "f16", "q8_0" }) do
      it("round-trips a generation's cache (" .. kv .. "): identical next-token logits", function()
         local m = load(SMOL, kv)
         if not m then return end
         local cache = m:new_cache()
         local text = m:generate("Once upon a time a little fox", { cache = cache, max_tokens = 6,
            temperature = 0 })
         local ids = m:cache_tokens(cache)
         assert.is_true(#ids > 6, text)
         local bytes = assert(m:save_state(dir .. "/s.kv", cache))
         local info = assert(mh.kvstate.info(dir .. "/s.kv"))
         assert.same({ kv, #ids, 4, 2, 64, 49152, 1, bytes }, { info.type, info.n_tokens, info.n_layer,
            info.n_head_kv, info.head_dim, info.n_vocab, info.version, info.bytes })
         assert.equal(mh.kvstate.identity(m), info.model_id)
         local c2, got = m:load_state(dir .. "/s.kv")
         assert.same(ids, got)
         assert.equal(#ids, c2:n_past())
         assert.is_true(same_bits(next_logits(m, cache, 42), next_logits(m, c2, 42)))
      end)
   end

   it("continues a restored cache as the original: the next generation reuses it", function()
      local m = load(SMOL)
      if not m then return end
      local prompt = "The river ran past the old mill and the children"
      local cache = m:new_cache()
      m:generate(prompt, { cache = cache, max_tokens = 4, temperature = 0 })
      assert(m:save_state(dir .. "/s.kv", cache))
      local follow = prompt .. " went home"
      local want = m:generate(follow, { max_tokens = 8, temperature = 0 })
      local c2 = assert(m:load_state(dir .. "/s.kv"))
      local got, st = m:generate(follow, { cache = c2, max_tokens = 8, temperature = 0 })
      assert.equal(want, got)
      assert.is_true(st.prompt_processed < st.prompt_tokens / 2, st.prompt_processed .. " of " .. st.prompt_tokens)
   end)

   it("refuses a state from another model, another KV type or too long for the cache", function()
      local m, q4, stories = load(SMOL), load(SMOL_Q4), load(STORIES)
      if not (m and q4 and stories) then return end
      local cache = m:new_cache()
      m:generate("Hello there my friend", { cache = cache, max_tokens = 3, temperature = 0 })
      assert(m:save_state(dir .. "/s.kv", cache))
      -- same shapes, other weights (the Q4_0 file of the same model)
      local c, err = q4:load_state(dir .. "/s.kv")
      assert.is_nil(c)
      assert.matches("s%.kv was saved from another model %(id %x+: 4 layers, 2 KV heads x 64, vocab 49152%); "
         .. "this model is %x+ %(4 layers, 2 KV heads x 64, vocab 49152%): restore it into the model that saved it",
         err)
      c, err = stories:load_state(dir .. "/s.kv")
      assert.is_nil(c)
      assert.matches("this model is %x+ %(5 layers, 4 KV heads x 8, vocab 512%)", err)
      local q8kv = load(SMOL, "q8_0")
      c, err = q8kv:load_state(dir .. "/s.kv")
      assert.is_nil(c)
      assert.matches("holds a f16 KV cache; this cache is q8_0 %(use kv_type f16%)", err)
      c, err = m:load_state(dir .. "/s.kv", m:new_cache(4))
      assert.is_nil(c)
      assert.matches("holds %d+ tokens; this cache fits 4 %(raise ctx%)", err)
      c, err = m:load_state(dir .. "/missing.kv")
      assert.is_nil(c)
      assert.matches("cannot open .*missing%.kv", err)
   end)

   it("refuses truncated, corrupt and foreign files and leaves the cache as it was", function()
      local m = load(SMOL)
      if not m then return end
      local cache = m:new_cache()
      m:generate("A small test of broken files", { cache = cache, max_tokens = 2, temperature = 0 })
      assert(m:save_state(dir .. "/s.kv", cache))
      local good = read(dir .. "/s.kv")
      local target = m:new_cache()
      m:generate("Something else entirely", { cache = target, max_tokens = 2, temperature = 0 })
      local before = target:n_past()
      local function refused(bytes, pattern)
         write(dir .. "/bad.kv", bytes)
         local c, err = m:load_state(dir .. "/bad.kv", target)
         assert.is_nil(c, pattern)
         assert.matches(pattern, err)
         assert.equal(before, target:n_past())
         local info, ierr = mh.kvstate.info(dir .. "/bad.kv")
         assert.is_nil(info)
         assert.matches(pattern, ierr)
      end
      refused("", "not a moonhub KV state file")
      refused("GGUF" .. good:sub(5), "not a moonhub KV state file")
      for _, cut in ipairs({ 11, 12, 60, 96, 127, 128, #good - 33, #good - 1 }) do
         refused(good:sub(1, cut), cut < 12 and "not a moonhub KV state" or "truncated")
      end
      refused(good .. "x", "trailing bytes")
      refused(good:sub(1, 8) .. string.pack("<I4", 2) .. good:sub(13), "KV state version 2; this build reads version 1")
      -- a flipped bit in the rows, in an id, in the shape
      local function flip(at) return good:sub(1, at - 1) .. string.char(good:byte(at) ~ 1) .. good:sub(at + 1) end
      refused(flip(#good - 100), "corrupt: the checksum does not match")
      refused(flip(97), "corrupt: the checksum does not match")
      refused(flip(53), "bad K/V size")             -- n_layer 4 -> 5
      refused(flip(81), "bad row size")
      refused(good:sub(1, 48) .. string.pack("<I4", 5) .. good:sub(53), "bad KV type 5")
      refused(good:sub(1, 72) .. string.pack("<I8", 0) .. good:sub(81), "bad token count 0")
   end)

   it("needs a cache that holds tokens to save", function()
      local m = load(SMOL)
      if not m then return end
      local b, err = m:save_state(dir .. "/s.kv", m:new_cache())
      assert.is_nil(b)
      assert.matches("the cache holds no tokens yet", err)
      assert.has_error(function() m:save_state(dir .. "/s.kv") end,
         "model:save_state: needs the cache a generation ran on ({cache = ...})")
      assert.is_nil(read(dir .. "/s.kv"))
   end)
end)
