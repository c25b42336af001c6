-- moonhub.registry.conversations: stored conversations and their messages
-- — methods of a registry handle over its one database handle (self.db);
-- moonhub.history (titles, JSON columns, export) writes and reads through
-- them. Layer: lua/moonhub (portable SQL over moonhub.db; full-text search
-- is the dialect's, self.dialect.search_messages).
local M = {}

-- ===== conversations =====

-- add_conversation{title=, model=, version_id=, system=, source=, options=}
-- -> id. options is JSON text (moonhub.history encodes it).
function M:add_conversation(spec)
   spec = spec or {}
   if type(spec) ~= "table" then error("registry.add_conversation: expected a table or nothing", 2) end
   local now = os.time()
   return self.db:insert([[INSERT INTO conversations (title, model, version_id, system, source, options,
      created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], spec.title, spec.model, spec.version_id,
      spec.system, spec.source, spec.options, now, now)
end

local ROLES = { system = true, user = true, assistant = true, tool = true }

-- add_message(conversation_id, role, content, {tokens=}?) -> message id | nil, msg
function M:add_message(cid, role, content, extra)
   if math.type(cid) ~= "integer" then
      error("registry.add_message: conversation id must be an integer, got " .. tostring(cid), 2)
   end
   if not ROLES[role] then
      error("registry.add_message: role must be system, user, assistant or tool, got " .. tostring(role), 2)
   end
   if type(content) ~= "string" then
      error("registry.add_message: content must be a string, got a " .. type(content), 2)
   end
   return self.db:transaction(function(d)
      local now = os.time()
      if d:exec("UPDATE conversations SET updated_at = ? WHERE id = ?", now, cid) == 0 then
         return nil, "registry: no conversation " .. cid
      end
      local seq = d:first("SELECT coalesce(max(seq), 0) + 1 AS n FROM messages WHERE conversation_id = ?", cid).n
      return d:insert([[INSERT INTO messages (conversation_id, seq, role, content, tokens, created_at)
         VALUES (?, ?, ?, ?, ?, ?)]], cid, seq, role, content, extra and extra.tokens, now)
   end)
end

-- sync_messages(cid, list, {title=, system=, usage=, timings=, options=})
-- -> true | nil, msg. Makes the stored messages of cid equal to list
-- ({role, content} checked by the caller): keeps the common prefix, drops
-- what follows it (an edited or retried turn) and appends the rest, in one
-- transaction. title is set only where none is; system replaces; usage,
-- timings and options (JSON text) replace when given.
function M:sync_messages(cid, list, extra)
   return self.db:transaction(function(d)
      if not d:first("SELECT id FROM conversations WHERE id = ?", cid) then
         return nil, "registry: no conversation " .. cid
      end
      local stored = d:query("SELECT seq, role, content FROM messages WHERE conversation_id = ? ORDER BY seq", cid)
      local keep = 0
      while keep < #stored and keep < #list and stored[keep + 1].role == list[keep + 1].role
         and stored[keep + 1].content == list[keep + 1].content do
         keep = keep + 1
      end
      local now = os.time()
      local seq = keep > 0 and stored[keep].seq or 0
      -- keep = 0 (a changed system message, /reset) drops every stored message
      if keep < #stored then d:exec("DELETE FROM messages WHERE conversation_id = ? AND seq > ?", cid, seq) end
      for i = keep + 1, #list do
         seq = seq + 1
         d:exec([[INSERT INTO messages (conversation_id, seq, role, content, created_at)
            VALUES (?, ?, ?, ?, ?)]], cid, seq, list[i].role, list[i].content, now)
      end
      d:exec([[UPDATE conversations SET updated_at = ?, title = coalesce(title, ?), system = ?,
         usage = coalesce(?, usage), timings = coalesce(?, timings), options = coalesce(?, options)
         WHERE id = ?]], now, extra.title, extra.system, extra.usage, extra.timings, extra.options, cid)
      return true
   end)
end

-- conversations{limit=} -> newest first
-- (a negative limit is none, as SQLite reads it; PostgreSQL refuses one)
local function limit_of(opts)
   local n = opts and opts.limit
   if not n or n < 0 then return math.maxinteger end
   return n
end

function M:conversations(opts)
   local limit = limit_of(opts)
   return self.db:query("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC LIMIT ?", limit)
end

-- conversation_summaries{limit=} -> newest first: {id, title, model,
-- source, created_at, updated_at, messages (their count)}
function M:conversation_summaries(opts)
   local limit = limit_of(opts)
   return self.db:query([[SELECT c.id, c.title, c.model, c.source, c.created_at, c.updated_at,
      (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS messages
      FROM conversations c ORDER BY c.updated_at DESC, c.id DESC LIMIT ?]], limit)
end

-- conversation(cid) -> its row | nil
function M:conversation(cid)
   return self.db:first("SELECT * FROM conversations WHERE id = ?", cid)
end

-- search_messages(text, limit) -> best matches first (the dialect's
-- full-text search: {conversation_id, seq, role, snippet, title, model, updated_at})
function M:search_messages(text, limit)
   return self.dialect.search_messages(self.db, text, limit)
end

-- messages(conversation_id) -> in order
function M:messages(cid)
   return self.db:query("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", cid)
end

function M:remove_conversation(cid)
   return self.db:exec("DELETE FROM conversations WHERE id = ?", cid) > 0
end

return M
