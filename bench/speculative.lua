-- bench/speculative.lua: speculative decoding against plain decoding, one
-- stream through model:generate (docs/speculative.md). Layer: bench (public
-- moonhub API only). Prints figures, never asserts.
-- Usage: moonhub run bench/speculative.lua TARGET PROMPT N REPS [DRAFT K]...
-- (DRAFT: a model path or "ngram", K: draft_max). Greedy by default;
-- BENCH_SPEC_SAMPLE="temperature=1,top_k=0,top_p=1,min_p=0" samples instead,
-- over seeds 1..BENCH_SPEC_SEEDS (default 1): a case's figure is its tokens
-- over its time summed across the seeds, so one lucky seed cannot carry it.
-- Runs interleave one generation at a time (plain, each draft, at each
-- seed of each rep), so a slow spell of the machine (memory bandwidth here
-- swings by 1.4x over tens of seconds) hits every case alike; a case's
-- figure is its tokens over its time in all reps, with the range of the
-- per-rep ratios beside it. tokens/step and drafts/step count
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

-- one generation of case c at seed, added to its totals and this rep's
local function run(c, seed, rep)
   assert(m:set_draft(c.draft, c.k))
   opts.seed = seed
   local _, st = m:generate(prompt, opts)
   local t = c.tot
   t.tokens, t.s = t.tokens + st.generated, t.s + st.gen_s
   c.rep_tokens[rep] = (c.rep_tokens[rep] or 0) + st.generated
   c.rep_s[rep] = (c.rep_s[rep] or 0) + st.gen_s
   if st.draft_tokens then
      t.drafted, t.accepted = t.drafted + st.draft_tokens, t.accepted + st.accepted_tokens
      t.steps = t.steps + st.generated / st.tokens_per_step - 1
      t.firsts = t.firsts + 1
   end
end

m:generate(prompt, { max_tokens = 8, temperature = 0 })          -- pages the weights in
for _, c in ipairs(cases) do
   c.tot = { tokens = 0, s = 0, drafted = 0, accepted = 0, steps = 0, firsts = 0 }
   c.rep_tokens, c.rep_s = {}, {}
end
for rep = 1, reps do
   for seed = 1, seeds do
      for _, c in ipairs(cases) do run(c, seed, rep) end
   end
end
-- what the draft lengths were chosen by (measured in the runs)
for _, c in ipairs(cases) do
   if type(c.draft) == "table" then
      assert(m:set_draft(c.draft, c.k))
      m:generate(prompt, { max_tokens = 16, temperature = 0 })
      local sc = m:speculative_costs()
      if sc then
         local rows = {}
         for r = 2, 40 do
            if sc.check_rounds[r] then rows[#rows + 1] = string.format("%d:%.1f", r, sc.check_rounds[r]) end
         end
         c.costs = string.format("  [draft %.1f ms; check of n rows in draft rounds %s]", sc.draft_ms,
            table.concat(rows, " "))
      end
   end
end
local function tps(c, rep) return c.rep_tokens[rep] / c.rep_s[rep] end
local base = cases[1].tot.tokens / cases[1].tot.s
for _, c in ipairs(cases) do
   local r = c.tot
   local lo, hi = math.huge, 0
   for rep = 1, reps do
      local x = tps(c, rep) / tps(cases[1], rep)
      lo, hi = math.min(lo, x), math.max(hi, x)
   end
   print(string.format("%-30s %7.2f tok/s  x%.2f (reps x%.2f-%.2f)%s%s", c.name, r.tokens / r.s,
      r.tokens / r.s / base, lo, hi,
      r.drafted > 0 and string.format("  accepted %3.0f%%  %.2f tokens/step  %.2f drafts/step",
         100 * r.accepted / r.drafted, (r.tokens - r.firsts) / r.steps, r.drafted / r.steps) or "",
      c.costs or ""))
end
