-- measure throughput: a model's prompt and generation speed, or a tokenizer's
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub bench MODEL [-p 128,512] [-n 128] [-r 3] [-t THREADS]
--        moonhub bench tokenize VOCAB FILE [--rounds N]
-- Dispatches on the first argument: `tokenize` times mh.tokenizer on FILE
-- (best of N rounds, monotonic clock); `serve` benchmarks the server;
-- `train` times training against PyTorch (moonhub.bench_train); `soak`
-- keeps 16 clients on a server for minutes (moonhub.bench_soak);
-- anything else is a model (llama-bench-like rows).
local mh = require "moonhub"

local usage = [==[usage: moonhub bench MODEL [-p 128,512] [-n 128] [-r 3] [-t THREADS]
       moonhub bench tokenize VOCAB FILE [--rounds N]
       moonhub bench train [--case lora|full|all] [--steps 3] [-t 2]   (--help for more)
       moonhub bench soak MODEL [--clients 16] [--minutes 10]   (--help for more)
  MODEL: a GGUF, a Hugging Face folder or a registry name; prints pp/tg tokens/s.
  VOCAB: a .gguf, a tokenizer.json or a folder holding one; FILE: text to encode.
  Prints MB/s and tokens/s for encode and decode, best of N rounds (default 5).]==]

-- Usage errors travel as a table so main can tell them from bugs.
local function fail(msg) error({ usage = msg }, 0) end

local function parse_tokenize(args)
   local o = { rounds = 5 }
   local i = 1
   while i <= #args do
      local a = args[i]
      if a == "--rounds" then
         i = i + 1
         o.rounds = math.tointeger(tonumber(args[i] or ""))
         if not o.rounds or o.rounds < 1 then fail("--rounds needs a positive integer") end
      elseif a == "-h" or a == "--help" then o.help = true
      elseif a:sub(1, 2) == "--" then fail("unknown option " .. a)
      elseif not o.vocab then o.vocab = a
      elseif not o.file then o.file = a
      else fail("unexpected argument " .. a) end
      i = i + 1
   end
   if o.help then return o end
   if not o.vocab then fail("missing VOCAB") end
   if not o.file then fail("missing FILE") end
   return o
end

-- Best (shortest) time of fn over rounds runs; returns seconds and fn's last result.
local function best_of(rounds, fn)
   local best, res = math.huge, nil
   for _ = 1, rounds do
      local t0 = mh.sys.now()
      res = fn()
      local dt = mh.sys.now() - t0
      if dt < best then best = dt end
   end
   return best, res
end

local function report(what, bytes, ntok, secs)
   secs = math.max(secs, 1e-9)
   print(string.format("%-7s %10.2f MB/s %14.0f tokens/s %10.4f s  (%d bytes, %d tokens)",
      what, bytes / secs / 1e6, ntok / secs, secs, bytes, ntok))
end

local function bench_tokenize(args)
   local o = parse_tokenize(args)
   if o.help then print(usage) return 0 end
   local f, ferr = io.open(o.file, "rb")
   if not f then
      io.stderr:write("bench: cannot read ", ferr, "\n")
      return 1
   end
   local text = f:read("a")
   f:close()
   local tok, err = mh.tokenizer.load(o.vocab)
   if not tok then
      io.stderr:write("bench: ", err, "\n")
      return 1
   end
   local opts = { bos = false, eos = false }
   local enc_s, ids = best_of(o.rounds, function() return tok:encode(text, opts) end)
   local dec_s, out = best_of(o.rounds, function() return tok:decode(ids) end)
   print(string.format("tokenizer: %s (%s, %s, %d tokens in vocabulary)", o.vocab, tok.kind, tok.pre,
      tok.vocab_size))
   print(string.format("text: %s, %d bytes; best of %d rounds", o.file, #text, o.rounds))
   report("encode", #text, #ids, enc_s)
   report("decode", #out, #ids, dec_s)
   if out ~= text then print("note: decode(encode(text)) differs from the text") end
   return 0
end

local function int_list(s, flag)
   local out = {}
   for f in (s or ""):gmatch("[^,]+") do
      local n = math.tointeger(tonumber(f))
      if not n or n < 0 then fail(flag .. " needs a list of counts such as 128,512") end
      if n > 0 then out[#out + 1] = n end
   end
   return out
end

local function bench_model(args)
   local o = { model = args[1], reps = 3 }
   local i = 2
   while i <= #args do
      local a, v = args[i], args[i + 1]
      if a == "-p" then o.pp = int_list(v, "-p")
      elseif a == "-n" then o.tg = int_list(v, "-n")
      elseif a == "-r" then o.reps = math.tointeger(tonumber(v or "")) or fail("-r needs a count")
      elseif a == "-t" then o.threads = math.tointeger(tonumber(v or "")) or fail("-t needs a count")
      else fail("unknown option " .. a) end
      i = i + 2
   end
   if o.reps < 1 then fail("-r needs a positive count") end
   local bm = require "moonhub.bench_model"
   local rows, info = bm.run(o)
   if not rows then
      io.stderr:write("bench: ", tostring(info), "\n")
      return 1
   end
   bm.print(rows, info)
   return 0
end

local function main(...)
   local args = { ... }
   local sub = args[1]
   if sub == nil or sub == "-h" or sub == "--help" then
      print(usage)
      return sub and 0 or 2
   end
   if sub == "tokenize" then return bench_tokenize({ table.unpack(args, 2) }) end
   if sub == "serve" then return require("moonhub.bench_serve").main({ table.unpack(args, 2) }) end
   if sub == "train" then return require("moonhub.bench_train").main({ table.unpack(args, 2) }) end
   if sub == "soak" then return require("moonhub.bench_soak").main({ table.unpack(args, 2) }) end
   return bench_model(args)
end

local ok, code = pcall(main, ...)
if ok then return code end
if type(code) == "table" and code.usage then
   io.stderr:write("bench: ", code.usage, "\n", usage, "\n")
   return 2
end
error(code, 0)
