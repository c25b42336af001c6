-- moonhub.jobs: training jobs — the config a job runs with, the queue in
-- the registry's runs table, the state machine (queued -> running ->
-- succeeded | failed | cancelled | interrupted), and the worker loop.
-- Layer: lua/moonhub (uses moonhub.registry, .models, .data, .fs, .jobs.*).
-- See docs/jobs.md.
local fs = require "moonhub.fs"
local json = require "dkjson"
local jconfig = require "moonhub.jobs.config"
local lease = require "moonhub.jobs.lease"

local M = {}

M.config = jconfig.check           -- config(table) -> cfg | nil, msg
M.config_file = jconfig.read_file  -- config_file(path) -> table | nil, msg

M.STATES = { "queued", "running", "succeeded", "failed", "cancelled", "interrupted" }
M.FINISHED = { succeeded = true, failed = true, cancelled = true }     -- archived
M.DONE = { succeeded = true, failed = true, cancelled = true, interrupted = true }   -- nothing runs
local RETRYABLE = { failed = true, cancelled = true, interrupted = true }

-- A running job's lease (seconds): its worker renews it at every step; a
-- holder silent longer is lost even when its pid lives (pid reuse, a hung
-- process, another machine sharing the database). Also the heartbeat age
-- that marks a job claimed before leases existed (schema 6) as lost.
M.LEASE_S = lease.LEASE_S
M.MAX_RESUMES = lease.MAX_RESUMES

local function home() return require("moonhub").home() end

-- runs_root() -> where job folders (checkpoints, logs, adapters) live:
-- $MOONHUB_RUNS when set (a folder every worker sees at the same path, such
-- as a shared mount, when workers on several hosts share one database),
-- else $MOONHUB_HOME/runs. The run row keeps the absolute folder it got.
function M.runs_root()
   local shared = os.getenv("MOONHUB_RUNS")
   if shared and shared ~= "" then return (shared:gsub("/+$", "")) end
   return home() .. "/runs"
end

-- run_dir(id, archived) -> RUNS/active/ID or RUNS/archive/ID (runs_root)
function M.run_dir(id, archived)
   return string.format("%s/%s/%d", M.runs_root(), archived and "archive" or "active", id)
end

local function data_mod()
   local ok, d = pcall(require, "moonhub.data")
   if not ok then return nil, "datasets need moonhub.data, which this build lacks" end
   return d
end

