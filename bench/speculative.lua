-- bench/speculative.lua: speculative decoding against plain greedy decoding,
-- one stream through model:generate (docs/speculative.md). Layer: bench
-- (public moonhub API only). Prints figures, never asserts.
-- Usage: moonhub run bench/speculative.lua TARGET PROMPT N REPS [DRAFT K]...
-- (DRAFT: a model path or "ngram", K: draft_max). Runs interleave (plain,
-- each draft, plain, ...) and each keeps its best, so a load spike hits all alike.
local mh = require "moonhub"
local target, prompt, n, reps = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local m = assert(mh.load(target, { ctx = 512 }))
local cases = { { name = "no draft" } }
for i = 5, #arg, 2 do
   local d = arg[i] == "ngram" and "ngram" or assert(mh.load(arg[i], { ctx = 512 }))
   cases[#cases + 1] = { name = (arg[i]:match("[^/]+$")) .. " max " .. arg[i + 1], draft = d,
      k = tonumber(arg[i + 1]) }
end
local opts = { max_tokens = n, temperature = 0, ignore_eos = true }
m:generate(prompt, { max_tokens = 8, temperature = 0 })          -- pages the weights in
for _ = 1, reps do
   for _, c in ipairs(cases) do
      assert(m:set_draft(c.draft, c.k))
      local _, st = m:generate(prompt, opts)
      if not c.best or st.gen_tps > c.best then c.best, c.st = st.gen_tps, st end
   end
end
local base = cases[1].best
for _, c in ipairs(cases) do
   local st = c.st
   print(string.format("%-30s %7.2f tok/s  x%.2f%s", c.name, c.best, c.best / base,
      st.draft_tokens and string.format("  accepted %3.0f%%  %.2f tokens/step", 100 * st.acceptance_rate,
         st.tokens_per_step) or ""))
end
