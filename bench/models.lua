-- bench/models.lua: the inference table of `make bench` — `moonhub bench`
-- against llama.cpp's llama-bench on the preset files of issue 18, pp and tg
-- at each thread count, runs interleaved (ours, theirs, ours, theirs...).
-- Layer: bench (prints figures; never a test). Uses ./moonhub and dkjson.
-- Usage: ./moonhub run bench/models.lua [LLAMA_CPP]   (a bin folder or llama-bench itself)
-- Env: BENCH_MODELS (names, default all), BENCH_THREADS ("1 2"), BENCH_ROUNDS (2),
--      BENCH_REPS (3, repetitions inside one run), BENCH_PP (512), BENCH_TG (128),
--      BENCH_DIR (build/bench-models: the files are made once and kept there).
local json = require "dkjson"

local exe = "./moonhub"
local dir = os.getenv("BENCH_DIR") or "build/bench-models"
local data = (os.getenv("MOONHUB_TEST_DATA") or "../shared") .. "/models/"
local smol_vocab = data .. "mh-smol-llama-17m-F16.gguf"   -- the SmolLM2 tokenizer
local rounds = tonumber(os.getenv("BENCH_ROUNDS") or "2")
local reps = tonumber(os.getenv("BENCH_REPS") or "3")
local pp, tg = os.getenv("BENCH_PP") or "512", os.getenv("BENCH_TG") or "128"