-- open_dataset(reg, ref) -> ds | nil, msg (moonhub.data's data.open)
function M.open_dataset(reg, ref)
   local d, err = data_mod()
   if not d then return nil, err end
   local ok, ds, msg = pcall(d.open, reg, ref)
   if not ok then return nil, tostring(ds) end
   if not ds then return nil, msg or ("no dataset '" .. ref .. "'") end
   return ds
end

-- ===== enqueue =====

-- resolve the model: a registry name or a file -> path, version row
local function find_model(ref)
   local path, row = require("moonhub.models").resolve(ref)
   if not path then return nil, row end
   local st = fs.stat(path)
   if not st or st.type ~= "file" or not path:match("%.gguf$") then
      return nil, "model '" .. ref .. "' is not a GGUF file (training needs one)"
   end
   return path, row
end

-- enqueue(reg, cfg) -> id | nil, msg. cfg: a checked config (M.config).
-- The model and the datasets are found first: an unknown one is an
-- error and nothing is written.
function M.enqueue(reg, cfg)
   local path, vrow = find_model(cfg.model)
   if not path then return nil, path == nil and vrow or "unknown model" end
   local ds, err = M.open_dataset(reg, cfg.data)
   if not ds then return nil, err end
   local val
   if cfg.val then
      val, err = M.open_dataset(reg, cfg.val)
      if not val then return nil, "--val: " .. err end
   end
   if not val and cfg.eval_every > 0 then          -- evaluations read NAME:val: it must exist now
      val, err = M.open_dataset(reg, string.format("%s@%s:val", ds.name, tostring(ds.version)))
      if not val then
         return nil, string.format("--eval-every needs a validation set: %s (make one with 'moonhub data split "
            .. "%s', or give --val)", err, ds.name)
      end
   end
   if ds.rows == 0 then return nil, "dataset '" .. cfg.data .. "' has no rows" end
   local total = cfg.steps or cfg.epochs * math.ceil(ds.rows / cfg.batch)
   local run = {}
   for k, v in pairs(cfg) do run[k] = v end
   run.model_path = fs.realpath(path) or path
   run.dataset_version_id, run.dataset_sha256, run.dataset_rows = ds.id, ds.sha256, ds.rows
   run.dataset_ref = string.format("%s@%s%s", ds.name, tostring(ds.version), ds.split and (":" .. ds.split) or "")
   if val then
      run.val_ref = string.format("%s@%s%s", val.name, tostring(val.version), val.split and (":" .. val.split) or "")
      run.val_version_id = val.id
   end
   run.total_steps = total
   return reg.db:transaction(function()
      local id = reg:add_run({ kind = "train", version_id = vrow and vrow.id or nil,
         dataset_version_id = ds.id, model = cfg.model, dataset = cfg.data,
         config = json.encode(run), total_steps = total })
      local dir = M.run_dir(id)
      reg:update_run(id, { artifacts = dir, log_path = dir .. "/log.txt" })
      return id
   end)
end

-- ===== the state machine =====

local function set(...)
   local s = {}
   for _, k in ipairs({ ... }) do s[k] = true end
   return s
end

-- reap(reg) -> ids marked interrupted: running jobs whose worker was
-- lost (its pid gone on this host, or its lease expired). Called wherever
-- jobs are read, so a crash is noticed the next time anyone looks. Such a
-- job is marked for another worker to resume (auto_resume); the row is
-- re-read under its lock, so a job some worker has just taken over stays.
function M.reap(reg)
   local out = {}
   local sql = lease.claim_sql(reg)
   for _, r in ipairs(reg.db:query("SELECT * FROM runs WHERE status = 'running'")) do
      local why = lease.lost(r, os.time(), M.LEASE_S)
      if why and reg.db:transaction(function(d)
            local cur = d:first("SELECT status, lease_owner FROM runs WHERE id = ?" .. sql.row, r.id)
            if not cur or cur.status ~= "running" or cur.lease_owner ~= r.lease_owner then return false end
            local ok = reg:transition(r.id, set("running"), "interrupted", string.format("%s (at step %d)", why,
               r.step or 0), { worker_pid = require("moonhub.db").null })
            if ok then d:exec("UPDATE runs SET auto_resume = 1, lease_owner = NULL WHERE id = ?", r.id) end
            return ok
         end) then
         out[#out + 1] = r.id
      end
   end
   return out
end

-- claim(reg, {max_active = 1, pid =, owner =, lease_s =}) -> the run row it
-- moved to running, or nil (nothing to run, or max_active jobs already
-- running, counting every worker on the database). Oldest first among the
-- queued jobs and those interrupted by a lost worker (resumed from their
-- last checkpoint). One transaction: two workers never take the same job.
function M.claim(reg, opts)
   opts = opts or {}
   local max_active, pid = opts.max_active or 1, opts.pid or fs.pid()
   local owner = opts.owner or lease.owner_id(pid)
   local lease_s = opts.lease_s or M.LEASE_S
   local sql = lease.claim_sql(reg)
   M.reap(reg)
   return reg.db:transaction(function(d)
      local busy = d:first("SELECT count(*) AS n FROM runs WHERE status = 'running' AND kind = 'train'").n
      if busy >= max_active then return nil end
      local r = d:first([[SELECT id, status, resumes FROM runs WHERE kind = 'train' AND (status = 'queued'
         OR (status = 'interrupted' AND auto_resume = 1 AND resumes < ?)) ORDER BY id LIMIT 1]] .. sql.pick,
         M.MAX_RESUMES)
      if not r then return nil end
      local resumed = r.status == "interrupted"
      local why = resumed and string.format("resumed by worker %s from the last checkpoint (resume %d of %d)",
         owner, r.resumes + 1, M.MAX_RESUMES) or ("picked up by worker " .. owner)
      local now = os.time()
      local ok = reg:transition(r.id, set("queued", "interrupted"), "running", why,
         { worker_pid = pid, heartbeat_at = now, cancel_requested = 0 })
      if not ok then return nil end
      d:exec([[UPDATE runs SET lease_owner = ?, lease_expires_at = ?, auto_resume = 0, resumes = resumes + ?
         WHERE id = ?]], owner, now + lease_s, resumed and 1 or 0, r.id)
      return reg:run(r.id)
   end)
end

-- renew(reg, id, owner [, lease_s]) -> true while owner still holds the job
-- (the heartbeat: its lease pushed on); false once it was lost to another
M.renew = function(reg, id, owner, lease_s) return lease.renew(reg.db, id, owner, lease_s or M.LEASE_S) end

-- cancel(reg, id) -> the new state ("cancelled", or "cancelling" for a
-- running job, which stops at its next step) | nil, msg
function M.cancel(reg, id)
   M.reap(reg)
   local r = reg:run(id)
   if not r then return nil, "no job " .. id end
   if r.status == "queued" or r.status == "interrupted" then
      local ok, err = reg:transition(id, set("queued", "interrupted"), "cancelled", "cancelled by the user")
      if not ok then return nil, err end
      M.archive(reg, id)
      return "cancelled"
   elseif r.status == "running" then
      reg:update_run(id, { cancel_requested = 1 })
      return "cancelling"
   end
   return nil, string.format("job %d is already %s", id, r.status)
end

-- retry(reg, id) -> true | nil, msg: a failed, cancelled or interrupted job
-- goes back to the queue; its worker resumes from the last checkpoint.
function M.retry(reg, id)
   M.reap(reg)
   local r = reg:run(id)
   if not r then return nil, "no job " .. id end
   if not RETRYABLE[r.status] then
      return nil, string.format("job %d is %s; only failed, cancelled or interrupted jobs can be retried", id, r.status)
   end
   local active = M.run_dir(id)
   if r.artifacts and r.artifacts ~= active and fs.stat(r.artifacts) then   -- back from the archive
      fs.mkdirs(fs.dirname(active))
      local ok, err = os.rename(r.artifacts, active)
      if not ok then return nil, "cannot move " .. r.artifacts .. " back: " .. tostring(err) end
   end
   return reg.db:transaction(function(d)
      local ok, err = reg:transition(id, RETRYABLE, "queued", "retry (was " .. r.status .. ")",
         { artifacts = active, log_path = active .. "/log.txt", error = require("moonhub.db").null,
           cancel_requested = 0 })
      if ok then d:exec("UPDATE runs SET auto_resume = 0, resumes = 0 WHERE id = ?", id) end
      return ok, err
   end)
end

-- archive(reg, id): a finished job's folder moves to runs/archive/ID
function M.archive(reg, id)
   local r = reg:run(id)
   local to = M.run_dir(id, true)
   if not r or not r.artifacts or r.artifacts == to or not fs.stat(r.artifacts) then return true end
   fs.mkdirs(fs.dirname(to))
   local ok, err = os.rename(r.artifacts, to)
   if not ok then return nil, err end
   return reg:update_run(id, { artifacts = to, log_path = to .. "/log.txt" })
end

-- ===== reading =====

-- list(reg [, {status=, limit=}]) -> train runs, newest first (after reaping)
function M.list(reg, opts)
   M.reap(reg)
   opts = opts or {}
   return reg:runs({ kind = "train", status = opts.status, limit = opts.limit })
end

-- get(reg, id) -> {run row, config (table), events, steps, metrics} | nil, msg
function M.get(reg, id)
   M.reap(reg)
   local r = reg:run(id)
   if not r then return nil, "no job " .. tostring(id) end
   return { run = r, config = json.decode(r.config or "{}") or {}, events = reg:run_events(id),
      steps = reg:steps(id), metrics = reg:run_metrics(id) }
end

-- ===== the worker =====

-- work(reg, {max_active =, drain = bool, until_id =, poll_s =, on_step =, log =,
-- lease_s =, sleep = fn(s), stop = fn() -> bool}): claims and runs queued
-- jobs one after the other, under one owner id (host:pid:random) for this
-- call. drain: return when nothing is queued, running or waiting to resume;
-- until_id: return once that job is done. Returns the ids it ran.
function M.work(reg, opts)
   opts = opts or {}
   local runner = require "moonhub.jobs.runner"
   local sleep = opts.sleep or function(s) require("moonhub.db").sleep(math.floor(s * 1000)) end
   local ran = {}
   local owner = lease.owner_id()
   local ropts = setmetatable({ owner = owner, lease_s = opts.lease_s or M.LEASE_S }, { __index = opts })
   while not (opts.stop and opts.stop()) do
      local job = M.claim(reg, { max_active = opts.max_active, owner = owner, lease_s = ropts.lease_s })
      if job then
         ran[#ran + 1] = job.id
         runner.run(reg, job, ropts)
      else
         if opts.until_id then
            local r = reg:run(opts.until_id)
            if not r or M.DONE[r.status] then break end
         end
         if opts.drain and not reg.db:first([[SELECT 1 AS x FROM runs WHERE kind = 'train' AND (status IN
               ('queued', 'running') OR (status = 'interrupted' AND auto_resume = 1 AND resumes < ?))]],
               M.MAX_RESUMES) then
            break
         end
         sleep(opts.poll_s or 0.5)
      end
      if opts.until_id then
         local r = reg:run(opts.until_id)
         if not r or M.DONE[r.status] then break end
      end
   end
   return ran
end

-- ===== a worker process beside the server =====

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- spawn_worker({parent = pid, log = path, max_active =}) -> pid | nil, msg.
-- `moonhub serve --worker` trains in this child process (at nice 10), never
-- on its event loop; the child exits when the parent is gone (checked
-- between jobs).
function M.spawn_worker(opts)
   opts = opts or {}
   local exe = fs.readlink("/proc/self/exe")
   if not exe then return nil, "cannot find the moonhub executable (/proc/self/exe)" end
   local log = opts.log or string.format("%s/run/worker-%d.log", home(), fs.pid())
   fs.mkdirs(fs.dirname(log))
   -- nice: on a machine with few cores the scheduler favours the server's
   -- requests over training steps
   local dbf = require("moonhub.registry").db_flag()      -- --db reaches the child too
   local cmd = string.format("exec nice -n 10 %s worker --quiet --parent %d --max-active %d%s >>%s 2>&1 & echo $!",
      q(exe),
      opts.parent or fs.pid(), opts.max_active or 1, dbf and (" --db " .. q(dbf)) or "", q(log))
   local p = io.popen(cmd, "r")
   if not p then return nil, "cannot start a worker" end
   local pid = math.tointeger(tonumber(p:read("l") or ""))
   p:close()
   if not pid then return nil, "cannot start a worker (see " .. log .. ")" end
   return pid
end

-- stop_worker(pid): SIGTERM; a job it was running is found interrupted
-- later and resumes from its last checkpoint on retry
function M.stop_worker(pid)
   if math.tointeger(pid) and fs.pid_alive(pid) then os.execute("kill " .. math.tointeger(pid) .. " 2>/dev/null") end
end

return M
