-- moonhub.batch.files: the file store behind OpenAI's /v1/files — uploads
-- (batch inputs) and the output and error files of batches, under
-- $MOONHUB_HOME/files as ID (the bytes) + ID.json (the file object).
-- Layer: lua/moonhub (uses moonhub.fs, dkjson). Ids are checked against
-- one pattern before any path is built from them: no traversal.
local fs = require "moonhub.fs"
local json = require "dkjson"

local M = {}

M.PURPOSES = { batch = true, batch_output = true, ["fine-tune"] = true, assistants = true, user_data = true,
   evals = true }

local function home() return require("moonhub").home() end
function M.dir() return home() .. "/files" end

-- valid_id(id) -> bool: "file-" and 24 lowercase hex digits, nothing else
function M.valid_id(id)
   return type(id) == "string" and id:match("^file%-%x+$") ~= nil and #id == 29 and id:lower() == id
end

-- 24 hex digits from the kernel's random source
local function new_id()
   local f = io.open("/dev/urandom", "rb")
   local bytes = f and f:read(12)
   if f then f:close() end
   if not bytes or #bytes ~= 12 then         -- no /dev/urandom: time and pid, still unique per store
      bytes = string.pack(">I8I4", math.floor(require("moonhub.core.sys").now() * 1e6), fs.pid())
   end
   return "file-" .. (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function paths(id)
   local d = M.dir()
   return d .. "/" .. id, d .. "/" .. id .. ".json"
end

-- add(content, {filename =, purpose =}) -> file object | nil, msg
function M.add(content, opts)
   opts = opts or {}
   if type(content) ~= "string" then error("files.add: content must be a string", 2) end
   local purpose = opts.purpose or "batch"
   if not M.PURPOSES[purpose] then
      return nil, string.format("purpose %q is not one of batch, batch_output, fine-tune, assistants, user_data, evals",
         tostring(purpose))
   end
   local filename = tostring(opts.filename or "upload.jsonl"):gsub("[%c]", ""):match("([^/\\]*)$")
   if filename == "" then filename = "upload.jsonl" end
   local ok, err = fs.mkdirs(M.dir())
   if not ok then return nil, err end
   local id = new_id()
   while fs.stat((paths(id))) do id = new_id() end
   local data, meta = paths(id)
   ok, err = fs.write(data, content)
   if not ok then return nil, err end
   local obj = { id = id, object = "file", bytes = #content, created_at = os.time(), filename = filename:sub(1, 255),
      purpose = purpose, status = "processed" }
   ok, err = fs.write(meta, json.encode(obj))
   if not ok then os.remove(data); return nil, err end
   return obj
end

-- get(id) -> file object | nil, msg (an id of the wrong shape is as unknown)
function M.get(id)
   if not M.valid_id(id) then return nil, "no such file: " .. tostring(id) end
   local _, meta = paths(id)
   local text = fs.read(meta)
   local obj = text and json.decode(text)
   if type(obj) ~= "table" then return nil, "no such file: " .. id end
   return obj
end

-- content(id) -> bytes | nil, msg
function M.content(id)
   local obj, err = M.get(id)
   if not obj then return nil, err end
   local text = fs.read((paths(id)))
   if not text then return nil, "the content of " .. id .. " is gone" end
   return text
end

-- delete(id) -> true | nil, msg
function M.delete(id)
   local obj, err = M.get(id)
   if not obj then return nil, err end
   local data, meta = paths(id)
   os.remove(meta)
   os.remove(data)
   return true
end

-- list({purpose =, after = id, limit = 10000, order = "desc"}) -> files, has_more
-- (newest first by default, as OpenAI lists them)
function M.list(opts)
   opts = opts or {}
   local out = {}
   for _, name in ipairs(fs.list(M.dir()) or {}) do
      local id = name:match("^(file%-%x+)%.json$")
      local obj = id and M.get(id)
      if obj and (not opts.purpose or obj.purpose == opts.purpose) then out[#out + 1] = obj end
   end
   local asc = opts.order == "asc"
   table.sort(out, function(a, b)
      if a.created_at ~= b.created_at then
         if asc then return a.created_at < b.created_at end
         return a.created_at > b.created_at
      end
      if asc then return a.id < b.id end
      return a.id > b.id
   end)
   if opts.after then
      for i, f in ipairs(out) do
         if f.id == opts.after then out = table.move(out, i + 1, #out, 1, {}) break end
      end
   end
   local limit = opts.limit or 10000
   local more = #out > limit
   for i = #out, limit + 1, -1 do out[i] = nil end
   return out, more
end

-- ===== multipart/form-data (RFC 7578), the body of POST /v1/files =====

-- multipart(body, content_type) -> {name = {value =, filename =}} | nil, msg.
-- Parts are split at the boundary the Content-Type names; each part's
-- headers give its name and filename. Plain string searches: no pattern
-- is built from client bytes.
function M.multipart(body, content_type)
   local ct = tostring(content_type or "")
   if not ct:lower():match("^%s*multipart/form%-data") then
      return nil, "send the file as multipart/form-data (fields 'file' and 'purpose')"
   end
   local params = ct:gsub("[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=", "boundary=")
   local boundary = params:match('boundary="([^"]+)"') or params:match("boundary=([^;%s]+)")
   if not boundary or #boundary > 200 then return nil, "multipart/form-data without a boundary" end
   local delim = "--" .. boundary
   local pos = body:find(delim, 1, true)
   if not pos then return nil, "the multipart body has no part" end
   local parts = {}
   pos = pos + #delim
   while true do
      if body:sub(pos, pos + 1) == "--" then break end                  -- the closing delimiter
      if body:sub(pos, pos + 1) ~= "\r\n" then return nil, "malformed multipart body" end
      local head_end = body:find("\r\n\r\n", pos + 2, true)
      if not head_end then return nil, "malformed multipart body (a part without headers)" end
      local head = body:sub(pos + 2, head_end - 1)
      local nxt = body:find("\r\n" .. delim, head_end + 4, true)
      if not nxt then return nil, "malformed multipart body (a part without an end)" end
      local name, filename
      for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
         local k, v = line:match("^([^:]+):%s*(.*)$")
         if k and k:lower() == "content-disposition" then
            name = v:match('[; ]name="([^"]*)"') or v:match("[; ]name=([^;%s]+)")
            filename = v:match('filename="([^"]*)"') or v:match("filename=([^;%s]+)")
         end
      end
      if name then parts[name] = { value = body:sub(head_end + 4, nxt - 1), filename = filename } end
      pos = nxt + 2 + #delim
   end
   return parts
end

return M
