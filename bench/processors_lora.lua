-- bench/processors_lora.lua: what per-request LoRA adapters and Lua logits
-- processors cost in the threaded scheduler (docs/lora.md,
-- docs/processors.md). Layer: bench (public moonhub API only). Prints
-- figures, never asserts.
-- Usage: moonhub run bench/processors_lora.lua MODEL [N tokens] [REPS]
-- Four streams of N greedy tokens at once (parallel 4), interleaved rounds,
-- best of REPS: all base; each with its own adapter (rank 8, all
-- projections, trained 2 steps here); one with a no-op processor and with
-- ban_words. Figures: aggregate tok/s and the processed stream's own tok/s.
local mh = require "moonhub"
local path, n, reps = arg[1], tonumber(arg[2] or 64), tonumber(arg[3] or 3)
local m = assert(mh.load(path, { ctx = 512 }))
local dir = os.tmpname()
os.remove(dir)
assert(require("moonhub.fs").mkdirs(dir))
for i = 1, 4 do           -- four adapters (what they say does not matter here)
   local tr = mh.train.trainer(m, { method = "lora", seed = i,
      lora = { rank = 8, alpha = 16, targets = { "q", "k", "v", "o", "gate", "up", "down" } } })
   for _ = 1, 2 do tr:step({ tokens = { m.tokenizer:encode("Once upon a time " .. i, { bos = true }) } }) end
   assert(tr:save(dir .. "/a" .. i .. ".gguf"))
   tr:close()
   assert(m:add_lora("a" .. i, dir .. "/a" .. i .. ".gguf"))
end
mh.processors.register("noop", function() end)
local s = assert(mh.sched.new(m, { parallel = 4, ctx = 512, prefix_cache = false }))
local prompt = m.tokenizer:encode("Once upon a time", { bos = true })
local cases = {
   { name = "4 base streams" },
   { name = "4 streams, 4 adapters", lora = function(i) return { "a" .. i } end },
   { name = "1 of 4 with a no-op processor", procs = { "noop" } },
   { name = "1 of 4 with ban_words", procs = { { name = "ban_words", args = { words = { "the", "and" } } } } },
}
local now = require("moonhub.core.sys").now
for _ = 1, reps do
   for _, c in ipairs(cases) do
      local t0, reqs = now(), {}
      for i = 1, 4 do
         local l = c.lora and assert(mh.adapters.for_request(m, c.lora(i))) or nil
         reqs[i] = assert(s:submit({ tokens = prompt, max_tokens = n, temperature = 0, eog = false, lora = l,
            processors = i == 1 and c.procs or nil }))
      end
      local first
      for i, r in ipairs(reqs) do
         r:wait()
         if i == 1 then first = now() - t0 end
      end
      local total = now() - t0
      local tps, own = 4 * n / total, n / first
      if not c.best or tps > c.best then c.best, c.own = tps, own end
   end
end
for _, c in ipairs(cases) do
   print(string.format("%-34s %8.1f tok/s in all   first stream %7.1f tok/s   x%.2f", c.name, c.best, c.own,
      c.best / cases[1].best))
end
s:close()
os.execute("rm -rf '" .. dir .. "'")
