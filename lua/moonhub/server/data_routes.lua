-- moonhub.server.data_routes: the server's dataset routes under
-- /api/moonhub/datasets — list, show, import by upload (the body is the
-- JSONL or CSV file), validate, PII report/redact/drop, split, preview,
-- remove. Layer: lua/moonhub (uses moonhub.data, moonhub.openai, moonhub.http).
local data = require "moonhub.data"
local oa = require "moonhub.openai"

local M = {}

M.PREFIX = "/api/moonhub/datasets"
M.MAX_UPLOAD = 16 * 1024 * 1024

local JSON = { ["Content-Type"] = "application/json" }

local function ok_json(v, status) return status or 200, JSON, oa.encode(v) end

-- a dataset error: unknown names are 404, the rest 400
local function refuse(msg)
   msg = tostring(msg)
   if msg:find("^no dataset named") or msg:find("has no version") or msg:find("has no %a+ split") then
      oa.fail(404, msg, "dataset", "dataset_not_found")
   end
   oa.fail(400, msg, "dataset")
end

-- Dataset names are letters, digits and . _ - (data.parse_ref); a name
-- from the URL is checked here, before anything touches the datasets
-- folder, so "../x" or "%2Fetc" never reaches a path (400, not 404).
local NAME_PAT = "^[%w][%w%._%-]*$"
local function check_ref(ref, param)
   local name = tostring(ref):match("^([^@:]*)")
   if not name:match(NAME_PAT) or #name > 200 then
      oa.fail(400, string.format("dataset name '%s' must be letters, digits and . _ - (at most 200), starting "
         .. "with a letter or digit", tostring(ref):sub(1, 80)), param or "dataset", "invalid_dataset_name")
   end
end

local function version_json(ds)
   return { id = ds.id, name = ds.name, version = ds.version, split = ds.split, ref = ds:ref(), kind = ds.kind,
      rows = ds.rows, size = ds.size, sha256 = ds.sha256, parent_id = ds.parent_id, op = ds.op,
      params = ds.params, stats = ds.stats, created_at = ds.created_at }
end

local function open(ref)
   local ds, err = data.open(nil, ref)
   if not ds then refuse(err) end
   return ds
end

local function arg_int(req, name, default, lo)
   local v = req.args[name]
   if v == nil then return default end
   local n = math.tointeger(tonumber(v))
   if not n or n < lo then oa.fail(400, string.format("'%s' must be an integer >= %d", name, lo), name) end
   return n
end

-- GET /api/moonhub/datasets: every dataset with its newest version
local function list()
   local rows, err = data.list()
   if not rows then oa.fail(500, err) end
   for _, r in ipairs(rows) do r.splits = oa.array(r.splits) end
   return ok_json({ datasets = oa.array(rows) })
end

