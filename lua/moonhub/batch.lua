-- moonhub.batch: OpenAI's Batch API over the job queue — a batch is a row
-- of the registry's runs table (kind "batch") whose input is a JSONL file
-- of the file store; this module checks inputs, creates, lists, cancels
-- and describes batches in OpenAI's shapes. Running them: moonhub.batch.runner.
-- Layer: lua/moonhub (uses moonhub.registry, .jobs, .batch.files, .fs). See docs/batch.md.
local json = require "dkjson"
local fs = require "moonhub.fs"
local files = require "moonhub.batch.files"

local M = {}

M.files = files                     -- the file store (/v1/files)

M.ENDPOINTS = { ["/v1/chat/completions"] = true, ["/v1/completions"] = true, ["/v1/embeddings"] = true }
M.MAX_LINES = 50000                 -- OpenAI's limit per batch
M.WINDOW_S = 24 * 3600              -- completion_window "24h", the one OpenAI accepts

local function set(...)
   local s = {}
   for _, k in ipairs({ ... }) do s[k] = true end
   return s
end

-- ===== ids =====

function M.public_id(run_id) return "batch_" .. math.tointeger(run_id) end

-- run_id("batch_12") -> 12 | nil
function M.run_id(id)
   local n = type(id) == "string" and id:match("^batch_(%d+)$")
   return n and #n < 16 and math.tointeger(tonumber(n)) or nil
end

-- dir(run_id) -> the folder its output and error lines are written to while it runs
function M.dir(run_id) return require("moonhub.jobs").run_dir(run_id) end

-- ===== input =====

