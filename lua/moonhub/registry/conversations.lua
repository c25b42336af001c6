-- moonhub.registry.conversations: stored conversations and their messages
-- — methods of a registry handle over its one database handle (self.db);
-- moonhub.history builds search and export on the same tables.
-- Layer: lua/moonhub (portable SQL over moonhub.db).
local M = {}

-- ===== conversations =====

-- add_conversation{title=, model=, version_id=, system=} -> id
function M:add_conversation(spec)
   spec = spec or {}
   if type(spec) ~= "table" then error("registry.add_conversation: expected a table or nothing", 2) end
   local now = os.time()
   return self.db:insert([[INSERT INTO conversations (title, model, version_id, system, created_at,
      updated_at) VALUES (?, ?, ?, ?, ?, ?)]], spec.title, spec.model, spec.version_id, spec.system,
      now, now)
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

-- conversations{limit=} -> newest first
function M:conversations(opts)
   local limit = opts and opts.limit or -1
   return self.db:query("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC LIMIT ?", limit)
end

-- messages(conversation_id) -> in order
function M:messages(cid)
   return self.db:query("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", cid)
end

function M:remove_conversation(cid)
   return self.db:exec("DELETE FROM conversations WHERE id = ?", cid) > 0
end

return M
