-- moonhub.server.jobs_routes: the server's routes for training jobs and
-- tracked runs under /api/moonhub/ — create, list, show, cancel, retry, and
-- a job's metrics as server-sent events. Layer: lua/moonhub (uses
-- moonhub.jobs, .jobs.runs, .models, .openai, .http). Handlers only read and
-- write the registry (short queries); training runs in a worker process.
local oa = require "moonhub.openai"
local json = require "dkjson"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local SSE = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }

local function ok_json(v, status) return status or 200, JSON, oa.encode(v) end

-- with_reg(fn) -> fn(reg)'s results; the registry is closed on every path
local function with_reg(fn)
   local reg, err = require("moonhub.models").open()
   if not reg then oa.fail(500, err) end
   local ok, a, b, c = pcall(fn, reg)
   reg:close()
   if not ok then error(a, 0) end
   return a, b, c
end

local function job_id(id)
   local n = math.tointeger(tonumber(tostring(id):match("^%d+$")))
   if not n then oa.fail(404, "no job " .. tostring(id), nil, "not_found") end
   return n
end

-- model_name(v, param): a client names registered models (NAME[:TAG]), never
-- files of the server: a path or a .gguf name is refused before any lookup.
function M.model_name(v, param)
   if type(v) ~= "string" or v == "" then return end
   if v:match("^[/.~]") or v:find("..", 1, true) or v:find("\\", 1, true) or v:match("%.gguf$") then
      oa.fail(400, string.format("'%s' must be a registered model name (NAME[:TAG]), not a path: import the "
         .. "file first with 'moonhub import'", param), param)
   end
end

-- lineage(reg, run) -> {base = {id, ref}, output = {id, ref, adapter}, dataset =
-- "NAME@V[:SPLIT]"}: what a run was trained from and what it produced
local function lineage(reg, r, cfg)
   local function ver(id)
      if not id then return nil end
      local v = reg.db:first("SELECT format FROM versions WHERE id = ?", id)
      return { id = id, ref = reg:version_label(id), adapter = v ~= nil and reg:is_adapter(v) or nil }
   end
   return { base = ver(r.version_id), output = ver(r.output_version_id),
      dataset = cfg and cfg.dataset_ref or r.dataset }
end

local function arrays(t, keys)
   for _, k in ipairs(keys) do t[k] = oa.array(t[k] or {}) end
   return t
end

-- POST /api/moonhub/jobs {model, data, method, steps, ...}: 201 {id, status}
local function create(_, req)
   local body = oa.decode(req.body)
   local t = {}
   for k, v in pairs(body) do t[k] = v end
   M.model_name(t.model, "model")
   if type(t.targets) == "table" then t.targets = { table.unpack(t.targets) } end
   local jobs = require "moonhub.jobs"
   local cfg, err = jobs.config(t)
   if not cfg then oa.fail(400, err, err:match("key '([%w_]+)'") or err:match("^config: ([%w_]+)")) end
   return with_reg(function(reg)
      local id, eerr = jobs.enqueue(reg, cfg)
      if not id then
         local missing = eerr:find("no such file or registered model", 1, true) or eerr:find("no dataset", 1, true)
            or eerr:find("not found", 1, true)
         oa.fail(missing and 404 or 400, eerr, nil, missing and "not_found" or nil)
      end
      return ok_json({ id = id, status = "queued" }, 201)
   end)
end

local function list(_, req)
   return with_reg(function(reg)
      local st = req.args.status
      return ok_json({ jobs = oa.array(require("moonhub.jobs").list(reg,
         { status = type(st) == "string" and st or nil, limit = 200 })) })
   end)
end

local function show(_, _, id)
   id = job_id(id)
   return with_reg(function(reg)
      local j, err = require("moonhub.jobs").get(reg, id)
      if not j then oa.fail(404, err, nil, "not_found") end
      j.repro = j.run.repro and json.decode(j.run.repro) or nil
      j.lineage = lineage(reg, j.run, j.config)
      return ok_json(arrays(j, { "events", "steps", "metrics" }))
   end)
end

