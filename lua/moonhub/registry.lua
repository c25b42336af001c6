-- moonhub.registry: the model registry in $MOONHUB_HOME/moonhub.db — models,
-- immutable versions with lineage, movable tags and aliases, datasets, runs,
-- conversations and messages. Layer: lua/moonhub (uses moonhub.db only).
-- Schema changes are numbered migrations (PRAGMA user_version); the file is
-- marked with PRAGMA application_id, and any other file is refused untouched.
local db = require "moonhub.db"

local M = {}

M.APP_ID = 0x4D4F4F4E          -- "MOON": marks the file as ours
M.FILE = "moonhub.db"

-- migrations[v] takes the schema from v-1 to v; never edit a released one
M.migrations = {
   [1] = [[
CREATE TABLE models (
   id          INTEGER PRIMARY KEY,
   name        TEXT NOT NULL UNIQUE,
   description TEXT,
   created_at  INTEGER NOT NULL
);
CREATE TABLE versions (
   id              INTEGER PRIMARY KEY,
   model_id        INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
   path            TEXT NOT NULL,
   sha256          TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
   format          TEXT NOT NULL,
   quant           TEXT,            -- quant types, comma-separated: "Q4_K,Q6_K"
   size            INTEGER,         -- bytes on disk
   params          INTEGER,         -- parameter count
   arch            TEXT,
   ctx             INTEGER,         -- trained context length
   source_url      TEXT,
   source_revision TEXT,
   parent_id       INTEGER REFERENCES versions(id) ON DELETE SET NULL,   -- lineage
   created_at      INTEGER NOT NULL
);
CREATE INDEX versions_model ON versions(model_id);
CREATE INDEX versions_parent ON versions(parent_id);
-- a version never changes; only the lineage link may be cut when its parent goes
CREATE TRIGGER versions_immutable BEFORE UPDATE OF model_id, path, sha256, format, quant,
   size, params, arch, ctx, source_url, source_revision, created_at ON versions
BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;
CREATE TABLE tags (
   model_id   INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
   name       TEXT NOT NULL,
   version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
   updated_at INTEGER NOT NULL,
   PRIMARY KEY (model_id, name)
);
CREATE INDEX tags_version ON tags(version_id);
CREATE TRIGGER tags_same_model_ins BEFORE INSERT ON tags
WHEN (SELECT model_id FROM versions WHERE id = NEW.version_id) IS NOT NEW.model_id
BEGIN SELECT RAISE(ABORT, 'tag and version belong to different models'); END;
CREATE TRIGGER tags_same_model_upd BEFORE UPDATE ON tags
WHEN (SELECT model_id FROM versions WHERE id = NEW.version_id) IS NOT NEW.model_id
BEGIN SELECT RAISE(ABORT, 'tag and version belong to different models'); END;
CREATE TABLE aliases (
   name       TEXT PRIMARY KEY,
   model_id   INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
   tag        TEXT,                 -- NULL: the tag asked for, else latest
   created_at INTEGER NOT NULL
);
CREATE TABLE datasets (
   id         INTEGER PRIMARY KEY,
   name       TEXT NOT NULL UNIQUE,
   path       TEXT NOT NULL,
   format     TEXT,
   sha256     TEXT,
   rows       INTEGER,
   size       INTEGER,
   source_url TEXT,
   created_at INTEGER NOT NULL
);
CREATE TABLE runs (
   id                INTEGER PRIMARY KEY,
   kind              TEXT NOT NULL,    -- train, quantize, bench, eval
   status            TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
   version_id        INTEGER REFERENCES versions(id) ON DELETE SET NULL,
   dataset_id        INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
   output_version_id INTEGER REFERENCES versions(id) ON DELETE SET NULL,
   config            TEXT,             -- JSON
   metrics           TEXT,             -- JSON
   log_path          TEXT,
   error             TEXT,
   created_at        INTEGER NOT NULL,
   started_at        INTEGER,
   finished_at       INTEGER
);
CREATE TABLE conversations (
   id         INTEGER PRIMARY KEY,
   title      TEXT,
   model      TEXT,                    -- the reference as the user typed it
   version_id INTEGER REFERENCES versions(id) ON DELETE SET NULL,
   system     TEXT,
   created_at INTEGER NOT NULL,
   updated_at INTEGER NOT NULL
);
CREATE TABLE messages (
   id              INTEGER PRIMARY KEY,
   conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
   seq             INTEGER NOT NULL,
   role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
   content         TEXT NOT NULL,
   tokens          INTEGER,
   created_at      INTEGER NOT NULL,
   UNIQUE (conversation_id, seq)
);
]],
   -- 2: conversation details (JSON) and full-text search over message content
   [2] = [[
ALTER TABLE conversations ADD COLUMN source TEXT;      -- chat, server
ALTER TABLE conversations ADD COLUMN options TEXT;     -- JSON: sampling options
ALTER TABLE conversations ADD COLUMN usage TEXT;       -- JSON: token counts
ALTER TABLE conversations ADD COLUMN timings TEXT;     -- JSON: seconds, tokens per second
CREATE INDEX messages_conversation ON messages(conversation_id, seq);
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content = 'messages', content_rowid = 'id');
CREATE TRIGGER messages_fts_ins AFTER INSERT ON messages BEGIN
   INSERT INTO messages_fts (rowid, content) VALUES (NEW.id, NEW.content);
END;
CREATE TRIGGER messages_fts_del AFTER DELETE ON messages BEGIN
   INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', OLD.id, OLD.content);
END;
CREATE TRIGGER messages_fts_upd AFTER UPDATE OF content ON messages BEGIN
   INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', OLD.id, OLD.content);
   INSERT INTO messages_fts (rowid, content) VALUES (NEW.id, NEW.content);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
]],
}
M.SCHEMA_VERSION = #M.migrations

