-- moonhub.hub: a Hugging Face Hub client — model info with file sizes and
-- LFS sha256, search, resolve URLs, resumable verified downloads, the local
-- Hugging Face cache, quant names in file names, a progress printer.
-- Layer: lua/moonhub (wraps moonhub.core.fetch; dkjson for API bodies).
-- Environment: MOONHUB_HF_ENDPOINT or HF_ENDPOINT (mirror), HF_TOKEN, HF_HOME, HF_HUB_CACHE.
-- Transfers and hashes run on worker threads (fetch.start): in a server
-- handler the coroutine waits on the job's channel and the loop runs on;
-- elsewhere the wait runs the loop itself. See docs/server.md, "Off the loop".
local fetch = require "moonhub.core.fetch"
local fs = require "moonhub.fs"
local json = require "dkjson"

local M = {}

M.DEFAULT_ENDPOINT = "https://huggingface.co"
M.API_TIMEOUT = 60           -- seconds for a whole API call
M.CONNECT_TIMEOUT = 15
M.STALL_TIMEOUT = 60         -- a download under 1 B/s this long is dropped

local function env(name)
   local v = os.getenv(name)
   if v == nil or v == "" then return nil end
   return v
end

-- the Hub's base URL: MOONHUB_HF_ENDPOINT, else HF_ENDPOINT (huggingface_hub's variable)
function M.endpoint()
   return ((env("MOONHUB_HF_ENDPOINT") or env("HF_ENDPOINT") or M.DEFAULT_ENDPOINT):gsub("/+$", ""))
end

function M.token()
   return env("HF_TOKEN") or env("HUGGING_FACE_HUB_TOKEN")
end

local function auth_headers()
   local t = M.token()
   return t and { Authorization = "Bearer " .. t } or {}
end

-- percent-encodes s; keep_slash leaves "/" alone (paths in a repo)
function M.escape(s, keep_slash)
   local pat = keep_slash and "[^%w%-%._~/]" or "[^%w%-%._~]"
   return (s:gsub(pat, function(c) return string.format("%%%02X", c:byte()) end))
end

-- ===== repo references =====

local REPO_PAT = "^[%w][%w%-%._]*/[%w][%w%-%._]*$"

function M.is_repo(s) return type(s) == "string" and s:match(REPO_PAT) ~= nil end

