-- moonhub.registry.runs: runs (training, quantization, evaluation jobs with
-- their status, metrics and outputs) — methods of a registry handle over its
-- one database handle (self.db); datasets are moonhub.registry.datasets.
-- Layer: lua/moonhub (portable SQL over moonhub.db).
local M = {}

-- ===== runs =====

-- add_run{kind=, version_id=, dataset_id=, config=, log_path=} -> id (queued)
function M:add_run(spec)
   if type(spec) ~= "table" or type(spec.kind) ~= "string" then
      error("registry.add_run: expected a table with a string kind", 2)
   end
   return self.db:insert([[INSERT INTO runs (kind, version_id, dataset_id, config, log_path, created_at)
      VALUES (?, ?, ?, ?, ?, ?)]], spec.kind, spec.version_id, spec.dataset_id, spec.config,
      spec.log_path, os.time())
end

local RUN_FIELDS = { status = true, output_version_id = true, metrics = true, error = true,
   started_at = true, finished_at = true, log_path = true }

-- update_run(id, {status=, metrics=, error=, output_version_id=, ...}) -> true | nil, msg
function M:update_run(id, fields)
   if math.type(id) ~= "integer" or type(fields) ~= "table" then
      error("registry.update_run: expected (id, {field = value, ...})", 2)
   end
   local sets, vals = {}, {}
   for k, v in pairs(fields) do
      if not RUN_FIELDS[k] then error("registry.update_run: unknown field '" .. tostring(k) .. "'", 2) end
      sets[#sets + 1] = k .. " = :" .. k
      vals[k] = v
   end
   if #sets == 0 then return true end
   table.sort(sets)           -- one SQL text per field set: the statement cache stays small
   vals.id = id
   if self.db:exec("UPDATE runs SET " .. table.concat(sets, ", ") .. " WHERE id = :id", vals) == 0 then
      return nil, "registry: no run " .. id
   end
   return true
end

function M:runs()
   return self.db:query("SELECT * FROM runs ORDER BY id DESC")
end

return M
