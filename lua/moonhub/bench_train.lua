-- moonhub.bench_train: `moonhub bench train`: training tokens/s and peak RSS
-- of LoRA on the smollm2-135m shape and full training of a ~10M llama, each
-- in its own process, against PyTorch CPU on the same shapes when Debian's
-- python3-torch is there. Layer: lua/moonhub (public API; dkjson; core.host
-- for the executable's path, moonhub.fs for mkdirs).
local mh = require "moonhub"
local json = require "dkjson"
local fs = require "moonhub.fs"
local host = require "moonhub.core.host"

local M = {}

M.usage = [==[usage: moonhub bench train [--case lora|full|all] [--steps 3] [-t 2] [--seq 256] [--batch 4]
         [--rank 8] [--tokenizer VOCAB] [--dir DIR] [--python PATH] [--no-torch] [-q]
  Creates the models in DIR (default /tmp/moonhub-bench-train; kept for reuse):
  lora: smollm2-135m shape, F32 base, LoRA r=8 on q,k,v,o (vocabulary from
  VOCAB, default the SmolLM2 vocab of mh-smol-llama-17m-F16.gguf in the test
  data when present); full: ~10M-parameter llama (8 x 320, ff 864, byte vocab).
  Each case runs one warm-up step and STEPS timed AdamW steps on random tokens
  in a child process (so peak RSS is its own), then the same shapes in
  PyTorch (tests/tools/bench_train_torch.py with PATH, default /usr/bin/python3).
  Progress (which case, which trainer) goes to stderr; -q/--quiet silences it.]==]

local function fail(msg) error({ usage = msg }, 0) end

-- The ~10M model of the full case: 8 layers of 1.24M parameters, byte vocab.
M.full_config = { arch = "llama", n_layer = 8, n_embd = 320, n_ff = 864, n_head = 5, n_head_kv = 5,
                  n_vocab = 259, n_ctx = 2048, rope_base = 10000, rms_eps = 1e-5, tied = true }

local function parse(args)
   local o = { case = "all", steps = 3, threads = 2, seq = 256, batch = 4, rank = 8,
               dir = "/tmp/moonhub-bench-train", python = "/usr/bin/python3", torch = true }
   local ints = { ["--steps"] = "steps", ["-t"] = "threads", ["--threads"] = "threads", ["--seq"] = "seq",
                  ["--batch"] = "batch", ["--rank"] = "rank" }
   local strs = { ["--tokenizer"] = "tokenizer", ["--dir"] = "dir", ["--python"] = "python",
                  ["--case"] = "case", ["--worker"] = "worker", ["--model"] = "model" }
   local i = 1
   while i <= #args do
      local a, v = args[i], args[i + 1]
      if ints[a] then
         local n = math.tointeger(tonumber(v or ""))
         if not n or n < 1 then fail(a .. " needs a positive integer") end
         o[ints[a]] = n
         i = i + 2
      elseif strs[a] then
         o[strs[a]] = v or fail(a .. " needs a value")
         i = i + 2
      elseif a == "--no-torch" then o.torch = false; i = i + 1
      elseif a == "-q" or a == "--quiet" then o.quiet = true; i = i + 1
      elseif a == "-h" or a == "--help" then o.help = true; i = i + 1
      else fail("unknown option " .. a) end
   end
   if o.case ~= "lora" and o.case ~= "full" and o.case ~= "all" then fail("--case must be lora, full or all") end
   if o.seq < 2 then fail("--seq must be at least 2") end
   return o
end

local peak_rss = fs.peak_rss

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- ===== the worker: one case in this process =====

-- Random batch: B rows of T ids from a fixed LCG (the same every run).
local function batch_of(B, T, V, state)
   local tok = {}
   for b = 1, B do
      local row = {}
      for i = 1, T do
         state[1] = (state[1] * 6364136223846793005 + 1442695040888963407)
         row[i] = (state[1] >> 33) % V
      end
      tok[b] = row
   end
   return { tokens = tok }
end

-- run_case{case, model, steps, threads, seq, batch, rank} -> result table | nil, msg
function M.run_case(o)
   mh.sys.threads(o.threads)
   local m, err = mh.load(o.model, { ctx = o.seq, threads = o.threads })
   if not m then return nil, err end
   local tr = mh.train.trainer(m, { method = o.case, batch = o.batch, seq = o.seq, grad_clip = 1.0,
      lora = { rank = o.rank, alpha = 2 * o.rank, targets = { "q", "k", "v", "o" } },
      optimizer = { lr = 2e-4, weight_decay = 0.01 } })
   local V, state = m.info.n_vocab, { 1 }
   tr:step(batch_of(o.batch, o.seq, V, state))                -- warm-up: buffers, moments
   local times, loss = {}, nil
   for s = 1, o.steps do
      local b = batch_of(o.batch, o.seq, V, state)
      local t0 = mh.sys.now()
      local r = tr:step(b)
      times[s], loss = mh.sys.now() - t0, r.loss
   end
   local total = 0
   for _, t in ipairs(times) do total = total + t end
   local res = { tokens_per_s = o.batch * o.seq * #times / total, step_s = times, loss = loss,
                 params = m.info.n_params, trainable = tr:info().trainable, vocab = V,
                 threads = mh.sys.threads(), peak_rss = peak_rss(), cpu = mh.sys.cpu() }
   tr:close()
   m:close()
   return res
end

-- ===== the driver =====

-- The models: created once in o.dir (kept, so repeated runs skip creation).
local function ensure_model(o, case)
   local ok, err = fs.mkdirs(o.dir)
   if not ok then return nil, err end
   local spec = { out = nil, type = "F32", seed = 1 }
   if case == "lora" then
      spec.preset = "smollm2-135m"
      spec.tokenizer = o.tokenizer
      if not spec.tokenizer then
         local root = os.getenv("MOONHUB_TEST_DATA") or "../shared"
         local smol = root .. "/models/mh-smol-llama-17m-F16.gguf"
         spec.tokenizer = fs.exists(smol) and smol or nil
      end
      spec.out = o.dir .. "/smollm2-135m-F32.gguf"
   else
      spec.config = M.full_config
      spec.out = o.dir .. "/llama-10m-F32.gguf"
   end
   if not fs.exists(spec.out) then
      local st, cerr = mh.create.model(spec)
      if not st then return nil, cerr end
   end
   return spec.out
end

-- Runs a command that prints one JSON line last; returns the decoded object.
local function json_of(cmd)
   local p = io.popen(cmd, "r")
   if not p then return nil, "cannot run " .. cmd end
   local out = p:read("a")
   p:close()
   local last = out:match("(%b{})%s*$")
   local obj = last and json.decode(last)
   if type(obj) ~= "table" then return nil, "no result from: " .. cmd .. "\n" .. out:sub(-1000) end
   return obj
end

local function torch_script()
   local root = tostring(host.exe):match("^(.*)/[^/]+$") or "."
   for _, dir in ipairs({ ".", root, root .. "/.." }) do     -- source tree: cwd, or above build/
      local p = dir .. "/tests/tools/bench_train_torch.py"
      if fs.exists(p) then return p end
   end
end

local function torch_cmd(o, case, cfg, script)
   return string.format("%s %s --case %s --layers %d --embd %d --ff %d --heads %d --kv-heads %d --vocab %d%s"
      .. " --seq %d --batch %d --steps %d --threads %d --rank %d 2>&1", sh_quote(o.python), sh_quote(script), case,
      cfg.n_layer, cfg.n_embd, cfg.n_ff, cfg.n_head, cfg.n_head_kv, cfg.n_vocab, cfg.tied and "" or " --untied",
      o.seq, o.batch, o.steps, o.threads, o.rank)
end

local function has_torch(python)
   local p = io.popen(sh_quote(python) .. " -c 'import torch; print(torch.__version__)' 2>/dev/null")
   local v = p and p:read("a") or ""
   if p then p:close() end
   return v:match("^(%S+)")
end

local function row_of(label, r, ref)
   return (string.format("| %-7s | %-14s | %8.2fM | %10.1f | %8.3f | %9.1f MiB | %s |", label.case, label.who,
      r.trainable / 1e6, r.tokens_per_s, label.step, r.peak_rss / 2^20,
      ref and string.format("%.2fx", r.tokens_per_s / ref.tokens_per_s) or ""))
end

local function mean(xs)
   local s = 0
   for _, x in ipairs(xs) do s = s + x end
   return s / #xs
end

-- The table is printed once every case ran (the progress line is done by
-- then); progress counts parts: per case the model, moonhub's run and
-- PyTorch's when it runs.
local function drive(o)
   local exe = host.exe or "moonhub"
   local script = o.torch and torch_script()
   local tv = script and has_torch(o.python)
   local lines = {}
   local function say(s) lines[#lines + 1] = s end
   say(string.format("training: seq %d, batch %d, %d timed steps after 1 warm-up, %d threads",
      o.seq, o.batch, o.steps, o.threads))
   if o.torch and not tv then say("pytorch: not run (" .. (script and o.python .. " has no torch"
      or "tests/tools/bench_train_torch.py not found") .. ")") end
   say(string.format("| %-7s | %-14s | %9s | %10s | %8s | %13s | %s |", "case", "trainer", "trainable",
      "tokens/s", "s/step", "peak RSS", "vs torch"))
   say("|---------|----------------|-----------|------------|----------|---------------|----------|")
   local cases = o.case == "all" and { "lora", "full" } or { o.case }
   local models = {}
   local progress = require("moonhub.progress").new("bench train", { unit = "parts", quiet = o.quiet })
   local per, done = tv and 3 or 2, 0
   local function part(note)
      progress(done, #cases * per, false, note)
      done = done + 1
   end
   for _, case in ipairs(cases) do
      part(case .. ": model")
      local path, err = ensure_model(o, case)
      if not path then return nil, err end
      part(string.format("%s: moonhub, %d steps", case, o.steps))
      local ours, oerr = json_of(string.format("%s bench train --worker %s --model %s --steps %d -t %d --seq %d"
         .. " --batch %d --rank %d 2>&1", sh_quote(exe), case, sh_quote(path), o.steps, o.threads, o.seq,
         o.batch, o.rank))
      if not ours then return nil, oerr end
      local theirs
      if tv then
         part(string.format("%s: pytorch, %d steps", case, o.steps))
         local cfg = case == "full" and M.full_config or mh.create.presets["smollm2-135m"]
         cfg = setmetatable({ n_vocab = ours.vocab }, { __index = cfg })
         local terr
         theirs, terr = json_of(torch_cmd(o, case, cfg, script))
         if not theirs then return nil, terr end
      end
      models[#models + 1] = string.format("%s: %s (%.1fM parameters, vocab %d, cpu path %s)", case, path,
         ours.params / 1e6, ours.vocab, ours.cpu)
      say(row_of({ case = case, who = "moonhub", step = mean(ours.step_s) }, ours, theirs))
      if theirs then say(row_of({ case = case, who = "torch " .. tv, step = mean(theirs.step_s) }, theirs)) end
   end
   progress(done, done, true, "done")
   for _, line in ipairs(models) do say(line) end
   io.stdout:write(table.concat(lines, "\n"), "\n")
   return true
end

-- main(args) -> exit code
function M.main(args)
   local o = parse(args)
   if o.help then print(M.usage) return 0 end
   if o.worker then
      if o.worker ~= "lora" and o.worker ~= "full" then fail("--worker must be lora or full") end
      if not o.model then fail("--worker needs --model") end
      o.case = o.worker
      local r, err = M.run_case(o)
      if not r then
         io.stderr:write("bench train: ", tostring(err), "\n")
         return 1
      end
      print(json.encode(r))
      return 0
   end
   local ok, err = drive(o)
   if not ok then
      io.stderr:write("bench train: ", tostring(err), "\n")
      return 1
   end
   return 0
end

return M
