-- moonhub.registry: the handle over $MOONHUB_HOME/moonhub.db; its methods
-- come from moonhub.registry.models (models, versions, tags, aliases), .runs,
-- .datasets (datasets and their versions) and .conversations, all over one db handle. Layer:
-- lua/moonhub (uses moonhub.db, moonhub.fs; SQLite's own SQL — schema,
-- PRAGMAs, FTS5, triggers — lives in the dialect, moonhub.db.sqlite).
local db = require "moonhub.db"
local fs = require "moonhub.fs"

local M = {}

M.FILE = "moonhub.db"

-- dialect(name) -> the dialect module of a db handle ("sqlite", ...)
function M.dialect(name)
   local ok, d = pcall(require, "moonhub.db." .. tostring(name))
   if not ok then error("registry: no dialect for database '" .. tostring(name) .. "'", 2) end
   return d
end

local sqlite = M.dialect("sqlite")
M.APP_ID = sqlite.APP_ID                -- kept for callers of the old single module
M.migrations = sqlite.migrations
M.SCHEMA_VERSION = sqlite.SCHEMA_VERSION

local Reg = {}
Reg.__index = Reg

for _, part in ipairs({ "models", "runs", "datasets", "conversations", "lineage" }) do
   for k, fn in pairs(require("moonhub.registry." .. part)) do
      if type(fn) == "function" and k ~= "check_name" then
         assert(Reg[k] == nil, "registry: two modules define " .. k)
         Reg[k] = fn
      end
   end
end

-- open(home?, {busy_timeout_ms=}) -> reg | nil, msg. home defaults to
-- $MOONHUB_HOME; the database is home/moonhub.db. reg.db is the handle,
-- reg.dialect its dialect module.
function M.open(home, opts)
   if home ~= nil and (type(home) ~= "string" or home == "") then
      error("registry.open: home must be a directory path, got " .. (home == "" and "an empty string" or type(home)), 2)
   end
   home = home or require("moonhub").home()
   local path = home .. "/" .. M.FILE
   local bad = sqlite.check_file(path)
   if bad then return nil, bad end
   local timeout = opts and opts.busy_timeout_ms or 10000
   local conn, msg = db.open(path, { busy_timeout_ms = timeout })
   if not conn then return nil, "registry: " .. msg end
   local dialect = M.dialect(conn.dialect)
   local why = dialect.setup(conn, path, timeout)
   if why then
      conn:close()
      return nil, why
   end
   -- model files a killed writer left half-written (never registered: the
   -- row is added after the rename); a live writer's stay
   fs.clean_temps_tree(home .. "/models")
   return setmetatable({ db = conn, dialect = dialect, path = path, home = home }, Reg)
end

function Reg:close() self.db:close() end
Reg.__close = Reg.close

-- integrity_check() -> "ok" | the problems the database reports
function Reg:integrity_check() return self.dialect.integrity_check(self.db) end

return M
