-- moonhub.registry.models: models, their immutable versions with lineage,
-- movable tags and aliases — the methods a registry handle carries for
-- them (self.db is the one database handle). Layer: lua/moonhub (portable
-- SQL over moonhub.db; dialect-specific SQL lives in moonhub.db.<dialect>).
local M = {}

-- ===== names and references =====

M.NAME_PAT = "^[%w][%w%._%-/]*$"
local TAG_PAT = "^[%w][%w%._%-]*$"

function M.check_name(fname, what, s, pat)
   if type(s) ~= "string" or #s > 200 or not s:match(pat) then
      error(string.format("registry.%s: %s must be letters, digits and . _ - %s(got %s)", fname, what,
         pat == M.NAME_PAT and "/ " or "", type(s) == "string" and string.format("%q", s) or type(s)), 3)
   end
end

-- "name[:tag]" -> name, tag|nil
local function parse_ref(fname, ref)
   if type(ref) ~= "string" then
      error("registry." .. fname .. ": expected a reference \"name[:tag]\", got a " .. type(ref), 3)
   end
   local name, tag = ref:match("^([^:]+):([^:]+)$")
   name = name or ref
   M.check_name(fname, "model name", name, M.NAME_PAT)
   if tag then M.check_name(fname, "tag", tag, TAG_PAT) end
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

-- `latest` is not a tag: it names the model's newest version (models.latest_id,
-- moved by each add; when that version goes, the newest one left).
local function latest_of(self, mid)
   local r = self.db:first([[SELECT coalesce(m.latest_id, (SELECT max(id) FROM versions
      WHERE model_id = m.id)) AS id FROM models m WHERE m.id = ?]], mid)
   return r and r.id
end

