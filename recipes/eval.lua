-- evaluate a model (optionally with LoRA adapters) on a dataset: loss and perplexity
-- Layer: recipes (uses the public moonhub API only: moonhub.eval does the work).
-- Usage: moonhub eval MODEL --data NAME[@V][:SPLIT] [--lora ADAPTER[:SCALE]] [--run ID] [--json]
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("eval", "Loss and perplexity of a model on a dataset version or split "
   .. "(forward only; rows over the context are skipped and counted). The result is recorded on "
   .. "the run named by --run, or on the run that trained the model.")
p:argument("model", "a GGUF file, a registry name (an adapter version loads with its base)")
p:option("--data", "dataset NAME[@VERSION][:SPLIT] (see 'moonhub data list')")
p:option("--lora", "apply a LoRA adapter: ADAPTER[:SCALE], a file or a registered adapter (repeatable)")
   :count("*")
p:option("--run", "record the result on this run"):convert(math.tointeger)
p:option("--limit", "evaluate the first N rows only"):convert(math.tointeger)
p:option("--ctx", "context length (rows longer than it are skipped)"):convert(math.tointeger)
p:option("--threads", "compute threads"):convert(math.tointeger)
p:flag("--json", "print the result as JSON")

local a, code = cli.parse(p, arg)
if not a then return code end
if not a.data then return cli.fail("eval", "give the dataset: --data NAME[:SPLIT]", 2) end
for _, k in ipairs({ "limit", "ctx", "threads" }) do
   if a[k] ~= nil and a[k] < 1 then return cli.fail("eval", "--" .. k .. " must be a positive integer", 2) end
end

local reg, err = mh.models.open()
if not reg then return cli.fail("eval", err) end
local res, rerr = cli.try(mh.eval.run, reg, a.model, a.data, { lora = a.lora, run_id = a.run,
   limit = a.limit, ctx = a.ctx, threads = a.threads })
reg:close()
if not res then return cli.fail("eval", rerr) end
if a.json then
   io.write(require("dkjson").encode(res, { indent = true }), "\n")
   return 0
end
io.write(string.format("%s on %s: loss %.4f, perplexity %.3f (%d tokens, %d rows%s)%s\n", a.model,
   res.dataset, res.loss, res.perplexity, res.tokens, res.rows,
   res.skipped > 0 and string.format(", %d skipped over the context", res.skipped) or "",
   res.run_id and (" — recorded on run " .. res.run_id) or ""))
return 0
