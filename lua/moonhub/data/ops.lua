-- moonhub.data.ops: what the data verbs compute over a dataset — validate,
-- split (seeded, optionally stratified), dedupe (exact and normalized),
-- PII scan/redact/drop, length statistics and the terminal histogram. Each
-- derived file is a new version whose parent is the one it came from.
-- Layer: lua/moonhub (uses moonhub.data, .data.rows, .data.pii).
local data = require "moonhub.data"
local rows = require "moonhub.data.rows"
local pii = require "moonhub.data.pii"

local M = {}

-- ===== statistics =====

-- quantiles(list of numbers) -> {n, min, max, mean, p50, p95} (nearest rank)
function M.quantiles(list)
   local s = table.move(list, 1, #list, 1, {})
   table.sort(s)
   local n, sum = #s, 0
   for _, v in ipairs(s) do sum = sum + v end
   local function rank(p) return n > 0 and s[math.max(1, math.ceil(p * n))] or 0 end
   return { n = n, min = s[1] or 0, max = s[n] or 0, mean = n > 0 and sum / n or 0, p50 = rank(0.5), p95 = rank(0.95) }
end

-- the text of a row that length statistics and dedupe look at
local function row_text(r)
   if r.messages then
      local parts = {}
      for i, m in ipairs(r.messages) do parts[i] = m.content end
      return table.concat(parts, "\n")
   end
   return r.text or (r.prompt .. "\n" .. r.completion)
end
M.row_text = row_text

-- histogram(values, {bins = 10, width = 40}) -> lines "  lo-hi | ####  n"
function M.histogram(values, opts)
   opts = opts or {}
   local bins, width = opts.bins or 10, opts.width or 40
   local q = M.quantiles(values)
   if q.n == 0 then return {} end
   local lo, hi = q.min, q.max
   local step = math.max(1, math.ceil((hi - lo + 1) / bins))
   local counts, top = {}, 0
   for i = 1, bins do counts[i] = 0 end
   for _, v in ipairs(values) do
      local b = math.min(bins, (v - lo) // step + 1)
      counts[b] = counts[b] + 1
   end
   local used = bins
   while used > 1 and counts[used] == 0 do used = used - 1 end
   for i = 1, used do top = math.max(top, counts[i]) end
   local lines, lw = {}, #tostring(lo + used * step - 1)
   for i = 1, used do
      local a = lo + (i - 1) * step
      local bar = string.rep("#", counts[i] > 0 and math.max(1, math.floor(counts[i] * width / top + 0.5)) or 0)
      local fmt = "%" .. lw .. "d-%-" .. lw .. "d | %-" .. width .. "s %d"
      lines[i] = string.format(fmt, a, a + step - 1, bar, counts[i])
   end
   return lines
end

-- stats(reg?, ref, {model =, ctx =}) -> {ds, kind, rows, chars = quantiles,
-- chars_list, tokens = quantiles|nil, tokens_list} | nil, msg
function M.stats(reg, ref, opts)
   opts = opts or {}
   local ds, err = data.open(reg, ref)
   if not ds then return nil, err end
   local chars, toks, model = {}, nil, nil
   if opts.model then
      model, err = data.load_model(opts.model)
      if not model then return nil, err end
      toks = {}
   end
   for r in ds:iter() do
      chars[#chars + 1] = utf8.len(row_text(r)) or #row_text(r)
      if toks then toks[#toks + 1] = #data.encode(model, r) end
   end
   if model and type(opts.model) ~= "table" then model:close() end
   return { ds = ds, kind = ds.kind, rows = ds.rows, chars = M.quantiles(chars), chars_list = chars,
      tokens = toks and M.quantiles(toks), tokens_list = toks }
end

-- ===== validate =====

-- a file's rows as import reads them: report, {{n =, row =}...} | nil, msg
local function file_rows(path, opts)
   local text, terr = require("moonhub.fs").read(path)
   if not text then return nil, "cannot read " .. path .. ": " .. tostring(terr) end
   local map, merr = rows.parse_map(opts.map)
   if merr then return nil, merr end
   local res, rerr = rows.read(text, { format = opts.format or rows.format_of(path, text:sub(1, 64)), map = map })
   if not res then return nil, rerr end
   local list = {}
   for i, row in ipairs(res.rows) do list[i] = { n = res.numbers[i], row = row } end
   return { source = path, kind = res.kind, total = res.total, problems = res.problems }, list
end

-- a stored dataset's rows, checked again (a file edited by hand shows here)
local function dataset_rows(reg, ref)
   local ds, err = data.open(reg, ref)
   if not ds then return nil, err end
   local res, list, n = { source = ds:ref(), kind = ds.kind, total = ds.rows, problems = {} }, {}, 0
   for r in ds:iter() do
      n = n + 1
      local row, msg = rows.normalize(r)
      if row then list[#list + 1] = { n = n, row = row }
      else res.problems[#res.problems + 1] = { row = n, msg = msg } end
   end
   return res, list
end

-- validate(reg?, ref_or_file, {model =, ctx =, map =, format =, file =}) ->
-- {source, kind, total, ctx, problems = {{row =, msg =}...}} | nil, msg. A
-- path to a file is checked as import would check it (file = false: never
-- a file, as for HTTP); with a model every good row is also templated and
-- tokenized against ctx (default: the model's trained context).
function M.validate(reg, ref, opts)
   opts = opts or {}
   if opts.ctx ~= nil and not opts.model then
      return nil, "--ctx needs --model (a context is counted in a model's tokens)"
   end
   local st = require("moonhub.fs").stat(ref)
   local res, list
   if opts.file ~= false and st and st.type == "file" then res, list = file_rows(ref, opts)
   else res, list = dataset_rows(reg, ref) end
   if not res or not opts.model then return res, list end
   local model, err = data.load_model(opts.model)
   if not model then return nil, err end
   res.ctx = opts.ctx or model.info.n_ctx_train
   for _, e in ipairs(list) do
      local ids, msg = data.encode(model, e.row, { ctx = res.ctx })
      if not ids then res.problems[#res.problems + 1] = { row = e.n, msg = msg } end
   end
   if type(opts.model) ~= "table" then model:close() end
   table.sort(res.problems, function(a, b) return a.row < b.row end)
   return res
end

-- ===== split =====

-- A seeded generator of our own (splitmix64), so a split depends on the
-- seed alone, never on math.random's state or Lua's version.
local function rng(seed)
   local s = seed
   return function(n)                      -- an integer in 1..n
      s = s + 0x9E3779B97F4A7C15
      local z = s
      z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
      z = (z ~ (z >> 27)) * 0x94D049BB133111EB
      z = z ~ (z >> 31)
      return (z >> 1) % n + 1
   end
end

-- counts of n rows for the fractions, summing to n (largest remainder)
local function allot(n, fracs)
   local out, rem, used = {}, {}, 0
   for i, f in ipairs(fracs) do
      out[i] = math.floor(n * f)
      used = used + out[i]
      rem[i] = { i = i, r = n * f - out[i] }
   end
   table.sort(rem, function(a, b) return a.r > b.r or (a.r == b.r and a.i < b.i) end)
   for k = 1, n - used do out[rem[k].i] = out[rem[k].i] + 1 end
   return out
end

M.SPLITS = { "train", "val", "test" }

-- split(reg?, ref, {train =, val =, test =, seed =, stratify = FIELD}) ->
-- {train = ds, val = ds, test = ds (absent when empty), source = ds} | nil, msg.
-- Rows are shuffled by the seed (within each value of FIELD when
-- stratified) and cut by the fractions; each split is a version row of the
-- source's number whose parent is the source.
function M.split(reg, ref, opts)
   opts = opts or {}
   local fr = { opts.train or 0.8, opts.val or 0.1, opts.test or 0.1 }
   local sum = 0
   for i, f in ipairs(fr) do
      if type(f) ~= "number" or f < 0 or f > 1 then
         return nil, string.format("--%s must be a fraction between 0 and 1, got %s", M.SPLITS[i], tostring(f))
      end
      sum = sum + f
   end
   if math.abs(sum - 1) > 1e-6 then
      return nil, string.format("--train, --val and --test must add up to 1, got %g", sum)
   end
   local seed = opts.seed or 1
   if math.type(seed) ~= "integer" then return nil, "--seed must be an integer, got " .. tostring(seed) end
   return data.with_reg(reg, function(r)
      local src, err = data.open(r, ref)
      if not src then return nil, err end
      if src.split then return nil, "split a whole version, not the split " .. src:ref() end
      local list = {}                         -- stored lines, copied unchanged
      for line in src:lines() do list[#list + 1] = line end
      local groups, order = {}, {}
      for i, line in ipairs(list) do
         local key = "all"
         if opts.stratify then
            local v = rows.decode(line)[opts.stratify]
            if v == nil then
               return nil, string.format("--stratify %s: row %d has no field '%s'", opts.stratify, i, opts.stratify)
            end
            key = tostring(v)
         end
         if not groups[key] then groups[key] = {} order[#order + 1] = key end
         table.insert(groups[key], i)
      end
      table.sort(order)                       -- group order from the data, not from pairs()
      local rand = rng(seed)
      local parts = { {}, {}, {} }
      for _, key in ipairs(order) do
         local g = groups[key]
         for i = #g, 2, -1 do                 -- Fisher-Yates
            local j = rand(i)
            g[i], g[j] = g[j], g[i]
         end
         local counts = allot(#g, fr)
         local at = 0
         for p = 1, 3 do
            for k = at + 1, at + counts[p] do parts[p][#parts[p] + 1] = list[g[k]] end
            at = at + counts[p]
         end
      end
      local old = {}                          -- the splits this replaces
      for _, v in ipairs(r:dataset_versions(src.name)) do
         if v.version == src.version and v.split then old[#old + 1] = v end
      end
      local out = { source = src }
      for p, name in ipairs(M.SPLITS) do
         if #parts[p] > 0 then
            local ds, serr = data.store(r, parts[p], { name = src.name, kind = src.kind, op = "split", split = name,
               parent_id = src.id, params = { seed = seed, fractions = fr, stratify = opts.stratify } })
            if not ds then return nil, serr end
            out[name] = ds
         end
      end
      for _, v in ipairs(old) do               -- a split not made again goes; so do files no row names
         if not out[v.split] then r:remove_dataset_version(v.id) end
         data.drop_file(r, v.path)
      end
      return out
   end)
end

-- ===== dedupe =====

-- the normalized key: case folded (ASCII), whitespace collapsed, trimmed
local function norm_key(r)
   return (row_text(r):lower():gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end
M.norm_key = norm_key

-- dedupe(reg?, ref, {normalized = true}) -> {exact =, normalized =, kept =,
-- ds = new version | nil when nothing was removed, source} | nil, msg.
-- Exact: the same stored row; normalized: the same text after norm_key.
function M.dedupe(reg, ref, opts)
   opts = opts or {}
   local normalized = opts.normalized ~= false
   return data.with_reg(reg, function(r)
      local src, err = data.open(r, ref)
      if not src then return nil, err end
      local seen, seen_norm, kept, exact, near = {}, {}, {}, 0, 0
      for line in src:lines() do
         local row = rows.decode(line)
         local key, nkey = line, normalized and norm_key(row)
         if seen[key] then
            exact = exact + 1
         elseif normalized and seen_norm[nkey] then
            near = near + 1
         else
            seen[key] = true
            if nkey then seen_norm[nkey] = true end
            kept[#kept + 1] = line
         end
      end
      local res = { exact = exact, normalized = near, kept = #kept, source = src }
      if exact + near == 0 then return res end
      local ds, serr = data.store(r, kept, { name = src.name, kind = src.kind, op = "dedupe", parent_id = src.id,
         params = { exact = exact, normalized = near } })
      if not ds then return nil, serr end
      res.ds = ds
      return res
   end)
end

-- ===== PII =====

-- the string fields of a row PII is looked for in, as (get, set) pairs
local function fields(row)
   local out = {}
   if row.messages then
      for _, m in ipairs(row.messages) do out[#out + 1] = { m, "content" } end
   else
      for _, k in ipairs({ "prompt", "completion", "text" }) do
         if row[k] then out[#out + 1] = { row, k } end
      end
   end
   return out
end

-- pii(reg?, ref, {mode = "report"|"redact"|"drop", kinds = {kind = true}})
-- -> {counts = {kind = n}, rows = rows with a hit, hits = {{row, kind,
-- text}...} (the first 20), ds = new version (redact, drop), source} | nil, msg
function M.pii(reg, ref, opts)
   opts = opts or {}
   local mode = opts.mode or "report"
   if mode ~= "report" and mode ~= "redact" and mode ~= "drop" then
      return nil, "--mode must be report, redact or drop, got '" .. tostring(mode) .. "'"
   end
   for k in pairs(opts.kinds or {}) do
      local known = false
      for _, n in ipairs(pii.NAMES) do known = known or n == k end
      if not known then
         return nil, "unknown PII kind '" .. tostring(k) .. "' (" .. table.concat(pii.NAMES, ", ") .. ")"
      end
   end
   return data.with_reg(reg, function(r)
      local src, err = data.open(r, ref)
      if not src then return nil, err end
      local counts, hits, out, n, hit_rows = {}, {}, {}, 0, 0
      for line in src:lines() do
         n = n + 1
         local row, any, changed = rows.decode(line), false, false
         for _, f in ipairs(fields(row)) do
            local found = pii.scan(f[1][f[2]], opts.kinds)
            for _, h in ipairs(found) do
               counts[h.kind] = (counts[h.kind] or 0) + 1
               if #hits < 20 then hits[#hits + 1] = { row = n, kind = h.kind, text = h.text } end
            end
            if #found > 0 then
               any = true
               if mode == "redact" then
                  f[1][f[2]] = pii.redact(f[1][f[2]], found)
                  changed = true
               end
            end
         end
         if any then hit_rows = hit_rows + 1 end
         if not (any and mode == "drop") then out[#out + 1] = changed and row or line end
      end
      local res = { counts = counts, rows = hit_rows, hits = hits, source = src, total = n }
      if mode == "report" or hit_rows == 0 then return res end
      if #out == 0 then return nil, "every row has PII: --mode drop would leave an empty dataset" end
      local ds, serr = data.store(r, out, { name = src.name, kind = src.kind, op = mode, parent_id = src.id,
         params = { counts = counts } })
      if not ds then return nil, serr end
      res.ds = ds
      return res
   end)
end

return M