-- parse_input(text, endpoint) -> requests {{line, custom_id, body}} | nil, errors
-- ({{code, message, line, param}}: every bad line, up to 20). As OpenAI
-- checks a batch's file: one JSON object per line with a unique custom_id,
-- method POST, url the batch's endpoint, body an object.
function M.parse_input(text, endpoint)
   local out, errors, seen = {}, {}, {}
   local function bad(n, code, msg, param)
      if #errors < 20 then errors[#errors + 1] = { code = code, message = msg, line = n, param = param } end
   end
   local n = 0
   for line in text:gmatch("([^\n]*)\n?") do
      n = n + 1
      line = line:gsub("\r$", "")
      if line:match("^%s*$") then goto continue end
      do
         local ok, obj = pcall(json.decode, line)
         if not ok or type(obj) ~= "table" then
            bad(n, "invalid_json_line", string.format("line %d is not a JSON object", n))
         elseif type(obj.custom_id) ~= "string" or obj.custom_id == "" then
            bad(n, "missing_required_parameter", string.format("line %d has no custom_id (a string)", n), "custom_id")
         elseif seen[obj.custom_id] then
            bad(n, "duplicate_custom_id", string.format("line %d repeats custom_id %q (line %d has it)", n,
               obj.custom_id:sub(1, 64), seen[obj.custom_id]), "custom_id")
         elseif obj.method ~= "POST" then
            bad(n, "invalid_method", string.format("line %d: method must be POST", n), "method")
         elseif obj.url ~= endpoint then
            bad(n, "mismatched_endpoint", string.format("line %d: url %q is not the batch's endpoint %s", n,
               tostring(obj.url):sub(1, 64), endpoint), "url")
         elseif type(obj.body) ~= "table" or (next(obj.body) == nil and getmetatable(obj.body)
               and getmetatable(obj.body).__jsontype == "array") then
            bad(n, "invalid_request", string.format("line %d: body must be an object", n), "body")
         else
            seen[obj.custom_id] = n
            out[#out + 1] = { line = n, custom_id = obj.custom_id, body = obj.body }
         end
      end
      ::continue::
   end
   if #out == 0 and #errors == 0 then bad(1, "empty_file", "the input file has no requests") end
   if #out + #errors > M.MAX_LINES then
      bad(n, "too_many_requests", string.format("a batch holds at most %d requests", M.MAX_LINES))
   end
   if #errors > 0 then return nil, errors end
   return out
end

-- ===== create =====

-- create(reg, {input_file_id, endpoint, completion_window = "24h", metadata =,
--   owner = "server" | "cli", model = override, pid = claim at once}) -> run id | nil, msg, status.
-- A file that is not a valid batch input still makes a batch: it is
-- failed at once with the errors by line (as OpenAI's validation does).
function M.create(reg, spec)
   if not M.ENDPOINTS[spec.endpoint] then
      return nil, string.format("endpoint %q is not one of /v1/chat/completions, /v1/completions, /v1/embeddings",
         tostring(spec.endpoint)), 400, "endpoint"
   end
   local window = spec.completion_window or "24h"
   if window ~= "24h" then return nil, "completion_window must be \"24h\"", 400, "completion_window" end
   local f = files.get(spec.input_file_id)
   if not f then return nil, "no such file: " .. tostring(spec.input_file_id), 404, "input_file_id" end
   if f.purpose ~= "batch" then
      return nil, string.format("file %s has purpose %q; a batch input needs purpose \"batch\"", f.id, f.purpose),
         400, "input_file_id"
   end
   local text = assert(files.content(f.id))
   local reqs, errors = M.parse_input(text, spec.endpoint)
   local cfg = { endpoint = spec.endpoint, input_file_id = f.id, completion_window = window,
      metadata = spec.metadata, owner = spec.owner or "server", model = spec.model,
      total = reqs and #reqs or 0, errors = errors }
   return reg.db:transaction(function()
      local id = reg:add_run({ kind = "batch", model = spec.model, config = json.encode(cfg),
         total_steps = cfg.total, reason = "batch created from " .. f.id })
      local dir = M.dir(id)
      reg:update_run(id, { artifacts = dir, step = 0 })
      if errors then
         reg:transition(id, set("queued"), "failed", string.format("%d invalid line(s) in %s", #errors, f.id),
            { error = errors[1].message })
      elseif spec.pid then                  -- the CLI runs it itself: no server may take it
         reg:transition(id, set("queued"), "running", "run by moonhub batch " .. spec.pid,
            { worker_pid = spec.pid, heartbeat_at = os.time() })
      end
      return id
   end)
end

-- ===== reading =====

local STATUS = { queued = "validating", running = "in_progress", interrupted = "in_progress",
   succeeded = "completed", failed = "failed", cancelled = "cancelled" }

local function config(row)
   local cfg = row.config and json.decode(row.config)
   return type(cfg) == "table" and cfg or {}
end
M.config = config

local function counts(row)
   local m = row.metrics and json.decode(row.metrics)
   m = type(m) == "table" and m or {}
   return { total = row.total_steps or 0, completed = m.completed or 0, failed = m.failed or 0 }
end

local function null_or(v) return v == nil and json.null or v end

-- object(reg, row) -> the batch as OpenAI's Batch object
function M.object(reg, row)
   local cfg, c = config(row), counts(row)
   local status = STATUS[row.status] or row.status
   if row.status == "running" then
      if row.cancel_requested == 1 then status = "cancelling"
      elseif c.completed + c.failed >= c.total then status = "finalizing" end
   end
   local at = {}
   for _, e in ipairs(reg:run_events(row.id)) do
      if e.status == "running" and not at.in_progress then at.in_progress = e.at end
      at[e.status] = e.at
   end
   local errors = json.null
   if cfg.errors then
      local data = setmetatable({}, { __jsontype = "array" })
      for i, e in ipairs(cfg.errors) do data[i] = { code = e.code, message = e.message, line = e.line,
         param = null_or(e.param) } end
      errors = { object = "list", data = data }
   end
   local meta = cfg.metadata
   if type(meta) ~= "table" then meta = json.null end
   return { id = M.public_id(row.id), object = "batch", endpoint = cfg.endpoint, errors = errors,
      input_file_id = cfg.input_file_id, completion_window = cfg.completion_window or "24h", status = status,
      output_file_id = null_or(cfg.output_file_id), error_file_id = null_or(cfg.error_file_id),
      created_at = row.created_at, in_progress_at = null_or(at.in_progress),
      expires_at = row.created_at + M.WINDOW_S, finalizing_at = null_or(cfg.finalizing_at),
      completed_at = null_or(at.succeeded), failed_at = null_or(at.failed), expired_at = json.null,
      cancelling_at = null_or(cfg.cancelling_at), cancelled_at = null_or(at.cancelled),
      request_counts = c, metadata = meta }
end

-- get(reg, id) -> row | nil, msg (id: "batch_N")
function M.get(reg, id)
   local n = M.run_id(id)
   local row = n and reg:run(n)
   if not row or row.kind ~= "batch" then return nil, "no such batch: " .. tostring(id) end
   return row
end

-- list(reg, {after = "batch_N", limit = 20}) -> rows (newest first), has_more
function M.list(reg, opts)
   opts = opts or {}
   require("moonhub.jobs").reap(reg)
   local after = opts.after and M.run_id(opts.after) or math.maxinteger
   local limit = opts.limit or 20
   local rows = reg.db:query("SELECT * FROM runs WHERE kind = 'batch' AND id < ? ORDER BY id DESC LIMIT ?", after,
      limit + 1)
   local more = #rows > limit
   rows[limit + 1] = nil
   return rows, more
end

-- ===== finishing =====

-- The output and error lines written so far become files of the store
-- (purpose batch_output); their ids go into the batch's config.
local function publish(row)
   local cfg = config(row)
   local dir = row.artifacts or M.dir(row.id)
   for _, k in ipairs({ { "output.jsonl", "output_file_id" }, { "errors.jsonl", "error_file_id" } }) do
      local text = fs.read(dir .. "/" .. k[1])
      if text and text ~= "" and not cfg[k[2]] then
         local f, err = files.add(text, { purpose = "batch_output",
            filename = string.format("%s_%s", M.public_id(row.id), k[1]) })
         if not f then return nil, err end
         cfg[k[2]] = f.id
      end
   end
   cfg.finalizing_at = cfg.finalizing_at or os.time()
   return cfg
end

-- finish(reg, row, to, reason [, from]) -> true | nil, msg: a running (or,
-- for a cancel, queued or interrupted: from) batch ends: its lines are
-- published as files, the state moves, the folder is archived.
function M.finish(reg, row, to, reason, from)
   row = reg:run(row.id) or row                   -- the config as it is now (a cancel may have changed it)
   local cfg, err = publish(row)
   if not cfg then
      to, reason = "failed", "cannot store the output: " .. tostring(err)
      cfg = config(row)
   end
   local ok, terr = reg:transition(row.id, from or set("running"), to, reason,
      { config = json.encode(cfg), error = to == "failed" and reason or nil,
        worker_pid = require("moonhub.db").null })
   if not ok then return nil, terr end
   require("moonhub.jobs").archive(reg, row.id)
   return true
end

-- cancel(reg, id) -> row | nil, msg, status. A batch not running ends
-- cancelled at once (with the lines it finished, if it ran before); a
-- running one stops after its current request ("cancelling").
function M.cancel(reg, id)
   require("moonhub.jobs").reap(reg)
   local row, err = M.get(reg, id)
   if not row then return nil, err, 404 end
   -- not running: cancelled now, unless a batch loop took it meanwhile (then as running)
   if (row.status == "queued" or row.status == "interrupted")
         and M.finish(reg, row, "cancelled", "cancelled by the user", set("queued", "interrupted")) then
      return reg:run(row.id)
   end
   row = reg:run(row.id)
   if row.status == "running" then
      local cfg = config(row)
      cfg.cancelling_at = cfg.cancelling_at or os.time()
      reg:update_run(row.id, { cancel_requested = 1, config = json.encode(cfg) })
   elseif row.status ~= "cancelled" then
      return nil, string.format("batch %s is already %s", id, STATUS[row.status] or row.status), 409
   end
   return reg:run(row.id)
end

return M
