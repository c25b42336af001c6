-- moonhub.admin: the server's admin routes under /api/moonhub/ (registry list,
-- show, rm, pull with progress as server-sent events; loaded models; stored
-- conversations), /v1/models over the registry, and the run-state file
-- `moonhub ps` reads. Layer: lua/moonhub (uses moonhub.openai, .models,
-- .registry, .history, .pool through the app). See docs/registry.md.
local fs = require "moonhub.fs"
local oa = require "moonhub.openai"
local models = require "moonhub.models"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local SSE = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }

local function ok_json(v) return 200, JSON, oa.encode(v) end

local function unescape(s)
   return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function registry_rows()
   local home = require("moonhub").home()
   if not fs.stat(home .. "/moonhub.db") then return {} end
   local reg, err = models.open()
   if not reg then oa.fail(500, err) end
   local rows = reg:list()
   reg:close()
   return rows
end

-- ===== /v1/models =====

-- The registry's name:tag entries (and the served default model), OpenAI-shaped.
function M.v1_models(app, one)
   local data, seen = oa.array(), {}
   local function add(id, created)
      if seen[id] then return end
      seen[id] = true
      data[#data + 1] = { id = id, object = "model", created = created or os.time(), owned_by = "moonhub" }
   end
   if app.default_ref then add(app.name, app.created) end
   local latest = {}      -- "name" and "name:latest" -> the newest version's "name:tag"
   for _, r in ipairs(registry_rows()) do
      add(r.name .. ":" .. r.tag, r.created_at)
      if r.latest then latest[r.name], latest[r.name .. ":latest"] = r.name .. ":" .. r.tag, r.name .. ":" .. r.tag end
   end
   if one then
      one = unescape(one)
      for _, m in ipairs(data) do
         if m.id == one or m.id == one .. ":latest" or m.id == latest[one] then return ok_json(m) end
      end
      oa.fail(404, "model '" .. one .. "' not found", "model", "model_not_found")
   end
   return ok_json({ object = "list", data = data })
end

-- ===== run state (moonhub ps) =====

-- The server's state: {pid, host, port, started, models = pool:state()}
function M.state(app)
   return { pid = fs.pid(), host = app.host, port = app.port, started = app.created,
      models = setmetatable(app.pool and app.pool:state() or {}, { __jsontype = "array" }) }
end

-- state_file(port) -> $MOONHUB_HOME/run/server-PORT.json
function M.state_file(port)
   return string.format("%s/run/server-%d.json", require("moonhub").home(), port)
end

-- write_state(app): the state file, replaced atomically.
function M.write_state(app)
   if not app.port then return end
   local path = M.state_file(app.port)
   fs.mkdirs(fs.dirname(path))
   fs.write(path, oa.encode(M.state(app)) .. "\n")
end

-- a live process that is not a zombie
local function alive(pid)
   local stat = math.tointeger(pid) and fs.read("/proc/" .. pid .. "/stat")
   return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- servers() -> the states of running servers, by port. Files left by
-- servers that died without cleaning up are removed.
function M.servers()
   local dir = require("moonhub").home() .. "/run"
   local json = require "dkjson"
   local out = {}
   for _, name in ipairs(require("moonhub.core.host").listdir(dir) or {}) do
      if name:match("^server%-%d+%.json$") then
         local st = json.decode(fs.read(dir .. "/" .. name) or "")
         if type(st) == "table" and alive(st.pid) then out[#out + 1] = st
         elseif type(st) == "table" then os.remove(dir .. "/" .. name) end
      end
   end
   table.sort(out, function(x, y) return (x.port or 0) < (y.port or 0) end)
   return out
end

-- ===== /api/moonhub/models =====

local function show(ref)
   local reg, err = models.open()
   if not reg then oa.fail(500, err) end
   local ok, row = pcall(reg.resolve, reg, ref)
   reg:close()
   if not ok or not row then oa.fail(404, "model '" .. ref .. "' not found", "model", "model_not_found") end
   local rec = models.describe(row)
   rec.path, rec.format, rec.quant, rec.params = row.path, row.format, row.quant, row.params
   rec.arch, rec.ctx = row.arch, row.ctx
   rec.tags = setmetatable(rec.tags, { __jsontype = "array" })
   return ok_json(rec)
end

-- remove_model(app, ref) -> the removal {removed, alias, versions,
-- deleted, kept}: a loaded model is drained and unloaded first (also
-- Ollama's DELETE /api/delete).
function M.remove_model(app, ref)
   local loaded = app.pool and app.pool:find(ref)
   if not loaded and app.pool then
      local _, key = app.pool:resolve(ref)
      loaded = key and app.pool.entries[key]
   end
   if loaded then          -- a busy model finishes its requests first (new ones get 503)
      local ok, err = app.pool:unload_idle(loaded, "removed", 60)
      if not ok then oa.fail(409, err) end
   end
   local out, err = models.remove(ref)
   if not out then
      -- a refused name raises from the registry: its message, not our source position
      local msg = tostring(err):gsub("^[^\n]-%.lua:%d+: ", "")
      local status = msg:find("no model named", 1, true) and 404 or 400
      oa.fail(status, msg, "model", status == 404 and "model_not_found" or nil)
   end
   local versions = oa.array()
   for i, v in ipairs(out.versions) do versions[i] = { id = v.id, path = v.path } end
   return { removed = ref, alias = out.alias, versions = versions,
      deleted = oa.array(out.deleted), kept = oa.array(out.kept) }
end

-- POST /api/moonhub/pull {"model": "ORG/NAME[:QUANT]", "name": "..."}: progress
-- events {"status", "file", "completed", "total"} then {"status":
-- "success", "model": "name:tag"} or {"error": "..."}. The download and
-- its sha256 run on a worker thread (moonhub.hub): this coroutine waits on
-- the job's channel, the loop serves everything else meanwhile. A client
-- that goes away does not stop the pull (as Ollama's).
local function pull(_, req)
   local body = oa.decode(req.body)
   local ref = body.model or body.name
   if type(ref) ~= "string" or ref == "" then
      oa.fail(400, "'model' must be a Hugging Face reference ORG/NAME[:QUANT]", "model")
   end
   if body.name ~= nil and body.model ~= nil and type(body.name) ~= "string" then
      oa.fail(400, "'name' must be a string", "name")
   end
   req:start(200, SSE)
   local function event(v) req:write(oa.sse(v)) end
   event({ status = "pulling " .. ref })
   local row, err = models.pull(ref, {
      name = body.model and body.name or nil,
      log = function(msg) event({ status = msg }) end,
      progress = function(label)
         local last = -1
         return function(done, total, final)
            local pct = total and total > 0 and math.floor(done * 100 / total) or nil
            if final or (pct and pct > last) then
               last = pct or last
               event({ status = "downloading", file = label, completed = done, total = total })
            end
         end
      end,
   })
   if row then
      event({ status = "success", model = row.model .. ":" .. row.tag, path = row.path })
   else
      event({ error = tostring(err) })
   end
   req:finish()
end

-- ===== /api/moonhub/history =====

local function with_history(fn)
   local h, err = require("moonhub.history").open()
   if not h then oa.fail(500, err) end
   local ok, a, b, c = pcall(fn, h)
   h:close()
   if not ok then error(a, 0) end
   return a, b, c
end

-- GET /api/moonhub/history[?q=TEXT]: the latest conversations, or search hits
local function history_list(_, req)
   local q = req.args.q
   return with_history(function(h)
      if type(q) == "string" and q:match("%S") then
         return ok_json({ results = oa.array(h:search(q, { limit = 50 })) })
      end
      return ok_json({ conversations = oa.array(h:list({ limit = 100 })) })
   end)
end

local function history_id(req, rest)
   local id = math.tointeger(tonumber(rest:match("^%d+$")))
   if not id then oa.fail(404, "no route for " .. req.path, nil, "not_found") end
   return id
end

-- GET /api/moonhub/history/ID: one conversation with its messages
local function history_get(_, req, rest)
   local id = history_id(req, rest)
   return with_history(function(h)
      local c, msgs = h:get(id)
      if not c then oa.fail(404, msgs, nil, "not_found") end
      c.messages = oa.array(msgs)
      return ok_json(c)
   end)
end

-- DELETE /api/moonhub/history/ID
local function history_delete(_, req, rest)
   local id = history_id(req, rest)
   return with_history(function(h)
      local ok, err = h:remove(id)
      if not ok then oa.fail(404, err, nil, "not_found") end
      return ok_json({ removed = id })
   end)
end

-- GET /api/moonhub/history/ID/export?format=md|json: the conversation as a
-- file to save (Content-Disposition: attachment): Markdown, or the JSON
-- document of `moonhub history export` (one object: the fine-tuning shape)
local EXPORTS = { md = { "md", "text/markdown; charset=utf-8" }, json = { "jsonl", "application/json" } }
local function history_export(_, req, rest)
   local id = history_id(req, rest)
   local fmt = req.args.format or "md"
   local e = EXPORTS[fmt]
   if not e then oa.fail(400, "format must be md or json, got '" .. tostring(fmt):sub(1, 40) .. "'", "format") end
   return with_history(function(h)
      local text, err = h:export(id, e[1])
      if not text then oa.fail(404, err, nil, "not_found") end
      return 200, { ["Content-Type"] = e[2],
         ["Content-Disposition"] = string.format('attachment; filename="conversation-%d.%s"', id, fmt) }, text
   end)
end

local function list_models(app)
   local rows = registry_rows()
   for _, r in ipairs(rows) do r.loaded = app.pool and app.pool:find(r.name .. ":" .. r.tag) ~= nil or nil end
   return ok_json({ models = oa.array(rows) })
end

-- ===== routes =====

-- The admin routes for the server's route table (moonhub.server adds the
-- middleware: auth, host and origin checks, the log): {method, pattern,
-- handler(app, req, captures...), json = takes a JSON body, max_body =}.
-- Their prefix, /api/moonhub/, leaves /api/* to Ollama's routes.
M.PREFIX = "/api/moonhub"
M.ROUTES = {
   { "GET", M.PREFIX .. "/ps", function(app) return ok_json(M.state(app)) end },
   { "GET", M.PREFIX .. "/models", list_models },
   { "POST", M.PREFIX .. "/pull", pull, json = true, max_body = 65536 },
   { "GET", M.PREFIX .. "/models/{*name}", function(_, _, name) return show(name) end },
   { "DELETE", M.PREFIX .. "/models/{*name}", function(app, _, name) return ok_json(M.remove_model(app, name)) end },
   { "GET", M.PREFIX .. "/history", history_list },
   { "GET", M.PREFIX .. "/history/{id}", history_get },
   { "DELETE", M.PREFIX .. "/history/{id}", history_delete },
   { "GET", M.PREFIX .. "/history/{id}/export", history_export },
}

return M
