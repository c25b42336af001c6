-- helpers.pg: a throwaway PostgreSQL cluster for specs and `make test-pg`:
-- initdb + pg_ctl in a temp folder, a unix socket there (or loopback TCP on
-- a free port), trust auth, fsync off. Layer: tests (pure module: does
-- nothing on require; uses moonhub.fs, moonhub.http for a free port).
--   local pg = require "helpers.pg"
--   local c, why = pg.start()            -- nil, why: the binaries are missing
--   ... c.url ("postgresql:///postgres?host=...&user=moonhub") ...
--   c.stop()                             -- idempotent; also c:__close
-- initdb and the server refuse to run as root, so as root they run as the
-- user `nobody` (setpriv), owning the temp folder. The server binaries are
-- found under /usr/lib/postgresql/*/bin (newest first), or $MOONHUB_PG_BIN.
-- As a script it is `make test-pg`:
--   ./moonhub run tests/helpers/pg.lua SPEC_PATH...   (one cluster, the specs
-- run with MOONHUB_TEST_DB set: each temp home gets a schema of its own)
local M = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)                    -- -> ok, output (stdout + stderr)
   local p = io.popen("(" .. cmd .. ") 2>&1", "r")
   local out = p:read("a")
   local ok = p:close()
   return ok == true, out
end

local function exists(path)
   local f = io.open(path, "rb")
   if f then f:close() end
   return f ~= nil
end

-- bindir() -> the folder holding initdb, pg_ctl, postgres | nil, why
function M.bindir()
   local env = os.getenv("MOONHUB_PG_BIN")
   if env and env ~= "" then
      if exists(env .. "/initdb") then return env end
      return nil, "MOONHUB_PG_BIN=" .. env .. " has no initdb"
   end
   local _, out = sh("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r")
   for dir in out:gmatch("[^\n]+") do
      if exists(dir .. "/initdb") and exists(dir .. "/pg_ctl") then return dir end
   end
   return nil, "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin "
      .. "(apt-get install postgresql, or set MOONHUB_PG_BIN)"
end

local function is_root()
   local _, out = sh("id -u")
   return out:match("^0%s") ~= nil
end

-- the prefix that runs a command as an unprivileged user when we are root
local function as_user(root)
   if not root then return "" end
   return "setpriv --reuid=65534 --regid=65534 --clear-groups -- "
end

local function free_port()
   local ok, srv = pcall(require("moonhub").http.server, { port = 0, host = "127.0.0.1" })
   if not ok then return 20000 + math.random(0, 20000) end
   local port = srv.port
   srv:close()
   return port
end

--- start([{tcp = true}]) -> cluster {url, dir, port, stop} | nil, why.
-- The cluster's superuser is `moonhub` (trust auth, so no password); its
-- database `postgres` is empty. stop() stops the server (immediate mode)
-- and removes the folder; a failed start cleans up before returning.
function M.start(opts)
   opts = opts or {}
   local bin, why = M.bindir()
   if not bin then return nil, why end
   local root = is_root()
   local ok, dir = sh("mktemp -d /tmp/moonhub-pg.XXXXXX")
   dir = dir:match("^(%S+)")
   if not ok or not dir then return nil, "cannot make a temp folder: " .. tostring(dir) end
   local pre = as_user(root)
   local data, log = dir .. "/data", dir .. "/server.log"
   local port = opts.tcp and free_port() or 5432
   local c = { dir = dir, port = port, bin = bin }
   local stopped = false
   function c.stop()
      if stopped then return end
      stopped = true
      sh(string.format("cd %s && %s%s/pg_ctl stop -D %s -m immediate -w -t 20", q(dir), pre, q(bin), q(data)))
      sh("rm -rf " .. q(dir))
   end
   setmetatable(c, { __close = function() c.stop() end, __gc = function() c.stop() end })
   local function fail(what, out)
      local f = io.open(log)
      local text = (out or "") .. "\n" .. (f and f:read("a") or "")
      if f then f:close() end
      c.stop()
      return nil, "pg: " .. what .. ": " .. text:gsub("%s+$", "")
   end
   -- the socket lives here: others (a worker in a user namespace, say) must reach it
   sh("chmod 755 " .. q(dir))
   if root then sh("chown 65534:65534 " .. q(dir)) end
   local out
   ok, out = sh(string.format("cd %s && %s%s/initdb -D %s -U moonhub -A trust -E UTF8 --locale=C --no-sync",
      q(dir), pre, q(bin), q(data)))
   if not ok then return fail("initdb failed", out) end
   -- fsync off: a test cluster that dies is thrown away anyway
   local conf = string.format("-c listen_addresses=%s -c port=%d -c unix_socket_directories=%s "
      .. "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
      opts.tcp and "127.0.0.1" or "''", port, dir)
   ok, out = sh(string.format("cd %s && %s%s/pg_ctl start -D %s -l %s -w -t 30 -o %s",
      q(dir), pre, q(bin), q(data), q(log), q(conf)))
   if not ok then return fail("pg_ctl start failed", out) end
   if opts.tcp then
      c.url = string.format("postgresql://moonhub@127.0.0.1:%d/postgres", port)
   else
      c.url = string.format("postgresql:///postgres?host=%s&port=%d&user=moonhub", dir, port)
   end
   return c
end

--- dialect() -> "postgres" under make test-pg, else "sqlite"
function M.dialect() return os.getenv("MOONHUB_TEST_DB") and "postgres" or "sqlite" end

--- sqlite_it(it) -> it, or a function that defines nothing under make test-pg:
-- the few specs about SQLite's own file (old-schema files, a corrupt file,
-- FTS5's side table) do not apply to PostgreSQL, so they are not counted
-- there as skipped; db/postgres_spec covers PostgreSQL's migrations
function M.sqlite_it(it)
   if M.dialect() == "sqlite" then return it end
   return function() end
end

-- ===== one schema per temp home (the specs under MOONHUB_TEST_DB) =====

local admin          -- one connection per process, to create schemas
local made = 0

-- url_with_schema(url, schema) -> url whose connections use that schema
function M.url_with_schema(url, schema)
   return url .. (url:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

--- bind_home(dir [, url [, schema]]) -> schema: makes dir a home whose
-- database is a fresh schema (or the given one: two homes, one hub) in the
-- PostgreSQL at url ($MOONHUB_TEST_DB): writes dir/config.lua with
-- `db = URL`, so registry.open(dir) and `MOONHUB_HOME=dir moonhub ...` both
-- use it. The specs that open homes thereby run unchanged on PostgreSQL.
function M.bind_home(dir, url, schema)
   url = url or os.getenv("MOONHUB_TEST_DB")
   if not schema then
      if not admin or not admin:is_open() then admin = assert(require("moonhub.db").open(url)) end
      made = made + 1
      schema = string.format("h%d_%d_%d", require("moonhub.fs").pid(), made, math.random(0, 1e9))
      admin:exec("CREATE SCHEMA " .. schema)       -- a name of digits and letters: safe to splice
   end
   local f = assert(io.open(dir .. "/config.lua", "w"))
   f:write(string.format("return { db = %q }\n", M.url_with_schema(url, schema)))
   f:close()
   return schema
end

-- ===== make test-pg =====

local function run_specs(specs)
   local host = require "moonhub.core.host"
   local c, why = M.start()
   if not c then
      print("pg: skipped: " .. why)
      local required = os.getenv("MOONHUB_REQUIRE_TEST_DATA") == "1"
      print(string.format("0 passed, %d failed, %d skipped", required and 1 or 0, required and 0 or 1))
      return required and 1 or 0
   end
   local args = {}
   for i, s in ipairs(specs) do args[i] = q(s) end
   local ok, rc = pcall(function()
      local cmd = string.format("env -u MOONHUB_DB MOONHUB_TEST_DB=%s %s run tests/run_busted.lua "
         .. "-o tests/summary_handler.lua %s", q(c.url), q(host.exe), table.concat(args, " "))
      local _, _, code = os.execute(cmd)
      return code
   end)
   c.stop()
   if not ok then print("pg: " .. tostring(rc)); print("0 passed, 1 failed"); return 1 end
   return rc
end

local modname = ...
if modname == "helpers.pg" then return M end
os.exit(run_specs({ ... }), true)
