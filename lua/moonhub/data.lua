-- moonhub.data: datasets as immutable versions under $MOONHUB_HOME/datasets
-- — import (JSONL, CSV), open and iterate, encode for a model, and the
-- derived versions of moonhub.data.ops (PII, dedupe, split). Layer:
-- lua/moonhub (uses moonhub.registry, .fs, .hub for sha256, .data.*).
--
--   local ds = assert(data.open(reg, "chats@2:train"))
--   for row in ds:iter() do local ids, mask = data.encode(model, row, {ctx = 512}) end
local fs = require "moonhub.fs"
local rows = require "moonhub.data.rows"
local json = require "dkjson"

local M = {}

M.encode = require("moonhub.data.encode").encode
M.parse_map = rows.parse_map

-- ===== references and handles =====

-- parse_ref("name@2:train") -> name, version|nil, split|nil | nil, msg
function M.parse_ref(ref)
   if type(ref) ~= "string" or ref == "" then return nil, "expected a dataset NAME[@VERSION][:SPLIT]" end
   local name, rest = ref:match("^([^@:]+)(.*)$")
   if not name or not name:match("^[%w][%w%._%-]*$") then
      return nil, "'" .. ref .. "' is not a dataset reference NAME[@VERSION][:SPLIT]"
   end
   local v, split = rest:match("^@(%d+)(.*)$")
   if v then rest = split end
   split = rest:match("^:(%a+)$")
   if rest ~= "" and not split then
      return nil, "'" .. ref .. "' is not a dataset reference NAME[@VERSION][:SPLIT]"
   end
   if split and split ~= "train" and split ~= "val" and split ~= "test" then
      return nil, "unknown split '" .. split .. "' in '" .. ref .. "' (train, val or test)"
   end
   return name, v and math.tointeger(tonumber(v)), split
end

local Dataset = {}
Dataset.__index = Dataset

local function wrap(row)
   return setmetatable({ id = row.id, name = row.name, version = row.version, split = row.split,
      kind = row.kind, path = row.path, sha256 = row.sha256, rows = row.rows, size = row.size,
      parent_id = row.parent_id, op = row.op, created_at = row.created_at,
      params = row.params and json.decode(row.params) or nil,
      stats = row.stats and json.decode(row.stats) or nil }, Dataset)
end

-- ds:ref() -> "name@V" or "name@V:split"
function Dataset:ref()
   return self.name .. "@" .. self.version .. (self.split and (":" .. self.split) or "")
end

-- ds:iter() -> iterator over the stored normalized rows, in file order
function Dataset:iter()
   local f, err = io.open(self.path, "rb")
   if not f then error("data: dataset " .. self:ref() .. " lost its file: " .. tostring(err), 2) end
   local lines = f:lines()
   return function()
      local line = lines()
      if line == nil then
         f:close()
         return nil
      end
      return rows.decode(line)
   end
end

