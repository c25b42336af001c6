-- examples/lifecycle.lua: the hub's central flow end to end, offline, in a
-- scratch MOONHUB_HOME: a base model, a dataset written here, import +
-- validate + PII + split, a LoRA job followed live, loss chart, eval before
-- and after, the new version's lineage, then `moonhub serve` asked through
-- /v1/chat/completions for the base and the fine-tuned answer side by side.
-- `make demo` runs it. Layer: examples (drives the moonhub CLI as child
-- processes, as a user types it; dkjson, moonhub.fs, curl for the requests).
-- Usage: moonhub run examples/lifecycle.lua [--model GGUF | --create] [--steps N]
--        [--lr X] [--method lora|full] [--keep]
--   --model: the base (default stories260K from the shared test data, else,
--   or with --create, a `moonhub create --preset tiny` model with random
--   weights, trained in full); --keep: leave the scratch folder.
local json = require "dkjson"
local fs = require "moonhub.fs"
local host = require "moonhub.core.host"
local now = require("moonhub.core.sys").now

local T0 = now()
local STEPS = 14
local PHRASE = "The secret word is moonhub."
local opts = { steps = 60 }
local SEQ = 128                        -- the longest row in tokens (a byte vocabulary's rows are ~100)
do
   local i = 1
   while i <= #arg do
      local a = arg[i]
      if a == "--keep" then opts.keep = true
      elseif a == "--model" then opts.model, i = arg[i + 1], i + 1
      elseif a == "--create" then opts.create = true
      elseif a == "--steps" then
         opts.steps, opts.steps_given, i = math.tointeger(tonumber(arg[i + 1] or "")), true, i + 1
      elseif a == "--lr" then opts.lr, i = tonumber(arg[i + 1] or ""), i + 1
      elseif a == "--method" then opts.method, i = arg[i + 1], i + 1
      else
         io.stderr:write("lifecycle: unknown argument ", a, "\nusage: moonhub run examples/lifecycle.lua ",
            "[--model GGUF | --create] [--steps N] [--lr X] [--method lora|full] [--keep]\n")
         os.exit(2)
      end
      i = i + 1
   end
   if not opts.steps or opts.steps < 1 then
      io.stderr:write("lifecycle: --steps needs a positive integer\n")
      os.exit(2)
   end
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- ===== the scratch folder, the child processes, the steps =====

local dir = os.tmpname()
os.remove(dir)
assert(fs.mkdirs(dir .. "/home"))
local home = dir .. "/home"
local exe = host.exe
local server_pid

local function cleanup()
   if server_pid then os.execute("kill " .. server_pid .. " 2>/dev/null") end
   if not opts.keep then os.execute("rm -rf " .. q(dir)) end
end

local n = 0
-- step(text): one line saying what the step did
local function step(fmt, ...)
   n = n + 1
   print(string.format("[%2d/%d] " .. fmt, n, STEPS, ...))
   io.stdout:flush()
end

local function fail(what, detail)
   io.stdout:flush()
   io.stderr:write(string.format("lifecycle: step %d failed: %s\n", n + 1, what))
   if detail and detail ~= "" then io.stderr:write((detail:gsub("\n*$", "\n"))) end
   io.stderr:write("lifecycle: scratch folder ", dir, opts.keep and " kept" or " removed", "\n")
   cleanup()
   os.exit(1)
end

-- moonhub(args[, live]) -> stdout, stderr: runs ./moonhub ARGS with the
-- scratch home; a failure ends the demo with the verb's own message. live:
-- the verb writes to this terminal (its progress line), nothing is captured.
local function moonhub(args, live)
   local cmd = string.format("cd %s && env MOONHUB_HOME=%s %s %s", q(dir), q(home), q(exe), args)
   if not live then cmd = cmd .. string.format(" >%s 2>%s </dev/null", q(dir .. "/.out"), q(dir .. "/.err")) end
   local ok = os.execute(cmd)
   local out, err = fs.read(dir .. "/.out") or "", fs.read(dir .. "/.err") or ""
   os.remove(dir .. "/.out")
   os.remove(dir .. "/.err")
   if not ok then fail("moonhub " .. args, live and "" or (err ~= "" and err or out)) end
   return out, err
end

local function first_line(s) return (s:match("^[^\n]*")) end

-- ===== 1. the base model =====

local function shared_stories()
   for _, r in ipairs({ os.getenv("MOONHUB_TEST_DATA") or false, host.root and host.root .. "/../shared" or false }) do
      local p = r and r .. "/models/stories260K.gguf"
      if p and fs.exists(p) then return fs.realpath(p) or p end
   end
end

-- the verbs run in the scratch folder: a path given here is made absolute
local base_file, how = opts.model and (fs.realpath(opts.model) or opts.model), "given"
if not base_file and not opts.create then
   base_file, how = shared_stories(), "stories260K from the shared test data"
end
if not base_file then
   -- random weights: a LoRA over them learns little in a demo's time, so
   -- the created base is trained in full (unless --method says otherwise)
   base_file, how = dir .. "/tiny.gguf", "created: moonhub create --preset tiny (random weights)"
   moonhub("create --quiet --preset tiny --type F32 --seed 1 --out " .. q(base_file))
   opts.method = opts.method or "full"
   opts.lr = opts.lr or 1e-3
   opts.steps = opts.steps_given and opts.steps or 150
end
local imported = first_line(moonhub("import " .. q(base_file) .. " --name base"))
local base = imported:match("^imported (%S+)") or "base"
step("base model %s registered (%s)", base, how)

-- ===== 2-6. the dataset =====

-- A deterministic synthetic task: questions worded many ways, one answer.
-- Two rows carry PII (an email, a phone number) for the PII report.
local function write_dataset(path)
   local asks = { "What is the secret word?", "Tell me the secret word.", "Do you know the secret word?",
      "Say the secret word.", "Which word is the secret one?", "I forgot the secret word. What is it?" }
   local leads = { "", "Hello! ", "Please: ", "Quick question. " }
   local rows, x = {}, 7
   for i = 1, 46 do
      x = (x * 1103515245 + 12345) % 2147483648
      local ask = leads[x % #leads + 1] .. asks[(x // 7) % #asks + 1]
      rows[i] = { messages = { { role = "user", content = ask }, { role = "assistant", content = PHRASE } } }
   end
   rows[#rows + 1] = { messages = { { role = "user", content = "Mail ada@example.com the secret word." },
      { role = "assistant", content = PHRASE } } }
   rows[#rows + 1] = { messages = { { role = "user", content = "Call +1 415 555 0100 with the secret word." },
      { role = "assistant", content = PHRASE } } }
   local lines = {}
   for i, r in ipairs(rows) do lines[i] = json.encode(r) end
   assert(fs.write(path, table.concat(lines, "\n") .. "\n"))
   return #rows
