-- moonhub.server.chat_history: the write side of /api/moonhub/history that a
-- chat client uses to keep one conversation as it grows (the web UI's chat
-- page): create one, then sync its messages after each turn (an edited or
-- retried turn replaces what followed it). Layer: lua/moonhub (uses
-- moonhub.history, moonhub.openai for bodies and errors). See docs/http.md.
local oa = require "moonhub.openai"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local ROLES = { system = true, user = true, assistant = true, tool = true }
local MAX_MESSAGES = 10000

-- messages(v) -> {{role, content}}: checked here, so a bad body is a 400
-- that names the message, not an error from the history module.
local function messages(v)
   if not oa.is_array(v) then oa.wrong("messages", "an array of {role, content}", v) end
   if #v > MAX_MESSAGES then oa.fail(400, "'messages' holds more than " .. MAX_MESSAGES .. " messages", "messages") end
   local out = {}
   for i, m in ipairs(v) do
      if type(m) ~= "table" or not ROLES[m.role] then
         oa.fail(400, string.format("'messages[%d].role' must be system, user, assistant or tool", i - 1), "messages")
      end
      if type(m.content) ~= "string" then
         oa.fail(400, string.format("'messages[%d].content' must be a string", i - 1), "messages")
      end
      out[i] = { role = m.role, content = m.content }
   end
   return out
end

-- usage/timings/options: small objects kept as the client sent them
local function extra(body)
   local x = {}
   for _, k in ipairs({ "usage", "timings", "options" }) do
      local v = body[k]
      if v ~= nil and not oa.is_null(v) then
         if not oa.is_object(v) then oa.wrong(k, "an object", v) end
         x[k] = v
      end
   end
   return x
end

local function with_history(fn)
   local h, err = require("moonhub.history").open()
   if not h then oa.fail(500, err) end
   local ok, a, b, c = pcall(fn, h)
   h:close()
   if not ok then error(a, 0) end
   return a, b, c
end

-- POST /api/moonhub/history {"model", "messages", "title"?, "usage"?,
-- "timings"?, "options"?} -> 201 {"id"}
local function create(_, req)
   local body = oa.decode(req.body)
   local model = oa.opt_string(body, "model")
   local title = oa.opt_string(body, "title")
   local list, x = messages(body.messages), extra(body)
   return with_history(function(h)
      local id, err = h:create({ model = model, title = title, source = "web", options = x.options })
      if not id then oa.fail(500, err) end
      local ok, serr = h:sync(id, list, x)
      if not ok then oa.fail(500, serr) end
      return 201, JSON, oa.encode({ id = id })
   end)
end

-- PUT /api/moonhub/history/ID {"messages", ...}: the stored messages become
-- these (the common prefix is kept, the rest replaced)
local function sync(_, req, rest)
   local id = math.tointeger(tonumber(rest:match("^%d+$")))
   if not id then oa.fail(404, "no conversation " .. rest:sub(1, 40) .. ": ids are integers", nil, "not_found") end
   local body = oa.decode(req.body)
   local list, x = messages(body.messages), extra(body)
   return with_history(function(h)
      if not h:get(id) then oa.fail(404, "no conversation " .. id, nil, "not_found") end
      local ok, err = h:sync(id, list, x)
      if not ok then oa.fail(500, err) end
      return 200, JSON, oa.encode({ id = id })
   end)
end

M.ROUTES = {
   { "POST", "/api/moonhub/history", create, json = true, max_body = 4 * 2^20 },
   { "PUT", "/api/moonhub/history/{id}", sync, json = true, max_body = 4 * 2^20 },
}

return M
