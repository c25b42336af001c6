-- moonhub.models: models by name — resolve "name[:tag]" or a path to a file,
-- pull from the Hugging Face Hub, import local files, remove with the files
-- pull downloaded, facts read from GGUF headers and HF folders.
-- Layer: lua/moonhub (uses moonhub.registry, moonhub.hub, moonhub.gguf,
-- moonhub.fs for file calls). Downloads live in $MOONHUB_HOME/models.
local fs = require "moonhub.fs"
local sha256_file = require("moonhub.core.fetch").sha256_file
local host = require "moonhub.core.host"
local json = require "dkjson"
local registry = require "moonhub.registry"
local hub = require "moonhub.hub"

local M = {}

-- (the `models` key of moonhub.config: env MOONHUB_MODELS, config file, else $MOONHUB_HOME/models)
function M.models_dir() return require("moonhub.config").default("models") end

local function exists(path) return fs.stat(path) ~= nil end

-- ===== opening the registry =====

-- open() -> registry | nil, msg. With no database yet, nil, nil (and no
-- file is created: resolving a missing path must not make one).
local function open_existing()
   local home = require("moonhub").home()
   if not registry.exists(home) then return nil, nil end
   return registry.open(home)
end

function M.open()
   return registry.open(require("moonhub").home())
end

-- ===== close names =====

local distance = require "moonhub.edit_distance"

