-- moonhub.data.rows: dataset files -> normalized rows. Reads JSONL (one JSON
-- object a line) or CSV (moonhub.data.csv), renames fields by a column map,
-- detects each row's shape (chat messages, prompt/completion, text) and
-- lists every problem by row number. Layer: lua/moonhub (pure Lua over
-- dkjson + lpeg and moonhub.data.csv).
local json = require "dkjson"
local csv = require "moonhub.data.csv"

local strict = json.use_lpeg()
local ARRAY, OBJECT = { __jsontype = "array" }, { __jsontype = "object" }

local M = {}

M.ROLES = { system = true, user = true, assistant = true }
M.TARGETS = { prompt = true, completion = true, text = true, system = true, user = true, assistant = true }

-- ===== options =====

-- parse_map("prompt=question,completion=answer") -> {prompt = "question", ...} | nil, msg
function M.parse_map(s)
   if s == nil then return nil end
   if type(s) == "table" then return s end
   local map = {}
   for item in tostring(s):gmatch("[^,]+") do
      local to, from = item:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
      if not to or from == "" then
         return nil, "--map: expected FIELD=COLUMN pairs such as prompt=question,completion=answer, got '"
            .. item .. "'"
      end
      if not M.TARGETS[to] then
         return nil, "--map: unknown field '" .. to
            .. "' (prompt, completion, text, or system, user, assistant for chat)"
      end
      map[to] = from
   end
   return map
end

-- ===== one row =====

local function blank(s) return type(s) ~= "string" or not s:find("%S") end

local function check_messages(msgs)
   if type(msgs) ~= "table" or getmetatable(msgs) == OBJECT or msgs == json.null then
      return nil, "'messages' must be an array of {role, content}"
   end
   if #msgs == 0 then return nil, "'messages' is empty" end
   local out, prev = {}, nil
   for i, m in ipairs(msgs) do
      if type(m) ~= "table" then return nil, string.format("message %d is not an object", i) end
      local role = m.role
      if type(role) ~= "string" then return nil, string.format("message %d has no role", i) end
      if not M.ROLES[role] then
         return nil, string.format("message %d has unknown role '%s' (system, user, assistant)", i, role)
      end
      if m.content == nil or m.content == json.null then
         return nil, string.format("message %d (%s) has no content", i, role)
      end
      if type(m.content) ~= "string" then
         return nil, string.format("message %d (%s): content must be a string", i, role)
      end
      if blank(m.content) then return nil, string.format("message %d (%s) has empty content", i, role) end
      -- system first if at all, then user and assistant in turn
      local ok
      if role == "system" then ok = i == 1
      elseif role == "user" then ok = prev == nil or prev == "system" or prev == "assistant"
      else ok = prev == "user" end
      if not ok then
         return nil, string.format("message %d: %s after %s (expected: system first, then user and assistant in turn)",
            i, role, prev or "nothing")
      end
      out[i] = { role = role, content = m.content }
      prev = role
   end
   if prev ~= "assistant" then
      return nil, "the last message is " .. prev .. "'s; a row ends with the assistant's answer"
   end
   return out
end

-- the extra fields a row keeps (labels for --stratify): scalars only
local function extras(obj, row, used)
   for k, v in pairs(obj) do
      if type(k) == "string" and not used[k] and row[k] == nil
         and (type(v) == "string" or type(v) == "number" or type(v) == "boolean") then
         row[k] = v
      end
   end
   return row
end