-- GET /api/moonhub/datasets/REF: the version REF names, and every version
-- and split of its dataset
local function show(_, _, ref)
   local ds = open(ref)
   local versions = oa.array()
   data.with_reg(nil, function(reg)
      for _, v in ipairs(reg:dataset_versions(ds.name)) do
         versions[#versions + 1] = version_json(assert(data.by_id(reg, v.id)))
      end
   end)
   local out = version_json(ds)
   out.versions = versions
   return ok_json(out)
end

local FORMATS = { ["text/csv"] = "csv", ["application/jsonl"] = "jsonl", ["application/x-ndjson"] = "jsonl",
   ["application/json"] = "jsonl", ["application/jsonlines"] = "jsonl" }

-- POST /api/moonhub/datasets?name=N[&map=prompt=q,completion=a][&skip_invalid=1]
-- body: the file (Content-Type text/csv or application/jsonl). 201 with
-- the version; 400 with the problems by row when rows are bad.
local function import(_, req)
   local name = req.args.name
   if type(name) ~= "string" or name == "" then oa.fail(400, "give the dataset a name: ?name=NAME", "name") end
   check_ref(name, "name")
   if name:find("[@:]") then oa.fail(400, "a new dataset's name has no @version or :split", "name") end
   local ct = (req.headers["content-type"] or ""):lower():match("^%s*([^;%s]+)")
   local format = ct and FORMATS[ct]
   if not format then
      oa.fail(415, "send the file as 'Content-Type: text/csv' or 'application/jsonl' (got "
         .. (ct and ("'" .. ct:sub(1, 60) .. "'") or "none") .. ")", nil, "unsupported_media_type")
   end
   if (req.body or "") == "" then oa.fail(400, "the request body is empty; send the dataset file") end
   local http = require("moonhub").http
   local ds, info, problems = data.import(name .. "." .. format, { name = name, text = req.body, format = format,
      map = req.args.map, skip_invalid = req.args.skip_invalid == "1" or req.args.skip_invalid == "true",
      -- a long upload lets the loop serve other requests every few thousand rows
      progress = function(done) if done % 2000 == 0 then http.sleep(0) end end })
   if not ds then
      local first = oa.array()
      for i = 1, math.min(#(problems or {}), 100) do first[i] = problems[i] end
      return 400, JSON, oa.encode({ error = { message = tostring(info), type = "invalid_request_error",
         param = "body", code = "invalid_dataset" }, problems = first })
   end
   local out = version_json(ds)
   out.existing, out.skipped = ds.existing or false, info.skipped
   return ok_json(out, ds.existing and 200 or 201)
end

-- GET /api/moonhub/datasets/REF/validate[?model=M&ctx=N]
local function validate(_, req, ref)
   require("moonhub.server.jobs_routes").model_name(req.args.model, "model")
   local res, err = data.validate(nil, ref, { model = req.args.model, ctx = arg_int(req, "ctx", nil, 1),
      file = false })                         -- a stored dataset only: never a file of the server's
   if not res then refuse(err) end
   return ok_json({ dataset = res.source, rows = res.total, ctx = res.ctx, problems = oa.array(res.problems) })
end

local function body_of(req)
   if (req.body or "") == "" then return {} end
   return oa.decode(req.body)
end

-- POST /api/moonhub/datasets/REF/pii {"mode": "report"|"redact"|"drop", "kinds": ["email", ...]}
local function pii(_, req, ref)
   local body = body_of(req)
   local kinds
   if body.kinds ~= nil then
      if not oa.is_array(body.kinds) then oa.wrong("kinds", "an array of kind names", body.kinds) end
      kinds = {}
      for _, k in ipairs(body.kinds) do kinds[tostring(k)] = true end
   end
   local res, err = data.pii(nil, ref, { mode = oa.opt_string(body, "mode") or "report", kinds = kinds })
   if not res then refuse(err) end
   return ok_json({ dataset = res.source:ref(), rows = res.total, rows_with_pii = res.rows,
      counts = oa.object(res.counts), version = res.ds and version_json(res.ds) or nil })
end

-- POST /api/moonhub/datasets/REF/split {"train", "val", "test", "seed", "stratify"}
local function split(_, req, ref)
   local body = body_of(req)
   local function frac(k, d)
      local v = body[k]
      if v == nil then return d end
      if type(v) ~= "number" then oa.wrong(k, "a number between 0 and 1", v) end
      return v
   end
   local seed = body.seed
   if seed ~= nil and math.type(seed) ~= "integer" then oa.wrong("seed", "an integer", seed) end
   local res, err = data.split(nil, ref, { train = frac("train", 0.8), val = frac("val", 0.1),
      test = frac("test", 0.1), seed = seed, stratify = oa.opt_string(body, "stratify") })
   if not res then refuse(err) end
   local out = { dataset = res.source:ref() }
   for _, s in ipairs({ "train", "val", "test" }) do out[s] = res[s] and version_json(res[s]) or nil end
   return ok_json(out)
end

-- GET /api/moonhub/datasets/REF/preview[?n=5]
local function preview(_, req, ref)
   local ds, rows = data.preview(nil, ref, arg_int(req, "n", 5, 1))
   if not ds then refuse(rows) end
   return ok_json({ dataset = ds:ref(), kind = ds.kind, rows = oa.array(rows) })
end

-- DELETE /api/moonhub/datasets/REF (NAME or NAME@VERSION)
local function remove(_, _, ref)
   local res, err = data.remove(nil, ref)
   if not res then refuse(err) end
   local gone = oa.array()
   for i, v in ipairs(res.versions) do gone[i] = { id = v.id, version = v.version, split = v.split } end
   return ok_json({ removed = ref, versions = gone, deleted = oa.array(res.deleted) })
end

-- routes(admin, upload) -> the route list for the server's table: admin
-- routes take JSON bodies; the upload route takes the file itself, so its
-- middleware (upload) has no JSON content-type check.
function M.routes(admin, upload)
   local P = M.PREFIX
   -- every route with a {ref} checks the name first
   local function r(h) return function(app, req, ref) check_ref(ref); return h(app, req, ref) end end
   return {
      { "GET", P, list, middleware = admin },
      { "POST", P, import, middleware = upload, max_body = M.MAX_UPLOAD },
      { "GET", P .. "/{ref}", r(show), middleware = admin },
      { "DELETE", P .. "/{ref}", r(remove), middleware = admin },
      { "GET", P .. "/{ref}/validate", r(validate), middleware = admin },
      { "POST", P .. "/{ref}/pii", r(pii), middleware = admin, json = true, max_body = 65536 },
      { "POST", P .. "/{ref}/split", r(split), middleware = admin, json = true, max_body = 65536 },
      { "GET", P .. "/{ref}/preview", r(preview), middleware = admin },
   }
end

return M
