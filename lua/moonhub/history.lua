-- moonhub.history: stored conversations — the server's (with --history or
-- "store": true) and `moonhub chat` sessions — with their model, sampling
-- options, usage and timings; full-text search, export as JSONL or
-- Markdown. Layer: lua/moonhub (reads and writes through the registry's
-- conversation methods, moonhub.registry.conversations; dkjson). No SQL here.
local registry = require "moonhub.registry"
local json = require "dkjson"

local M = {}
local Hist = {}
Hist.__index = Hist

local ROLES = { system = true, user = true, assistant = true, tool = true }

-- Failed opens and writes, for the server's /metrics
-- (moonhub_history_errors_total): a full disk or a locked database must
-- show somewhere even when the caller only logs it.
local errors_total = 0

function M.errors_total() return errors_total end

-- counted(ok, ...) -> ... on success; counts and re-raises a failure
local function counted(ok, ...)
   if ok then return ... end
   errors_total = errors_total + 1
   error((...), 0)
end

-- open(home?) -> history | nil, msg (the registry database of home)
function M.open(home)
   local reg, msg = registry.open(home)
   if not reg then
      errors_total = errors_total + 1
      return nil, msg
   end
   return setmetatable({ reg = reg }, Hist)
end

function Hist:close() self.reg:close() end
Hist.__close = Hist.close

local function check_id(fname, id)
   if math.type(id) ~= "integer" then
      error(string.format("history:%s: id must be an integer, got %s", fname, tostring(id)), 3)
   end
end

local function encode(v)
   if v == nil then return nil end
   return json.encode(v)
end

local function decode(s)
   if type(s) ~= "string" then return nil end
   return (json.decode(s))
end