-- by_digest(hex) -> the version whose file has that sha256 (hex: 12 to 64
-- digits, a prefix), with .tag its first tag, else "latest" | nil, msg. The
-- registry records each file's digest, so nodes sharing one database (and
-- a path every node sees) agree on what "sha256:..." names.
function M:by_digest(hex)
   if type(hex) ~= "string" or not hex:match("^%x+$") or #hex < 12 or #hex > 64 then
      error("registry.by_digest: expected 12 to 64 hex digits of a sha256, got " .. tostring(hex), 2)
   end
   hex = hex:lower()
   local rows = self.db:query([[SELECT id, sha256 FROM versions WHERE substr(sha256, 1, ?) = ?
      ORDER BY id DESC]], #hex, hex)
   if #rows == 0 then return nil, "registry: no version with sha256 " .. hex end
   for _, r in ipairs(rows) do
      if r.sha256 ~= rows[1].sha256 then
         return nil, "registry: sha256 " .. hex .. " is ambiguous (give more digits)"
      end
   end
   local t = self.db:first("SELECT name FROM tags WHERE version_id = ? ORDER BY name LIMIT 1", rows[1].id)
   return version_row(self, rows[1].id, t and t.name or "latest")
end

-- resolve("name[:tag]") -> version row (with .model and .tag) | nil, msg.
-- Aliases resolve to their model (and their tag when they carry one).
-- No tag, or `latest`: the model's newest version (.tag is then "latest").
-- "sha256:HEX" names a version by its file's digest (by_digest).
function M:resolve(ref)
   local digest = type(ref) == "string" and ref:match("^sha256:(%x+)$")
   if digest and #digest >= 12 and #digest <= 64 then return self:by_digest(digest) end
   local name, tag = parse_ref("resolve", ref)
   local mid = model_id(self, name)
   if not mid then
      local a = self.db:first("SELECT model_id, tag FROM aliases WHERE name = ?", name)
      if not a then return nil, "registry: no model named '" .. name .. "'" end
      mid, tag = a.model_id, tag or a.tag
   end
   tag = tag or "latest"
   if tag == "latest" then
      local vid = latest_of(self, mid)
      if not vid then return nil, "registry: model '" .. name .. "' has no versions" end
      return version_row(self, vid, tag)
   end
   local t = self.db:first("SELECT version_id FROM tags WHERE model_id = ? AND name = ?", mid, tag)
   if not t then return nil, "registry: model '" .. name .. "' has no tag '" .. tag .. "'" end
   return version_row(self, t.version_id, tag)
end

-- pulled_from(repo) -> the versions pulled from Hub repo "ORG/NAME" (their
-- source_url names it), newest first, each with .tag (its first tag, else
-- "latest" for the model's newest) and .file (the file it came from, nil for a folder)
function M:pulled_from(repo)
   -- matched here, not in SQL: string functions differ between dialects
   -- (instr, negative substr) and LIKE would read the _ of names as a wildcard
   local rows = {}
   for _, r in ipairs(self.db:query("SELECT " .. VERSION_COLS .. [[ FROM versions v
         JOIN models m ON m.id = v.model_id WHERE v.source_url IS NOT NULL ORDER BY v.id DESC]])) do
      local u = r.source_url
      if u:find("/" .. repo .. "/resolve/", 1, true) or u:sub(-#repo - 1) == "/" .. repo then rows[#rows + 1] = r end
   end
   for _, r in ipairs(rows) do
      local t = self.db:first("SELECT name FROM tags WHERE version_id = ? ORDER BY name LIMIT 1", r.id)
      r.tag = t and t.name or "latest"
      r.file = r.source_url:match("/resolve/[^/]+/(.+)$")
   end
   return rows
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
   M.check_name("add_model", "name", spec.name, M.NAME_PAT)
   if spec.tag ~= nil then M.check_name("add_model", "tag", spec.tag, TAG_PAT) end
   if spec.tag == "latest" then
      error("registry.add_model: 'latest' is not a tag (it always names the newest version); "
         .. "pick another tag", 3)
   end
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

-- add_model{name=, path=, tag=, format=, sha256=, quant=, size=,
-- params=, arch=, ctx=, source_url=, source_revision=, parent=, description=}
-- -> the version row. Creates the model when new, adds an immutable version
-- (or reuses one of this model with the same sha256), points tag at it
-- (default "v<version id>") and makes it the model's `latest`.
function M:add_model(spec)
   local format, quant, parent = check_spec(self, spec)
   local tag = spec.tag
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
      tag = tag or ("v" .. id)
      put_tag(self, mid, tag, id)
      d:exec("UPDATE models SET latest_id = ? WHERE id = ?", id, mid)
      return id
   end)
   return version_row(self, vid, tag)
end

local LATEST = [[coalesce(m.latest_id, (SELECT max(id) FROM versions x WHERE x.model_id = m.id))]]

-- list() -> one row per tag, by name then tag: {name, tag, version_id,
-- path, format, quant, size, params, arch, ctx, sha256, created_at,
-- updated_at, latest (true on the model's newest version)}. `latest` is
-- no row of its own.
function M:list()
   local rows = self.db:query([[SELECT m.name, t.name AS tag, v.id AS version_id, v.path, v.format,
      v.quant, v.size, v.params, v.arch, v.ctx, v.sha256, v.created_at, t.updated_at,
      v.id = ]] .. LATEST .. [[ AS latest
      FROM tags t JOIN models m ON m.id = t.model_id JOIN versions v ON v.id = t.version_id
      ORDER BY m.name, t.name]])
   for _, r in ipairs(rows) do r.latest = r.latest == 1 end
   return rows
end

-- versions(name) -> all versions of a model, newest first, each with .tags
-- (an array of tag names, "latest" last on the newest) | nil, msg
function M:versions(name)
   M.check_name("versions", "model name", name, M.NAME_PAT)
   local mid = model_id(self, name)
   if not mid then return nil, "registry: no model named '" .. name .. "'" end
   local rows = self.db:query("SELECT " .. VERSION_COLS ..
      " FROM versions v JOIN models m ON m.id = v.model_id WHERE m.id = ? ORDER BY v.id DESC", mid)
   for _, r in ipairs(rows) do
      r.tags = {}
      for t in self.db:each("SELECT name FROM tags WHERE version_id = ? ORDER BY name", r.id) do
         r.tags[#r.tags + 1] = t.name
      end
      if r.id == latest_of(self, mid) then r.tags[#r.tags + 1] = "latest" end
   end
   return rows
end

-- lineage(ref) -> ancestors of a version, nearest first (its parent, the
-- parent's parent, ...), each a version row (model = its model's name) | nil, msg
function M:lineage(ref)
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
function M:descendants(ref)
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

-- set_tag(name, tag, version_id) -> true | nil, msg. Moves (or creates) a
-- tag; "latest" moves the model's latest pointer.
function M:set_tag(name, tag, version_id)
   M.check_name("set_tag", "model name", name, M.NAME_PAT)
   M.check_name("set_tag", "tag", tag, TAG_PAT)
   if math.type(version_id) ~= "integer" then
      error("registry.set_tag: version_id must be an integer, got " .. tostring(version_id), 2)
   end
   return self.db:transaction(function(d)
      local mid = model_id(self, name)
      if not mid then return nil, "registry: no model named '" .. name .. "'" end
      if not d:first("SELECT 1 FROM versions WHERE id = ? AND model_id = ?", version_id, mid) then
         return nil, "registry: model '" .. name .. "' has no version " .. version_id
      end
      if tag == "latest" then
         d:exec("UPDATE models SET latest_id = ? WHERE id = ?", version_id, mid)
      else
         put_tag(self, mid, tag, version_id)
      end
      return true
   end)
end

-- alias(target, new) -> true | nil, msg. `new` resolves like target
-- ("name" follows whatever tag is asked for, "name:tag" pins that tag);
-- an existing alias of that name moves, a model of that name is an error.
function M:alias(target, new)
   local name, tag = parse_ref("alias", target)
   M.check_name("alias", "alias name", new, M.NAME_PAT)
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

function M:aliases()
   return self.db:query([[SELECT a.name, m.name AS model, a.tag, a.created_at FROM aliases a
      JOIN models m ON m.id = a.model_id ORDER BY a.name]])
end

-- remove("name") drops the model with its versions, tags and aliases;
-- remove("name:tag") drops the version that tag (or `latest`) points at
-- (with every tag on it; `latest` falls back to the newest version left),
-- and drops the model when none is left; remove("alias") drops the alias. Returns
-- {versions = {rows...}} (their paths are for the caller to delete) | nil, msg.
function M:remove(ref)
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
         local t = tag == "latest" and { version_id = latest_of(self, mid) }
            or d:first("SELECT version_id FROM tags WHERE model_id = ? AND name = ?", mid, tag)
         if not t then return nil, "registry: model '" .. name .. "' has no tag '" .. tag .. "'" end
         gone = d:query(sql .. "WHERE v.id = ?", t.version_id)
         d:exec("DELETE FROM versions WHERE id = ?", t.version_id)   -- latest_id -> NULL: newest left
         if d:first("SELECT 1 FROM versions WHERE model_id = ?", mid) then
            return { versions = gone }
         end
      else
         gone = d:query(sql .. "WHERE m.id = ? ORDER BY v.id", mid)
      end
      d:exec("DELETE FROM models WHERE id = ?", mid)
      return { versions = gone }
   end)
end

-- path_in_use(path) -> true when some version still points at path
function M:path_in_use(path)
   return self.db:first("SELECT 1 FROM versions WHERE path = ?", path) ~= nil
end

-- version_label(version_id) -> "name:tag" of that version (its first tag),
-- "name@id" when it has no tag, nil when it is gone
function M:version_label(vid)
   local p = self.db:first([[SELECT m.name, (SELECT t.name FROM tags t WHERE t.version_id = v.id
      ORDER BY t.name LIMIT 1) AS tag FROM versions v JOIN models m
      ON m.id = v.model_id WHERE v.id = ?]], vid)
   if not p then return nil end
   return p.tag and (p.name .. ":" .. p.tag) or (p.name .. "@" .. vid)
end

return M
