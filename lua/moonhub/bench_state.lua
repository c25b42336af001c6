-- moonhub.bench_state: `moonhub bench state MODEL`: time to first token of a
-- long prompt cold (prefill) against the same prompt restored from a KV state
-- file (model:load_state, then one token), in this process, best and median
-- of N rounds, interleaved cold/restore. A benchmark: it prints figures and
-- asserts nothing. Layer: lua/moonhub (moonhub.model, moonhub.core.sys).
local now = require("moonhub.core.sys").now

local M = {}

M.usage = [==[usage: moonhub bench state MODEL [--prefix 2000] [--reps 5] [--threads 2] [--kv-type f16]
  Times the first token of a PREFIX-token prompt twice per round: cold (the
  whole prompt prefilled) and restored (model:load_state of that prompt's KV
  state file, then the one new token). Prints best and median of each, the
  ratio restore/cold, the state file's size and the load alone. The file is
  read from the page cache (written just before).]==]

local function fail(msg) error({ usage = msg }, 0) end

local function parse(args)
   local o = { prefix = 2000, reps = 5, threads = 2, kv_type = "f16" }
   local i = 1
   while i <= #args do
      local a, v = args[i], args[i + 1]
      if a == "-h" or a == "--help" then o.help = true; i = i + 1
      elseif a == "--kv-type" then o.kv_type = v or fail("--kv-type needs f16, q8_0 or f32"); i = i + 2
      elseif a == "--prefix" or a == "--reps" or a == "--threads" then
         local n = math.tointeger(tonumber(v or ""))
         if not n or n < 1 then fail(a .. " needs a positive integer") end
         o[a:sub(3)] = n
         i = i + 2
      elseif a:sub(1, 1) == "-" then fail("unknown option " .. a)
      elseif not o.model then o.model = a; i = i + 1
      else fail("unexpected argument " .. a) end
   end
   if not o.model and not o.help then fail("missing MODEL") end
   return o
end

-- n ids spread over the vocabulary (no tokenizer in the way), the same each run
local function prompt(n, n_vocab)
   local t, x = {}, 12345
   for i = 1, n do
      x = (x * 1103515245 + 12345) % 2147483648
      t[i] = 3 + x % (n_vocab - 3)
   end
   return t
end

local function stats(list)
   local s = table.move(list, 1, #list, 1, {})
   table.sort(s)
   return s[1], s[(#s + 1) // 2]
end

local function run(o)
   local mh = require "moonhub"
   local m, err = mh.load(o.model, { ctx = o.prefix + 16, threads = o.threads, kv_type = o.kv_type })
   if not m then io.stderr:write("bench state: ", tostring(err), "\n") return 1 end
   local ids = prompt(o.prefix, m.info.n_vocab)
   local path = os.tmpname()
   local gen = { max_tokens = 1, temperature = 0, ignore_eos = true }
   local cold, warm, load = {}, {}, {}
   local bytes
   for r = 1, o.reps do
      io.stderr:write(string.format("\rbench state: round %d/%d", r, o.reps))
      local c = m:new_cache()
      local t0 = now()
      m:generate(ids, { cache = c, max_tokens = 1, temperature = 0, ignore_eos = true })
      cold[r] = now() - t0
      bytes = assert(m:save_state(path, c, table.move(ids, 1, o.prefix - 1, 1, {})))
      c:free()
      local c2 = m:new_cache()
      t0 = now()
      assert(m:load_state(path, c2))
      load[r] = now() - t0
      gen.cache = c2
      local _, st = m:generate(ids, gen)
      warm[r] = now() - t0
      assert(st.prompt_processed == 1, "the restored prefix was not reused")
      c2:free()
   end
   io.stderr:write("\n")
   os.remove(path)
   local cb, cm = stats(cold)
   local wb, wm = stats(warm)
   local lb, lm = stats(load)
   print(string.format("model %s, prefix %d tokens, kv %s, %d threads, %d rounds", m.path, o.prefix, o.kv_type,
      o.threads, o.reps))
   print(string.format("%-28s %10s %10s", "", "best ms", "median ms"))
   print(string.format("%-28s %10.1f %10.1f", "cold TTFT (prefill)", cb * 1e3, cm * 1e3))
   print(string.format("%-28s %10.1f %10.1f", "restored TTFT (load + 1)", wb * 1e3, wm * 1e3))
   print(string.format("%-28s %10.1f %10.1f", "  of which load_state", lb * 1e3, lm * 1e3))
   print(string.format("restore / cold: %.1f %% (median), state file %.1f MiB", 100 * wm / cm, bytes / 2^20))
   m:close()
   return 0
end

function M.main(args)
   local ok, o = pcall(parse, args)
   if not ok then
      if type(o) == "table" and o.usage then
         io.stderr:write("bench state: ", o.usage, "\n", M.usage, "\n")
         return 2
      end
      error(o, 0)
   end
   if o.help then print(M.usage) return 0 end
   return run(o)
end

return M
