-- decode_tokens.lua: benchmark (prints figures, never a test) of one-token
-- decode steps, timed one by one: percentiles of the per-token time, which
-- a loaded machine's descheduling moves less than a run's mean.
-- Layer: bench; moonhub's public Lua API only.
-- Usage: moonhub run bench/decode_tokens.lua MODEL [THREADS [REPS [TOKENS]]]
local mh = require "moonhub"

local path = arg[1]
if not path then
   io.stderr:write("usage: moonhub run bench/decode_tokens.lua MODEL [THREADS [REPS [TOKENS]]]\n")
   os.exit(2)
end
local threads, reps, n = tonumber(arg[2] or 1), tonumber(arg[3] or 3), tonumber(arg[4] or 128)
local m, err = mh.load(path, { ctx = 4096, threads = threads })
if not m then
   io.stderr:write("decode_tokens: ", tostring(err), "\n")
   os.exit(1)
end
local V, ts, best = m.info.n_vocab, {}, 0
for _ = 1, reps do
   local cache = m:new_cache(n + 1)
   m:forward({ 13 }, cache)
   local t00 = mh.sys.now()
   for i = 2, n + 1 do
      local t0 = mh.sys.now()
      m:forward({ (i * 7919 + 13) % V }, cache)
      ts[#ts + 1] = mh.sys.now() - t0
   end
   best = math.max(best, n / (mh.sys.now() - t00))
   cache:free()
end
table.sort(ts)
local function p(q) return ts[math.floor(#ts * q) + 1] * 1e3 end
print(string.format("%d threads, %d x %d tokens: p10 %.3f  p25 %.3f  p50 %.3f ms a token;"
   .. " best rep %.1f tokens/s", threads, reps, n, p(0.1), p(0.25), p(0.5), best))