-- name, preset, type, tokenizer (nil: the built-in byte vocabulary; no
-- Qwen or TinyLlama tokenizer is in ../shared)
local presets = {
   { "smollm2-135m-Q8_0", "smollm2-135m", "Q8_0", smol_vocab },
   { "smollm2-135m-Q4_0", "smollm2-135m", "Q4_0", smol_vocab },
   { "smollm2-135m-Q4_K_M", "smollm2-135m", "Q4_K_M", smol_vocab },
   { "qwen2.5-0.5b-Q4_K_M", "qwen2.5-0.5b", "Q4_K_M" },
   { "tinyllama-1.1b-Q4_K_M", "tinyllama-1.1b", "Q4_K_M" },
}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function words(s)
   local t = {}
   for w in (s or ""):gmatch("%S+") do t[#t + 1] = w end
   return t
end
local function exists(p)
   local f = io.open(p, "rb")
   if f then f:close() end
   return f ~= nil
end
local function note(s) io.stderr:write(s, "\n") end
local function load1()
   local f = io.open("/proc/loadavg")
   local l = f and tonumber(f:read("l"):match("^(%S+)"))
   if f then f:close() end
   return l or 0
end
-- stdout of cmd (stderr passes through), nil when it failed
local function run(cmd)
   local p = io.popen(cmd)
   local out = p:read("a")
   local ok = p:close()
   return ok and out or nil
end

local llama = arg[1] ~= "" and arg[1] or nil
if llama and not llama:match("llama%-bench$") then llama = llama .. "/llama-bench" end
if llama and not exists(llama) then
   io.stderr:write("bench: no llama-bench at ", llama, " (LLAMA_CPP: its build/bin folder or the binary)\n")
   os.exit(1)
end

local wanted = {}
for _, n in ipairs(words(os.getenv("BENCH_MODELS"))) do wanted[n] = true end
local models = {}
for _, p in ipairs(presets) do
   if next(wanted) == nil or wanted[p[1]] then models[#models + 1] = p end
end
if #models == 0 then
   io.stderr:write("bench: BENCH_MODELS names none of the presets\n")
   os.exit(1)
end

-- the preset files, made once (same seed, same bytes)
os.execute("mkdir -p " .. q(dir))
for _, p in ipairs(models) do
   p.file = dir .. "/" .. p[1] .. ".gguf"
   if not exists(p.file) then
      local tok = p[4] and exists(p[4]) and (" --tokenizer " .. q(p[4])) or ""
      if p[4] and tok == "" then note("bench: " .. p[4] .. " not found, " .. p[1] .. " gets the byte vocabulary") end
      note("bench: making " .. p.file)
      local cmd = string.format("%s create --preset %s --type %s --seed 1 -q%s --out %s >&2", exe, p[2], p[3], tok,
         q(p.file))
      if not os.execute(cmd) then
         io.stderr:write("bench: could not make ", p.file, "\n")
         os.exit(1)
      end
   end
end

-- best[model][threads][test] = { ours =, theirs =, load = highest 1-min load seen }
local best, probe, bpt = {}, {}, {}
local function keep(m, t, test, who, ts, load)
   best[m] = best[m] or {}
   best[m][t] = best[m][t] or {}
   local b = best[m][t][test] or { load = 0 }
   best[m][t][test] = b
   if not b[who] or ts > b[who] then b[who] = ts end
   if load > b.load then b.load = load end
   note(string.format("bench:   %s %s t=%d %s %.1f tokens/s (load %.1f)", who, m, t, test, ts, load))
end

local function ours(p, t)
   local load = load1()
   local out = run(string.format("%s bench %s -p %s -n %s -r %d -t %d --json -q --no-membw", exe, q(p.file), pp, tg,
      reps, t))
   local r = out and json.decode(out)
   if not r then return note("bench: moonhub bench failed on " .. p.file) end
   bpt[p[1]] = r.info.bytes_per_token
   for _, row in ipairs(r.rows) do keep(p[1], t, row.test, "ours", row.mean, math.max(load, load1())) end
end

local function theirs(p, t)
   local load = load1()
   local out = run(string.format("%s -m %s -p %s -n %s -r %d -t %d -o json 2>/dev/null", q(llama), q(p.file), pp, tg,
      reps, t))
   local r = out and json.decode(out)
   if type(r) ~= "table" then return note("bench: llama-bench failed on " .. p.file) end
   for _, row in ipairs(r) do
      local test = row.n_prompt > 0 and ("pp" .. row.n_prompt) or ("tg" .. row.n_gen)
      keep(p[1], t, test, "theirs", row.avg_ts, math.max(load, load1()))
   end
end

local threads = words(os.getenv("BENCH_THREADS") or "1 2")
for _, t in ipairs(threads) do
   local out = run(string.format("%s bench --membw -t %s --json", exe, t))
   probe[t] = out and json.decode(out)
end
for round = 1, rounds do
   for _, p in ipairs(models) do
      for _, t in ipairs(threads) do
         note(string.format("bench: round %d/%d, %s, %s thread(s)", round, rounds, p[1], t))
         ours(p, tonumber(t))
         if llama then theirs(p, tonumber(t)) end
      end
   end
end

-- tokens/s over the ceiling a token can reach reading its weights once
local function bw(m, t, ts)
   local pr = probe[t]
   if not (ts and pr and bpt[m]) then return "" end
   return string.format("%3.0f%%", 100 * ts / (pr.bytes_per_s / bpt[m]))
end

print(string.format("\nmodels: best of %d interleaved rounds x %d reps (%s); 1-min load average beside each row",
   rounds, reps, llama and ("llama-bench " .. llama) or "moonhub only: give LLAMA_CPP to compare"))
for _, t in ipairs(threads) do
   local pr = probe[t]
   if pr then print(string.format("memory bandwidth, %s thread(s): %.2f GB/s", t, pr.bytes_per_s / 1e9)) end
end
print(string.format("%-22s %3s %-6s %9s %9s %6s %5s %5s %5s", "model", "thr", "test", "moonhub", "llama.cpp",
   "ratio", "bw", "bw.cpp", "load"))
for _, p in ipairs(models) do
   for _, t in ipairs(threads) do
      local rows = best[p[1]] and best[p[1]][tonumber(t)] or {}
      for _, test in ipairs({ "pp" .. pp, "tg" .. tg }) do
         local b = rows[test]
         if b then
            local isg = test:match("^tg")
            print(string.format("%-22s %3s %-6s %9s %9s %6s %5s %5s %5.1f%s", p[1], t, test,
               b.ours and string.format("%.1f", b.ours) or "-", b.theirs and string.format("%.1f", b.theirs) or "-",
               (b.ours and b.theirs) and string.format("%.2f", b.ours / b.theirs) or "-",
               isg and bw(p[1], t, b.ours) or "", isg and bw(p[1], t, b.theirs) or "", b.load,
               b.load > 2 and "  loaded" or ""))
         end
      end
   end
end
