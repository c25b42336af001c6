-- bench/embed.lua: encoder embeddings (bert, nomic-bert) — one batch of
-- short texts through m:embed against llama.cpp's llama-embedding on the
-- same file. Layer: bench (public moonhub API only). Prints figures, never
-- asserts.
-- Usage: moonhub run bench/embed.lua MODEL LLAMA_EMBEDDING [N_TEXTS=32] [REPS=5] [THREADS=2]
-- Runs interleave (ours, llama.cpp, ours, ...); each side keeps its median.
-- Ours: the m:embed call alone (model loaded and paged in once); llama.cpp:
-- its "prompt eval time" (the batch's decode, not its load), one process a rep.
local mh = require "moonhub"
local model, exe = arg[1], arg[2]
local n, reps, threads = tonumber(arg[3] or 32), tonumber(arg[4] or 5), tonumber(arg[5] or 2)
assert(model and exe, "usage: moonhub run bench/embed.lua MODEL LLAMA_EMBEDDING [N] [REPS] [THREADS]")
local subjects = { "the cat", "a search engine", "my bank account", "the river bank", "a quick brown fox",
   "this model", "the weather today", "an embedding vector" }
local verbs = { "sat on the mat", "answers every query", "was closed on sunday", "flooded last spring",
   "jumps over the lazy dog", "turns text into numbers", "looks cloudy and cold", "has unit length" }
local texts = {}
for i = 1, n do
   texts[i] = subjects[(i - 1) % #subjects + 1] .. " " .. verbs[(i * 3 - 1) % #verbs + 1] .. " (" .. i .. ")"
end
mh.sys.threads(threads)
local m = assert(mh.load(model))
m:embed(texts)                                                     -- pages the weights in
local tokens = 0
for _, t in ipairs(texts) do tokens = tokens + #m.tokenizer:encode(t) end
local tmp = os.tmpname()
local f = assert(io.open(tmp, "w"))
f:write(table.concat(texts, "\n"))
f:close()
local cmd = string.format("%s -m %q -f %q -t %d -c 512 -b 512 -ub 512 --embd-output-format json 2>&1",
   exe, model, tmp, threads)
local ours, theirs = {}, {}
for _ = 1, reps do
   local t0 = mh.sys.now()
   m:embed(texts)
   ours[#ours + 1] = mh.sys.now() - t0
   local p = assert(io.popen(cmd))
   local out = p:read("a")
   p:close()
   local ms = out:match("prompt eval time =%s*([%d.]+) ms")
   theirs[#theirs + 1] = ms and tonumber(ms) / 1000 or 0 / 0
end
os.remove(tmp)
local function median(t)
   table.sort(t)
   return t[(#t + 1) // 2]
end
local a, b = median(ours), median(theirs)
local load = io.open("/proc/loadavg"):read("l"):match("^(%S+ %S+ %S+)")
print(string.format("%s: %d texts, %d tokens, %d threads, median of %d interleaved reps, load %s",
   model:match("[^/]+$"), n, tokens, threads, reps, load))
print(string.format("  moonhub   %7.1f ms  %8.1f embeddings/s", a * 1e3, n / a))
print(string.format("  llama.cpp %7.1f ms  %8.1f embeddings/s", b * 1e3, n / b))
print(string.format("  ratio moonhub / llama.cpp (embeddings/s): %.2f", b / a))
