-- moonhub.server.routes: the server's route table — method, path pattern,
-- handler, middleware list — and the dispatch that runs a request through
-- its route's middleware (onion order) to the handler. Layer: lua/moonhub
-- (pure Lua; raises moonhub.openai errors for 404/405).
local oa = require "moonhub.openai"

local M = {}
local Table = {}
Table.__index = Table

function M.new() return setmetatable({ list = {} }, Table) end

local function unescape(s)
   return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "/v1/models/{id}" -> "^/v1/models/([^/]+)$"; "{*name}" takes the rest
-- of the path, slashes included (model names such as "org/name:tag").
local function compile(pattern)
   local lua = pattern:gsub("[%%%.%-%+%*%?%[%]%^%$%(%)]", "%%%0")
   lua = lua:gsub("{%%%*[%w_]+}", "(.+)"):gsub("{[%w_]+}", "([^/]+)")
   return "^" .. lua .. "$"
end

-- add{method, pattern, handler, middleware = {fn...}, [any route option]}:
-- handler(app, req, captures...) -> status, headers, body (or answers
-- through req itself). Options such as max_body or json are read by the
-- middleware from req.route; error_body = fn(err) -> body gives errors
-- the route's protocol shape (OpenAI's object when absent).
function Table:add(route)
   assert(type(route[1]) == "string" and type(route[2]) == "string" and type(route[3]) == "function",
      "routes:add: expected {method, pattern, handler, ...}")
   route.method, route.pattern, route.handler = route[1], route[2], route[3]
   route.match = compile(route.pattern)
   route.ncaps = select(2, route.pattern:gsub("{", ""))
   route.middleware = route.middleware or {}
   self.list[#self.list + 1] = route
   return route
end

-- find(method, path) -> route, captures | nil, allowed methods (a
-- comma-separated string; "" when no route has the path).
function Table:find(method, path)
   local allow, seen = {}, {}
   for _, r in ipairs(self.list) do
      local caps = { path:match(r.match) }
      if caps[1] then
         if r.method == method or (method == "HEAD" and r.method == "GET") then   -- HEAD: GET without the body
            if r.ncaps == 0 then return r, {} end    -- match gave the whole path
            for i, c in ipairs(caps) do caps[i] = unescape(c) end
            return r, caps
         end
         if not seen[r.method] then seen[r.method] = true allow[#allow + 1] = r.method end
      end
   end
   return nil, table.concat(allow, ", ")
end

-- Runs the middleware list around the handler: each middleware is
-- fn(app, req, next) and returns what next() returns, or answers itself.
local function chain(app, req, mws, i, final)
   local mw = mws[i]
   if not mw then return final() end
   return mw(app, req, function() return chain(app, req, mws, i + 1, final) end)
end
M.chain = chain

-- The route for a request no route takes: 404, 405 with Allow, or the
-- OPTIONS answer (a CORS preflight is the cors middleware's business).
local function fallback(allow, method, path)
   return function(_, req)
      if method == "OPTIONS" and allow ~= "" then
         return 204, { Allow = allow .. ", OPTIONS" }, ""
      end
      if allow == "" then oa.fail(404, string.format("no route for %s %s", method, path), nil, "not_found") end
      req.allow = allow
      oa.fail(405, string.format("use %s for %s", allow, path), nil, "method_not_allowed", { Allow = allow })
   end
end

-- dispatch(app, req, base) -> status, headers, body: finds the route and
-- runs it; requests no route takes still pass the `base` middleware (the
-- host and origin checks, the log).
function Table:dispatch(app, req, base)
   local path = req.path:match("^[^?]*")
   local route, caps = self:find(req.method, path)
   if not route then
      route = { pattern = "(unmatched)", handler = fallback(caps, req.method, path), middleware = base,
         allow = caps }
      caps = {}
   end
   req.route = route
   return chain(app, req, route.middleware, 1, function()
      return route.handler(app, req, table.unpack(caps))
   end)
end

return M