local function cancel(_, _, id)
   id = job_id(id)
   return with_reg(function(reg)
      local st, err = require("moonhub.jobs").cancel(reg, id)
      if not st then oa.fail(err:find("no job", 1, true) and 404 or 409, err) end
      return ok_json({ id = id, status = st })
   end)
end

local function retry(_, _, id)
   id = job_id(id)
   return with_reg(function(reg)
      local ok, err = require("moonhub.jobs").retry(reg, id)
      if not ok then oa.fail(err:find("no job", 1, true) and 404 or 409, err) end
      return ok_json({ id = id, status = "queued" })
   end)
end

-- GET /api/moonhub/jobs/{id}/events: `data: {"type": "step", ...}` per
-- step, `{"type": "status", ...}` per transition and `{"type": "metric",
-- "key", "value", "step", "at"}` per named figure (eval loss), from the registry
-- every 0.25 s (the coroutine sleeps on the loop between looks); the stream
-- ends with the job's final status.
local function events(_, req, id)
   id = job_id(id)
   local http = require "moonhub.http"
   local jobs = require "moonhub.jobs"
   -- one registry handle for the stream (no transaction is held across the sleeps)
   local reg, err = require("moonhub.models").open()
   if not reg then oa.fail(500, err) end
   if not reg:run(id) then reg:close(); oa.fail(404, "no job " .. id, nil, "not_found") end
   req:start(200, SSE)
   local step, nev, nmet = 0, 0, 0
   local function poll()
      jobs.reap(reg)
      -- the status before the events: a job that ends between the two reads
      -- is streamed once more rather than ended without its last transition
      local done = jobs.DONE[reg:run(id).status]
      local evs = reg:run_events(id)
      for i = nev + 1, #evs do
         local e = evs[i]
         if not req:write(oa.sse({ type = "status", status = e.status, reason = e.reason, at = e.at })) then
            return true
         end
      end
      nev = #evs
      for _, s in ipairs(reg:steps(id, step)) do
         s.type, s.run_id = "step", nil
         if not req:write(oa.sse(s)) then return true end
         step = s.step
      end
      -- after the steps, so a chart has the step an evaluation belongs to
      local ms = reg:run_metrics(id)
      for i = nmet + 1, #ms do
         local m = ms[i]
         if not req:write(oa.sse({ type = "metric", key = m.key, value = m.value, step = m.step, at = m.at })) then
            return true
         end
      end
      nmet = #ms
      return done
   end
   while true do
      local ok, finished = pcall(poll)
      if not ok then
         req:write(oa.sse({ type = "error", error = tostring(finished) }))
         break
      end
      if finished or req.closed then break end
      http.sleep(0.25)
   end
   reg:close()
   req:finish()
end

local function runs_list()
   return with_reg(function(reg)
      return ok_json({ runs = oa.array(require("moonhub.jobs.runs").list(reg, { limit = 200 })) })
   end)
end

local function runs_show(_, _, id)
   id = job_id(id)
   return with_reg(function(reg)
      local runs = require "moonhub.jobs.runs"
      local s, err = runs.summary(reg, id)
      if not s then oa.fail(404, err, nil, "not_found") end
      local r = reg:run(id)
      s = runs.jsonable(s)
      s.lineage = lineage(reg, r, json.decode(r.config or "{}"))
      s.model, s.dataset, s.created_at, s.finished_at = r.model, r.dataset, r.created_at, r.finished_at
      return ok_json(s)
   end)
end

-- The routes, shaped as moonhub.admin's ROUTES (the server adds the admin middleware).
M.ROUTES = {
   { "POST", "/api/moonhub/jobs", create, json = true, max_body = 65536 },
   { "GET", "/api/moonhub/jobs", list },
   { "GET", "/api/moonhub/jobs/{id}", show },
   { "POST", "/api/moonhub/jobs/{id}/cancel", cancel },
   { "POST", "/api/moonhub/jobs/{id}/retry", retry },
   { "GET", "/api/moonhub/jobs/{id}/events", events },
   { "GET", "/api/moonhub/runs", runs_list },
   { "GET", "/api/moonhub/runs/{id}", runs_show },
}

return M
