-- measure throughput: a model's prompt and generation speed, or a tokenizer's
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub bench MODEL [-p 128,512] [-n 128] [-r 3] [-t THREADS] [--json] [-q]
--        moonhub bench --membw [-t THREADS]
--        moonhub bench tokenize VOCAB FILE [--rounds N]
-- Dispatches on the first argument: `tokenize` times mh.tokenizer on FILE
-- (best of N rounds, monotonic clock); `serve` benchmarks the server;
-- `train` times training against PyTorch (moonhub.bench_train); `soak`
-- keeps 16 clients on a server for minutes (moonhub.bench_soak); `state`
-- times a KV state restore against a cold prefill (moonhub.bench_state);
-- anything else is a model (llama-bench-like rows).
local mh = require "moonhub"
local cli = require "moonhub.cli"
local flags = require "moonhub.cli_flags"

local usage = [==[usage: moonhub bench MODEL [-p 128,512] [-n 128] [-r 3] [-t THREADS] [--json] [-q]
       moonhub bench --membw [-t THREADS] [--json]
       moonhub bench tokenize VOCAB FILE [--rounds N] [-q]
       moonhub bench serve MODEL [--streams 1,4,8] [--reps 3] [-q]   (--help for more)
       moonhub bench train [--case lora|full|all] [--steps 3] [-t 2]   (--help for more)
       moonhub bench soak MODEL [--clients 16] [--minutes 10]   (--help for more)
       moonhub bench state MODEL [--prefix 2000] [--reps 5]   (--help for more)
  MODEL: a GGUF, a Hugging Face folder or a registry name; prints pp/tg tokens/s.
  VOCAB: a .gguf, a tokenizer.json or a folder holding one; FILE: text to encode.
  Prints MB/s and tokens/s for encode and decode, best of N rounds (default 5).
  Progress (which test, which rep) goes to stderr: one redrawn line on a
  terminal, a line per 10 % otherwise; -q/--quiet silences it.]==]

local function tokenize_parser()
   local p = cli.parser("bench tokenize", "Time a tokenizer's encode and decode of a text file.")
   p:argument("vocab", "a .gguf, a tokenizer.json or a folder holding one")
   p:argument("file", "the text to encode")
   p:option("--rounds", "best of this many rounds"):default("5"):convert(cli.count(1))
   p:flag("-q --quiet", "no progress output (it goes to stderr)")
   return p
end

local function model_parser()
   local p = cli.parser("bench", "Time a model's prompt processing and generation (llama-bench-like rows).")
   p:argument("model", "a GGUF, a Hugging Face folder or a registry name (or -m)"):args("?"):target("model_arg")
   p:option("-p --n-prompt", "prompt lengths to time (0 turns it off)"):convert(cli.int_list)
   p:option("-n --n-gen", "generation lengths to time (0 turns it off)"):convert(cli.int_list)
   p:option("-r --repetitions", "repetitions"):default("3"):convert(cli.count(1))
   p:option("-t --threads", "compute threads"):convert(cli.count(1))
   -- -m and -ngl as llama-bench spells them (moonhub.cli_flags)
   flags.add(p, { "model", "n_gpu_layers" })
   p:flag("--membw", "only probe the memory bandwidth (no MODEL); tg rows always show their share of it")
   p:flag("--no-membw", "skip the bandwidth probe after the tg rows")
   p:flag("--json", "print the rows as one JSON object instead of the table")
   p:flag("-q --quiet", "no progress output (it goes to stderr)")
   return p
end

-- Best (shortest) time of fn over rounds runs; returns seconds and fn's last
-- result. tick(i) is called before round i.
local function best_of(rounds, fn, tick)
   local best, res = math.huge, nil
   for i = 1, rounds do
      tick(i)
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
   local o, code = cli.parse(tokenize_parser(), args)
   if not o then return code end
   local text, ferr = require("moonhub.fs").read(o.file)
   if not text then return cli.fail("bench", "cannot read " .. ferr) end
   local tok, err = mh.tokenizer.load(o.vocab)
   if not tok then
      return cli.fail("bench", err)
   end
   local opts = { bos = false, eos = false }
   -- progress: one unit per round, encode rounds then decode rounds
   local prog = require("moonhub.progress").new("bench tokenize", { unit = "rounds", quiet = o.quiet })
   local function ticker(what, base)
      return function(i) prog(base + i - 1, 2 * o.rounds, false, ("%s round %d/%d"):format(what, i, o.rounds)) end
   end
   local enc_s, ids = best_of(o.rounds, function() return tok:encode(text, opts) end, ticker("encode", 0))
   local dec_s, out = best_of(o.rounds, function() return tok:decode(ids) end, ticker("decode", o.rounds))
   prog(2 * o.rounds, 2 * o.rounds, true, "done")
   print(string.format("tokenizer: %s (%s, %s, %d tokens in vocabulary)", o.vocab, tok.kind, tok.pre,
      tok.vocab_size))
   print(string.format("text: %s, %d bytes; best of %d rounds", o.file, #text, o.rounds))
   report("encode", #text, #ids, enc_s)
   report("decode", #out, #ids, dec_s)
   if out ~= text then print("note: decode(encode(text)) differs from the text") end
   return 0
end

-- bench --membw: the probe alone (a streaming read larger than the LLC)
local function bench_membw(a)
   if a.threads then mh.sys.threads(a.threads) end
   local r, err = mh.sys.membw()
   if not r then return cli.fail("bench", err) end
   if a.json then
      print(require("dkjson").encode(r))
   else
      print(string.format("memory bandwidth %.2f GB/s (%d MiB read by %d threads, best of %d rounds)",
         r.bytes_per_s / 1e9, r.buffer_bytes // 2^20, r.threads, r.rounds))
   end
   return 0
end

local function bench_model(args)
   local a, code = cli.parse(model_parser(), args)
   if not a then return code end
   if a.membw then return bench_membw(a) end
   local okp, perr = flags.positionals(a, { { "model_arg", "model" } })
   if not okp or not a.model then
      return cli.fail("bench", (perr or "missing argument 'model'") .. " — moonhub bench MODEL (or -m MODEL)", 2)
   end
   flags.ignored("bench", a)
   local o = { model = a.model, pp = a.n_prompt, tg = a.n_gen, reps = a.repetitions, threads = a.threads,
      membw = not a.no_membw, progress = require("moonhub.progress").new("bench", { unit = "reps", quiet = a.quiet }) }
   local bm = require "moonhub.bench_model"
   local rows, info = bm.run(o)
   if not rows then
      return cli.fail("bench", info)
   end
   if a.json then
      print(require("dkjson").encode({ rows = rows, info = info }))
   else
      bm.print(rows, info)
   end
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
   if sub == "state" then return require("moonhub.bench_state").main({ table.unpack(args, 2) }) end
   return bench_model(args)
end

return main(...)