-- "hf.co/org/name" -> "org/name", true: the host part of a Hub reference
-- (hf.co/, huggingface.co/, with or without https://), as Ollama writes them
function M.strip_host(ref)
   local bare = ref:gsub("^https?://", ""):gsub("^hf%.co/", ""):gsub("^huggingface%.co/", "")
   return bare, bare ~= ref
end

-- "org/name" | "org/name:QUANT" | "org/name/path/file.gguf", each also
-- after "hf.co/" -> repo, quant, file (nil, msg when it is none of these).
-- ":latest" (Ollama's default tag) names no quant.
function M.parse_ref(ref)
   if type(ref) ~= "string" then return nil, "hub: expected a repo reference string" end
   local whole = ref
   ref = M.strip_host(ref)
   local repo, quant = ref:match("^([^:]+):([%w_%-%.]+)$")
   if repo and M.is_repo(repo) then
      if quant:lower() == "latest" then return repo end
      return repo, quant:upper()
   end
   if M.is_repo(ref) then return ref end
   local org, name, file = ref:match("^([^/]+)/([^/]+)/(.+)$")
   if org and M.is_repo(org .. "/" .. name) and not file:find("%.%.") then
      return org .. "/" .. name, nil, file
   end
   return nil, "hub: '" .. whole .. "' is not a Hub reference (ORG/NAME, ORG/NAME:QUANT or ORG/NAME/FILE, "
      .. "each may start with hf.co/)"
end

-- ===== jobs on worker threads =====

-- Whether this caller may wait on a channel (moonhub.work): a coroutine of
-- its own inside a handler may not, and falls back to the blocking calls.
local can_wait = require("moonhub.work").can_wait

-- await(job, ch, progress) -> job:result(): progress(done, total|nil) for
-- each message; returning false, or raising, stops the job (the error is
-- raised again once it has stopped).
local function await(job, ch, progress)
   local failed
   while true do
      local msg = ch:recv()
      if msg == nil then break end
      if progress and not failed then
         local d, t = msg:match("^(%-?%d+) (%-?%d+)$")
         t = math.tointeger(tonumber(t))
         local ok, r = pcall(progress, math.tointeger(tonumber(d)), t and t >= 0 and t or nil)
         if not ok then failed = { r } end
         if not ok or r == false then job:cancel() end
      end
   end
   if failed then error(failed[1], 0) end
   return job:result()
end
M.await = await

-- request(opts) -> as fetch.request, off the loop thread when it can wait
function M.request(opts)
   if not can_wait() then return fetch.request(opts) end
   local o, progress = {}, opts.progress
   for k, v in pairs(opts) do if k ~= "progress" then o[k] = v end end
   local job, ch = fetch.start(o)
   if not job then return nil, ch, "EIO" end
   return await(job, ch, progress)
end

-- sha256_file(path, progress?) -> hex | nil, msg: hashed on a worker thread
function M.sha256_file(path, progress)
   if not can_wait() then return fetch.sha256_file(path) end
   local job, ch = fetch.hash_start(path)
   if not job then return nil, ch end
   local res, msg = await(job, ch, progress)
   return res and res.sha256, msg
end

-- remove_file(path) -> true | nil, msg: unlinked on a worker thread (a
-- multi-GiB file can take a while to free)
function M.remove_file(path)
   if not can_wait() then return os.remove(path) end
   local job, ch = fetch.unlink_start(path)
   if not job then return nil, ch end
   local res, msg = await(job, ch)
   if not res then return nil, msg end
   return true
end

-- ===== HTTP =====

local function describe_status(status, what)
   if status == 401 or status == 403 then
      return string.format("the Hub refused access to %s (HTTP %d): the repo may be gated or "
         .. "private; set HF_TOKEN to a token that has access", what, status)
   elseif status == 404 then
      return string.format("%s was not found on %s (HTTP 404)", what, M.endpoint())
   elseif status == 429 then
      return string.format("the Hub is rate-limiting requests for %s (HTTP 429); try again later", what)
   end
   return string.format("the Hub answered HTTP %d for %s", status, what)
end
M.describe_status = describe_status

-- get_json(path) -> decoded value, response | nil, msg, status
function M.get_json(path, what)
   local url = path:match("^https?://") and path or M.endpoint() .. path
   local res, msg = M.request{ url = url, headers = auth_headers(),
      connect_timeout = M.CONNECT_TIMEOUT, timeout = M.API_TIMEOUT }
   if not res then return nil, "cannot reach the Hub at " .. M.endpoint() .. ": " .. msg end
   if res.status >= 400 then return nil, describe_status(res.status, what or url), res.status end
   local value, _, err = json.decode(res.body, 1, json.null)
   if err then return nil, "the Hub sent malformed JSON for " .. (what or url) .. ": " .. err end
   return value, res
end

-- ===== model info =====

local function file_entry(s)
   local lfs = type(s.lfs) == "table" and s.lfs or nil
   return {
      path = s.rfilename or s.path,
      size = math.tointeger(lfs and lfs.size or s.size),
      sha256 = lfs and (lfs.sha256 or lfs.oid) or nil,
      blob_id = s.blobId or s.oid,
      lfs = lfs ~= nil,
   }
end

-- model_info(repo, revision = "main") -> {id, sha, downloads, likes, tags,
-- gated, files = {{path, size, sha256 (LFS only), blob_id, lfs}}} | nil, msg, status
-- (GET /api/models/{repo}/revision/{rev}?blobs=true: siblings with sizes and LFS sha256)
function M.model_info(repo, revision)
   if not M.is_repo(repo) then error("hub.model_info: repo must be \"org/name\", got " .. tostring(repo), 2) end
   revision = revision or "main"
   local info, res, status = M.get_json("/api/models/" .. repo .. "/revision/" .. M.escape(revision)
      .. "?blobs=true", "model " .. repo)
   if not info then return nil, res, status end
   if type(info) ~= "table" or type(info.siblings) ~= "table" then
      return nil, "the Hub's answer for " .. repo .. " has no file list (siblings)"
   end
   local files = {}
   for _, s in ipairs(info.siblings) do
      if type(s) == "table" and type(s.rfilename) == "string" then files[#files + 1] = file_entry(s) end
   end
   table.sort(files, function(a, b) return a.path < b.path end)
   return { id = info.id or repo, sha = info.sha, downloads = info.downloads, likes = info.likes,
      tags = info.tags or {}, gated = info.gated, gguf = info.gguf, files = files }
end

-- tree(repo, revision) -> files as in model_info (GET /api/models/{repo}/tree/{rev}?recursive=1,
-- following the Link: rel="next" pages)
function M.tree(repo, revision)
   local url = "/api/models/" .. repo .. "/tree/" .. M.escape(revision or "main") .. "?recursive=1"
   local files = {}
   while url do
      local list, res, status = M.get_json(url, "model " .. repo)
      if not list then return nil, res, status end
      for _, e in ipairs(list) do
         if type(e) == "table" and e.type == "file" then files[#files + 1] = file_entry(e) end
      end
      url = res.headers.link and res.headers.link:match('<([^>]+)>%s*;%s*rel="next"')
   end
   table.sort(files, function(a, b) return a.path < b.path end)
   return files
end

-- search(query, {limit = 10, filter = "gguf"}) -> {{id, downloads, likes, tags}} | nil, msg
function M.search(query, opts)
   if type(query) ~= "string" then error("hub.search: query must be a string", 2) end
   opts = opts or {}
   local q = "/api/models?search=" .. M.escape(query) .. "&sort=downloads&direction=-1&limit="
      .. (opts.limit or 10)
   if opts.filter ~= false then q = q .. "&filter=" .. M.escape(opts.filter or "gguf") end
   local list, msg = M.get_json(q, "search '" .. query .. "'")
   if not list then return nil, msg end
   local out = {}
   for _, m in ipairs(list) do
      if type(m) == "table" and type(m.id) == "string" then
         out[#out + 1] = { id = m.id, downloads = m.downloads, likes = m.likes, tags = m.tags or {} }
      end
   end
   return out
end

function M.file_url(repo, revision, file)
   return string.format("%s/%s/resolve/%s/%s", M.endpoint(), repo, M.escape(revision or "main"),
      M.escape(file, true))
end

-- ===== quant names in file names =====

-- longest first, so Q4_K_M wins over Q4_K
M.QUANTS = { "IQ2_XXS", "IQ3_XXS", "IQ1_S", "IQ1_M", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XS",
   "IQ3_S", "IQ3_M", "IQ4_NL", "IQ4_XS", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S",
   "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "Q2_K", "Q3_K", "Q4_K",
   "Q5_K", "Q6_K", "Q8_K", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "BF16", "F16", "F32" }
table.sort(M.QUANTS, function(a, b) return #a > #b or (#a == #b and a < b) end)

-- quant_of("SmolLM2-135M-Instruct-Q4_K_M.gguf") -> "Q4_K_M" | nil
function M.quant_of(file)
   local base = (file:match("([^/]+)$") or file):upper():gsub("%.GGUF$", "")
   for _, q in ipairs(M.QUANTS) do
      local i = 1
      while true do
         local s, e = base:find(q, i, true)
         if not s then break end
         local before, after = base:sub(s - 1, s - 1), base:sub(e + 1, e + 1)
         if (s == 1 or not before:match("[%w]")) and (after == "" or not after:match("[%w]")) then
            return q
         end
         i = s + 1
      end
   end
   return nil
end

-- GGUF model files of a listing: no split shards, no vision projectors
function M.gguf_files(files)
   local out = {}
   for _, f in ipairs(files) do
      local base = f.path:match("([^/]+)$"):lower()
      if base:match("%.gguf$") and not base:match("%-%d%d%d%d%d%-of%-%d%d%d%d%d%.gguf$")
         and not base:find("mmproj", 1, true) then
         out[#out + 1] = f
      end
   end
   return out
end

M.PREFERRED = { "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q8_0" }

-- pick(files, quant?) -> file entry | nil, msg. Without quant: Q4_K_M >
-- Q4_K_S > Q5_K_M > Q8_0 > the smallest GGUF.
function M.pick(files, quant)
   local ggufs = M.gguf_files(files)
   if #ggufs == 0 then return nil, "no single-file GGUF in the repo" end
   local by = {}
   for _, f in ipairs(ggufs) do
      local q = M.quant_of(f.path)
      if q and (not by[q] or (f.size or 0) < (by[q].size or 0)) then by[q] = f end
   end
   if quant then
      if by[quant:upper()] then return by[quant:upper()] end
      local have = {}
      for q in pairs(by) do have[#have + 1] = q end
      table.sort(have)
      return nil, string.format("no %s file in the repo (it has: %s)", quant:upper(),
         #have > 0 and table.concat(have, ", ") or "unnamed GGUFs only")
   end
   for _, q in ipairs(M.PREFERRED) do
      if by[q] then return by[q] end
   end
   table.sort(ggufs, function(a, b) return (a.size or math.huge) < (b.size or math.huge) end)
   return ggufs[1]
end

-- ===== the local Hugging Face cache =====

function M.cache_dir()
   local c = env("HF_HUB_CACHE") or env("HUGGINGFACE_HUB_CACHE")
   if c then return c end
   local home = env("HF_HOME") or ((env("XDG_CACHE_HOME") or ((env("HOME") or "") .. "/.cache")) .. "/huggingface")
   return home .. "/hub"
end

-- cached_file(repo, revision, file, {sha256 =, size =, sha = commit}) -> path | nil.
-- Looks in models--ORG--NAME/snapshots/<commit>/<file> for the commit the
-- revision names (refs/<revision>), the commit given, then every snapshot;
-- a hit must have the expected size and sha256 (a blob named by its sha256
-- is trusted, anything else is hashed).
function M.cached_file(repo, revision, file, want)
   want = want or {}
   local root = M.cache_dir() .. "/models--" .. repo:gsub("/", "--")
   local commits, seen = {}, {}
   local function add(c) if c and c ~= "" and not seen[c] then seen[c] = true; commits[#commits + 1] = c end end
   add(want.sha)
   add(((fs.read(root .. "/refs/" .. (revision or "main")) or ""):gsub("%s+$", "")))
   if revision and revision:match("^%x+$") and #revision == 40 then add(revision) end
   for _, c in ipairs(require("moonhub.core.host").listdir(root .. "/snapshots") or {}) do add(c) end
   for _, c in ipairs(commits) do
      local path = root .. "/snapshots/" .. c .. "/" .. file
      local st = fs.stat(path)
      if st and st.type == "file" and (not want.size or st.size == want.size) then
         if not want.sha256 then return path end
         local target = fs.readlink(path)
         target = target and target:match("([^/]+)$")
         if target == want.sha256 or M.sha256_file(path) == want.sha256 then return path end
      end
   end
   return nil
end

-- ===== downloads =====

local progress = require "moonhub.progress"
M.human = progress.human

-- progress(label, out = io.stderr) -> fn(done, total, final) for
-- download{progress=}: moonhub.progress's byte printer (kept here for callers).
function M.progress(label, out)
   return progress.new(label, { out = out })
end

-- download(url, dest, {size =, sha256 =, progress = fn, stall_timeout =})
-- -> true | nil, msg, kind. Bytes go to dest .. ".part" (resumed with Range
-- when it exists), are hashed as they arrive (on the transfer's thread),
-- checked against size and sha256, then renamed to dest. A sha256 or size
-- mismatch deletes the part file (kind "corrupt"); a cut transfer or a
-- full disk keeps it for the next try (kind "partial", "disk").
function M.download(url, dest, opts)
   opts = opts or {}
   local part = dest .. ".part"
   local hashed                       -- the sha256 the transfer computed
   local st = fs.stat(part)
   local have = st and st.size or 0
   if opts.size and have > opts.size then os.remove(part); have = 0 end
   if not (opts.size and have == opts.size) then
      local res, msg = M.request{ url = url, path = part, resume_from = have,
         headers = auth_headers(), connect_timeout = M.CONNECT_TIMEOUT,
         sha256 = opts.sha256 ~= nil,
         stall_timeout = opts.stall_timeout or M.STALL_TIMEOUT, progress = opts.progress }
      if not res then
         if msg:find("No space left", 1, true) or msg:find("Disk quota", 1, true) then
            return nil, "disk full while downloading to " .. part .. ": " .. msg
               .. "; the partial file is kept: free some space and pull again to resume", "disk"
         end
         return nil, msg .. "; the partial file " .. part .. " is kept: pull again to resume", "partial"
      end
      if res.status >= 400 and res.status ~= 416 then
         return nil, describe_status(res.status, url), "http"
      end
      hashed = res.sha256
      if opts.progress then
         local s2 = fs.stat(part)
         opts.progress(s2 and s2.size or 0, opts.size, true)
      end
   end
   st = fs.stat(part)
   local size = st and st.size or 0
   if opts.size and size ~= opts.size then
      if size > opts.size then os.remove(part) end
      return nil, string.format("download of %s ended at %d of %d bytes%s", url, size, opts.size,
         size < opts.size and "; pull again to resume" or ""), size < opts.size and "partial" or "corrupt"
   end
   if opts.sha256 then
      local got, herr = hashed, nil
      if not got then got, herr = M.sha256_file(part) end
      if not got then return nil, herr, "io" end
      if got ~= opts.sha256:lower() then
         os.remove(part)
         return nil, string.format("sha256 mismatch for %s: expected %s, got %s; the download "
            .. "was deleted and nothing was registered", url, opts.sha256, got), "corrupt"
      end
   end
   local ok, rerr = os.rename(part, dest)
   if not ok then return nil, rerr, "io" end
   return true
end

return M
