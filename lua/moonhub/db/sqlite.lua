-- moonhub.db.sqlite: the SQLite dialect of the hub's database — schema
-- (migrations, triggers, the FTS5 index), file checks and PRAGMAs of opening,
-- full-text search, integrity check. Layer: lua/moonhub (over a moonhub.db
-- handle). Another database adds a sibling module with the same fields
-- (docs/db.md, "Modules and the dialect seam").
local db = require "moonhub.db"

local D = {}

D.name = "sqlite"
D.APP_ID = 0x4D4F4F4E          -- "MOON": marks the file as ours

-- migrations[v] takes the schema from v-1 to v; never edit a released one
D.migrations = {
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
   -- 3: `latest` is the model's pointer, not a tag (docs/registry.md, "Names"):
   -- a registry of v2 stored it as a second tag row on the newest version.
   -- A version whose only tag was `latest` keeps a name: its main quant type
   -- when free, else "v<id>".
   [3] = [[
ALTER TABLE models ADD COLUMN latest_id INTEGER REFERENCES versions(id) ON DELETE SET NULL;
UPDATE models SET latest_id =
   (SELECT version_id FROM tags t WHERE t.model_id = models.id AND t.name = 'latest');
DELETE FROM tags WHERE name = 'latest' AND EXISTS
   (SELECT 1 FROM tags o WHERE o.version_id = tags.version_id AND o.name <> 'latest');
UPDATE tags SET name = (SELECT upper(substr(v.quant, 1, instr(v.quant || ',', ',') - 1))
      FROM versions v WHERE v.id = tags.version_id)
   WHERE name = 'latest'
   AND (SELECT v.quant FROM versions v WHERE v.id = tags.version_id) GLOB '[A-Za-z0-9]*'
   AND NOT EXISTS (SELECT 1 FROM tags o, versions v WHERE v.id = tags.version_id
      AND o.model_id = tags.model_id
      AND o.name = upper(substr(v.quant, 1, instr(v.quant || ',', ',') - 1)));
UPDATE tags SET name = 'v' || version_id WHERE name = 'latest';
CREATE TRIGGER tags_not_latest BEFORE INSERT ON tags WHEN NEW.name = 'latest'
BEGIN SELECT RAISE(ABORT, 'latest is the newest version, not a tag'); END;
]],
   -- 4: datasets as immutable versions (docs/datasets.md). `datasets` keeps one
   -- row per name (path: its folder); each import or derived file is a version
   -- row, a split is a row of its version's number with split set, and
   -- parent_id is the lineage (the version a redact, dedupe or split came from).
   [4] = [[
CREATE TABLE dataset_versions (
   id         INTEGER PRIMARY KEY,
   dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
   version    INTEGER NOT NULL,
   split      TEXT CHECK (split IS NULL OR split IN ('train', 'val', 'test')),
   kind       TEXT NOT NULL CHECK (kind IN ('chat', 'completion', 'text')),
   path       TEXT NOT NULL,
   sha256     TEXT NOT NULL CHECK (length(sha256) = 64),
   rows       INTEGER NOT NULL,
   size       INTEGER NOT NULL,
   parent_id  INTEGER REFERENCES dataset_versions(id) ON DELETE SET NULL,
   op         TEXT NOT NULL,       -- import, redact, drop, dedupe, split
   params     TEXT,                -- JSON: source file, column map, seed, fractions
   stats      TEXT,                -- JSON: token statistics for a model
   created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX dataset_versions_whole ON dataset_versions(dataset_id, version) WHERE split IS NULL;
CREATE UNIQUE INDEX dataset_versions_split ON dataset_versions(dataset_id, version, split)
   WHERE split IS NOT NULL;
CREATE INDEX dataset_versions_parent ON dataset_versions(parent_id);
CREATE TRIGGER dataset_versions_immutable BEFORE UPDATE OF dataset_id, version, split, kind, path,
   sha256, rows, size, op, params, created_at ON dataset_versions
BEGIN SELECT RAISE(ABORT, 'dataset versions are immutable'); END;
]],
   -- 5: training jobs (docs/jobs.md). runs is rebuilt for the job states
   -- (its CHECK said 'done', now 'succeeded', and adds 'interrupted'), the
   -- queue's columns (step, cancel request, the worker's pid and heartbeat)
   -- and the run's record (refs as typed, artifacts folder, reproducibility
   -- JSON); run_events keeps every transition, run_steps the per-step
   -- metrics, run_metrics named values such as eval loss.
   [5] = [[
CREATE TABLE runs_new (
   id                 INTEGER PRIMARY KEY,
   kind               TEXT NOT NULL,    -- train, quantize, bench, eval
   status             TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running',
                      'succeeded', 'failed', 'cancelled', 'interrupted')),
   version_id         INTEGER REFERENCES versions(id) ON DELETE SET NULL,
   dataset_id         INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
   dataset_version_id INTEGER REFERENCES dataset_versions(id) ON DELETE SET NULL,
   output_version_id  INTEGER REFERENCES versions(id) ON DELETE SET NULL,
   model              TEXT,             -- the references as the user typed them
   dataset            TEXT,
   config             TEXT,             -- JSON
   metrics            TEXT,             -- JSON: the latest step's figures
   repro              TEXT,             -- JSON: seed, dataset sha256, version, CPU path, threads
   log_path           TEXT,
   artifacts          TEXT,             -- runs/active/ID, then runs/archive/ID
   error              TEXT,
   step               INTEGER NOT NULL DEFAULT 0,
   total_steps        INTEGER,
   cancel_requested   INTEGER NOT NULL DEFAULT 0,
   worker_pid         INTEGER,
   heartbeat_at       INTEGER,
   created_at         INTEGER NOT NULL,
   started_at         INTEGER,
   finished_at        INTEGER
);
INSERT INTO runs_new (id, kind, status, version_id, dataset_id, output_version_id, config, metrics,
   log_path, error, created_at, started_at, finished_at)
   SELECT id, kind, CASE status WHEN 'done' THEN 'succeeded' ELSE status END, version_id, dataset_id,
   output_version_id, config, metrics, log_path, error, created_at, started_at, finished_at FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_status ON runs(status, id);