-- close_names(reg, "nmae") -> up to 5 registered names (and name:tag) near it
function M.close_names(reg, ref)
   local want = ref:match("^[^:]+") or ref
   local scored, seen = {}, {}
   local function consider(name)
      if seen[name] then return end
      seen[name] = true
      local d = math.min(distance(want, name), distance(want, name:sub(1, #want)) + 1)
      local sub = name:lower():find(want:lower(), 1, true) or want:lower():find(name:lower(), 1, true)
      if sub or d <= math.max(2, #want // 3) then scored[#scored + 1] = { name, sub and 0 or d } end
   end
   for _, r in ipairs(reg:list()) do consider(r.name) end
   for _, a in ipairs(reg:aliases()) do consider(a.name) end
   table.sort(scored, function(x, y) return x[2] < y[2] or (x[2] == y[2] and x[1] < y[1]) end)
   local out = {}
   for i = 1, math.min(5, #scored) do out[i] = scored[i][1] end
   return out
end

-- ===== resolving =====

local NAME_PAT = "^[%w][%w%._%-/]*$"

local function valid_ref(ref)
   local name, tag = ref:match("^([^:]+):([^:]+)$")
   name = name or ref
   return #name <= 200 and name:match(NAME_PAT) ~= nil and (not tag or tag:match("^[%w][%w%._%-]*$") ~= nil)
end

-- A Hub reference "[hf.co/]ORG/REPO[:QUANT]" (or ORG/REPO/FILE) -> the
-- registered version pulled from it (newest first; QUANT picks the file
-- carrying that quant, or the version tagged QUANT), .tag its own tag | nil
local function from_hub_ref(reg, ref)
   local repo, quant, file = hub.parse_ref(ref)
   if not repo then return nil end
   for _, r in ipairs(reg:pulled_from(repo)) do
      if (not file or r.file == file) and (not quant or r.tag:upper() == quant
            or (r.file and hub.quant_of(r.file) == quant)) then
         return r
      end
   end
   return nil
end

-- is_hub_ref(ref) -> true for the Hub references a verb may pull on its own:
-- "hf.co/ORG/REPO[:QUANT]" (also huggingface.co/, https://) and "ORG/REPO:QUANT"
function M.is_hub_ref(ref)
   if type(ref) ~= "string" or exists(ref) then return false end
   local bare, had_host = hub.strip_host(ref)
   local repo, quant, file = hub.parse_ref(bare)
   return repo ~= nil and (had_host or (quant ~= nil and not file))
end

-- registry_ref(reg, ref) -> the "name[:tag]" the registry knows ref by: ref
-- itself, or for a Hub reference of a pulled model its "name:tag" (so rm and
-- cp take the same references as the verbs that load a model)
function M.registry_ref(reg, ref)
   local ok, row = pcall(reg.resolve, reg, ref)
   if ok and row then return ref end
   local hit = type(ref) == "string" and from_hub_ref(reg, ref)
   return hit and (hit.model .. ":" .. hit.tag) or ref
end

-- resolve(ref) -> path, version row (nil for a plain path) | nil, msg.
-- The one way every verb that takes a MODEL finds it: an existing file or
-- folder wins; else ref is a registry name ("name", "name:tag", an alias);
-- else a Hugging Face reference ("hf.co/ORG/REPO-GGUF:Q4_K_M",
-- "ORG/REPO-GGUF:Q4_K_M") that was pulled into the registry.
function M.resolve(ref)
   if type(ref) ~= "string" or ref == "" then
      error("models.resolve: expected a model name or path, got " .. type(ref), 2)
   end
   if exists(ref) then return ref end
   local bare = hub.strip_host(ref)
   local repo, _, file = hub.parse_ref(bare)
   -- ORG/REPO/FILE.gguf is a Hub reference only with its hf.co/ prefix (else a path)
   local hubref = repo and (bare ~= ref or not file)
   -- what is plainly a path gets the file's error, not a registry lookup
   if not hubref and (ref:match("^[/.~]") or ref:match("%.gguf$") or ref:match("%.json$") or not valid_ref(ref)) then
      return nil, "cannot open " .. ref .. ": No such file or directory"
   end
   local reg, msg = open_existing()
   if not reg then
      if msg then return nil, msg end       -- the registry's own error (corrupt, foreign...)
      return nil, string.format("no such file or registered model: '%s' — the registry is empty: "
         .. "see 'moonhub pull'%s and 'moonhub import'", ref, hubref and (" " .. ref) or "")
   end
   local ok, row = pcall(reg.resolve, reg, ref)
   row = ok and row or nil
   if not row and hubref then row = from_hub_ref(reg, ref) end
   if not row then
      local near = M.close_names(reg, ref)
      reg:close()
      return nil, string.format("no such file or registered model: '%s'%s — see 'moonhub list'%s",
         ref, #near > 0 and ("; close names: " .. table.concat(near, ", ")) or "",
         hubref and (", or 'moonhub pull " .. ref .. "'") or "")
   end
   reg:close()
   if not exists(row.path) then
      return nil, string.format("model '%s' is registered at %s, which no longer exists", ref, row.path)
   end
   return row.path, row
end

-- ===== facts from files =====

local function quant_list(counts)
   local list = {}
   for k, n in pairs(counts) do if k:upper() ~= "F32" then list[#list + 1] = { k:upper(), n } end end
   table.sort(list, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
   local out = {}
   for i, e in ipairs(list) do out[i] = e[1] end
   if #out == 0 and (counts.F32 or counts.f32) then out[1] = "F32" end
   return out
end

-- gguf_facts(path) -> {format, arch, ctx, params, quant, size} | nil, msg
function M.gguf_facts(path)
   local f, msg = require("moonhub.gguf").open(path)
   if not f then return nil, msg end
   local md = f.metadata
   local arch = md["general.architecture"]
   local counts, params = {}, 0
   for _, t in ipairs(f:tensors()) do
      counts[t.dtype] = (counts[t.dtype] or 0) + 1
      local n = 1
      for _, d in ipairs(t.shape) do n = n * d end
      params = params + n
   end
   f:close()
   local st = fs.stat(path)
   return { format = "gguf", arch = arch, ctx = math.tointeger(arch and md[arch .. ".context_length"]),
      params = math.tointeger(params), quant = quant_list(counts), size = st and st.size,
      name = md["general.name"] }
end

local function read_json(path)
   local s = fs.read(path)
   if not s then return nil end
   local v = json.decode(s)
   return type(v) == "table" and v or nil
end

-- parameter count and dtypes from a .safetensors header (no tensor data read)
local function safetensors_header(path, counts)
   local f = io.open(path, "rb")
   if not f then return 0 end
   local head = f:read(8)
   local n = head and #head == 8 and string.unpack("<I8", head)
   local text = n and n < (100 << 20) and f:read(n)
   f:close()
   local hdr = text and json.decode(text)
   local params = 0
   for name, t in pairs(type(hdr) == "table" and hdr or {}) do
      if name ~= "__metadata__" and type(t) == "table" and type(t.shape) == "table" then
         local e = 1
         for _, d in ipairs(t.shape) do e = e * d end
         params = params + e
         counts[t.dtype] = (counts[t.dtype] or 0) + 1
      end
   end
   return params
end

-- dir_facts(dir) -> facts of a Hugging Face folder | nil, msg
function M.dir_facts(dir)
   local cfg = read_json(dir .. "/config.json")
   if not cfg then return nil, dir .. " has no readable config.json (not a Hugging Face model folder)" end
   local params, size, counts = 0, 0, {}
   for _, name in ipairs(host.listdir(dir) or {}) do
      local st = fs.stat(dir .. "/" .. name)
      if st and st.type == "file" then size = size + st.size end
      if name:match("%.safetensors$") then params = params + safetensors_header(dir .. "/" .. name, counts) end
   end
   local q = {}
   for k in pairs(counts) do q[#q + 1] = k end
   table.sort(q)
   return { format = "safetensors", arch = cfg.model_type, ctx = math.tointeger(cfg.max_position_embeddings),
      params = params > 0 and math.tointeger(params) or nil, quant = q, size = size,
      dtype = cfg.torch_dtype }
end

function M.facts(path)
   local st = fs.stat(path)
   if not st then return nil, "no such file: " .. path end
   if st.type == "dir" then return M.dir_facts(path) end
   return M.gguf_facts(path)
end

-- ===== memory estimates =====

-- estimate(size, cfg?, ctx) -> bytes: file size + an f16 KV cache from the
-- config's shape when known, else file size x 1.2
function M.estimate(size, cfg, ctx)
   ctx = ctx or 4096
   if type(cfg) == "table" and cfg.num_hidden_layers and cfg.num_attention_heads and cfg.hidden_size then
      local heads = cfg.num_attention_heads
      local kv_heads = cfg.num_key_value_heads or heads
      local head_dim = cfg.head_dim or cfg.hidden_size // heads
      return size + 2 * cfg.num_hidden_layers * ctx * kv_heads * head_dim * 2
   end
   return math.floor(size * 1.2)
end

M.mem_available = fs.mem_available

-- fit(size, cfg, ctx) -> verdict text, fits (bool)
function M.fit(size, cfg, ctx)
   ctx = ctx or 4096
   local need, have = M.estimate(size, cfg, ctx), M.mem_available()
   local text = string.format("needs %s at ctx %d", hub.human(need), ctx)
   if not have then return text, true end
   return string.format("%s; this machine has %s free", text, hub.human(have)), need <= have
end

-- ===== files we own =====

local function owned(path)
   local root = M.models_dir() .. "/"
   return path:sub(1, #root) == root
end
M.owned = owned

local function remove_tree(path)
   local st = fs.stat(path)
   local lst_link = st and st.link
   if st and st.type == "dir" and not lst_link then
      for _, e in ipairs(host.listdir(path) or {}) do remove_tree(path .. "/" .. e) end
   end
   if st and st.type == "file" and not lst_link then hub.remove_file(path)   -- a worker thread frees it
   else os.remove(path) end
end

-- drops empty folders from dir up to (not including) the models folder
local function prune(dir)
   local root = M.models_dir()
   while owned(dir .. "/") and dir ~= root do
      local entries = host.listdir(dir)
      if not entries or #entries > 0 then return end
      os.remove(dir)
      dir = dir:match("^(.*)/[^/]*$")
   end
end

-- ===== registering =====

local function default_name(s)
   s = s:gsub("[^%w%._%-/]", "-"):gsub("^[^%w]+", "")
   return s ~= "" and s or "model"
end

-- The naming rule (docs/registry.md, "Names"), one for import and pull:
-- NAME is the file's (or folder's) base name without .gguf, without its
-- quant suffix and without -GGUF; TAG is the quant type: the one in the
-- file name, else the GGUF's main tensor type, else a folder's dtype
-- (bf16, f16, f32). ref_for("dir/SmolLM2-135M-Q8_0.gguf", facts) -> "SmolLM2-135M", "Q8_0"
local function strip_gguf(s) return (s:gsub("[%-_%.][Gg][Gg][Uu][Ff]$", "")) end

function M.derive_name(base)
   local n = strip_gguf(base:match("([^/]+)/*$") or base)
   local q = hub.quant_of(n .. ".gguf")
   if q then
      local low = n:lower()
      local cut = #n - #q
      if low:sub(cut + 1) == q:lower() and cut > 1 and n:sub(cut, cut):match("[%-_%.]") then
         n = n:sub(1, cut - 1)
      end
   end
   return default_name(strip_gguf(n))
end

local DTYPE_TAG = { bfloat16 = "bf16", float16 = "f16", float32 = "f32" }

function M.derive_tag(base, facts)
   if facts.format == "gguf" then
      return hub.quant_of(base) or (type(facts.quant) == "table" and facts.quant[1])
         or (type(facts.quant) == "string" and facts.quant:match("^[^,]+")) or "F32"
   end
   return DTYPE_TAG[facts.dtype] or (type(facts.quant) == "table" and facts.quant[1]
      and facts.quant[1]:lower()) or "f32"
end

function M.ref_for(path, facts)
   local base = path:match("([^/]+)/*$") or path
   return M.derive_name(base), M.derive_tag(base, facts)
end

-- the registry name a Hub repo gets: its last component by the same rule
function M.repo_name(repo)
   return M.derive_name(repo:match("([^/]+)$"))
end

local function register(reg, spec, facts)
   return reg:add_model{ name = spec.name, tag = spec.tag, path = spec.path, sha256 = spec.sha256,
      format = facts.format, quant = facts.quant, size = facts.size, params = facts.params,
      arch = facts.arch, ctx = facts.ctx, source_url = spec.source_url,
      source_revision = spec.source_revision, parent = spec.parent }
end

local function with_registry(fn)
   local reg, msg = M.open()
   if not reg then return nil, msg end
   local ok, a, b = pcall(fn, reg)
   reg:close()
   if not ok then return nil, tostring(a) end
   return a, b
end

-- import(path, {name =, tag =, mode = "in-place"|"link"|"copy", parent =}) -> version row | nil, msg.
-- In place, the registry points at the file and never deletes it; link and
-- copy put a symlink or a copy under $MOONHUB_HOME/models, which rm removes.
function M.import(path, opts)
   opts = opts or {}
   if type(path) ~= "string" or path == "" then error("models.import: path must be a non-empty string", 2) end
   local abs = fs.realpath(path)
   if not abs then return nil, "import: no such file or folder: " .. path end
   local facts, ferr = M.facts(abs)
   if not facts then return nil, "import: " .. ferr end
   local base = abs:match("([^/]+)$")
   local dname, dtag = M.ref_for(abs, facts)
   local name, tag = opts.name or dname, opts.tag or dtag
   local sha = facts.format == "gguf" and sha256_file(abs) or nil
   local target = abs
   if opts.mode == "link" or opts.mode == "copy" then
      local dir = M.models_dir() .. "/local/" .. name:gsub("/", "--")
      local ok, merr = fs.mkdirs(dir)
      if not ok then return nil, "import: " .. merr end
      target = dir .. "/" .. base
      if exists(target) then return nil, "import: " .. target .. " already exists" end
      local done, err
      if opts.mode == "link" then
         done, err = fs.symlink(abs, target)
      elseif facts.format == "gguf" then
         done, err = fs.copy(abs, target)
      else
         done, err = fs.mkdirs(target)
         for _, e in ipairs(done and host.listdir(abs) or {}) do
            local st = fs.stat(abs .. "/" .. e)
            if st and st.type == "file" then done, err = fs.copy(abs .. "/" .. e, target .. "/" .. e) end
            if not done then break end
         end
      end
      if not done then remove_tree(target); return nil, "import: " .. tostring(err) end
   end
   return with_registry(function(reg)
      return register(reg, { name = name, tag = tag, path = target, sha256 = sha, parent = opts.parent,
         source_url = "file://" .. abs }, facts)
   end)
end

-- remove(ref) -> {versions = rows, deleted = {paths}, kept = {paths}} | nil, msg.
-- Files under $MOONHUB_HOME/models go with their last version; files
-- registered in place stay.
function M.remove(ref)
   return with_registry(function(reg)
      local gone, msg = reg:remove(M.registry_ref(reg, ref))
      if not gone then return nil, msg end
      local out = { versions = gone.versions, alias = gone.alias, deleted = {}, kept = {} }
      for _, v in ipairs(gone.versions) do
         if owned(v.path) and not reg:path_in_use(v.path) then
            remove_tree(v.path)
            prune(v.path:match("^(.*)/[^/]*$"))
            out.deleted[#out.deleted + 1] = v.path
         else
            out.kept[#out.kept + 1] = v.path
         end
      end
      return out
   end)
end

-- ===== pulling =====

local HF_DIR_FILES = { "^config%.json$", "^generation_config%.json$", "%.safetensors$",
   "%.safetensors%.index%.json$", "^tokenizer%.json$", "^tokenizer_config%.json$",
   "^tokenizer%.model$", "^special_tokens_map%.json$", "^added_tokens%.json$", "%.jinja$",
   "^vocab%.json$", "^merges%.txt$", "^vocab%.txt$" }

local function hf_dir_files(files)
   local out, has_cfg, has_st = {}, false, false
   for _, f in ipairs(files) do
      if not f.path:find("/", 1, true) then
         for _, pat in ipairs(HF_DIR_FILES) do
            if f.path:match(pat) then out[#out + 1] = f; break end
         end
         has_cfg = has_cfg or f.path == "config.json"
         has_st = has_st or f.path:match("%.safetensors$") ~= nil
      end
   end
   return (has_cfg and has_st) and out or nil
end

-- fetch_one(ctx, entry, dest) -> path used, sha256 | nil, msg: the HF
-- cache first, an up-to-date file at dest next, else a verified download
local function fetch_one(c, f, dest)
   local cached = hub.cached_file(c.repo, c.revision, f.path, { sha256 = f.sha256, size = f.size, sha = c.sha })
   if cached then
      c.log(string.format("%s: found in the Hugging Face cache (%s), not downloading", f.path, cached))
      return cached, f.sha256, true
   end
   local st = fs.stat(dest)
   if st and st.type == "file" and (not f.size or st.size == f.size)
      and (not f.sha256 or hub.sha256_file(dest) == f.sha256) then
      return dest, f.sha256
   end
   local ok, merr = fs.mkdirs(dest:match("^(.*)/[^/]*$"))
   if not ok then return nil, merr end
   local free = fs.free_bytes(dest:match("^(.*)/[^/]*$"))
   local part = fs.stat(dest .. ".part")
   local need = (f.size or 0) - (part and part.size or 0)
   if free and f.size and need > free then
      return nil, string.format("not enough disk space for %s: needs %s more, %s free in %s", f.path,
         hub.human(need), hub.human(free), M.models_dir())
   end
   local done, derr = hub.download(hub.file_url(c.repo, c.sha or c.revision, f.path), dest, {
      size = f.size, sha256 = f.sha256, stall_timeout = c.stall_timeout,
      progress = c.progress and c.progress(f.path) })
   if not done then return nil, derr end
   return dest, f.sha256 or (f.lfs and nil) or hub.sha256_file(dest)
end

local function pull_gguf(c, entry)
   local dest = c.dir .. "/" .. entry.path:match("([^/]+)$")
   local path, sha = fetch_one(c, entry, dest)
   if not path then return nil, sha end
   local facts, ferr = M.gguf_facts(path)
   if not facts then
      if owned(path) then os.remove(path) end
      return nil, "pull: " .. entry.path .. " is not a usable GGUF: " .. ferr
   end
   c.name, c.tag = M.ref_for(entry.path, facts)
   return path, sha, facts, hub.file_url(c.repo, c.sha or c.revision, entry.path)
end

local function pull_dir(c, files)
   local dir = c.dir
   for _, f in ipairs(files) do
      local dest = dir .. "/" .. f.path
      local path, err, cached = fetch_one(c, f, dest)
      if not path then return nil, err end
      if cached then
         local ok, merr = fs.mkdirs(dir)
         if ok and not fs.stat(dest) then ok, merr = fs.symlink(path, dest) end
         if not ok then return nil, merr end
      end
   end
   local facts, ferr = M.dir_facts(dir)
   if not facts then return nil, ferr end
   c.name, c.tag = M.ref_for(c.repo, facts)
   return dir, nil, facts, string.format("%s/%s", hub.endpoint(), c.repo)
end

local function choose(info, quant, file)
   if file then
      for _, f in ipairs(info.files) do
         if f.path == file then return "gguf", f end
      end
      return nil, "pull: " .. info.id .. " has no file " .. file
   end
   if #hub.gguf_files(info.files) > 0 then
      local f, perr = hub.pick(info.files, quant)
      if not f then return nil, "pull: " .. info.id .. ": " .. perr end
      return "gguf", f
   end
   local dir = hf_dir_files(info.files)
   if dir then
      if quant then return nil, "pull: " .. info.id .. " is a safetensors repo; it has no " .. quant .. " file" end
      return "dir", dir
   end
   return nil, "pull: " .. info.id .. " has neither GGUF files nor config.json with safetensors"
end

-- pull(ref, {name =, revision = "main", progress = fn(label) -> fn, log = fn(msg),
-- stall_timeout =}) -> version row, note | nil, msg. ref: ORG/NAME,
-- ORG/NAME:QUANT or ORG/NAME/FILE.gguf.
function M.pull(ref, opts)
   opts = opts or {}
   local repo, quant, file = hub.parse_ref(ref)
   if not repo then return nil, "pull: " .. quant end
   local revision = opts.revision or "main"
   local info, ierr = hub.model_info(repo, revision)
   if not info then return nil, "pull: " .. ierr end
   local kind, what = choose(info, quant, file)
   if not kind then return nil, what end
   local c = { repo = repo, revision = revision, sha = info.sha, progress = opts.progress,
      log = opts.log or function() end, stall_timeout = opts.stall_timeout,
      dir = M.models_dir() .. "/" .. repo }
   local path, sha, facts, url
   if kind == "gguf" then
      path, sha, facts, url = pull_gguf(c, what)
   else
      path, sha, facts, url = pull_dir(c, what)
   end
   if not path then return nil, sha end
   -- the name and tag an import of the same file would get
   local name, tag = opts.name or c.name, opts.tag or c.tag
   return with_registry(function(reg)
      return register(reg, { name = name, tag = tag, path = path, sha256 = sha, source_url = url,
         source_revision = info.sha or revision }, facts)
   end)
end

-- ===== describing a registered version =====

-- describe(version row) -> {name, tag, tags, version_id, sha256, size,
-- source_url, source_revision, parent, created_at}, rows {{label, text}}
-- for `show`. parent is "name:tag" (or "name@version") of the lineage link.
function M.describe(row)
   local rec = { name = row.model, tag = row.tag, version_id = row.id, sha256 = row.sha256,
      size = row.size, source_url = row.source_url, source_revision = row.source_revision,
      created_at = row.created_at, tags = {} }
   with_registry(function(reg)
      for _, v in ipairs(reg:versions(row.model) or {}) do
         if v.id == row.id then rec.tags = v.tags end
      end
      if row.parent_id then rec.parent = reg:version_label(row.parent_id) end
   end)
   local rows = {
      { "registry", rec.name .. ":" .. rec.tag .. "  (version " .. rec.version_id .. ")" },
      { "tags", table.concat(rec.tags, ", ") },
      { "sha256", rec.sha256 or "-" },
      { "source", (rec.source_url or "-") .. (rec.source_revision and ("  @ " .. rec.source_revision) or "") },
      { "parent", rec.parent or "none" },
      { "registered", os.date("%Y-%m-%d %H:%M", rec.created_at) },
   }
   return rec, rows
end

return M