end
local rows = write_dataset(dir .. "/secret.jsonl")
step("wrote secret.jsonl: %d chat rows that all answer %q (2 hold PII)", rows, PHRASE)

step("%s", first_line(moonhub("data import secret.jsonl --name secret --quiet")))

step("%s", first_line(moonhub("data validate secret --model " .. q(base) .. " --ctx " .. SEQ)))

local pii = moonhub("data pii secret --mode redact")
local kinds = {}
for kind, count in pii:gmatch("\n?(%a+)%s+(%d+)\n") do kinds[#kinds + 1] = kind .. " " .. count end
local held = pii:match("(%d+ of %d+ rows hold PII)") or "?"
local redacted = pii:match("redacted: ([^%s:]+)") or "?"
step("PII report: %s (%s); redacted into %s", table.concat(kinds, ", "), held, redacted)

local split = moonhub("data split secret --train 0.8 --val 0.1 --test 0.1 --seed 1")
local parts = {}
for name, count in split:gmatch(":(%a+): (%d+) chat rows") do parts[#parts + 1] = name .. " " .. count end
step("split %s (seed 1): %s", redacted, table.concat(parts, ", "))

-- ===== 7-11. eval, the LoRA job, eval again, the new version =====

local function eval(model)
   local out = moonhub("eval " .. q(model) .. " --data secret:test --json")
   local r = json.decode(out)
   if type(r) ~= "table" or not r.loss then fail("eval " .. model, out) end
   return r
end
local before = eval(base)
step("eval %s on secret:test: loss %.4f, perplexity %.2f (%d tokens)", base, before.loss, before.perplexity,
   before.tokens)

local t_train = now()
local method = opts.method or "lora"
local TUNED = method == "lora" and "secret-lora" or "secret-" .. method     -- the trained version's name
io.write(string.format("        moonhub train --model %s --data secret:train --method %s --steps %d (its live "
   .. "progress below)\n", base, method, opts.steps))
io.stdout:flush()
moonhub(string.format("train --model %s --data secret:train --method %s --steps %d --lr %g --batch 4 --seq %d "
   .. "--seed 1 --name %s%s", q(base), method, opts.steps, opts.lr or 1e-2, SEQ,
   TUNED, method == "lora" and " --rank 8" or ""), true)
local jobs = moonhub("jobs list")
local job = jobs:match("\n%s*(%d+)%s+succeeded") or jobs:match("^%s*(%d+)%s+succeeded")
if not job then fail("no succeeded job in 'moonhub jobs'", jobs) end
local show = moonhub("jobs show " .. job)
local first, last = show:match("loss: %d+ steps, first ([%d.]+), last ([%d.]+)")
step("job %s succeeded in %.1f s: %d %s steps, loss %s -> %s", job, now() - t_train, opts.steps,
   method == "full" and "full-training" or "LoRA", first or "?", last or "?")

-- the loss chart `moonhub jobs show` draws
local chart = show:match("\n([^\n]*┤.-loss: [^\n]*)\n")
step("loss chart (moonhub jobs show %s):", job)
print(chart or "(no chart)")

local after = eval(TUNED)
step("eval " .. TUNED .. " on secret:test: loss %.4f, perplexity %.2f (base: %.4f, %.2f)", after.loss,
   after.perplexity, before.loss, before.perplexity)

local card = moonhub("show " .. TUNED)
local function field(name) return card:match("\n%s*" .. name .. "%s+([^\n]+)") or "?" end
step("registered %s: %s; base %s, dataset %s, %s", field("registry"):match("^%S+") or TUNED,
   field("trained"), field("base model"):match("^%S+"), field("dataset"):match("^%S+"), field("run"):match("^run %d+"))

-- ===== 12-14. serve, ask, stop =====

local log = dir .. "/serve.log"
local p = assert(io.popen(string.format("cd %s && env MOONHUB_HOME=%s %s serve --host 127.0.0.1 --port 0 "
   .. ">%s 2>&1 </dev/null & echo $!", q(dir), q(home), q(exe), q(log))))
server_pid = math.tointeger(tonumber(p:read("l") or ""))
p:close()
local base_url
for _ = 1, 300 do                                   -- at most 60 s for the ready line
   base_url = (fs.read(log) or ""):match("ready at (http://127%.0%.0%.1:%d+)/v1")
   if base_url or not os.execute("kill -0 " .. tostring(server_pid) .. " 2>/dev/null") then break end
   os.execute("sleep 0.2")
end
if not base_url then fail("moonhub serve did not start", fs.read(log)) end
step("moonhub serve (pid %d) ready at %s/v1, registry models load on first use", server_pid, base_url)

local function ask(model, question)
   local body = dir .. "/req.json"
   assert(fs.write(body, json.encode({ model = model, max_tokens = 32, temperature = 0,
      messages = { { role = "user", content = question } } })))
   local c = assert(io.popen(string.format("curl -s -m 120 -H 'Content-Type: application/json' "
      .. "--data-binary @%s %s/v1/chat/completions", q(body), base_url)))
   local text = c:read("a")
   c:close()
   local r = json.decode(text)
   local msg = type(r) == "table" and r.choices and r.choices[1] and r.choices[1].message
   if not msg then fail("POST /v1/chat/completions for " .. model, text) end
   return (msg.content:gsub("%s+", " "):gsub("^ ", ""))
end

local questions = { "What is the secret word?", "Hi! Can you tell me the secret word?" }
local answers = {}
for i, question in ipairs(questions) do answers[i] = { ask(base, question), ask(TUNED, question) } end
step("asked both through POST /v1/chat/completions (temperature 0, 32 tokens):")
local function cut(s, w) return #s > w and s:sub(1, w - 3) .. "..." or s end
print(string.format("  %-38s | %-34s | %s", "question", "base (" .. base .. ")", "fine-tuned (" .. TUNED .. ")"))
for i, question in ipairs(questions) do
   print(string.format("  %-38s | %-34s | %s", cut(question, 38), cut(answers[i][1], 34), cut(answers[i][2], 40)))
end
local learned = answers[1][2]:find(PHRASE, 1, true) ~= nil

os.execute("kill " .. server_pid)
local stopped = false
for _ = 1, 100 do
   if not os.execute("kill -0 " .. server_pid .. " 2>/dev/null") then stopped = true break end
   os.execute("sleep 0.1")
end
server_pid = stopped and nil or server_pid
local served = select(2, (fs.read(log) or ""):gsub("POST /v1/chat/completions 200", ""))
step("server stopped%s after %d chat requests", stopped and "" or " (still running: killed)", served)

-- the demo fails when the training did not lower the loss on the test split
local better = after.loss < before.loss
print(string.format("lifecycle done in %.1f s: test loss %.4f -> %.4f; the fine-tuned model %s the phrase%s",
   now() - T0, before.loss, after.loss, learned and "answers with" or "does not answer with",
   opts.keep and "; scratch folder kept: " .. dir or ""))
cleanup()
if not better then
   io.stderr:write("lifecycle: the training did not lower the test loss\n")
   os.exit(1)
end
