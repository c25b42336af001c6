-- moonhub.registry.runs: runs (training, quantization, evaluation jobs:
-- status and its history, per-step metrics, named metrics, outputs) —
-- methods of a registry handle over its one database handle (self.db);
-- datasets are moonhub.registry.datasets. Layer: lua/moonhub (portable SQL
-- over moonhub.db).

local M = {}

-- ===== runs =====

-- add_run{kind=, version_id=, dataset_id=, dataset_version_id=, model=, dataset=,
-- config=, total_steps=, artifacts=, log_path=} -> id (queued; the first event recorded)
function M:add_run(spec)
   if type(spec) ~= "table" or type(spec.kind) ~= "string" then
      error("registry.add_run: expected a table with a string kind", 2)
   end
   return self.db:transaction(function(d)
      local now = os.time()
      local id = d:insert([[INSERT INTO runs (kind, version_id, dataset_id, dataset_version_id, model,
         dataset, config, total_steps, artifacts, log_path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
         spec.kind, spec.version_id, spec.dataset_id, spec.dataset_version_id, spec.model, spec.dataset,
         spec.config, spec.total_steps, spec.artifacts, spec.log_path, now)
      d:exec("INSERT INTO run_events (run_id, status, reason, at) VALUES (?, 'queued', ?, ?)", id,
         spec.reason or "enqueued", now)
      return id
   end)
end

local RUN_FIELDS = { status = true, output_version_id = true, metrics = true, error = true,
   started_at = true, finished_at = true, log_path = true, artifacts = true, repro = true, step = true,
   total_steps = true, cancel_requested = true, worker_pid = true, heartbeat_at = true, config = true }

-- update_run(id, {status=, metrics=, error=, output_version_id=, ...}) -> true | nil, msg.
-- A status change goes through transition() instead, which records it.
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

-- transition(id, from, to, reason [, fields]) -> true | nil, msg. Moves run
-- id from one of the states in `from` (a set {queued = true, ...}) to `to`,
-- records the event (time, reason) and sets fields, all in one transaction;
-- nil, msg when the run is in another state (someone else moved it first).
function M:transition(id, from, to, reason, fields)
   return self.db:transaction(function(d)
      local r = d:first("SELECT status FROM runs WHERE id = ?", id)
      if not r then return nil, "no job " .. id end
      if not from[r.status] then return nil, string.format("job %d is %s", id, r.status) end
      local now = os.time()
      fields = fields or {}
      fields.status = to
      if to == "running" then fields.started_at = fields.started_at or now end
      if to ~= "running" and to ~= "queued" then fields.finished_at = now end
      local ok, err = M.update_run(self, id, fields)
      if not ok then return nil, err end
      d:exec("INSERT INTO run_events (run_id, status, reason, at) VALUES (?, ?, ?, ?)", id, to, reason, now)
      return true
   end)
end

function M:run(id)
   return self.db:first("SELECT * FROM runs WHERE id = ?", id)
end

-- runs([{status=, kind=, limit=}]) -> newest first
function M:runs(opts)
   opts = opts or {}
   -- only the filters asked for: PostgreSQL cannot type a parameter that
   -- stands alone in `:x IS NULL`; no limit is the largest one (both dialects)
   local where = { "1 = 1" }
   if opts.status then where[#where + 1] = "status = :status" end
   if opts.kind then where[#where + 1] = "kind = :kind" end
   return self.db:query("SELECT * FROM runs WHERE " .. table.concat(where, " AND ")
      .. " ORDER BY id DESC LIMIT :limit",
      { status = opts.status, kind = opts.kind,
        limit = (opts.limit and opts.limit >= 0) and opts.limit or math.maxinteger })
end

function M:run_events(id)
   return self.db:query("SELECT status, reason, at FROM run_events WHERE run_id = ? ORDER BY id", id)
end

-- add_step(id, {step=, loss=, lr=, grad_norm=, tokens=, tokens_per_s=, step_ms=, peak_rss=}):
-- the step's figures, and the run's progress and heartbeat, in one transaction.
-- Returns whether a cancel has been asked for.
function M:add_step(id, s)
   return self.db:transaction(function(d)
      local now = os.time()
      -- a step redone after a resume replaces its row (an upsert both dialects read)
      d:exec([[INSERT INTO run_steps (run_id, step, loss, lr, grad_norm, tokens, tokens_per_s,
         step_ms, peak_rss, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (run_id, step) DO UPDATE SET loss = excluded.loss, lr = excluded.lr,
         grad_norm = excluded.grad_norm, tokens = excluded.tokens, tokens_per_s = excluded.tokens_per_s,
         step_ms = excluded.step_ms, peak_rss = excluded.peak_rss, at = excluded.at]], id, s.step, s.loss,
         s.lr, s.grad_norm, s.tokens, s.tokens_per_s, s.step_ms, s.peak_rss, now)
      -- runs.metrics stays for named results such as moonhub.eval's JSON
      d:exec("UPDATE runs SET step = ?, heartbeat_at = ? WHERE id = ?", s.step, now, id)
      local r = d:first("SELECT cancel_requested FROM runs WHERE id = ?", id)
      return r and r.cancel_requested == 1
   end)
end

-- steps(id [, after]) -> the per-step rows past step `after`, in order
function M:steps(id, after)
   return self.db:query("SELECT * FROM run_steps WHERE run_id = ? AND step > ? ORDER BY step", id, after or 0)
end

-- drop_steps(id, after): forget the steps past a checkpoint (a resumed run redoes them)
function M:drop_steps(id, after)
   self.db:exec("DELETE FROM run_steps WHERE run_id = ? AND step > ?", id, after)
   self.db:exec("DELETE FROM run_metrics WHERE run_id = ? AND step > ?", id, after)
end

-- log_metric(id, key, value [, step]): a named figure of the run (eval loss, ...)
function M:log_metric(id, key, value, step)
   if type(key) ~= "string" or type(value) ~= "number" then
      error("registry.log_metric: expected (run id, key string, number value [, step])", 2)
   end
   return self.db:insert("INSERT INTO run_metrics (run_id, key, value, step, at) VALUES (?, ?, ?, ?, ?)",
      id, key, value, step, os.time())
end

function M:run_metrics(id)
   return self.db:query("SELECT key, value, step, at FROM run_metrics WHERE run_id = ? ORDER BY id", id)
end

return M