-- normalize(obj, map?) -> row, kind | nil, problem. obj is a decoded JSON
-- object or a CSV record by column name; map renames source columns.
function M.normalize(obj, map)
   if type(obj) ~= "table" or obj == json.null or getmetatable(obj) == ARRAY then
      return nil, "not a JSON object"
   end
   local used, get = {}, function(name)
      local col = map and map[name] or name
      return obj[col], col
   end
   if map and (map.user or map.assistant) then          -- chat from columns
      local msgs = {}
      for _, role in ipairs({ "system", "user", "assistant" }) do
         local v, col = get(role)
         if map[role] then
            if v == nil then return nil, "missing field '" .. col .. "'" end
            used[col] = true
            if not (role == "system" and blank(v)) then msgs[#msgs + 1] = { role = role, content = v } end
         end
      end
      local out, err = check_messages(msgs)
      if not out then return nil, err end
      return extras(obj, { messages = out }, used), "chat"
   end
   local msgs = get("messages")
   if msgs ~= nil then
      local out, err = check_messages(msgs)
      if not out then return nil, err end
      used.messages = true
      return extras(obj, { messages = out }, used), "chat"
   end
   local p, pcol = get("prompt")
   local c, ccol = get("completion")
   if p ~= nil or c ~= nil then
      if p == nil then return nil, "missing field '" .. pcol .. "' (a completion row has prompt and completion)" end
      if c == nil then return nil, "missing field '" .. ccol .. "' (a completion row has prompt and completion)" end
      if type(p) ~= "string" or type(c) ~= "string" then return nil, "prompt and completion must be strings" end
      if blank(p) then return nil, "empty prompt" end
      if blank(c) then return nil, "empty completion" end
      used[pcol], used[ccol] = true, true
      return extras(obj, { prompt = p, completion = c }, used), "completion"
   end
   local t, tcol = get("text")
   if t ~= nil then
      if type(t) ~= "string" then return nil, "text must be a string" end
      if blank(t) then return nil, "empty text" end
      used[tcol] = true
      return extras(obj, { text = t }, used), "text"
   end
   return nil, "missing fields: a row has 'messages', 'prompt' and 'completion', or 'text'"
      .. (map and "" or " (a --map renames other columns)")
end

-- ===== files =====

-- format_of(path, head) -> "csv" | "jsonl": the extension, else the first byte
function M.format_of(path, head)
   local ext = path:lower():match("%.(%w+)$")
   if ext == "csv" then return "csv" end
   if ext == "jsonl" or ext == "ndjson" or ext == "json" then return "jsonl" end
   return (head or ""):match("^%s*{") and "jsonl" or "csv"
end

-- records(text, format) -> list of {n = row number, obj =} or {n =, problem =}
-- | nil, msg (a CSV that cannot be parsed at all)
function M.records(text, format)
   local out = {}
   if format == "csv" then
      local _, rows = csv.rows(text)
      if not _ then return nil, rows end
      for i, r in ipairs(rows) do out[i] = { n = i, obj = r } end
      return out
   end
   local n = 0
   for line in (text:sub(-1) == "\n" and text or text .. "\n"):gmatch("(.-)\r?\n") do
      n = n + 1
      if line:find("%S") then
         local obj, pos, err = strict.decode(line, 1, json.null, OBJECT, ARRAY)
         if not err and line:find("%S", pos) then err = "unexpected text after the value at byte " .. pos end
         if err then
            out[#out + 1] = { n = n, problem = "bad JSON: " .. err }
         elseif type(obj) ~= "table" or obj == json.null or getmetatable(obj) == ARRAY then
            out[#out + 1] = { n = n, problem = "not a JSON object" }
         else
            out[#out + 1] = { n = n, obj = obj }
         end
      end
   end
   return out
end

-- read(text, {format=, map=, progress=fn(done, total)}) -> {kind =, rows =
-- {normalized...}, numbers = {row number of each}, problems = {{row =,
-- msg =}...}, total =} | nil, msg.
-- The dataset's kind is the first good row's; a row of another kind is a
-- problem.
function M.read(text, opts)
   opts = opts or {}
   local recs, err = M.records(text, opts.format or "jsonl")
   if not recs then return nil, err end
   local res = { rows = {}, numbers = {}, problems = {}, total = #recs }
   for i, r in ipairs(recs) do
      if r.problem then
         res.problems[#res.problems + 1] = { row = r.n, msg = r.problem }
      else
         local row, kind = M.normalize(r.obj, opts.map)
         if not row then
            res.problems[#res.problems + 1] = { row = r.n, msg = kind }
         elseif res.kind and kind ~= res.kind then
            res.problems[#res.problems + 1] = { row = r.n,
               msg = string.format("a %s row in a %s dataset (rows %d on are %s rows)", kind, res.kind,
                  res.first, res.kind) }
         else
            res.kind, res.first = res.kind or kind, res.first or r.n
            res.rows[#res.rows + 1] = row
            res.numbers[#res.rows] = r.n
         end
      end
      if opts.progress then opts.progress(i, #recs) end
   end
   return res
end

local FIXED = { "messages", "role", "content", "prompt", "completion", "text" }
local FIXED_SET = {}
for _, k in ipairs(FIXED) do FIXED_SET[k] = true end

-- encode(row) -> one JSONL line; keys in one fixed order, so equal rows
-- give equal bytes (and equal files the same sha256)
local orders, n_orders = {}, 0          -- extra keys -> the encoder's options (at most 256 kept)

function M.encode(row)
   local extra = {}
   for k in pairs(row) do if not FIXED_SET[k] then extra[#extra + 1] = k end end
   table.sort(extra)
   local sig = table.concat(extra, "\0")
   local o = orders[sig]
   if not o then
      local order = table.move(FIXED, 1, #FIXED, 1, {})
      o = { keyorder = table.move(extra, 1, #extra, #order + 1, order) }
      if n_orders < 256 then orders[sig], n_orders = o, n_orders + 1 end
   end
   return json.encode(row, o)
end

-- decode(line) -> row (a stored, already normalized line)
function M.decode(line)
   local obj, _, err = strict.decode(line, 1, nil)
   if err or type(obj) ~= "table" then error("data: bad stored row: " .. tostring(err), 0) end
   return obj
end

return M
