-- helpers.fake_hub: a stand-in for the Hugging Face Hub on loopback, served
-- by moonhub's own HTTP server. Layer: tests. Two faces in one file:
--   ./moonhub run tests/helpers/fake_hub.lua CONFIG.json   serves, prints its port
--   require "helpers.fake_hub"                             starts/stops one for specs
-- Speaks the shapes hub.lua reads: search, model info (?blobs=true), tree,
-- resolve (302 to /cdn/ for LFS files), Range/206, ETag, tokens, cut transfers.
local json = require "dkjson"

-- ===== the server (run as a script) =====

local COMMIT = "0123456789abcdef0123456789abcdef01234567"
local LFS_EXT = { gguf = true, safetensors = true, bin = true }

local function read_all(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("a")
   f:close()
   return s
end

-- per source file: bytes, size, sha256 (memoized: specs fetch the same files often)
local function blob_of(state, src)
   local b = state.blobs[src]
   if not b then
      local bytes = assert(read_all(src), "fake hub: cannot read " .. src)
      b = { bytes = bytes, size = #bytes, sha256 = require("moonhub.core.fetch").sha256_file(src) }
      state.blobs[src] = b
   end
   return b
end

-- What the Hub says about one file of a repo: size, LFS sha256 (wrong on
-- purpose for names in repo.wrong_sha), blob id (a stand-in for git's sha1).
local function meta(state, repo, name)
   local b = blob_of(state, repo.files[name])
   local m = { path = name, size = b.size, blob = b.sha256:sub(1, 40), sha256 = b.sha256 }
   if LFS_EXT[name:match("%.(%w+)$") or ""] then
      local advertised = b.sha256
      for _, w in ipairs(repo.wrong_sha or {}) do
         if w == name then advertised = string.rep("0", 64) end
      end
      m.lfs = { sha256 = advertised, size = b.size, pointerSize = 134 }
      m.blob = advertised:sub(25, 64)
   end
   return m
end

local function sorted_names(repo)
   local names = {}
   for n in pairs(repo.files) do names[#names + 1] = n end
   table.sort(names)
   return names
end

local function tags_of(repo)
   for n in pairs(repo.files) do
      if n:match("%.gguf$") then return { "gguf", "text-generation" } end
   end
   return { "safetensors", "transformers", "text-generation" }
end

local function unescape(s)
   return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function log(state, req, rec)
   rec.method, rec.path = req.method, req.path .. (req.query ~= "" and ("?" .. req.query) or "")
   rec.range, rec.auth = req.headers.range, req.headers.authorization
   local f = io.open(state.cfg.log, "a")
   if f then
      f:write(json.encode(rec), "\n")
      f:close()
   end
end

-- reply(state, req, status, headers, body): full response with its log line
local function reply(state, req, status, headers, body)
   headers["Content-Length"] = headers["Content-Length"] or #body
   log(state, req, { status = status })
   req:respond(status, headers, req.method == "HEAD" and "" or body)
end

local function send_json(state, req, status, value, extra)
   local h = { ["Content-Type"] = "application/json" }
   for k, v in pairs(extra or {}) do h[k] = v end
   reply(state, req, status, h, json.encode(value))
end

-- Token check of a gated repo: nil when allowed, else it has answered
-- (401 without a token, 403 with the wrong one, as the Hub does).
local function denied(state, req, id, repo)
   if not repo.gated then return nil end
   local auth = req.headers.authorization
   if auth == "Bearer " .. tostring(state.cfg.token) then return nil end
   local status = auth and 403 or 401
   send_json(state, req, status, { error = "Access to model " .. id .. " is restricted. You must "
      .. "have access to it and be authenticated to access it. Please log in." },
      { ["X-Error-Code"] = "GatedRepo" })
   return true
end

-- the repo named by id, or nil once a 404/401/403 went out
local function find_repo(state, req, id)
   local repo = state.cfg.repos[id]
   if not repo then
      send_json(state, req, 404, { error = "Repository not found" }, { ["X-Error-Code"] = "RepoNotFound" })
      return nil
   end
   if denied(state, req, id, repo) then return nil end
   return repo
end

local function search(state, req)
   local q = (req.args.search or ""):lower()
   local filter = req.args.filter
   local out = {}
   for id, repo in pairs(state.cfg.repos) do
      local tags = tags_of(repo)
      local ok = filter == nil
      for _, t in ipairs(tags) do ok = ok or t == filter end
      if ok and id:lower():find(q, 1, true) then
         out[#out + 1] = { _id = id, id = id, modelId = id, likes = 1, private = false,
            downloads = repo.downloads or 0, tags = tags, pipeline_tag = "text-generation",
            createdAt = "2024-01-01T00:00:00.000Z" }
      end
   end
   table.sort(out, function(a, b) return a.downloads > b.downloads or (a.downloads == b.downloads and a.id < b.id) end)
   local limit = math.tointeger(tonumber(req.args.limit)) or 20
   while #out > limit do out[#out] = nil end
   send_json(state, req, 200, setmetatable(out, { __jsontype = "array" }))
end

local function model_info(state, req, id, repo)
   local blobs = req.args.blobs == "true" or req.args.blobs == "1"
   local siblings = {}
   for _, n in ipairs(sorted_names(repo)) do
      local m, s = meta(state, repo, n), { rfilename = n }
      if blobs then s.blobId, s.size, s.lfs = m.blob, m.size, m.lfs end
      siblings[#siblings + 1] = s
   end
   send_json(state, req, 200, { _id = id, id = id, modelId = id, sha = COMMIT, private = false,
      gated = repo.gated and "manual" or false, disabled = false, downloads = repo.downloads or 0,
      likes = 1, tags = tags_of(repo), siblings = siblings })
end

-- tree pages of cfg.tree_page entries, linked with Link: <...>; rel="next"
local function tree(state, req, repo)
   local names, entries = sorted_names(repo), {}
   for _, n in ipairs(names) do
      local m = meta(state, repo, n)
      entries[#entries + 1] = { type = "file", oid = m.blob, size = m.size, path = n,
         lfs = m.lfs and { oid = m.lfs.sha256, size = m.size, pointerSize = 134 } or nil }
   end
   local per = state.cfg.tree_page or #entries
   local first = math.tointeger(tonumber(req.args.cursor)) or 1
   local page = setmetatable({}, { __jsontype = "array" })
   for i = first, math.min(first + per - 1, #entries) do page[#page + 1] = entries[i] end
   local extra = {}
   if first + per <= #entries then
      extra.Link = string.format('<%s%s?recursive=1&cursor=%d>; rel="next"', state.base, req.path, first + per)
   end
   send_json(state, req, 200, page, extra)
end

-- "bytes=N-" / "bytes=N-M" -> first, last (0-based) | nil; false when unsatisfiable
local function parse_range(h, size)
   if not h then return nil end
   local a, b = h:match("^bytes=(%d+)%-(%d*)$")
   if not a then return nil end
   a, b = tonumber(a), b ~= "" and tonumber(b) or size - 1
   if a >= size or b < a then return false end
   return a, math.min(b, size - 1)
end

-- cfg.throttle (bytes/s): the body goes out in 256 KiB writes paced to that
-- rate, so a large pull lasts long enough to watch the server meanwhile.
-- cfg.gate (a path): the transfer also stops halfway until that file
-- exists, so a spec decides when the pull may end (on a slow host a pull
-- paced only by the clock may end before the spec has looked).
local function send_throttled(state, req, status, headers, blob, first, last)
   local rate, chunk = state.cfg.throttle, 256 * 1024
   log(state, req, { status = status, from = first, sent = last - first + 1, throttled = rate })
   req:start(status, headers)
   local http = require("moonhub").http
   local pos, half = first, first + (last - first) // 2
   while pos <= last do
      if state.cfg.gate and pos >= half then
         while not read_all(state.cfg.gate) do http.sleep(0.05) end
      end
      local stop = math.min(pos + chunk - 1, last)
      if not req:write(blob.bytes:sub(pos + 1, stop + 1)) then return end   -- the client went away
      pos = stop + 1
      http.sleep(chunk / rate)
   end
   req:finish()
end

-- The byte server (resolve for small files, /cdn/ for LFS): Range -> 206,
-- ETag, and a transfer cut after cfg.break_after[name] bytes, once per name.
local function serve_bytes(state, req, name, blob, headers)
   headers["Accept-Ranges"] = "bytes"
   headers["Content-Type"] = "application/octet-stream"
   local first, last = parse_range(req.headers.range, blob.size)
   if first == false then
      headers["Content-Range"] = "bytes */" .. blob.size
      return reply(state, req, 416, headers, "")
   end
   local status = first and 206 or 200
   first, last = first or 0, last or blob.size - 1
   if status == 206 then headers["Content-Range"] = string.format("bytes %d-%d/%d", first, last, blob.size) end
   if state.cfg.throttle and req.method == "GET" and not (state.cfg.break_after or {})[name] then
      headers["Content-Length"] = last - first + 1
      return send_throttled(state, req, status, headers, blob, first, last)
   end
   local body = blob.bytes:sub(first + 1, last + 1)
   headers["Content-Length"] = #body
   local cut = state.cfg.break_after and state.cfg.break_after[name]
   if req.method == "HEAD" or not cut or state.broken[name] then
      log(state, req, { status = status, from = first, sent = req.method == "HEAD" and 0 or #body })
      return req:respond(status, headers, req.method == "HEAD" and "" or body)
   end
   state.broken[name] = true
   local n = math.min(cut, #body)
   log(state, req, { status = status, from = first, sent = n, cut = true })
   req:start(status, headers)
   req:write(body:sub(1, n))
   req:abort()
end

local function resolve(state, req, id, rev, name)
   local repo = find_repo(state, req, id)
   if not repo then return end
   if rev ~= "main" and rev ~= COMMIT then
      return send_json(state, req, 404, { error = "Invalid rev id: " .. rev },
         { ["X-Error-Code"] = "RevisionNotFound" })
   end
   if not repo.files[name] then
      return send_json(state, req, 404, { error = "Entry not found" }, { ["X-Error-Code"] = "EntryNotFound" })
   end
   local m = meta(state, repo, name)
   local h = { ["X-Repo-Commit"] = COMMIT, ETag = '"' .. m.blob .. '"' }
   if not m.lfs then return serve_bytes(state, req, name, blob_of(state, repo.files[name]), h) end
   h.Location = string.format("%s/cdn/%s/%s", state.base, id, name)
   h["X-Linked-Etag"] = '"' .. m.lfs.sha256 .. '"'
   h["X-Linked-Size"] = m.size
   reply(state, req, 302, h, "")
end

-- the file store the Hub redirects to: objects carry their sha256 as ETag
local function cdn(state, req, id, name)
   local repo = state.cfg.repos[id]
   local src = repo and repo.files[name]
   if not src then return send_json(state, req, 404, { error = "NoSuchKey" }) end
   local blob = blob_of(state, src)
   serve_bytes(state, req, name, blob, { ETag = '"' .. blob.sha256 .. '"' })
end

local function route(state, req)
   local path = unescape(req.path)
   if req.method ~= "GET" and req.method ~= "HEAD" then
      return send_json(state, req, 405, { error = "method not allowed" })
   end
   if path == "/api/models" then return search(state, req) end
   local id, rest = path:match("^/api/models/([^/]+/[^/]+)(.*)$")
   if id then
      local repo = find_repo(state, req, id)
      if not repo then return end
      if rest == "" or rest:match("^/revision/[^/]+$") then return model_info(state, req, id, repo) end
      if rest:match("^/tree/[^/]+$") then return tree(state, req, repo) end
      return send_json(state, req, 404, { error = "not found" })
   end
   local cid, cname = path:match("^/cdn/([^/]+/[^/]+)/(.+)$")
   if cid then return cdn(state, req, cid, cname) end
   local rid, rev, file = path:match("^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
   if rid then return resolve(state, req, rid, rev, file) end
   send_json(state, req, 404, { error = "not found" })
end

local function serve(cfg_path)
   local http = require("moonhub").http
   local text = assert(read_all(cfg_path), "fake hub: cannot read " .. cfg_path)
   local cfg = assert(json.decode(text), "fake hub: bad JSON in " .. cfg_path)
   local srv = assert(http.server{ port = 0 })
   local state = { cfg = cfg, blobs = {}, broken = {}, base = "http://127.0.0.1:" .. srv.port }
   srv:handle(function(req) route(state, req) end)
   io.stdout:write(srv.port, "\n")
   io.stdout:flush()
   -- never outlive a forgotten teardown
   http.timer(cfg.lifetime or 300, function() http.stop(0) end, { once = true })
   http.run()
end

-- ===== the launcher (required by specs) =====

local function launcher()
   local H = require "helpers.host"
   local http = require("moonhub").http
   local SCRIPT = debug.getinfo(1, "S").source:match("^@(.*)$")
   local M = { SCRIPT = SCRIPT }

   -- kept for specs written against the Python fake: always true now
   function M.available() return true end

   -- start(dir, {repos = {["org/name"] = {files = {name = src}, downloads =,
   -- gated =, wrong_sha = {name}}}, break_after = {name = bytes}, token =,
   -- tree_page =, lifetime =, throttle = bytes/s, gate = path}) -> server {port, url, pid, log_path,
   -- requests(), clear(), stop()}; raises when it does not come up in 10 s.
   function M.start(dir, cfg)
      cfg.log = dir .. "/hub-log.jsonl"
      cfg.lifetime = cfg.lifetime or 240
      H.write(dir .. "/hub.json", json.encode(cfg))
      H.write(cfg.log, "")
      local portfile = dir .. "/hub.port"
      os.remove(portfile)
      local p = io.popen(string.format("%s run %s %s >%s 2>%s & echo $!", H.q(H.exe), H.q(SCRIPT),
         H.q(dir .. "/hub.json"), H.q(portfile), H.q(dir .. "/hub.err")))
      local pid = tonumber(p:read("l"))
      p:close()
      local port
      for _ = 1, 1200 do
         port = tonumber((H.read(portfile) or ""):match("^(%d+)\n"))
         if port then break end
         http.sleep(0.05)
      end
      if not port then
         os.execute("kill " .. pid .. " 2>/dev/null")
         error("fake hub did not start: " .. tostring(H.read(dir .. "/hub.err")))
      end
      local srv = { port = port, pid = pid, log_path = cfg.log, url = "http://127.0.0.1:" .. port }
      function srv.requests()
         local out = {}
         for line in (H.read(cfg.log) or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
         return out
      end
      function srv.clear() H.write(cfg.log, "") end
      function srv.stop()
         if srv.pid then os.execute("kill " .. srv.pid .. " 2>/dev/null") end
         srv.pid = nil
      end
      return srv
   end

   -- run(home, srv, args, env) -> stdout, stderr, exit code: `moonhub args`
   -- against the fake hub, with HF_TOKEN unset and HF_HUB_CACHE inside home
   -- unless env sets them.
   function M.run(home, srv, args, env)
      env = env or {}
      local parts = { "env", "-u", "HF_TOKEN", "-u", "HF_HOME", "MOONHUB_HOME=" .. H.q(home),
         "HF_HUB_CACHE=" .. H.q(env.HF_HUB_CACHE or (home .. "/hf-cache")) }
      if srv then parts[#parts + 1] = "MOONHUB_HF_ENDPOINT=" .. H.q(srv.url) end
      for k, v in pairs(env) do
         if k ~= "HF_HUB_CACHE" then parts[#parts + 1] = k .. "=" .. H.q(v) end
      end
      local cmd = string.format("%s %s %s </dev/null >%s 2>%s", table.concat(parts, " "), H.q(H.exe),
         args, H.q(home .. "/.stdout"), H.q(home .. "/.stderr"))
      local _, _, code = os.execute(cmd)
      return H.read(home .. "/.stdout"), H.read(home .. "/.stderr"), code
   end

   return M
end

local modname = ...
if modname == "helpers.fake_hub" then return launcher() end
serve(assert(modname, "usage: moonhub run tests/helpers/fake_hub.lua CONFIG.json"))
