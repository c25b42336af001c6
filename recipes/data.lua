-- datasets: import JSONL/CSV as versions, validate, PII, split, dedupe, preview, stats, list, rm
-- Layer: recipes (uses the public moonhub API: moonhub.data, .cli, .progress).
-- Usage: moonhub data import FILE [--name N] [--map prompt=q,completion=a] [--model M]
--        moonhub data validate|pii|split|dedupe|preview|stats|list|rm ... (docs/datasets.md)
local cli = require "moonhub.cli"
local data = require "moonhub.data"
local progress = require "moonhub.progress"

local p = cli.parser("data", "Datasets as immutable versions under $MOONHUB_HOME/datasets (docs/datasets.md). "
   .. "A dataset is named NAME (its newest version), NAME@VERSION, or NAME[@VERSION]:SPLIT for a split "
   .. "made by 'data split'.")
p:command_target("command")

local imp = p:command("import", "check every row of a JSONL or CSV file and store it as a new version")
imp:argument("file", "a .jsonl (one JSON object a line) or .csv file (header line first)")
imp:option("--name", "the dataset's name (default: the file name without its extension)")
imp:option("--map", "rename columns: FIELD=COLUMN,... with FIELD prompt, completion, text, "
   .. "or system, user, assistant (builds chat messages)")
imp:option("--format", "csv or jsonl (default: from the extension, else the first byte)"):choices({ "csv", "jsonl" })
imp:option("--model", "record token statistics for this model (name or GGUF)")
imp:flag("--skip-invalid", "store the good rows when some have problems (the count is reported)")
imp:flag("-q --quiet", "no progress line")

local val = p:command("validate", "list problems by row number: bad JSON, missing fields, unknown roles, "
   .. "empty content, role order, rows over the context (with --model)")
val:argument("dataset", "a dataset NAME[@VERSION][:SPLIT], or a file to check before importing it")
val:option("--model", "tokenize each row through this model's chat template")
val:option("--ctx", "the context to check against (default: the model's trained context)"):convert(cli.count(1))
val:option("--map", "as for import, when checking a CSV file")

local pii = p:command("pii", "find emails, phones, cards, IBANs, IPs, SSNs and secrets; "
   .. "redact or drop them into a new version")
pii:argument("dataset", "NAME[@VERSION][:SPLIT]")
pii:option("--mode", "report (default), redact (replace each with [KIND]) or drop (remove the rows)")
   :choices({ "report", "redact", "drop" }):default("report")
pii:option("--kinds", "only these kinds, comma-separated (default: all)")

local spl = p:command("split", "cut a version into train/val/test splits, shuffled by a seed")
spl:argument("dataset", "NAME[@VERSION]")
local function fraction(s)
   local v = tonumber(s)
   if not v or v < 0 or v > 1 then return nil, "expected a fraction between 0 and 1, got '" .. s .. "'" end
   return v
end
spl:option("--train", "fraction of rows for training"):default("0.8"):convert(fraction)
spl:option("--val", "fraction for validation"):default("0.1"):convert(fraction)
spl:option("--test", "fraction for testing"):default("0.1"):convert(fraction)
spl:option("--seed", "shuffle seed: the same seed gives the same splits"):default("1"):convert(cli.count(0))
spl:option("--stratify", "keep each value of this row field in the same proportions")

local ded = p:command("dedupe", "drop repeated rows into a new version (exact, and normalized: case and spacing)")
ded:argument("dataset", "NAME[@VERSION][:SPLIT]")
ded:flag("--exact", "only byte-identical rows")

local pre = p:command("preview", "print the first rows")
pre:argument("dataset", "NAME[@VERSION][:SPLIT]")
pre:option("-n", "how many rows"):default("5"):convert(cli.count(1))

local sts = p:command("stats", "row count, lengths and a length histogram")
sts:argument("dataset", "NAME[@VERSION][:SPLIT]")
sts:option("--model", "lengths in this model's tokens (else characters)")

