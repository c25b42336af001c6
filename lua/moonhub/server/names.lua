-- moonhub.server.names: which model a request's "model" names — aliases
-- (serve --alias NAME=MODEL), the --model default for requests that name
-- none, the --default-model fallback — and the 404 with close names.
-- Layer: lua/moonhub (uses moonhub.openai for errors, moonhub.models to
-- list the registry for suggestions).
local oa = require "moonhub.openai"

local M = {}

-- parse_alias("NAME=MODEL") -> name, model | nil, msg
function M.parse_alias(s)
   local name, model = tostring(s):match("^%s*([^=%s][^=]-)%s*=%s*(%S.-)%s*$")
   if not name then return nil, string.format("--alias %q: expected NAME=MODEL", tostring(s)) end
   return name, model
end

-- pick(app, name) -> the reference to load: an alias's model, the name
-- itself, or (no name) the served default. 400 when there is none.
function M.pick(app, name)
   if name then return app.aliases[name] or name end
   local d = app.default_ref or app.opts.default_model
   if not d then
      oa.fail(400, "'model' is required: name a registered model (GET /v1/models lists them)", "model")
   end
   return d
end

-- Edit distance, cut off past `limit` (names are short; this is for hints).
local function distance(a, b, limit)
   if math.abs(#a - #b) > limit then return limit + 1 end
   local prev = {}
   for j = 0, #b do prev[j] = j end
   for i = 1, #a do
      local cur, best = { [0] = i }, i
      for j = 1, #b do
         local cost = a:byte(i) == b:byte(j) and 0 or 1
         cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
         if cur[j] < best then best = cur[j] end
      end
      if best > limit then return limit + 1 end
      prev = cur
   end
   return prev[#b]
end

-- Every name a request may use: the served default, aliases, registry
-- entries (name and name:tag).
function M.known(app)
   local out, seen = {}, {}
   local function add(n) if n and not seen[n] then seen[n] = true out[#out + 1] = n end end
   if app.default_ref then add(app.name) end
   for n in pairs(app.aliases) do add(n) end
   local home = require("moonhub").home()
   if require("moonhub.registry").exists(home) then
      local reg = require("moonhub.models").open()
      if reg then
         local ok, rows = pcall(reg.list, reg)
         reg:close()
         for _, r in ipairs(ok and rows or {}) do add(r.name) add(r.name .. ":" .. r.tag) end
      end
   end
   table.sort(out)
   return out
end

-- close(name, candidates) -> up to 3 candidates near name: a small edit
-- distance to the whole name or to one of its words ("smool" finds
-- "mh-smol-llama"), or one containing the other (case aside).
function M.close(name, candidates)
   local lname, scored = name:lower(), {}
   local limit = math.max(2, #name // 3)
   for _, c in ipairs(candidates) do
      local lc = c:lower()
      local d = distance(lname, lc, limit)                -- limit + 1: not close
      if d > limit and #lname >= 3 then
         if lc:find(lname, 1, true) or lname:find(lc, 1, true) then d = limit end
         for word in lc:gmatch("[^%-_:/%.]+") do
            local w = #word >= 3 and distance(lname, word, limit) or limit + 1
            if w < limit then d = math.min(d, w + 1) end
         end
      end
      if d <= limit then scored[#scored + 1] = { c, d } end
   end
   table.sort(scored, function(x, y) return x[2] < y[2] or (x[2] == y[2] and x[1] < y[1]) end)
   local out = {}
   for i = 1, math.min(3, #scored) do out[i] = scored[i][1] end
   return out
end

-- Raises the 404 model_not_found for name, with close names when any.
function M.not_found(app, name)
   local shown = #name > 80 and (name:sub(1, 80) .. "...") or name
   local near = name ~= "" and M.close(name, M.known(app)) or {}
   local hint = #near > 0 and ("; did you mean " .. table.concat(near, ", ") .. "?")
      or "; GET /v1/models lists the models, and serve --alias NAME=MODEL maps other names"
   oa.fail(404, string.format("model %q not found%s", shown, hint), "model", "model_not_found")
end

return M
