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

-- --db URL|PATH on the command line (moonhub.cli sets it for the process)
local db_flag

--- use_db(target): the database every registry.open of this process uses
-- (the --db flag); nil forgets it.
function M.use_db(target)
   if target ~= nil and (type(target) ~= "string" or target == "") then
      error("registry.use_db: expected a path or postgres:// URL, got " .. type(target), 2)
   end
   db_flag = target
end

--- db_flag() -> the --db value of this process, or nil (children it starts pass it on)
function M.db_flag() return db_flag end

-- location(home, opts) -> target, source: the one place that decides which
-- database a home's registry, datasets, runs, jobs and history live in.
-- opts.db, else --db, else $MOONHUB_DB, else the home's config.lua `db`,
-- else home/moonhub.db (SQLite). A postgres:// URL shares one database
-- between several homes, servers and workers (docs/scale-out.md).
function M.location(home, opts)
   if opts and opts.db then return opts.db, "option" end
   if db_flag then return db_flag, "flag" end
   local env = os.getenv("MOONHUB_DB")
   if env and env ~= "" then return env, "env" end
   local file, err = require("moonhub.config").read(home .. "/config.lua")
   if not file then return nil, err end
   if file.db then return file.db, "file" end
   return home .. "/" .. M.FILE, "built-in"
end

--- exists(home?) -> whether the home has a database to read: a server
-- (postgres:// URL) always does; a SQLite file once it was created. Readers
-- ask first so that resolving a name never creates a file.
function M.exists(home)
   home = home or require("moonhub").home()
   local target = M.location(home)
   if not target then return true end      -- a broken config: open() reports it
   return db.is_postgres(target) or fs.stat(target) ~= nil
end

-- open(home?, {busy_timeout_ms=, db=}) -> reg | nil, msg. home defaults to
-- $MOONHUB_HOME; the database is location(home) (home/moonhub.db unless
-- one is named). reg.db is the handle, reg.dialect its dialect module.
function M.open(home, opts)
   if home ~= nil and (type(home) ~= "string" or home == "") then
      error("registry.open: home must be a directory path, got " .. (home == "" and "an empty string" or type(home)), 2)
   end
   home = home or require("moonhub").home()
   local path, lerr = M.location(home, opts)
   if not path then return nil, "registry: " .. lerr end
   if not db.is_postgres(path) then
      local bad = sqlite.check_file(path)
      if bad then return nil, bad end
   end
   local timeout = opts and opts.busy_timeout_ms or 10000
   local conn, msg = db.open(path, { busy_timeout_ms = timeout })
   if not conn then return nil, "registry: " .. msg end
   path = conn.path                     -- a URL without its password
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