-- ds:lines() -> iterator over the stored lines (each row's JSON text), for
-- derived versions that copy rows unchanged without decoding them again
function Dataset:lines()
   local f, err = io.open(self.path, "rb")
   if not f then error("data: dataset " .. self:ref() .. " lost its file: " .. tostring(err), 2) end
   return f:lines()
end

-- ds:read() -> every row in a list
function Dataset:read()
   local out = {}
   for r in self:iter() do out[#out + 1] = r end
   return out
end

-- with_reg(reg, fn) runs fn(reg) on reg, or on the home's registry opened
-- (and closed) for the call
local function with_reg(reg, fn)
   if reg then return fn(reg) end
   local r, err = require("moonhub.registry").open()
   if not r then return nil, err end
   local res = table.pack(pcall(fn, r))
   r:close()
   if not res[1] then error(res[2], 0) end
   return table.unpack(res, 2, res.n)
end
M.with_reg = with_reg

-- open(reg|nil, "NAME[@VERSION][:SPLIT]") -> ds | nil, msg. ds: id, name,
-- version, split, kind, path, sha256, rows, size, parent_id, op, params,
-- stats; ds:iter(), ds:read(), ds:ref().
function M.open(reg, ref)
   local name, version, split = M.parse_ref(ref)
   if not name then return nil, version end
   return with_reg(reg, function(r)
      local row, err = r:find_dataset(name, version, split)
      if not row then return nil, err end
      if not fs.stat(row.path) then
         return nil, string.format("dataset %s is registered at %s, which no longer exists", ref, row.path)
      end
      return wrap(row)
   end)
end

-- by_id(reg, id) -> ds | nil, msg: a version by its registry id
function M.by_id(reg, id)
   return with_reg(reg, function(r)
      local row = r:dataset_version(id)
      if not row then return nil, "no dataset version " .. tostring(id) end
      return wrap(row)
   end)
end

-- ===== storing versions =====

local temp_n = 0

-- store(reg, list, spec) -> ds | nil, msg. Writes the rows (tables, or
-- stored lines copied as they are) as one JSONL file
-- named by its sha256 under datasets/NAME/, then registers the version
-- (spec: name, kind, op, parent_id, split, params, stats). The row goes in
-- only after the file is whole; a failed registration removes a file it
-- created. The same content as an existing whole version gives that version.
function M.store(reg, list, spec)
   local parts = {}
   for i, r in ipairs(list) do parts[i] = type(r) == "string" and r or rows.encode(r) end
   local text = #parts > 0 and (table.concat(parts, "\n") .. "\n") or ""
   local dir = reg.home .. "/datasets/" .. spec.name
   local ok, err = fs.mkdirs(dir)
   if not ok then return nil, "data: cannot create " .. dir .. ": " .. tostring(err) end
   -- a temp name of this writer's own ("<x>.tmp.<pid>.<n>", what
   -- fs.clean_temps removes once its writer is gone): two uploads in one
   -- server may be storing at once, each waiting on its hash
   fs.clean_temps(dir)
   temp_n = temp_n + 1
   local tmp = string.format("%s/import.tmp.%d.%d", dir, fs.pid(), temp_n)
   ok, err = fs.write(tmp, text)
   if not ok then
      os.remove(tmp)
      return nil, "data: cannot write " .. tmp .. ": " .. tostring(err)
   end
   local sha, herr = require("moonhub.hub").sha256_file(tmp)
   if not sha then
      os.remove(tmp)
      return nil, "data: cannot hash " .. tmp .. ": " .. tostring(herr)
   end
   if not spec.split then
      for _, v in ipairs(reg:dataset_versions(spec.name)) do
         if v.sha256 == sha and not v.split and v.kind == spec.kind and fs.stat(v.path) then
            os.remove(tmp)
            local ds = wrap(v)
            ds.existing = true
            return ds
         end
      end
   end
   local path = string.format("%s/%s%s.jsonl", dir, sha:sub(1, 16), spec.split and ("." .. spec.split) or "")
   local existed = fs.stat(path) ~= nil
   ok, err = os.rename(tmp, path)
   if not ok then
      os.remove(tmp)
      return nil, "data: cannot move the file into place: " .. tostring(err)
   end
   local rok, row = pcall(reg.add_dataset_version, reg, { name = spec.name, dir = dir, path = path,
      kind = spec.kind, sha256 = sha, rows = #list, size = #text, op = spec.op, parent_id = spec.parent_id,
      split = spec.split, params = spec.params and json.encode(spec.params) or nil,
      stats = spec.stats and json.encode(spec.stats) or nil })
   if not rok then
      if not existed then os.remove(path) end
      return nil, "data: cannot register " .. spec.name .. ": " .. tostring(row)
   end
   return wrap(row)
end

-- ===== import =====

local function summarize(problems, total)
   local first = problems[1]
   return string.format("%d of %d rows have problems (first: row %d: %s); "
      .. "'moonhub data validate FILE' lists them all, --skip-invalid imports the rest",
      #problems, total, first.row, first.msg)
end

-- token_stats(model, list, ctx?) -> {model =, tokens =, min =, max =, mean =, p50 =, p95 =, over_ctx =}
function M.token_stats(model, list, ctx)
   local lens, total, over = {}, 0, 0
   for i, r in ipairs(list) do
      local ids = M.encode(model, r)
      lens[i] = #ids
      total = total + #ids
      if ctx and #ids > ctx then over = over + 1 end
   end
   local q = require("moonhub.data.ops").quantiles(lens)
   return { model = model.path and model.path:match("[^/]+$"), tokens = total, min = q.min, max = q.max,
      mean = q.mean, p50 = q.p50, p95 = q.p95, ctx = ctx, over_ctx = over }
end

-- load_model(ref, ctx?) -> model | nil, msg: a model for tokenizing only
function M.load_model(ref, ctx)
   if type(ref) == "table" then return ref end
   return require("moonhub").load(ref, { ctx = ctx or 64 })
end

-- import(path, {name =, map = "prompt=q,..."|table, format = "csv"|"jsonl",
-- model = name|loaded model, skip_invalid =, progress = fn(done, total),
-- text = the file's contents (HTTP uploads), reg =}) -> ds, info | nil, msg,
-- problems. Every row is checked first; with problems nothing is stored
-- unless skip_invalid (info.skipped counts them).
function M.import(path, opts)
   opts = opts or {}
   if type(path) ~= "string" or path == "" then error("data.import: path must be a file path", 2) end
   local name = opts.name or path:match("([^/]+)$"):gsub("%.[^.]*$", "")
   if not name:match("^[%w][%w%._%-]*$") or #name > 200 then
      return nil, "dataset name '" .. name .. "' must be letters, digits and . _ - (give one with --name)"
   end
   local map, merr = rows.parse_map(opts.map)
   if merr then return nil, merr end
   local text = opts.text
   if not text then
      local terr
      text, terr = fs.read(path)
      if not text then return nil, "cannot read " .. path .. ": " .. tostring(terr) end
   end
   local res, err = rows.read(text, { format = opts.format or rows.format_of(path, text:sub(1, 64)), map = map,
      progress = opts.progress })
   if not res then return nil, err end
   if #res.problems > 0 and not opts.skip_invalid then return nil, summarize(res.problems, res.total), res.problems end
   if #res.rows == 0 then return nil, path .. " has no rows to import" end
   local stats
   if opts.model then
      local model, lerr = M.load_model(opts.model)
      if not model then return nil, lerr end
      stats = M.token_stats(model, res.rows, model.info and model.info.n_ctx_train)
      if type(opts.model) ~= "table" then model:close() end
   end
   return with_reg(opts.reg, function(reg)
      local ds, serr = M.store(reg, res.rows, { name = name, kind = res.kind, op = "import", stats = stats,
         params = { source = path:match("[^/]+$"), map = map, skipped = #res.problems } })
      if not ds then return nil, serr end
      return ds, { skipped = #res.problems, problems = res.problems, total = res.total }
   end)
end

-- ===== list, remove, preview =====

-- drop_file(reg, path) -> true when path was deleted: only a file no
-- version row names any more
function M.drop_file(reg, path)
   if reg:dataset_path_used(path) then return false end
   return os.remove(path) ~= nil
end

-- list(reg?) -> one row per dataset (its newest version; see registry.dataset_list)
function M.list(reg)
   return with_reg(reg, function(r) return r:dataset_list() end)
end

-- versions(reg?, "NAME") -> every version and split of NAME (newest first,
-- as handles) | nil, msg
function M.versions(reg, name)
   local n, v, split = M.parse_ref(name)
   if not n then return nil, v end
   if v or split then return nil, "give a dataset NAME (every version is listed)" end
   return with_reg(reg, function(r)
      local rows_ = r:dataset_versions(n)
      if #rows_ == 0 then return nil, "no dataset named '" .. n .. "' (see 'moonhub data list')" end
      local out = {}
      for i, row in ipairs(rows_) do out[i] = wrap(row) end
      return out
   end)
end

-- remove(reg?, "NAME[@VERSION]") -> {removed version rows, deleted = paths} | nil, msg.
-- A file another version still names stays.
function M.remove(reg, ref)
   local name, version, split = M.parse_ref(ref)
   if not name then return nil, version end
   if split then return nil, "remove a whole version (NAME or NAME@VERSION), not a split" end
   return with_reg(reg, function(r)
      local gone, err = r:remove_dataset(name, version)
      if not gone then return nil, err end
      local deleted = {}
      for _, v in ipairs(gone) do
         if M.drop_file(r, v.path) then deleted[#deleted + 1] = v.path end
      end
      return { versions = gone, deleted = deleted }
   end)
end

-- preview(reg?, ref, n) -> ds, the first n rows | nil, msg
function M.preview(reg, ref, n)
   local ds, err = M.open(reg, ref)
   if not ds then return nil, err end
   local out = {}
   for r in ds:iter() do
      if #out >= (n or 5) then break end
      out[#out + 1] = r
   end
   return ds, out
end

-- ===== derived versions and reports (moonhub.data.ops) =====
-- validate(reg?, ref|file, opts), split(reg?, ref, opts), dedupe(reg?, ref,
-- opts), pii(reg?, ref, opts), stats(reg?, ref, opts), histogram(values,
-- opts): see moonhub.data.ops (loaded on first use; it builds on this module)
for _, k in ipairs({ "validate", "split", "dedupe", "pii", "stats", "histogram", "quantiles" }) do
   M[k] = function(...) return require("moonhub.data.ops")[k](...) end
end

return M