-- checked {role, content} copies; content that is not a string (a tool
-- call's null) is stored as ""
local function clean_messages(fname, messages)
   if type(messages) ~= "table" then
      error("history:" .. fname .. ": messages must be a list of {role =, content =}", 3)
   end
   local out = {}
   for i, m in ipairs(messages) do
      if type(m) ~= "table" or not ROLES[m.role] then
         error(string.format("history:%s: message %d needs a role of system, user, assistant or tool", fname, i), 3)
      end
      out[i] = { role = m.role, content = type(m.content) == "string" and m.content or "" }
   end
   return out
end

-- the first line of the first user message, at most 60 bytes
local function title_of(messages)
   for _, m in ipairs(messages) do
      if m.role == "user" and m.content ~= "" then
         local line = m.content:match("^%s*([^\n]*)") or ""
         if #line > 60 then line = line:sub(1, 57):gsub("[\128-\191]*$", ""):gsub("[\192-\255]$", "") .. "..." end
         return line
      end
   end
   return nil
end

local function insert_conversation(self, spec)
   return self.reg:add_conversation({ title = spec.title, model = spec.model, version_id = spec.version_id,
      system = spec.system, source = spec.source, options = encode(spec.options) })
end

-- the messages of conversation id become list (checked); true | nil, msg
local function sync_messages(self, id, list, extra)
   local sys_msg = list[1] and list[1].role == "system" and list[1].content or nil
   local ok, msg = self.reg:sync_messages(id, list, { title = title_of(list), system = sys_msg,
      usage = encode(extra.usage), timings = encode(extra.timings), options = encode(extra.options) })
   if not ok then return nil, (msg:gsub("^registry: ", "history: ")) end
   return true
end

-- Every write below counts in errors_total when the database refuses it
-- (argument errors raise before, uncounted: they are the caller's bug).

-- create{model =, version_id =, source =, options =, system =, title =} -> id
function Hist:create(spec)
   spec = spec or {}
   if type(spec) ~= "table" then error("history:create: expected a table {model =, ...}", 2) end
   return counted(pcall(insert_conversation, self, spec))
end

-- sync(id, messages, {usage =, timings =, options =}) -> true | nil, msg.
-- Makes the stored messages equal to messages: keeps the common prefix,
-- drops what follows it (an edited or retried turn) and appends the rest.
function Hist:sync(id, messages, extra)
   check_id("sync", id)
   local list = clean_messages("sync", messages)
   return counted(pcall(sync_messages, self, id, list, extra or {}))
end

-- store{model =, version_id =, source =, options =, messages =, answer =,
-- usage =, timings =} -> id: one finished exchange (the server's), the
-- answer appended as the assistant's message.
function Hist:store(spec)
   if type(spec) ~= "table" then error("history:store: expected a table {model =, messages =, ...}", 2) end
   local list = clean_messages("store", spec.messages)
   if spec.answer ~= nil then
      if type(spec.answer) ~= "string" then error("history:store: answer must be a string", 2) end
      list[#list + 1] = { role = "assistant", content = spec.answer }
   end
   local db = self.reg.db                   -- one transaction: the row and its messages
   return counted(pcall(db.transaction, db, function()
      local id = insert_conversation(self, spec)
      assert(sync_messages(self, id, list, spec))
      return id
   end))
end

-- list{limit =} -> newest first: {id, title, model, source, created_at, updated_at, messages}
function Hist:list(opts)
   local limit = opts and opts.limit or -1
   if math.type(limit) ~= "integer" then error("history:list: limit must be an integer", 2) end
   return self.reg:conversation_summaries({ limit = limit })
end

-- get(id) -> conversation {id, title, model, source, system, options,
-- usage, timings, created_at, updated_at}, messages {{role, content, seq}} | nil, msg
function Hist:get(id)
   check_id("get", id)
   local c = self.reg:conversation(id)
   if not c then return nil, "history: no conversation " .. id end
   c.options, c.usage, c.timings = decode(c.options), decode(c.usage), decode(c.timings)
   local msgs = {}
   for i, m in ipairs(self.reg:messages(id)) do
      msgs[i] = { seq = m.seq, role = m.role, content = m.content, created_at = m.created_at }
   end
   return c, msgs
end

-- An FTS5-style query from user text (see the dialect's fts_query)
function M.fts_query(text) return registry.dialect("sqlite").fts_query(text) end

-- search(text, {limit = 20}) -> best matches first: {conversation_id,
-- seq, role, snippet (hits in [brackets]), title, model, updated_at}
function Hist:search(text, opts)
   if type(text) ~= "string" or not text:match("%S") then
      error("history:search: text must be a non-empty string", 2)
   end
   local limit = opts and opts.limit or 20
   return self.reg:search_messages(text, limit)
end

-- remove(id) -> true | nil, msg (its messages go with it)
function Hist:remove(id)
   check_id("remove", id)
   if not self.reg:remove_conversation(id) then
      return nil, "history: no conversation " .. id
   end
   return true
end

-- ===== export =====

local function jsonl(c, msgs)
   local list = setmetatable({}, { __jsontype = "array" })   -- [] even when empty
   for i, m in ipairs(msgs) do list[i] = { role = m.role, content = m.content } end
   local doc = { id = c.id, title = c.title, model = c.model, source = c.source, created_at = c.created_at,
      options = c.options, usage = c.usage, timings = c.timings, messages = list }
   return json.encode(doc, { keyorder = { "id", "title", "model", "source", "created_at", "options",
      "usage", "timings", "messages", "role", "content" } }) .. "\n"
end

local function markdown(c, msgs)
   local out = { "# " .. (c.title or ("Conversation " .. c.id)), "" }
   out[#out + 1] = string.format("- id: %d", c.id)
   if c.model then out[#out + 1] = "- model: " .. c.model end
   out[#out + 1] = "- created: " .. os.date("!%Y-%m-%d %H:%M UTC", c.created_at)
   if c.options then out[#out + 1] = "- options: `" .. json.encode(c.options) .. "`" end
   if c.usage then out[#out + 1] = "- usage: `" .. json.encode(c.usage) .. "`" end
   for _, m in ipairs(msgs) do
      out[#out + 1] = ""
      out[#out + 1] = "## " .. m.role
      out[#out + 1] = ""
      out[#out + 1] = m.content
   end
   return table.concat(out, "\n") .. "\n"
end

M.FORMATS = { jsonl = jsonl, md = markdown }

-- export(id, "jsonl" | "md") -> text | nil, msg. jsonl: one line
-- {"id", "model", ..., "messages": [{"role", "content"}]} (the fine-tuning
-- shape); md: a heading per message.
function Hist:export(id, format)
   check_id("export", id)
   local f = M.FORMATS[format or "jsonl"]
   if not f then error("history:export: format must be jsonl or md, got " .. tostring(format), 2) end
   local c, msgs = self:get(id)
   if not c then return nil, msgs end
   return f(c, msgs)
end

return M
