-- moonhub.db.postgres: the PostgreSQL dialect of the hub's database — the
-- same schema as moonhub.db.sqlite in PostgreSQL's SQL (migrations [1]..[N],
-- triggers as PL/pgSQL, full-text search with tsvector/tsquery), the schema
-- version in a table of its own, search and integrity check. Layer:
-- lua/moonhub (over a moonhub.db handle from moonhub.db.pgconn). Values come
-- back as SQLite's do: ids, counts and times BIGINT (Lua integers), REAL
-- DOUBLE PRECISION, booleans 1/0 (the driver maps them), NULL absent.
local D = {}

D.name = "postgres"
D.APP = "moonhub"              -- moonhub_schema.app: marks the schema as ours

-- mh_abort(message): the trigger function behind SQLite's RAISE(ABORT, ...)
local ABORT_FN = [[
CREATE FUNCTION mh_abort() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation'; END $$;
]]

-- migrations[v] takes the schema from v-1 to v, as moonhub.db.sqlite's [v]
-- does; never edit a released one
D.migrations = {
   [1] = ABORT_FN .. [[
CREATE TABLE models (
   id          BIGSERIAL PRIMARY KEY,
   name        TEXT NOT NULL UNIQUE,
   description TEXT,
   created_at  BIGINT NOT NULL
);
CREATE TABLE versions (
   id              BIGSERIAL PRIMARY KEY,
   model_id        BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
   path            TEXT NOT NULL,
   sha256          TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
   format          TEXT NOT NULL,
   quant           TEXT,
   size            BIGINT,
   params          BIGINT,
   arch            TEXT,
   ctx             BIGINT,
   source_url      TEXT,
   source_revision TEXT,
   parent_id       BIGINT REFERENCES versions(id) ON DELETE SET NULL,
   created_at      BIGINT NOT NULL
);
CREATE INDEX versions_model ON versions(model_id);
CREATE INDEX versions_parent ON versions(parent_id);
CREATE INDEX versions_sha256 ON versions(sha256);
CREATE TRIGGER versions_immutable BEFORE UPDATE OF model_id, path, sha256, format, quant,
   size, params, arch, ctx, source_url, source_revision, created_at ON versions
   FOR EACH ROW EXECUTE FUNCTION mh_abort('versions are immutable');
CREATE TABLE tags (
   model_id   BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
   name       TEXT NOT NULL,
   version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
   updated_at BIGINT NOT NULL,
   PRIMARY KEY (model_id, name)
);
CREATE INDEX tags_version ON tags(version_id);
CREATE FUNCTION mh_tags_same_model() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
   IF (SELECT model_id FROM versions WHERE id = NEW.version_id) IS DISTINCT FROM NEW.model_id THEN
      RAISE EXCEPTION 'tag and version belong to different models' USING ERRCODE = 'integrity_constraint_violation';
   END IF;
   RETURN NEW;
END $$;
CREATE TRIGGER tags_same_model BEFORE INSERT OR UPDATE ON tags
   FOR EACH ROW EXECUTE FUNCTION mh_tags_same_model();
CREATE TABLE aliases (
   name       TEXT PRIMARY KEY,
   model_id   BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
   tag        TEXT,
   created_at BIGINT NOT NULL
);
CREATE TABLE datasets (
   id         BIGSERIAL PRIMARY KEY,
   name       TEXT NOT NULL UNIQUE,
   path       TEXT NOT NULL,
   format     TEXT,
   sha256     TEXT,
   rows       BIGINT,
   size       BIGINT,
   source_url TEXT,
   created_at BIGINT NOT NULL
);
CREATE TABLE runs (
   id                BIGSERIAL PRIMARY KEY,
   kind              TEXT NOT NULL,
   status            TEXT NOT NULL DEFAULT 'queued'
                     CONSTRAINT runs_status_check
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
   version_id        BIGINT REFERENCES versions(id) ON DELETE SET NULL,
   dataset_id        BIGINT REFERENCES datasets(id) ON DELETE SET NULL,
   output_version_id BIGINT REFERENCES versions(id) ON DELETE SET NULL,
   config            TEXT,
   metrics           TEXT,
   log_path          TEXT,
   error             TEXT,
   created_at        BIGINT NOT NULL,
   started_at        BIGINT,
   finished_at       BIGINT
);
CREATE TABLE conversations (
   id         BIGSERIAL PRIMARY KEY,
   title      TEXT,
   model      TEXT,
   version_id BIGINT REFERENCES versions(id) ON DELETE SET NULL,
   system     TEXT,
   created_at BIGINT NOT NULL,
   updated_at BIGINT NOT NULL
);
CREATE TABLE messages (
   id              BIGSERIAL PRIMARY KEY,
   conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
   seq             BIGINT NOT NULL,
   role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
   content         TEXT NOT NULL,
   tokens          BIGINT,
   created_at      BIGINT NOT NULL,
   UNIQUE (conversation_id, seq)
);
]],
   -- 2: conversation details (JSON text) and full-text search: a GIN index
   -- over the messages' tsvector ('simple': lower case, no stemming, as
   -- FTS5's unicode61 tokenizer); no side table to keep in step
   [2] = [[
ALTER TABLE conversations ADD COLUMN source TEXT;
ALTER TABLE conversations ADD COLUMN options TEXT;
ALTER TABLE conversations ADD COLUMN usage TEXT;
ALTER TABLE conversations ADD COLUMN timings TEXT;
CREATE INDEX messages_conversation ON messages(conversation_id, seq);
CREATE INDEX messages_fts ON messages USING gin (to_tsvector('simple', content));
]],
   -- 3: `latest` is the model's pointer, not a tag (see moonhub.db.sqlite [3])
   [3] = [[
ALTER TABLE models ADD COLUMN latest_id BIGINT REFERENCES versions(id) ON DELETE SET NULL;
UPDATE models SET latest_id =
   (SELECT version_id FROM tags t WHERE t.model_id = models.id AND t.name = 'latest');
DELETE FROM tags WHERE name = 'latest' AND EXISTS
   (SELECT 1 FROM tags o WHERE o.version_id = tags.version_id AND o.name <> 'latest');
UPDATE tags SET name = (SELECT upper(split_part(v.quant, ',', 1)) FROM versions v WHERE v.id = tags.version_id)
   WHERE name = 'latest'
   AND (SELECT v.quant FROM versions v WHERE v.id = tags.version_id) ~ '^[A-Za-z0-9]'
   AND NOT EXISTS (SELECT 1 FROM tags o, versions v WHERE v.id = tags.version_id
      AND o.model_id = tags.model_id AND o.name = upper(split_part(v.quant, ',', 1)));
UPDATE tags SET name = 'v' || version_id WHERE name = 'latest';
CREATE TRIGGER tags_not_latest BEFORE INSERT ON tags FOR EACH ROW WHEN (NEW.name = 'latest')
   EXECUTE FUNCTION mh_abort('latest is the newest version, not a tag');
]],
   -- 4: datasets as immutable versions (see moonhub.db.sqlite [4])
   [4] = [[
CREATE TABLE dataset_versions (
   id         BIGSERIAL PRIMARY KEY,
   dataset_id BIGINT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
   version    BIGINT NOT NULL,
   split      TEXT CHECK (split IS NULL OR split IN ('train', 'val', 'test')),
   kind       TEXT NOT NULL CHECK (kind IN ('chat', 'completion', 'text')),
   path       TEXT NOT NULL,
   sha256     TEXT NOT NULL CHECK (length(sha256) = 64),
   rows       BIGINT NOT NULL,
   size       BIGINT NOT NULL,
   parent_id  BIGINT REFERENCES dataset_versions(id) ON DELETE SET NULL,
   op         TEXT NOT NULL,
   params     TEXT,
   stats      TEXT,
   created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX dataset_versions_whole ON dataset_versions(dataset_id, version) WHERE split IS NULL;
CREATE UNIQUE INDEX dataset_versions_split ON dataset_versions(dataset_id, version, split)
   WHERE split IS NOT NULL;
CREATE INDEX dataset_versions_parent ON dataset_versions(parent_id);
CREATE TRIGGER dataset_versions_immutable BEFORE UPDATE OF dataset_id, version, split, kind, path,
   sha256, rows, size, op, params, created_at ON dataset_versions
   FOR EACH ROW EXECUTE FUNCTION mh_abort('dataset versions are immutable');
]],
   -- 5: training jobs (see moonhub.db.sqlite [5]). PostgreSQL alters the
   -- table in place (SQLite has to rebuild it to change a CHECK)
   [5] = [[
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
UPDATE runs SET status = 'succeeded' WHERE status = 'done';
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('queued', 'running',
   'succeeded', 'failed', 'cancelled', 'interrupted'));
ALTER TABLE runs ADD COLUMN dataset_version_id BIGINT REFERENCES dataset_versions(id) ON DELETE SET NULL;
ALTER TABLE runs ADD COLUMN model TEXT;
ALTER TABLE runs ADD COLUMN dataset TEXT;
ALTER TABLE runs ADD COLUMN repro TEXT;
ALTER TABLE runs ADD COLUMN artifacts TEXT;
ALTER TABLE runs ADD COLUMN step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN total_steps BIGINT;
ALTER TABLE runs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN worker_pid BIGINT;
ALTER TABLE runs ADD COLUMN heartbeat_at BIGINT;
CREATE INDEX runs_status ON runs(status, id);
CREATE TABLE run_events (
   id     BIGSERIAL PRIMARY KEY,
   run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
   status TEXT NOT NULL,
   reason TEXT,
   at     BIGINT NOT NULL
);
CREATE INDEX run_events_run ON run_events(run_id, id);
CREATE TABLE run_steps (
   run_id       BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
   step         BIGINT NOT NULL,
   loss         DOUBLE PRECISION,
   lr           DOUBLE PRECISION,
   grad_norm    DOUBLE PRECISION,
   tokens       BIGINT,
   tokens_per_s DOUBLE PRECISION,
   step_ms      DOUBLE PRECISION,
   peak_rss     BIGINT,
   at           BIGINT NOT NULL,
   PRIMARY KEY (run_id, step)
);
CREATE TABLE run_metrics (
   id     BIGSERIAL PRIMARY KEY,
   run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
   key    TEXT NOT NULL,
   value  DOUBLE PRECISION,
   step   BIGINT,
   at     BIGINT NOT NULL
);
CREATE INDEX run_metrics_run ON run_metrics(run_id, key, step);
]],
   -- 6: a trained version names its run and dataset version (see moonhub.db.sqlite [6])
   [6] = [[
ALTER TABLE versions ADD COLUMN run_id BIGINT;
ALTER TABLE versions ADD COLUMN dataset_version_id BIGINT;
CREATE INDEX versions_run ON versions(run_id);
]],
   -- 7 (s5-cluster): leases for several workers (see moonhub.db.sqlite [7])
   [7] = [[
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE runs ADD COLUMN auto_resume BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN resumes BIGINT NOT NULL DEFAULT 0;
]],
}
D.SCHEMA_VERSION = 0
for v in pairs(D.migrations) do D.SCHEMA_VERSION = math.max(D.SCHEMA_VERSION, v) end

