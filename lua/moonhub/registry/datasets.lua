-- moonhub.registry.datasets: datasets and their immutable versions (imports,
-- derived files with lineage, train/val/test splits) — methods of a registry
-- handle over its one database handle (self.db). Layer: lua/moonhub
-- (portable SQL over moonhub.db; the schema is migration 4 of the dialect).
local names = require "moonhub.registry.models"

local M = {}

-- dataset names sit in refs "NAME@V:SPLIT", so no "@", ":" or "/"
M.DATASET_PAT = "^[%w][%w%._%-]*$"
M.SPLITS = { train = true, val = true, test = true }
local KINDS = { chat = true, completion = true, text = true }

local VERSION_COLS = [[v.id, d.name, v.dataset_id, v.version, v.split, v.kind, v.path, v.sha256,
   v.rows, v.size, v.parent_id, v.op, v.params, v.stats, v.created_at]]

-- ===== the name table (kept for its first users) =====

-- add_dataset{name=, path=, format=, sha256=, rows=, size=, source_url=} -> id
function M:add_dataset(spec)
   if type(spec) ~= "table" then error("registry.add_dataset: expected a table {name=, path=, ...}", 2) end
   names.check_name("add_dataset", "name", spec.name, names.NAME_PAT)
   if type(spec.path) ~= "string" or spec.path == "" then
      error("registry.add_dataset: path must be a non-empty string", 2)
   end
   return self.db:insert([[INSERT INTO datasets (name, path, format, sha256, rows, size, source_url,
      created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], spec.name, spec.path, spec.format, spec.sha256,
      spec.rows, spec.size, spec.source_url, os.time())
end

function M:datasets()
   return self.db:query("SELECT * FROM datasets ORDER BY name")
end

-- ===== versions =====

local function check_spec(spec)
   if type(spec) ~= "table" then error("registry.add_dataset_version: expected a table {name=, path=, ...}", 3) end
   names.check_name("add_dataset_version", "name", spec.name, M.DATASET_PAT)
   if not KINDS[spec.kind] then
      error("registry.add_dataset_version: kind must be chat, completion or text, got " .. tostring(spec.kind), 3)
   end
   if spec.split ~= nil and not M.SPLITS[spec.split] then
      error("registry.add_dataset_version: split must be train, val or test, got " .. tostring(spec.split), 3)
   end
   if spec.split and not spec.parent_id then
      error("registry.add_dataset_version: a split needs parent_id (the version it splits)", 3)
   end
   for _, k in ipairs({ "path", "sha256", "op" }) do
      if type(spec[k]) ~= "string" or spec[k] == "" then
         error("registry.add_dataset_version: " .. k .. " must be a non-empty string", 3)
      end
   end
   for _, k in ipairs({ "rows", "size" }) do
      if math.type(spec[k]) ~= "integer" or spec[k] < 0 then
         error("registry.add_dataset_version: " .. k .. " must be an integer >= 0", 3)
      end
   end
end

-- add_dataset_version{name=, path=, kind=, sha256=, rows=, size=, op=,
-- parent_id=, split=, params= (JSON text), stats= (JSON text), dir=} ->
-- the version row. Creates the dataset (its path: dir) on first use. A
-- whole version gets the next number; a split takes its parent's number
-- and replaces an earlier split of that name. One transaction.
function M:add_dataset_version(spec)
   check_spec(spec)
   local id
   self.db:transaction(function()
      local ds = self.db:first("SELECT id FROM datasets WHERE name = ?", spec.name)
      local ds_id = ds and ds.id or self.db:insert(
         "INSERT INTO datasets (name, path, format, created_at) VALUES (?, ?, 'jsonl', ?)",
         spec.name, spec.dir or spec.path, os.time())
      local version
      if spec.split then
         local parent = self.db:first("SELECT version, dataset_id FROM dataset_versions WHERE id = ?", spec.parent_id)
         if not parent or parent.dataset_id ~= ds_id then
            error("registry.add_dataset_version: parent " .. tostring(spec.parent_id) .. " is not a version of "
               .. spec.name, 0)
         end
         version = parent.version
         self.db:exec("DELETE FROM dataset_versions WHERE dataset_id = ? AND version = ? AND split = ?",
            ds_id, version, spec.split)
      else
         local top = self.db:first("SELECT max(version) AS v FROM dataset_versions WHERE dataset_id = ?", ds_id)
         version = (top and top.v or 0) + 1
      end
      id = self.db:insert([[INSERT INTO dataset_versions (dataset_id, version, split, kind, path, sha256,
         rows, size, parent_id, op, params, stats, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
         ds_id, version, spec.split, spec.kind, spec.path, spec.sha256, spec.rows, spec.size, spec.parent_id,
         spec.op, spec.params, spec.stats, os.time())
   end)
   return self:dataset_version(id)
end

-- dataset_version(id) -> the version row (with the dataset's name) | nil
function M:dataset_version(id)
   if math.type(id) ~= "integer" then error("registry.dataset_version: id must be an integer", 2) end
   return self.db:first("SELECT " .. VERSION_COLS .. [[ FROM dataset_versions v
      JOIN datasets d ON d.id = v.dataset_id WHERE v.id = ?]], id)
end

-- dataset_versions(name) -> every version and split of name, newest first
function M:dataset_versions(name)
   return self.db:query("SELECT " .. VERSION_COLS .. [[ FROM dataset_versions v
      JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ?
      ORDER BY v.version DESC, v.split IS NOT NULL, v.split]], name)
end

-- find_dataset(name, version?, split?) -> the version row | nil, msg.
-- version nil: the newest; split nil: the whole version.
function M:find_dataset(name, version, split)
   local ds = self.db:first("SELECT id FROM datasets WHERE name = ?", name)
   if not ds then return nil, "no dataset named '" .. tostring(name) .. "' (see 'moonhub data list')" end
   if not version then
      local top = self.db:first("SELECT max(version) AS v FROM dataset_versions WHERE dataset_id = ?", ds.id)
      version = top and top.v
      if not version then return nil, "dataset '" .. name .. "' has no versions (import a file into it)" end
   end
   local row
   if split then
      row = self.db:first("SELECT " .. VERSION_COLS .. [[ FROM dataset_versions v JOIN datasets d
         ON d.id = v.dataset_id WHERE v.dataset_id = ? AND v.version = ? AND v.split = ?]], ds.id, version, split)
      if not row then
         return nil, string.format("dataset '%s' version %d has no %s split (make one with 'moonhub data split %s')",
            name, version, split, name)
      end
   else
      row = self.db:first("SELECT " .. VERSION_COLS .. [[ FROM dataset_versions v JOIN datasets d
         ON d.id = v.dataset_id WHERE v.dataset_id = ? AND v.version = ? AND v.split IS NULL]], ds.id, version)
      if not row then return nil, string.format("dataset '%s' has no version %d", name, version) end
   end
   return row
end

-- dataset_list() -> one row per dataset: its newest whole version (fields
-- as dataset_version; version nil for a name without versions), versions =
-- how many whole versions, splits = the newest version's split names
function M:dataset_list()
   local out = {}
   for _, d in ipairs(self.db:query("SELECT id, name, created_at FROM datasets ORDER BY name")) do
      local row = self:find_dataset(d.name) or { name = d.name, created_at = d.created_at }
      local n = self.db:first("SELECT count(*) AS n FROM dataset_versions WHERE dataset_id = ? AND split IS NULL", d.id)
      row.versions = n.n
      row.splits = {}
      if row.version then
         for _, s in ipairs(self.db:query([[SELECT split FROM dataset_versions WHERE dataset_id = ?
            AND version = ? AND split IS NOT NULL ORDER BY split]], d.id, row.version)) do
            row.splits[#row.splits + 1] = s.split
         end
      end
      out[#out + 1] = row
   end
   return out
end

-- remove_dataset_version(id) -> true | nil when there is none (the row
-- only: one split, say; the file is the caller's)
function M:remove_dataset_version(id)
   return self.db:exec("DELETE FROM dataset_versions WHERE id = ?", id) > 0 or nil
end

-- dataset_path_used(path) -> whether a version row still names path
function M:dataset_path_used(path)
   return self.db:first("SELECT 1 AS used FROM dataset_versions WHERE path = ?", path) ~= nil
end

-- remove_dataset(name, version?) -> the removed version rows (their files are
-- the caller's to delete) | nil, msg. Without version: the whole dataset.
function M:remove_dataset(name, version)
   local ds = self.db:first("SELECT id FROM datasets WHERE name = ?", name)
   if not ds then return nil, "no dataset named '" .. tostring(name) .. "' (see 'moonhub data list')" end
   local rows
   self.db:transaction(function()
      if version then
         rows = self.db:query("SELECT " .. VERSION_COLS .. [[ FROM dataset_versions v JOIN datasets d
            ON d.id = v.dataset_id WHERE v.dataset_id = ? AND v.version = ?]], ds.id, version)
         if #rows == 0 then return end
         self.db:exec("DELETE FROM dataset_versions WHERE dataset_id = ? AND version = ?", ds.id, version)
         local left = self.db:first("SELECT count(*) AS n FROM dataset_versions WHERE dataset_id = ?", ds.id)
         if left.n == 0 then self.db:exec("DELETE FROM datasets WHERE id = ?", ds.id) end
      else
         rows = self:dataset_versions(name)
         self.db:exec("DELETE FROM datasets WHERE id = ?", ds.id)
      end
   end)
   if #rows == 0 then return nil, string.format("dataset '%s' has no version %d", name, version) end
   return rows
end

return M