p:command("list", "every dataset with its newest version"):flag("--json", "print the rows as JSON")
p:command("show", "every version and split of a dataset with its lineage (what it was made from, and how)")
   :argument("dataset", "NAME")
local rm = p:command("rm", "remove a dataset (all versions) or one version, with its files")
rm:argument("dataset", "NAME or NAME@VERSION")

local a, code = cli.parse(p, arg)
if not a then return code end
local verb = "data " .. a.command

local function fail(msg) return cli.fail(verb, msg) end

local function describe(ds)
   return string.format("%s: %d %s rows, %s, sha256 %s", ds:ref(), ds.rows, ds.kind, progress.human(ds.size),
      ds.sha256:sub(1, 12))
end

local function stats_line(s)
   return string.format("tokens (%s): %d in all, per row min %d, mean %.1f, p50 %d, p95 %d, max %d%s",
      s.model or "model", s.tokens, s.min, s.mean, s.p50, s.p95, s.max,
      s.over_ctx and s.over_ctx > 0 and string.format("; %d rows over its context of %d", s.over_ctx, s.ctx) or "")
end

local function show_row(i, r)
   io.write(string.format("--- row %d\n", i))
   if r.messages then
      for _, m in ipairs(r.messages) do io.write("[", m.role, "] ", m.content, "\n") end
   elseif r.text then
      io.write(r.text, "\n")
   else
      io.write("[prompt] ", r.prompt, "\n[completion] ", r.completion, "\n")
   end
end

local cmd = {}

