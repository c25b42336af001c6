-- search the Hugging Face Hub for GGUF models, with quants, sizes and whether they fit here
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub search QUERY [--limit N] [--ctx N] [--json]
local cli = require "moonhub.cli"
local mh = require "moonhub"

local p = cli.parser("search", "Search the Hugging Face Hub (most downloaded first); for "
   .. "each model: its quants, file sizes and a memory verdict for this machine.")
p:argument("query", "words to search for")
p:option("--limit", "how many models", "10"):convert(math.tointeger)
p:option("--ctx", "context length for the memory estimate", "4096"):convert(math.tointeger)
p:flag("--json", "print the results as JSON")

local a, code = cli.parse(p, arg)
if not a then return code end
if not a.limit or a.limit < 1 or not a.ctx or a.ctx < 1 then
   return cli.fail("search", "--limit and --ctx must be positive integers", 2)
end

local hub, models = mh.hub, mh.models
local found, err = hub.search(a.query, { limit = a.limit })
if not found then
   return cli.fail("search", err)
end

local results = {}
for _, m in ipairs(found) do
   local r = { id = m.id, downloads = m.downloads or 0, quants = {} }
   local info, ierr = hub.model_info(m.id)
   if info then
      local pick = hub.pick(info.files)
      for _, f in ipairs(hub.gguf_files(info.files)) do
         local q = hub.quant_of(f.path) or f.path
         local verdict, fits = models.fit(f.size or 0, nil, a.ctx)
         r.quants[#r.quants + 1] = { quant = q, file = f.path, size = f.size, fit = verdict, fits = fits,
            default = pick == f }
      end
      table.sort(r.quants, function(x, y) return (x.size or 0) < (y.size or 0) end)
   else
      r.error = ierr
   end
   results[#results + 1] = r
end

if a.json then
   io.write(require("dkjson").encode(results, { indent = true }), "\n")
   return 0
end
if #results == 0 then
   io.write("no models match '", a.query, "'\n")
   return 0
end
for _, r in ipairs(results) do
   io.write(string.format("%s  (%d downloads)\n", r.id, r.downloads))
   if r.error then io.write("    ", r.error, "\n") end
   for _, q in ipairs(r.quants) do
      io.write(string.format("    %-8s %10s  %s%s%s\n", q.quant, hub.human(q.size or 0), q.fit,
         q.fits and "" or "  (does not fit)", q.default and "  [default]" or ""))
   end
end
return 0
