-- run the same prompts on several models or adapters and print the answers side by side
-- Layer: recipes (uses the public moonhub API only: moonhub.compare does the work).
-- Usage: moonhub compare MODEL MODEL... (--prompt TEXT | --data NAME[:SPLIT] [-n N])
--        [--lora ADAPTER[:SCALE]] [--max-tokens N] [--json]
local cli = require "moonhub.cli"
local compare = require "moonhub.compare"
local fs = require "moonhub.fs"

local p = cli.parser("compare", "Run the same prompts on several models (paths, registry names, or NAME:TAG "
   .. "of an adapter version, loaded with its base) and print the answers side by side with tok/s, time to "
   .. "first token and token counts; on a dataset split also each model's loss and perplexity on those rows. "
   .. "Greedy by default, so differences come from the models (docs/compare.md).")
p:argument("models", "the models to compare"):args("+")
p:option("--prompt", "a prompt (repeatable: each is compared)"):count("*")
p:option("--data", "dataset NAME[@VERSION][:SPLIT]: its first -n rows are the prompts (and scored)")
p:option("-n", "rows of --data to use", "5"):convert(math.tointeger)
p:option("--lora", "one more column: the first model with this adapter, ADAPTER[:SCALE] (repeatable)"):count("*")
p:option("--max-tokens", "tokens to generate per answer", "64"):convert(math.tointeger)
p:option("--temperature", "sampling temperature (0 = greedy)", "0"):convert(tonumber)
p:option("--seed", "sampling seed"):convert(math.tointeger)
p:option("--ctx", "context length"):convert(math.tointeger)
p:option("--threads", "compute threads"):convert(math.tointeger)
p:option("--width", "columns to print in (default: the terminal's, else 100)"):convert(math.tointeger)
p:flag("--json", "print the result as JSON")
p:flag("-q --quiet", "no progress lines")

local a, code = cli.parse(p, arg)
if not a then return code end
if #a.prompt == 0 and not a.data then return cli.fail("compare", "give --prompt TEXT or --data NAME[:SPLIT]", 2) end
if #a.prompt > 0 and a.data then return cli.fail("compare", "give --prompt or --data, not both", 2) end
for _, k in ipairs({ "n", "max_tokens", "ctx", "threads", "width" }) do
   if a[k] ~= nil and a[k] < 1 then
      return cli.fail("compare", "--" .. k:gsub("_", "-") .. " must be a positive integer", 2)
   end
end
if not a.temperature or a.temperature < 0 then return cli.fail("compare", "--temperature must be >= 0", 2) end
if #a.models + #a.lora < 2 then
   return cli.fail("compare", "give two models or more (or one model and --lora ADAPTER)", 2)
end

-- the terminal's width: $COLUMNS, else stty's answer when stdout is a terminal
local function width()
   if a.width then return a.width end
   local c = math.tointeger(tonumber(os.getenv("COLUMNS") or ""))
   if c and c > 0 then return c end
   if fs.isatty(1) then
      local h = io.popen("stty size </dev/tty 2>/dev/null")
      local cols = h and math.tointeger(tonumber(((h:read("a") or ""):match("%d+%s+(%d+)")) or ""))
      if h then h:close() end
      if cols and cols > 0 then return cols end
   end
   return 100
end

local quiet = a.quiet or a.json
local res, err = cli.try(compare.run, a.models, { prompt = #a.prompt > 0 and a.prompt or nil, data = a.data,
   n = a.n, lora = a.lora, max_tokens = a.max_tokens, temperature = a.temperature, seed = a.seed, ctx = a.ctx,
   threads = a.threads,
   on_progress = not quiet and function(name, i, n)
      io.stderr:write(string.format("compare: %s %d/%d\n", name, i, n))
   end or nil })
if not res then return cli.fail("compare", err) end
if a.json then
   io.write(compare.json(res), "\n")
else
   io.write(compare.render(res, width()))
end
return 0