local Reg = {}
Reg.__index = Reg

-- ===== opening =====

local SQLITE_MAGIC = "SQLite format 3\0"

-- nil when path is absent, empty or starts like a SQLite file; else a message
local function check_header(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local head = f:read(16) or ""
   f:close()
   if head == "" or head == SQLITE_MAGIC then return nil end
   return "registry: " .. path .. " is not a SQLite database; refusing to touch it"
end

local function pragma(conn, name)
   local row = conn:first("PRAGMA " .. name)
   return row and row[name]
end

-- nil when the file is ours or blank; else why it is someone else's
local function foreign(conn, path)
   local app = pragma(conn, "application_id")
   local ver = pragma(conn, "user_version")
   if app == M.APP_ID then
      if ver > M.SCHEMA_VERSION then
         return string.format("registry: %s has schema version %d, newer than this moonhub (%d)",
            path, ver, M.SCHEMA_VERSION)
      end
      return nil
   end
   local names = {}
   for _, r in ipairs(conn:query("SELECT name FROM sqlite_master ORDER BY name LIMIT 5")) do
      names[#names + 1] = r.name
   end
   if app == 0 and ver == 0 and #names == 0 then return nil end   -- blank: ours to set up
   return string.format("registry: %s is a SQLite database of another application "
      .. "(application_id %d, tables: %s); refusing to modify it", path, app,
      #names > 0 and table.concat(names, ", ") or "none")
end

-- Switching to WAL needs the file to itself, and sqlite answers "locked" at
-- once instead of waiting (its busy handler does not cover it), so a second
-- process opening a fresh home at the same moment retries here.
local function use_wal(conn, timeout_ms)
   local waited = 0
   while true do
      local ok, mode = pcall(conn.first, conn, "PRAGMA journal_mode = WAL")
      if ok and mode and mode.journal_mode == "wal" then return end
      if not ok and not tostring(mode):find("locked", 1, true) and not tostring(mode):find("busy", 1, true) then
         error(mode, 0)
      end
      if waited >= timeout_ms then
         error(ok and "cannot switch to WAL mode" or mode, 0)
      end
      db.sleep(10)
      waited = waited + 10
   end
end

local function migrate(conn)
   conn:transaction(function()
      -- re-read under the write lock: another process may have migrated
      local have = pragma(conn, "user_version")
      for v = have + 1, M.SCHEMA_VERSION do
         conn:exec(M.migrations[v])
      end
      if have < M.SCHEMA_VERSION then
         conn:exec("PRAGMA user_version = " .. M.SCHEMA_VERSION)
         conn:exec("PRAGMA application_id = " .. M.APP_ID)
      end
   end)
end

-- open(home?, {busy_timeout_ms=}) -> reg | nil, msg. home defaults to
-- $MOONHUB_HOME; the database is home/moonhub.db.
function M.open(home, opts)
   if home ~= nil and (type(home) ~= "string" or home == "") then
      error("registry.open: home must be a directory path, got " .. (home == "" and "an empty string" or type(home)), 2)
   end
   home = home or require("moonhub").home()
   local path = home .. "/" .. M.FILE
   local bad = check_header(path)
   if bad then return nil, bad end
   local timeout = opts and opts.busy_timeout_ms or 10000
   local conn, msg = db.open(path, { busy_timeout_ms = timeout })
   if not conn then return nil, "registry: " .. msg end
   local ok, why = pcall(foreign, conn, path)
   if not ok or why then
      conn:close()
      return nil, ok and why or ("registry: cannot read " .. path .. ": " .. tostring(why))
   end
   ok, why = pcall(function()
      if pragma(conn, "journal_mode") ~= "wal" then use_wal(conn, timeout) end
      conn:exec("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL")
      migrate(conn)
   end)
   if not ok then
      conn:close()
      return nil, "registry: cannot set up " .. path .. ": " .. tostring(why)
   end
   return setmetatable({ db = conn, path = path, home = home }, Reg)
end

function Reg:close() self.db:close() end
Reg.__close = Reg.close

-- ===== names and references =====

local NAME_PAT = "^[%w][%w%._%-/]*$"
local TAG_PAT = "^[%w][%w%._%-]*$"

local function check_name(fname, what, s, pat)
   if type(s) ~= "string" or #s > 200 or not s:match(pat) then
      error(string.format("registry.%s: %s must be letters, digits and . _ - %s(got %s)", fname, what,
         pat == NAME_PAT and "/ " or "", type(s) == "string" and string.format("%q", s) or type(s)), 3)
   end
end

-- "name[:tag]" -> name, tag|nil
local function parse_ref(fname, ref)
   if type(ref) ~= "string" then
      error("registry." .. fname .. ": expected a reference \"name[:tag]\", got a " .. type(ref), 3)
   end
   local name, tag = ref:match("^([^:]+):([^:]+)$")
   name = name or ref
   check_name(fname, "model name", name, NAME_PAT)
   if tag then check_name(fname, "tag", tag, TAG_PAT) end
   return name, tag
end

local VERSION_COLS = [[v.id, v.model_id, m.name AS model, v.path, v.sha256, v.format, v.quant,
   v.size, v.params, v.arch, v.ctx, v.source_url, v.source_revision, v.parent_id, v.created_at]]

local function version_row(self, id, tag)
   local row = self.db:first("SELECT " .. VERSION_COLS ..
      " FROM versions v JOIN models m ON m.id = v.model_id WHERE v.id = ?", id)
   if row then row.tag = tag end
   return row
end

local function model_id(self, name)
   local r = self.db:first("SELECT id FROM models WHERE name = ?", name)
   return r and r.id
end

-- resolve("name[:tag]") -> version row (with .model and .tag) | nil, msg.
-- Aliases resolve to their model (and their tag when they carry one).
function Reg:resolve(ref)
   local name, tag = parse_ref("resolve", ref)
   local mid = model_id(self, name)
   if not mid then
      local a = self.db:first("SELECT model_id, tag FROM aliases WHERE name = ?", name)
      if not a then return nil, "registry: no model named '" .. name .. "'" end
      mid, tag = a.model_id, tag or a.tag
   end
   tag = tag or "latest"
   local t = self.db:first("SELECT version_id FROM tags WHERE model_id = ? AND name = ?", mid, tag)
   if not t then return nil, "registry: model '" .. name .. "' has no tag '" .. tag .. "'" end
   return version_row(self, t.version_id, tag)
end

-- ===== models and versions =====

local function infer_format(path)
   if path:match("%.gguf$") then return "gguf" end
   if path:match("%.safetensors$") then return "safetensors" end
   return nil
end

local function quant_text(q)
   if q == nil or type(q) == "string" then return q end
   if type(q) == "table" then return table.concat(q, ",") end
   error("registry.add_model: quant must be a string or a list of strings, got a " .. type(q), 3)
end

local OPTIONAL_INT = { "size", "params", "ctx" }
local OPTIONAL_TEXT = { "sha256", "arch", "source_url", "source_revision", "description" }

local function check_spec(self, spec)
   if type(spec) ~= "table" then
      error("registry.add_model: expected a table {name=, path=, ...}, got a " .. type(spec), 3)
   end
   check_name("add_model", "name", spec.name, NAME_PAT)
   check_name("add_model", "tag", spec.tag or "latest", TAG_PAT)
   if type(spec.path) ~= "string" or spec.path == "" then
      error("registry.add_model: path must be a non-empty string", 3)
   end
   for _, k in ipairs(OPTIONAL_INT) do
      if spec[k] ~= nil and math.type(spec[k]) ~= "integer" then
         error("registry.add_model: " .. k .. " must be an integer, got " .. tostring(spec[k]), 3)
      end
   end
   for _, k in ipairs(OPTIONAL_TEXT) do
      if spec[k] ~= nil and type(spec[k]) ~= "string" then
         error("registry.add_model: " .. k .. " must be a string, got a " .. type(spec[k]), 3)
      end
   end
   local format = spec.format or infer_format(spec.path)
   if type(format) ~= "string" then
      error("registry.add_model: format is required (cannot tell it from " .. spec.path .. ")", 3)
   end
   local parent = spec.parent
   if type(parent) == "string" then
      local row, msg = self:resolve(parent)
      if not row then error("registry.add_model: parent " .. msg, 3) end
      parent = row.id
   elseif parent ~= nil and math.type(parent) ~= "integer" then
      error("registry.add_model: parent must be a version id or \"name[:tag]\"", 3)
   end
   return format, quant_text(spec.quant), parent
end

local function put_tag(self, mid, tag, vid)
   self.db:exec([[INSERT INTO tags (model_id, name, version_id, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (model_id, name) DO UPDATE SET version_id = excluded.version_id,
      updated_at = excluded.updated_at]], mid, tag, vid, os.time())
end

-- add_model{name=, path=, tag="latest", format=, sha256=, quant=, size=,
-- params=, arch=, ctx=, source_url=, source_revision=, parent=, description=}
-- -> the version row. Creates the model when new, adds an immutable version
-- (or reuses one of this model with the same sha256), points tag at it and
-- moves `latest` to it.
function Reg:add_model(spec)
   local format, quant, parent = check_spec(self, spec)
   local tag = spec.tag or "latest"
   local vid = self.db:transaction(function(d)
      local now = os.time()
      if d:first("SELECT 1 FROM aliases WHERE name = ?", spec.name) then
         error("registry.add_model: '" .. spec.name .. "' is an alias; remove it first", 0)
      end
      local mid = model_id(self, spec.name)
      if not mid then
         mid = d:insert("INSERT INTO models (name, description, created_at) VALUES (?, ?, ?)",
            spec.name, spec.description, now)
      end
      local same = spec.sha256 and d:first("SELECT id FROM versions WHERE model_id = ? AND sha256 = ?",
         mid, spec.sha256)
      local id = same and same.id or d:insert([[INSERT INTO versions (model_id, path, sha256, format,
         quant, size, params, arch, ctx, source_url, source_revision, parent_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]], mid, spec.path, spec.sha256, format, quant,
         spec.size, spec.params, spec.arch, spec.ctx, spec.source_url, spec.source_revision, parent, now)
      put_tag(self, mid, tag, id)
      if tag ~= "latest" then put_tag(self, mid, "latest", id) end
      return id
   end)
   return version_row(self, vid, tag)
end

-- list() -> one row per tag, by name then tag: {name, tag, version_id,
-- path, format, quant, size, params, arch, ctx, sha256, created_at, updated_at}
function Reg:list()
   return self.db:query([[SELECT m.name, t.name AS tag, v.id AS version_id, v.path, v.format,
      v.quant, v.size, v.params, v.arch, v.ctx, v.sha256, v.created_at, t.updated_at
      FROM tags t JOIN models m ON m.id = t.model_id JOIN versions v ON v.id = t.version_id
      ORDER BY m.name, t.name]])
end

-- versions(name) -> all versions of a model, newest first, each with .tags
-- (an array of tag names) | nil, msg
function Reg:versions(name)
   check_name("versions", "model name", name, NAME_PAT)
   local mid = model_id(self, name)
   if not mid then return nil, "registry: no model named '" .. name .. "'" end
   local rows = self.db:query("SELECT " .. VERSION_COLS ..
      " FROM versions v JOIN models m ON m.id = v.model_id WHERE m.id = ? ORDER BY v.id DESC", mid)
   for _, r in ipairs(rows) do
      r.tags = {}
      for t in self.db:each("SELECT name FROM tags WHERE version_id = ? ORDER BY name", r.id) do
         r.tags[#r.tags + 1] = t.name
      end
   end
   return rows
end

-- lineage(ref) -> ancestors of a version, nearest first (its parent, the
-- parent's parent, ...), each a version row (model = its model's name) | nil, msg
function Reg:lineage(ref)
   local v, msg = self:resolve(ref)
   if not v then return nil, msg end
   return self.db:query([[
      WITH RECURSIVE up(id, depth) AS (
         SELECT parent_id, 1 FROM versions WHERE id = ? AND parent_id IS NOT NULL
         UNION ALL
         SELECT v.parent_id, up.depth + 1 FROM versions v JOIN up ON v.id = up.id
            WHERE v.parent_id IS NOT NULL AND up.depth < 1000)
      SELECT ]] .. VERSION_COLS .. [[ FROM up JOIN versions v ON v.id = up.id
         JOIN models m ON m.id = v.model_id ORDER BY up.depth]], v.id)
end

-- descendants(ref) -> versions derived from it, directly or not (fine-tunes,
-- quantizations), oldest first | nil, msg
function Reg:descendants(ref)
   local v, msg = self:resolve(ref)
   if not v then return nil, msg end
   return self.db:query([[
      WITH RECURSIVE down(id, depth) AS (
         SELECT id, 1 FROM versions WHERE parent_id = ?
         UNION ALL
         SELECT v.id, down.depth + 1 FROM versions v JOIN down ON v.parent_id = down.id
            WHERE down.depth < 1000)
      SELECT ]] .. VERSION_COLS .. [[ FROM down JOIN versions v ON v.id = down.id
         JOIN models m ON m.id = v.model_id ORDER BY v.id]], v.id)
end

-- set_tag(name, tag, version_id) -> true | nil, msg. Moves (or creates) a tag.
function Reg:set_tag(name, tag, version_id)
   check_name("set_tag", "model name", name, NAME_PAT)
   check_name("set_tag", "tag", tag, TAG_PAT)
   if math.type(version_id) ~= "integer" then
      error("registry.set_tag: version_id must be an integer, got " .. tostring(version_id), 2)
   end
   return self.db:transaction(function(d)
      local mid = model_id(self, name)
      if not mid then return nil, "registry: no model named '" .. name .. "'" end
      if not d:first("SELECT 1 FROM versions WHERE id = ? AND model_id = ?", version_id, mid) then
         return nil, "registry: model '" .. name .. "' has no version " .. version_id
      end
      put_tag(self, mid, tag, version_id)
      return true
   end)
end

-- alias(target, new) -> true | nil, msg. `new` resolves like target
-- ("name" follows whatever tag is asked for, "name:tag" pins that tag);
-- an existing alias of that name moves, a model of that name is an error.
function Reg:alias(target, new)
   local name, tag = parse_ref("alias", target)
   check_name("alias", "alias name", new, NAME_PAT)
   return self.db:transaction(function(d)
      local mid = model_id(self, name)
      if not mid then return nil, "registry: no model named '" .. name .. "'" end
      if model_id(self, new) then return nil, "registry: '" .. new .. "' is a model, not an alias" end
      d:exec([[INSERT INTO aliases (name, model_id, tag, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET model_id = excluded.model_id, tag = excluded.tag]],
         new, mid, tag, os.time())
      return true
   end)
end

function Reg:aliases()
   return self.db:query([[SELECT a.name, m.name AS model, a.tag, a.created_at FROM aliases a
      JOIN models m ON m.id = a.model_id ORDER BY a.name]])
end

-- remove("name") drops the model with its versions, tags and aliases;
-- remove("name:tag") drops the version that tag points at (with every tag
-- on it), moves `latest` to the newest version left, and drops the model
-- when none is left; remove("alias") drops the alias. Returns
-- {versions = {rows...}} (their paths are for the caller to delete) | nil, msg.
function Reg:remove(ref)
   local name, tag = parse_ref("remove", ref)
   return self.db:transaction(function(d)
      local mid = model_id(self, name)
      if not mid then
         if tag == nil and d:exec("DELETE FROM aliases WHERE name = ?", name) > 0 then
            return { versions = {}, alias = name }
         end
         return nil, "registry: no model named '" .. name .. "'"
      end
      local sql = "SELECT " .. VERSION_COLS .. " FROM versions v JOIN models m ON m.id = v.model_id "
      local gone
      if tag then
         local t = d:first("SELECT version_id FROM tags WHERE model_id = ? AND name = ?", mid, tag)
         if not t then return nil, "registry: model '" .. name .. "' has no tag '" .. tag .. "'" end
         gone = d:query(sql .. "WHERE v.id = ?", t.version_id)
         d:exec("DELETE FROM versions WHERE id = ?", t.version_id)
         local newest = d:first("SELECT max(id) AS id FROM versions WHERE model_id = ?", mid)
         if newest.id then
            if not d:first("SELECT 1 FROM tags WHERE model_id = ? AND name = 'latest'", mid) then
               put_tag(self, mid, "latest", newest.id)
            end
            return { versions = gone }
         end
      else
         gone = d:query(sql .. "WHERE m.id = ? ORDER BY v.id", mid)
      end
      d:exec("DELETE FROM models WHERE id = ?", mid)
      return { versions = gone }
   end)
end

-- ===== datasets and runs =====

-- add_dataset{name=, path=, format=, sha256=, rows=, size=, source_url=} -> id
function Reg:add_dataset(spec)
   if type(spec) ~= "table" then error("registry.add_dataset: expected a table {name=, path=, ...}", 2) end
   check_name("add_dataset", "name", spec.name, NAME_PAT)
   if type(spec.path) ~= "string" or spec.path == "" then
      error("registry.add_dataset: path must be a non-empty string", 2)
   end
   return self.db:insert([[INSERT INTO datasets (name, path, format, sha256, rows, size, source_url,
      created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], spec.name, spec.path, spec.format, spec.sha256,
      spec.rows, spec.size, spec.source_url, os.time())
end

function Reg:datasets()
   return self.db:query("SELECT * FROM datasets ORDER BY name")
end

-- add_run{kind=, version_id=, dataset_id=, config=, log_path=} -> id (queued)
function Reg:add_run(spec)
   if type(spec) ~= "table" or type(spec.kind) ~= "string" then
      error("registry.add_run: expected a table with a string kind", 2)
   end
   return self.db:insert([[INSERT INTO runs (kind, version_id, dataset_id, config, log_path, created_at)
      VALUES (?, ?, ?, ?, ?, ?)]], spec.kind, spec.version_id, spec.dataset_id, spec.config,
      spec.log_path, os.time())
end

local RUN_FIELDS = { status = true, output_version_id = true, metrics = true, error = true,
   started_at = true, finished_at = true, log_path = true }

-- update_run(id, {status=, metrics=, error=, output_version_id=, ...}) -> true | nil, msg
function Reg:update_run(id, fields)
   if math.type(id) ~= "integer" or type(fields) ~= "table" then
      error("registry.update_run: expected (id, {field = value, ...})", 2)
   end
   local sets, vals = {}, {}
   for k, v in pairs(fields) do
      if not RUN_FIELDS[k] then error("registry.update_run: unknown field '" .. tostring(k) .. "'", 2) end
      sets[#sets + 1] = k .. " = :" .. k
      vals[k] = v
   end
   if #sets == 0 then return true end
   table.sort(sets)           -- one SQL text per field set: the statement cache stays small
   vals.id = id
   if self.db:exec("UPDATE runs SET " .. table.concat(sets, ", ") .. " WHERE id = :id", vals) == 0 then
      return nil, "registry: no run " .. id
   end
   return true
end

function Reg:runs()
   return self.db:query("SELECT * FROM runs ORDER BY id DESC")
end

-- ===== conversations =====

-- add_conversation{title=, model=, version_id=, system=} -> id
function Reg:add_conversation(spec)
   spec = spec or {}
   if type(spec) ~= "table" then error("registry.add_conversation: expected a table or nothing", 2) end
   local now = os.time()
   return self.db:insert([[INSERT INTO conversations (title, model, version_id, system, created_at,
      updated_at) VALUES (?, ?, ?, ?, ?, ?)]], spec.title, spec.model, spec.version_id, spec.system,
      now, now)
end

local ROLES = { system = true, user = true, assistant = true, tool = true }

-- add_message(conversation_id, role, content, {tokens=}?) -> message id | nil, msg
function Reg:add_message(cid, role, content, extra)
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
function Reg:conversations(opts)
   local limit = opts and opts.limit or -1
   return self.db:query("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC LIMIT ?", limit)
end

-- messages(conversation_id) -> in order
function Reg:messages(cid)
   return self.db:query("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", cid)
end

function Reg:remove_conversation(cid)
   return self.db:exec("DELETE FROM conversations WHERE id = ?", cid) > 0
end

return M