function cmd.import()
   local bar = progress.new("import " .. a.file, { unit = "rows", quiet = a.quiet })
   local ds, info, problems = data.import(a.file, { name = a.name, map = a.map, format = a.format, model = a.model,
      skip_invalid = a.skip_invalid, progress = bar })
   bar(nil, nil, true)
   if not ds then
      for i = 1, math.min(#(problems or {}), 10) do
         io.stderr:write(string.format("  row %d: %s\n", problems[i].row, problems[i].msg))
      end
      return fail(info)
   end
   io.write(ds.existing and "unchanged (this content is already " or "imported ", describe(ds),
      ds.existing and ")" or "", "\n")
   if info.skipped > 0 then io.write(string.format("skipped %d rows with problems\n", info.skipped)) end
   if ds.stats then io.write(stats_line(ds.stats), "\n") end
   return 0
end

function cmd.validate()
   local res, err = data.validate(nil, a.dataset, { model = a.model, ctx = a.ctx, map = a.map })
   if not res then return fail(err) end
   for _, pr in ipairs(res.problems) do io.write(string.format("row %d: %s\n", pr.row, pr.msg)) end
   io.write(string.format("%s: %d rows, %d problems%s\n", res.source, res.total, #res.problems,
      res.ctx and string.format(" (context %d)", res.ctx) or ""))
   return #res.problems == 0 and 0 or 1
end

local function mask(s)
   if #s <= 6 then return s:sub(1, 1) .. "***" end
   return s:sub(1, 3) .. string.rep("*", math.min(#s - 5, 12)) .. s:sub(-2)
end

function cmd.pii()
   local kinds
   if a.kinds then
      kinds = {}
      for k in a.kinds:gmatch("[^,%s]+") do kinds[k] = true end
   end
   local res, err = data.pii(nil, a.dataset, { mode = a.mode, kinds = kinds })
   if not res then return fail(err) end
   local names = {}
   for k in pairs(res.counts) do names[#names + 1] = k end
   table.sort(names)
   for _, k in ipairs(names) do io.write(string.format("%-13s %d\n", k, res.counts[k])) end
   for _, h in ipairs(res.hits) do io.write(string.format("  row %d: %s %s\n", h.row, h.kind, mask(h.text))) end
   io.write(string.format("%s: %d of %d rows hold PII\n", res.source:ref(), res.rows, res.total))
   if res.ds then
      io.write(string.format("%s %s\n", a.mode == "drop" and "dropped them:" or "redacted:", describe(res.ds)))
   elseif a.mode ~= "report" then
      io.write("nothing to " .. a.mode .. "; no new version\n")
   end
   return 0
end

function cmd.split()
   local res, err = data.split(nil, a.dataset, { train = a.train, val = a.val, test = a.test, seed = a.seed,
      stratify = a.stratify })
   if not res then return fail(err) end
   for _, s in ipairs({ "train", "val", "test" }) do
      if res[s] then io.write(describe(res[s]), "\n") else io.write(s, ": no rows\n") end
   end
   io.write(string.format("split %s (seed %d%s)\n", res.source:ref(), a.seed,
      a.stratify and (", stratified by " .. a.stratify) or ""))
   return 0
end

function cmd.dedupe()
   local res, err = data.dedupe(nil, a.dataset, { normalized = not a.exact })
   if not res then return fail(err) end
   io.write(string.format("%s: %d exact and %d normalized duplicates, %d rows kept\n", res.source:ref(),
      res.exact, res.normalized, res.kept))
   io.write(res.ds and ("new version " .. describe(res.ds)) or "no duplicates; no new version", "\n")
   return 0
end

function cmd.preview()
   local ds, list = data.preview(nil, a.dataset, a.n)
   if not ds then return fail(list) end
   io.write(describe(ds), "\n")
   for i, r in ipairs(list) do show_row(i, r) end
   return 0
end

function cmd.stats()
   local res, err = data.stats(nil, a.dataset, { model = a.model })
   if not res then return fail(err) end
   io.write(describe(res.ds), "\n")
   local q, unit = res.tokens or res.chars, res.tokens and "tokens" or "characters"
   io.write(string.format("length in %s: min %d, mean %.1f, p50 %d, p95 %d, max %d\n", unit, q.min, q.mean, q.p50,
      q.p95, q.max))
   for _, line in ipairs(data.histogram(res.tokens_list or res.chars_list, { bins = 10, width = 40 })) do
      io.write("  ", line, "\n")
   end
   return 0
end

function cmd.list()
   local list, err = data.list()
   if not list then return fail(err) end
   if a.json then
      io.write(require("dkjson").encode({ datasets = list }, { indent = true }), "\n")
      return 0
   end
   if #list == 0 then
      io.write("no datasets yet: try 'moonhub data import FILE.jsonl'\n")
      return 0
   end
   local fmt = "%-24s %7s %-10s %8s %10s  %-14s %s\n"
   io.write(string.format(fmt, "NAME", "VERSION", "KIND", "ROWS", "SIZE", "SPLITS", "CREATED"))
   for _, r in ipairs(list) do
      io.write(string.format(fmt, r.name, r.version and tostring(r.version) or "-", r.kind or "-",
         r.rows and tostring(r.rows) or "-", r.size and progress.human(r.size) or "-",
         #r.splits > 0 and table.concat(r.splits, ",") or "-", os.date("%Y-%m-%d %H:%M", r.created_at)))
   end
   return 0
end

function cmd.show()
   local list, err = data.versions(nil, a.dataset)
   if not list then return fail(err) end
   local by_id = {}
   for _, ds in ipairs(list) do by_id[ds.id] = ds end
   for _, ds in ipairs(list) do
      local parent = ds.parent_id and (by_id[ds.parent_id] and by_id[ds.parent_id]:ref() or ("#" .. ds.parent_id))
      io.write(describe(ds), string.format("  [%s%s, %s]\n", ds.op, parent and (" of " .. parent) or "",
         os.date("%Y-%m-%d %H:%M", ds.created_at)))
      if ds.stats then io.write("  ", stats_line(ds.stats), "\n") end
   end
   return 0
end

function cmd.rm()
   local res, err = data.remove(nil, a.dataset)
   if not res then return fail(err) end
   for _, v in ipairs(res.versions) do
      io.write("removed ", v.name, "@", v.version, v.split and (":" .. v.split) or "", "\n")
   end
   for _, path in ipairs(res.deleted) do io.write("  deleted ", path, "\n") end
   return 0
end

return cmd[a.command]()
