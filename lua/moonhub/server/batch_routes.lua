-- moonhub.server.batch_routes: OpenAI's Files and Batch routes — /v1/files
-- (multipart upload, list, retrieve, content, delete) and /v1/batches
-- (create, list, retrieve, cancel). Handlers only touch the file store and
-- short registry queries; the batches run in the server's batch loop
-- (moonhub.batch.runner). Layer: lua/moonhub (uses moonhub.batch, .openai).
local oa = require "moonhub.openai"
local batch = require "moonhub.batch"
local files = require "moonhub.batch.files"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }

local function ok_json(v, status) return status or 200, JSON, oa.encode(v) end

local function with_reg(fn)
   local reg, err = require("moonhub.registry").open()
   if not reg then oa.fail(500, err) end
   local ok, a, b, c = pcall(fn, reg)
   reg:close()
   if not ok then error(a, 0) end
   return a, b, c
end

local function limit_arg(req, default, most)
   local v = req.args.limit
   if v == nil then return default end
   local n = math.tointeger(tonumber(v))
   if not n or n < 1 or n > most then
      oa.fail(400, string.format("'limit' must be an integer in 1..%d", most), "limit")
   end
   return n
end

local function file_or_404(id)
   local f = files.get(id)
   if not f then oa.fail(404, "No such File object: " .. tostring(id):sub(1, 64), "id", "not_found") end
   return f
end

-- ===== files =====

-- POST /v1/files (multipart/form-data: file, purpose)
local function upload_file(_, req)
   local parts, err = files.multipart(req.body or "", req.headers["content-type"])
   if not parts then oa.fail(400, err, "file") end
   if not parts.file then oa.fail(400, "'file' is required (a multipart field with the file)", "file") end
   if not parts.purpose then oa.fail(400, "'purpose' is required (\"batch\" for a batch input)", "purpose") end
   local f, ferr = files.add(parts.file.value, { filename = parts.file.filename, purpose = parts.purpose.value })
   if not f then oa.fail(400, ferr, "purpose") end
   return ok_json(f)
end

local function list_files(_, req)
   local order = req.args.order or "desc"
   if order ~= "asc" and order ~= "desc" then oa.fail(400, "'order' must be asc or desc", "order") end
   local rows, more = files.list({ purpose = req.args.purpose, after = req.args.after,
      limit = limit_arg(req, 10000, 10000), order = order })
   return ok_json({ object = "list", data = oa.array(rows), has_more = more,
      first_id = rows[1] and rows[1].id or oa.null, last_id = rows[#rows] and rows[#rows].id or oa.null })
end

local function get_file(_, _, id) return ok_json(file_or_404(id)) end

local function file_content(_, _, id)
   file_or_404(id)
   local text, err = files.content(id)
   if not text then oa.fail(404, err, "id", "not_found") end
   return 200, { ["Content-Type"] = "application/jsonl" }, text
end

local function delete_file(_, _, id)
   file_or_404(id)
   local ok, err = files.delete(id)
   if not ok then oa.fail(500, err) end
   return ok_json({ id = id, object = "file", deleted = true })
end

-- ===== batches =====

-- POST /v1/batches {input_file_id, endpoint, completion_window, metadata}
local function create(_, req)
   local b = oa.decode(req.body)
   if type(b.input_file_id) ~= "string" then oa.fail(400, "'input_file_id' is required", "input_file_id") end
   if type(b.endpoint) ~= "string" then oa.fail(400, "'endpoint' is required", "endpoint") end
   local meta = b.metadata
   if not oa.is_null(meta) then
      if not oa.is_object(meta) then oa.wrong("metadata", "an object of strings", meta) end
      local n = 0
      for k, v in pairs(meta) do
         n = n + 1
         if type(v) ~= "string" or #k > 64 or #v > 512 then
            oa.fail(400, "'metadata' holds string values (keys up to 64, values up to 512 characters)", "metadata")
         end
      end
      if n > 16 then oa.fail(400, "'metadata' holds at most 16 pairs", "metadata") end
   else
      meta = nil
   end
   return with_reg(function(reg)
      local id, err, status, param = batch.create(reg, { input_file_id = b.input_file_id, endpoint = b.endpoint,
         completion_window = oa.opt_string(b, "completion_window", "24h"), metadata = meta })
      if not id then oa.fail(status or 400, err, param) end
      return ok_json(batch.object(reg, reg:run(id)))
   end)
end

local function list_batches(_, req)
   return with_reg(function(reg)
      local rows, more = batch.list(reg, { after = req.args.after, limit = limit_arg(req, 20, 100) })
      local data = oa.array()
      for i, r in ipairs(rows) do data[i] = batch.object(reg, r) end
      return ok_json({ object = "list", data = data, has_more = more,
         first_id = data[1] and data[1].id or oa.null, last_id = data[#data] and data[#data].id or oa.null })
   end)
end

local function get_batch(_, _, id)
   return with_reg(function(reg)
      require("moonhub.jobs").reap(reg)
      local row, err = batch.get(reg, id)
      if not row then oa.fail(404, err, "batch_id", "not_found") end
      return ok_json(batch.object(reg, row))
   end)
end

local function cancel_batch(_, _, id)
   return with_reg(function(reg)
      local row, err, status = batch.cancel(reg, id)
      if not row then oa.fail(status or 400, err, "batch_id", status == 404 and "not_found" or nil) end
      return ok_json(batch.object(reg, row))
   end)
end

-- routes(api, upload) -> the route specs; api: the /v1 middleware list,
-- upload: the same without the JSON content-type check
function M.routes(api, upload)
   local big = 200 * 1024 * 1024       -- OpenAI takes batch inputs up to 200 MB; serve's --max-body-mb caps it too
   return {
      { "POST", "/v1/files", upload_file, middleware = upload, max_body = big },
      { "GET", "/v1/files", list_files, middleware = api },
      { "GET", "/v1/files/{id}/content", file_content, middleware = api },
      { "GET", "/v1/files/{id}", get_file, middleware = api },
      { "DELETE", "/v1/files/{id}", delete_file, middleware = api },
      { "POST", "/v1/batches", create, middleware = api, json = true },
      { "GET", "/v1/batches", list_batches, middleware = api },
      { "GET", "/v1/batches/{id}", get_batch, middleware = api },
      { "POST", "/v1/batches/{id}/cancel", cancel_batch, middleware = api },
   }
end

return M