CREATE TABLE run_events (
   id     INTEGER PRIMARY KEY,
   run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
   status TEXT NOT NULL,
   reason TEXT,
   at     INTEGER NOT NULL
);
CREATE INDEX run_events_run ON run_events(run_id, id);
CREATE TABLE run_steps (
   run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
   step         INTEGER NOT NULL,
   loss         REAL,
   lr           REAL,
   grad_norm    REAL,
   tokens       INTEGER,
   tokens_per_s REAL,
   step_ms      REAL,
   peak_rss     INTEGER,
   at           INTEGER NOT NULL,
   PRIMARY KEY (run_id, step)
);
CREATE TABLE run_metrics (
   id     INTEGER PRIMARY KEY,
   run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
   key    TEXT NOT NULL,              -- eval_loss, eval_perplexity, ...
   value  REAL,
   step   INTEGER,
   at     INTEGER NOT NULL
);
CREATE INDEX run_metrics_run ON run_metrics(run_id, key, step);
]],
   -- 6 (s4-eval; [4] datasets by s4-data, [5] jobs by s4-jobs): a version made
   -- by training names the run and the dataset version it came from (its
   -- base is parent_id); plain integers, as runs and dataset versions live in
   -- tables of their own that may be pruned while the model stays
   [6] = [[
ALTER TABLE versions ADD COLUMN run_id INTEGER;
ALTER TABLE versions ADD COLUMN dataset_version_id INTEGER;
CREATE INDEX versions_run ON versions(run_id);
]],
   -- 7 (s5-cluster): leases for several workers on one database (docs/jobs.md,
   -- "Crash semantics"). lease_owner is the worker holding a running job
   -- (host:pid:random), lease_expires_at when it is lost unless renewed (unix
   -- seconds); auto_resume marks an interruption by a lost worker (another
   -- worker resumes it, at most resumes < MAX_RESUMES times), not by the user.
   [7] = [[
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_expires_at INTEGER;
ALTER TABLE runs ADD COLUMN auto_resume INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
]],
}
-- the highest migration (branches merged apart may leave a number free a while)
D.SCHEMA_VERSION = 0
for v in pairs(D.migrations) do D.SCHEMA_VERSION = math.max(D.SCHEMA_VERSION, v) end

-- ===== opening =====

local SQLITE_MAGIC = "SQLite format 3\0"

-- check_file(path) -> nil when path is absent, empty or starts like a
-- SQLite file; else why it must not be touched
function D.check_file(path)
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
   if app == D.APP_ID then
      if ver > D.SCHEMA_VERSION then
         return string.format("registry: %s has schema version %d, newer than this moonhub (%d)",
            path, ver, D.SCHEMA_VERSION)
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
      for v = have + 1, D.SCHEMA_VERSION do
         if D.migrations[v] then conn:exec(D.migrations[v]) end
      end
      if have < D.SCHEMA_VERSION then
         conn:exec("PRAGMA user_version = " .. D.SCHEMA_VERSION)
         conn:exec("PRAGMA application_id = " .. D.APP_ID)
      end
   end)
end

-- setup(conn, path, timeout_ms) -> nil | msg. Refuses another
-- application's file untouched; else WAL, foreign keys, migrations.
function D.setup(conn, path, timeout_ms)
   local ok, why = pcall(foreign, conn, path)
   if not ok or why then
      return ok and why or ("registry: cannot read " .. path .. ": " .. tostring(why))
   end
   ok, why = pcall(function()
      if pragma(conn, "journal_mode") ~= "wal" then use_wal(conn, timeout_ms) end
      conn:exec("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL")
      migrate(conn)
   end)
   if not ok then return "registry: cannot set up " .. path .. ": " .. tostring(why) end
   return nil
end

function D.schema_version(conn) return pragma(conn, "user_version") end

-- integrity_check(conn) -> "ok" | the problems found, one per line: the
-- b-trees (PRAGMA integrity_check) and the full-text index against the
-- messages it indexes (FTS5 check with rank 1 compares the external
-- content table too; it raises on a mismatch)
function D.integrity_check(conn)
   local lines = {}
   for _, r in ipairs(conn:query("PRAGMA integrity_check")) do lines[#lines + 1] = r.integrity_check end
   local text = table.concat(lines, "\n")
   if text ~= "ok" then return text end
   local ok, err = pcall(conn.exec, conn, "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
   return ok and "ok" or ("messages_fts: " .. tostring(err))
end

-- ===== full-text search over messages =====

-- An FTS5 query from user text: each word quoted (so punctuation and
-- operators are literal), all words required.
function D.fts_query(text)
   local words = {}
   for w in text:gmatch("%S+") do words[#words + 1] = '"' .. w:gsub('"', '""') .. '"' end
   return table.concat(words, " ")
end

-- search_messages(conn, text, limit) -> best matches first: {conversation_id,
-- seq, role, snippet (hits in [brackets]), title, model, updated_at}
function D.search_messages(conn, text, limit)
   return conn:query([[SELECT m.conversation_id, m.seq, m.role,
      snippet(messages_fts, 0, '[', ']', '...', 12) AS snippet, c.title, c.model, c.updated_at
      FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
      JOIN conversations c ON c.id = m.conversation_id
      WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?]], D.fts_query(text), limit)
end

return D