-- ===== opening =====

-- the bookkeeping table: one row, the schema version and whose it is
local BOOK = "CREATE TABLE moonhub_schema (app TEXT NOT NULL, version BIGINT NOT NULL)"

local function tables(conn)
   local names = {}
   for _, r in ipairs(conn:query([[SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
         ORDER BY tablename LIMIT 6]])) do
      names[#names + 1] = r.tablename
   end
   return names
end

local function has_book(conn)
   return conn:first([[SELECT 1 AS yes FROM pg_tables WHERE schemaname = current_schema()
      AND tablename = 'moonhub_schema']]) ~= nil
end

-- nil when the schema is ours or empty; else why it is someone else's
local function foreign(conn, where)
   if not conn:first("SELECT current_schema() AS s").s then
      return "registry: " .. where .. " has no schema to use (the search_path names none that exists)"
   end
   if has_book(conn) then
      local b = conn:first("SELECT app, version FROM moonhub_schema")
      if not b or b.app ~= D.APP then
         return "registry: " .. where .. " holds a moonhub_schema table that is not moonhub's; refusing to modify it"
      end
      if b.version > D.SCHEMA_VERSION then
         return string.format("registry: %s has schema version %d, newer than this moonhub (%d)",
            where, b.version, D.SCHEMA_VERSION)
      end
      return nil
   end
   local names = tables(conn)
   if #names == 0 then return nil end
   return string.format("registry: %s already holds tables of another application (%s); refusing to modify "
      .. "it (give moonhub a database or schema of its own)", where, table.concat(names, ", "))
end

local function migrate(conn)
   conn:transaction(function()
      -- under the write lock: another node may have migrated meanwhile
      if not has_book(conn) then
         conn:exec(BOOK)
         conn:exec("INSERT INTO moonhub_schema (app, version) VALUES (?, 0)", D.APP)
      end
      local have = conn:first("SELECT version FROM moonhub_schema").version
      for v = have + 1, D.SCHEMA_VERSION do
         if D.migrations[v] then conn:exec(D.migrations[v]) end
      end
      if have < D.SCHEMA_VERSION then conn:exec("UPDATE moonhub_schema SET version = ?", D.SCHEMA_VERSION) end
   end)
end

-- setup(conn, where) -> nil | msg: refuses a schema with another
-- application's tables untouched; else migrates to SCHEMA_VERSION.
function D.setup(conn, where)
   local ok, why = pcall(foreign, conn, where)
   if not ok or why then
      return ok and why or ("registry: cannot read " .. where .. ": " .. tostring(why))
   end
   ok, why = pcall(migrate, conn)
   if not ok then return "registry: cannot set up " .. where .. ": " .. tostring(why) end
   return nil
end

function D.schema_version(conn)
   local r = has_book(conn) and conn:first("SELECT version FROM moonhub_schema")
   return r and r.version or 0
end

-- integrity_check(conn) -> "ok" | the problems found: the bookkeeping row
-- and the tables the schema version promises (PostgreSQL checks its own
-- pages; a GIN index has no side table to drift, unlike FTS5's)
function D.integrity_check(conn)
   local problems = {}
   local n = conn:first("SELECT count(*) AS n FROM moonhub_schema").n
   if n ~= 1 then problems[#problems + 1] = "moonhub_schema has " .. n .. " rows, not 1" end
   for _, t in ipairs({ "models", "versions", "tags", "aliases", "datasets", "dataset_versions", "runs",
         "run_events", "run_steps", "run_metrics", "conversations", "messages" }) do
      if not conn:first("SELECT 1 AS yes FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?", t) then
         problems[#problems + 1] = "table " .. t .. " is missing"
      end
   end
   return #problems == 0 and "ok" or table.concat(problems, "\n")
end

-- ===== full-text search over messages =====

-- The words of user text, for to_tsquery: each word's letters and digits
-- (what the 'simple' parser indexes), all required; nil when none is left.
function D.fts_query(text)
   local words = {}
   for w in text:lower():gmatch("[%w\128-\255]+") do words[#words + 1] = "'" .. w .. "'" end
   return #words > 0 and table.concat(words, " & ") or nil
end

-- search_messages(conn, text, limit) -> best matches first: {conversation_id,
-- seq, role, snippet (hits in [brackets]), title, model, updated_at}
function D.search_messages(conn, text, limit)
   local q = D.fts_query(text)
   if not q then return {} end
   return conn:query([[SELECT m.conversation_id, m.seq, m.role,
      ts_headline('simple', m.content, to_tsquery('simple', :q),
         'StartSel=[, StopSel=], MaxWords=12, MinWords=4, ShortWord=0, MaxFragments=1, FragmentDelimiter=...')
         AS snippet, c.title, c.model, c.updated_at
      FROM messages m JOIN conversations c ON c.id = m.conversation_id
      WHERE to_tsvector('simple', m.content) @@ to_tsquery('simple', :q)
      ORDER BY ts_rank(to_tsvector('simple', m.content), to_tsquery('simple', :q)) DESC, m.id
      LIMIT :limit]], { q = q, limit = limit })
end

return D
