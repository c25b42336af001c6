-- bench/tensor.lua: moonhub's side of bench/run.sh — matmul, add and softmax
-- through the public Lua API (mh.tensor), the same cases as bench/blas_ref.c.
-- Layer: bench (a script run by `./moonhub run`). Threads: MOONHUB_THREADS.
-- Prints "case unit value" lines; each value is the best of a few runs.
local mh = require "moonhub"
local T = mh.tensor
local now = mh.sys.now

-- Best time of reps runs of fn (after one warm-up). The garbage collector
-- runs between runs, outside the timing: results are big and Lua does not
-- see their size, so without it memory would pile up.
local function best_of(reps, fn)
   local best = math.huge
   for r = 0, reps do
      collectgarbage()
      local t0 = now()
      fn()
      local dt = now() - t0
      if r > 0 and dt < best then best = dt end
   end
   return best
end

local function matmul(m, k, n, reps)
   local a = T.randn({ m, k }, { seed = 1 })
   local b = T.randn({ k, n }, { seed = 2 })
   local dt = best_of(reps, function() return a:matmul(b) end)
   print(("matmul_%dx%dx%d GFLOP/s %.2f"):format(m, k, n, 2 * m * k * n / dt * 1e-9))
end

local function add(n, reps)
   local a = T.randn({ n }, { seed = 4 })
   local b = T.randn({ n }, { seed = 5 })
   local label = ("add_%dM"):format(n >> 20)
   local dt = best_of(reps, function() return a + b end)
   print(("%s GB/s %.2f"):format(label, 3 * 4 * n / dt * 1e-9))
   -- in place: the same traffic without a fresh result buffer
   dt = best_of(reps, function() return a:add_(b) end)
   print(("%s_inplace GB/s %.2f"):format(label, 3 * 4 * n / dt * 1e-9))
end

local function softmax(rows, cols, reps)
   local x = T.randn({ rows, cols }, { seed = 7 })
   local dt = best_of(reps, function() return x:softmax(2) end)
   print(("softmax_%dx%d GB/s %.2f"):format(rows, cols, 2 * 4 * rows * cols / dt * 1e-9))
end

io.stderr:write(("# moonhub %s, cpu path %s, threads %d, OPENBLAS_CORETYPE=%s\n")
   :format(mh.version, mh.sys.cpu(), mh.sys.threads(), os.getenv("OPENBLAS_CORETYPE") or "(unset)"))
matmul(1024, 1024, 1024, 5)
matmul(4096, 512, 4096, 3)
add(16 << 20, 5)
softmax(4096, 4096, 5)
