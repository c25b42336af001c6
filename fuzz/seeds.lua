-- seeds.lua: makes the fuzz seed corpora that come from the shared models and
-- vectors (`moonhub run fuzz/seeds.lua OUTDIR`, called by fuzz/run.sh): small
-- real files, cut down so that a fuzzer can mutate them quickly. Hand-made
-- seeds live in fuzz/corpus/<target>/. Layer: fuzz (plain Lua + dkjson).
local json = require "dkjson"

local out = assert(arg[1], "usage: moonhub run fuzz/seeds.lua OUTDIR")
local shared = os.getenv("MOONHUB_TEST_DATA") or "../shared"

local function read(path)
   local f = assert(io.open(path, "rb"), "fuzz seeds: cannot read " .. path)
   local s = f:read("a")
   f:close()
   return s
end

local function write(dir, name, data)
   os.execute("mkdir -p '" .. out .. "/" .. dir .. "'")
   local f = assert(io.open(out .. "/" .. dir .. "/" .. name, "wb"))
   f:write(data)
   f:close()
end

-- GGUF: the smallest real models (tokenizer + tensors) as they are.
write("gguf", "stories260K.gguf", read(shared .. "/models/stories260K.gguf"))
write("gguf", "llama-2-tiny-random.gguf", read(shared .. "/models/llama-2-tiny-random.gguf"))

-- safetensors: the 1-D tensors of the shared HF model with their real bytes,
-- a few per file, under the file's real header layout.
local st = read(shared .. "/models/hf/mh-smol-llama-17m/model.safetensors")
local hlen = string.unpack("<I8", st)
local header = json.decode(st:sub(9, 8 + hlen))
local names = {}
for k, v in pairs(header) do
   if k ~= "__metadata__" and #v.shape == 1 then names[#names + 1] = k end
end
table.sort(names)
for f = 1, 3 do
   local h, data, keys = { __metadata__ = header.__metadata__ }, {}, { "__metadata__" }
   local off = 0
   for i = f, math.min(#names, f + 2 * f) do
      local v = header[names[i]]
      local bytes = st:sub(9 + hlen + v.data_offsets[1], 8 + hlen + v.data_offsets[2])
      h[names[i]] = { dtype = v.dtype, shape = v.shape, data_offsets = { off, off + #bytes } }
      keys[#keys + 1] = names[i]
      data[#data + 1] = bytes
      off = off + #bytes
   end
   local text = json.encode(h, { keyorder = keys })
   write("safetensors", "real" .. f .. ".safetensors",
      string.pack("<I8", #text) .. text .. table.concat(data))
end

-- tokenizer.json: SmolLM2's, cut to its first 400 ids and the merges among
-- them (normalizer, pre-tokenizer, decoder and added tokens kept).
local tj = json.decode(read(shared .. "/vectors/tokenizer/hf-smollm2/tokenizer.json"))
local vocab, keep = {}, {}
for piece, id in pairs(tj.model.vocab) do
   if id < 400 then vocab[piece] = id; keep[piece] = true end
end
local merges = {}
for _, m in ipairs(tj.model.merges) do
   local a, b = m:match("^(%S+) (%S+)$")
   if a and keep[a] and keep[b] and keep[a .. b] then merges[#merges + 1] = m end
end
tj.model.vocab, tj.model.merges = vocab, merges
write("tokenizer_json", "smollm2-400.json", json.encode(tj))

-- chat templates: every shared one.
local dir = shared .. "/vectors/chat_templates"
local p = assert(io.popen("ls '" .. dir .. "'"))
for name in p:lines() do write("jinja", name, read(dir .. "/" .. name)) end
p:close()

-- kv_state: short states of stories260K (the model fuzz_kv_state restores
-- into), in f16 and f32 caches, written by the real writer.
do
   local mh = require "moonhub"
   for _, kv in ipairs({ "f16", "f32" }) do
      local m = assert(mh.load(shared .. "/models/stories260K.gguf", { ctx = 64, kv_type = kv }))
      local cache = m:new_cache()
      m:generate("Once upon a time", { cache = cache, max_tokens = 3, temperature = 0 })
      os.execute("mkdir -p '" .. out .. "/kv_state'")
      assert(m:save_state(out .. "/kv_state/stories260K-" .. kv .. ".mhkv", cache))
      m:close()
   end
end
