-- bench/speculative.lua: speculative decoding against plain decoding, one
-- stream through model:generate (docs/speculative.md). Layer: bench (public
-- moonhub API only). Prints figures, never asserts.
-- Usage: moonhub run bench/speculative.lua TARGET PROMPT N REPS [DRAFT K]...
-- (DRAFT: a model path or "ngram", K: draft_max). Greedy by default;
-- BENCH_SPEC_SAMPLE="temperature=1,top_k=0,top_p=1,min_p=0" samples instead,
-- over seeds 1..BENCH_SPEC_SEEDS (default 1): a case's figure is its tokens
-- over its time summed across the seeds, so one lucky seed cannot carry it.
-- Runs interleave (plain, each draft, plain, ...) and each keeps its best
-- round, so a load spike hits all alike. tokens/step and drafts/step count
-- the decoding steps (the prompt's step, which yields the first token, is
-- left out); with acceptance they do not depend on the machine's load.
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
local sample = os.getenv("BENCH_SPEC_SAMPLE")
for k, v in (sample or ""):gmatch("([%w_]+)=([^,]+)") do opts[k] = tonumber(v) end
local seeds = sample and tonumber(os.getenv("BENCH_SPEC_SEEDS") or "1") or 1
print(sample and ("sampling " .. sample .. ", seeds 1.." .. seeds) or "greedy")

-- one round of the current draft setting: summed tokens, seconds, drafted and accepted tokens, steps
local function round()
   local r = { tokens = 0, s = 0, drafted = 0, accepted = 0, steps = 0, firsts = 0 }
   for seed = 1, seeds do
      opts.seed = seed
      local _, st = m:generate(prompt, opts)
      r.tokens, r.s = r.tokens + st.generated, r.s + st.gen_s
      if st.draft_tokens then
         r.drafted, r.accepted = r.drafted + st.draft_tokens, r.accepted + st.accepted_tokens
         r.steps = r.steps + st.generated / st.tokens_per_step - 1
         r.firsts = r.firsts + 1
      end
   end
   r.tps = r.tokens / r.s
   return r
end

m:generate(prompt, { max_tokens = 8, temperature = 0 })          -- pages the weights in
for _ = 1, reps do
   for _, c in ipairs(cases) do
      assert(m:set_draft(c.draft, c.k))
      local r = round()
      if not c.best or r.tps > c.best.tps then c.best = r end
   end
end
local base = cases[1].best.tps
for _, c in ipairs(cases) do
   local r = c.best
   print(string.format("%-30s %7.2f tok/s  x%.2f%s", c.name, r.tps, r.tps / base,
      r.drafted > 0 and string.format("  accepted %3.0f%%  %.2f tokens/step  %.2f drafts/step",
         100 * r.accepted / r.drafted, (r.tokens - r.firsts) / r.steps, r.drafted / r.steps) or ""))
end
