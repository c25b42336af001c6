-- moonhub.server.ollama_models: Ollama's model routes over the registry and
-- the pool — /api/tags, /api/show, /api/ps, /api/pull (NDJSON progress),
-- /api/delete, /api/copy, /api/create, /api/version, GET / — and the
-- extras (/api/create's system, template, parameters) a created model keeps.
-- Layer: lua/moonhub (uses moonhub.openai checks, .models, .hub, .gguf,
-- .admin, .server.names, .fs; dkjson). See docs/ollama.md.
local oa = require "moonhub.openai"
local json = require "dkjson"
local fs = require "moonhub.fs"
local models = require "moonhub.models"
local names = require "moonhub.server.names"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local NDJSON = { ["Content-Type"] = "application/x-ndjson" }

local function iso(t) return require("moonhub.server.ollama_adapter").iso_time(t) end
local function line(v) return json.encode(v) .. "\n" end

local function name_of(body, field)
   local v = body[field or "model"]
   if oa.is_null(v) and not field then v = body.name end    -- older clients send "name"
   if type(v) ~= "string" or v == "" then
      oa.fail(400, string.format("'%s' is required: a model name such as smol or smol:Q8_0", field or "model"),
         field or "model")
   end
   return v
end

-- ===== the registry =====

local function has_registry() return require("moonhub.registry").exists() end

local function with_registry(fn)
   local reg, err = models.open()
   if not reg then oa.fail(500, tostring(err)) end
   local ok, a, b = pcall(fn, reg)
   reg:close()
   if not ok then error(a, 0) end
   return a, b
end

-- row(ref) -> the registered version ref names (Hub references of pulled
-- models too) | raises 404 in Ollama's words
local function row(ref)
   local r = has_registry() and with_registry(function(reg)
      local ok, v = pcall(reg.resolve, reg, models.registry_ref(reg, ref))
      return ok and v or nil
   end)
   if not r then oa.fail(404, string.format("model '%s' not found", ref), "model", "model_not_found") end
   return r
end

-- "17.2M", "1.2B" as Ollama's parameter_size
local function param_size(n)
   if not n or n <= 0 then return "" end
   if n >= 1e9 then return string.format("%.1fB", n / 1e9) end
   if n >= 1e6 then return string.format("%.1fM", n / 1e6) end
   return string.format("%.1fK", n / 1e3)
end

-- Ollama's details object from a registry row or file facts.
local function details(r)
   local arch = r.arch or ""
   return { parent_model = "", format = r.format or "gguf", family = arch,
      families = arch ~= "" and oa.array({ arch }) or oa.null, parameter_size = param_size(r.params),
      quantization_level = type(r.quant) == "table" and table.concat(r.quant, ",") or r.quant or "" }
end

local function digest(r) return r.sha256 or "" end

-- ===== created models' extras =====

-- $MOONHUB_HOME/models/ollama/v<version id>.json (+ .jinja): what
-- /api/create added to a version. The name is kept in the file, so a
-- version id reused after a removal does not inherit it.
local function extras_path(vid) return string.format("%s/ollama/v%d", models.models_dir(), vid) end

local function read_extras(r)
   local text = fs.read(extras_path(r.id) .. ".json")
   local x = text and json.decode(text)
   if type(x) ~= "table" or x.name ~= r.model or x.version_id ~= r.id then return nil end
   if x.template then x.template_file = extras_path(r.id) .. ".jinja" end
   return x
end

local function write_extras(r, x)
   local base = extras_path(r.id)
   assert(fs.mkdirs(fs.dirname(base)))
   x.name, x.version_id = r.model, r.id
   if x.template then assert(fs.write(base .. ".jinja", x.template)) end
   assert(fs.write(base .. ".json", json.encode({ name = x.name, version_id = x.version_id, system = x.system,
      parameters = x.parameters, template = x.template })))
end

local function drop_extras(rows)
   for _, r in ipairs(rows or {}) do
      local base = extras_path(r.id)
      local x = json.decode(fs.read(base .. ".json") or "")
      if type(x) == "table" and x.name == r.model then
         os.remove(base .. ".json")
         os.remove(base .. ".jinja")
      end
   end
end

-- extras_for(app, name) -> {system, parameters, template_file} of the
-- created model a request names, or nil (any other model, or no name).
function M.extras_for(app, name)
   if type(name) ~= "string" or name == "" or not app.pool then return nil end
   local _, key = app.pool:resolve(names.pick(app, name))
   local vid = math.tointeger(tonumber(type(key) == "string" and key:match("^v(%d+)$") or nil))
   if not vid then return nil end
   local text = fs.read(extras_path(vid) .. ".json")
   if not text then return nil end
   local ok, r = pcall(row, name)
   return ok and r.id == vid and read_extras(r) or nil
end

-- unload(app, name): keep_alive 0 with nothing to generate; a busy model
-- finishes its requests first.
function M.unload(app, name)
   if not app.pool then return end
   local ref = names.pick(app, name)
   local e = app.pool:find(ref)
   if not e then
      local _, key = app.pool:resolve(ref)
      e = key and app.pool.entries[key]
   end
   if e then
      local ok, err = app.pool:unload_idle(e, "keep_alive 0", 60)
      if not ok then oa.fail(409, err) end
   end
end

-- ===== routes =====

-- GET / (HEAD too): what Ollama's clients probe before they talk.
function M.root()
   return 200, { ["Content-Type"] = "text/plain; charset=utf-8" },
      "moonhub is running (Ollama's API at /api/*, OpenAI's at /v1/*)"
end

-- GET /api/version
function M.version()
   return 200, JSON, json.encode({ version = require("moonhub").version })
end

-- GET /api/tags: every registered name:tag
function M.tags()
   local out = oa.array()
   local rows = has_registry() and with_registry(function(reg) return reg:list() end) or {}
   for _, r in ipairs(rows) do
      local id = r.name .. ":" .. r.tag
      out[#out + 1] = { name = id, model = id, modified_at = iso(r.updated_at or r.created_at), size = r.size or 0,
         digest = digest(r), details = details(r) }
   end
   return 200, JSON, json.encode({ models = out })
end

-- GET /api/ps: the loaded models
function M.ps(app)
   local out = oa.array()
   for _, e in ipairs(app.pool and app.pool:list() or {}) do
      local facts = e.path and models.facts(e.path) or {}
      local ok, r = pcall(row, e.name)
      local expires = e.expires and os.time() + (e.expires - require("moonhub.core.sys").now())
      out[#out + 1] = { name = e.name, model = e.name, size = e.size or 0, digest = ok and digest(r) or "",
         details = details(ok and r or facts), size_vram = 0, context_length = e.ctx,
         -- busy or kept for good: no deadline; Ollama writes a far date then
         expires_at = expires and iso(expires) or "2318-01-01T00:00:00.000000000Z" }
   end
   return 200, JSON, json.encode({ models = out })
end

-- Model metadata for /api/show: GGUF keys with scalar or short array
-- values; long arrays (the vocabulary) as null, as Ollama does unless verbose.
local function model_info(r)
   local info = oa.object()
   if r.format ~= "gguf" then
      info["general.architecture"] = r.arch
      info["general.parameter_count"] = r.params
      return info
   end
   local f = require("moonhub.gguf").open(r.path)
   if not f then return info end
   for k, v in pairs(f.metadata) do
      if k ~= "tokenizer.chat_template" then
         if type(v) == "table" then v = (v.n and not v[1]) and oa.null or oa.array(v) end
         info[k] = v
      end
   end
   info["general.parameter_count"] = r.params
   f:close()
   return info, true
end

local function chat_template(r)
   if r.format ~= "gguf" then
      local cfg = json.decode(fs.read(r.path .. "/tokenizer_config.json") or "")
      return type(cfg) == "table" and type(cfg.chat_template) == "string" and cfg.chat_template or ""
   end
   local f = require("moonhub.gguf").open(r.path)
   if not f then return "" end
   local t = f.metadata["tokenizer.chat_template"]
   f:close()
   return type(t) == "string" and t or ""
end

-- "name value" lines as a Modelfile's PARAMETER lines
local function parameter_lines(p)
   local keys, out = {}, {}
   for k in pairs(p or {}) do keys[#keys + 1] = k end
   table.sort(keys)
   for _, k in ipairs(keys) do
      local v = p[k]
      for _, x in ipairs(type(v) == "table" and v or { v }) do
         out[#out + 1] = string.format(type(x) == "string" and "%-30s %q" or "%-30s %s", k, x)
      end
   end
   return table.concat(out, "\n")
end

-- POST /api/show {"model"}
function M.show(_, req)
   local body = oa.decode(req.body)
   local r = row(name_of(body))
   local x = read_extras(r) or {}
   local template = x.template or chat_template(r)
   local params = parameter_lines(x.parameters)
   local mf = { "# Modelfile generated by moonhub (Jinja templates, not Go)",
      "FROM " .. r.path, 'TEMPLATE """' .. template .. '"""' }
   if x.system then mf[#mf + 1] = 'SYSTEM """' .. x.system .. '"""' end
   for l in params:gmatch("[^\n]+") do mf[#mf + 1] = "PARAMETER " .. l end
   local caps = oa.array({ "completion" })
   if template:find("tools", 1, true) then caps[#caps + 1] = "tools" end
   return 200, JSON, json.encode({ modelfile = table.concat(mf, "\n") .. "\n", parameters = params,
      template = template, system = x.system, details = details(r), model_info = model_info(r),
      modified_at = iso(r.created_at), capabilities = caps, license = "" })
end

-- POST /api/pull {"model" | "name", "stream"}: Hugging Face references
-- (ORG/REPO[:QUANT], hf.co/ORG/REPO[:QUANT]); progress as Ollama's lines
-- {status, digest, total, completed}, then {"status": "success"}.
function M.pull(_, req)
   local body = oa.decode(req.body)
   local ref = name_of(body)
   local hub = require "moonhub.hub"
   local bare = ref:gsub("^https?://", ""):gsub("^hf%.co/", ""):gsub("^huggingface%.co/", "")
   local repo = hub.parse_ref(bare)
   if not repo then
      oa.fail(400, string.format("cannot pull '%s': moonhub pulls from Hugging Face, so name a repository as "
         .. "ORG/REPO[:QUANT] or hf.co/ORG/REPO[:QUANT] (the Ollama library is not a source)", ref), "model")
   end
   local stream = body.stream ~= false
   local last
   local function event(v)
      last = v
      if stream then req:write(line(v)) end
   end
   if stream then req:start(200, NDJSON) end
   local ok, res, err = pcall(function()
      event({ status = "pulling manifest" })
      local info = hub.model_info(repo, "main")
      local shas = {}
      for _, f in ipairs(info and info.files or {}) do shas[f.path] = f.sha256 end
      return models.pull(bare, { progress = function(label)
         local d = "sha256:" .. (shas[label] or string.rep("0", 64))
         local step = -1
         return function(done, total, final)
            local pct = total and total > 0 and math.floor(done * 100 / total) or nil
            if final or (pct and pct > step) then
               step = pct or step
               event({ status = "pulling " .. d:sub(8, 19), digest = d, total = total or done, completed = done })
            end
         end
      end })
   end)
   if ok and res then
      event({ status = "verifying sha256 digest" })
      event({ status = "writing manifest" })
      event({ status = "success", model = res.model .. ":" .. res.tag })
   end
   local msg = not ok and (type(res) == "table" and res.message or tostring(res)) or (not res and tostring(err))
   if stream then
      if msg then req:write(line({ error = msg })) end
      return req:finish()
   end
   if msg then oa.fail(500, msg) end
   return 200, JSON, json.encode(last)
end

-- POST /api/push: there is no registry to push to.
function M.push()
   oa.fail(400, "push is not supported: moonhub pulls from Hugging Face and has no registry to push to")
end

-- DELETE /api/delete {"model" | "name"}
function M.delete(app, req)
   local body = oa.decode(req.body)
   local ref = name_of(body)
   local r = row(ref)
   require("moonhub.admin").remove_model(app, r.model .. ":" .. r.tag)
   drop_extras({ { id = r.id, model = r.model } })
   return 200, JSON, ""
end

-- "name[:tag]" -> name, tag (checked as the registry checks them)
local function split_ref(ref, field)
   local name, tag = ref:match("^([^:]+):([^:]+)$")
   name = name or ref
   local reg = require "moonhub.registry.models"
   if not name:match(reg.NAME_PAT) or (tag and not tag:match("^[%w][%w%._%-]*$")) then
      oa.fail(400, string.format("'%s' %q is not a model name: letters, digits and . _ - / with an optional "
         .. ":tag", field, ref), field)
   end
   return name, tag
end

-- Registers r's file under a new name (a copy shares the file; rm of one
-- keeps it for the other) -> the new row
local function register_as(r, dest, field)
   local name, tag = split_ref(dest, field)
   return with_registry(function(reg)
      if not tag or tag == "latest" then      -- the source version's own tag ("latest" is no tag)
         tag = nil
         for _, v in ipairs(reg:versions(r.model) or {}) do
            if v.id == r.id and v.tags[1] ~= "latest" then tag = v.tags[1] end
         end
      end
      local ok, v = pcall(reg.add_model, reg, { name = name, tag = tag,
         path = r.path, sha256 = r.sha256, format = r.format, quant = r.quant, size = r.size, params = r.params,
         arch = r.arch, ctx = r.ctx, source_url = r.source_url, source_revision = r.source_revision,
         parent = r.id })
      if not ok then oa.fail(400, tostring(v):gsub("^registry%.add_model: ", ""), field) end
      return v
   end)
end

-- POST /api/copy {"source", "destination"}
function M.copy(_, req)
   local body = oa.decode(req.body)
   local src = row(name_of(body, "source"))
   local dst = register_as(src, name_of(body, "destination"), "destination")
   local x = read_extras(src)
   if x then write_extras(dst, { system = x.system, parameters = x.parameters, template = x.template }) end
   return 200, JSON, ""
end

-- POST /api/create {"model", "from", "template", "system", "parameters",
-- "stream"}: from a registered model or a GGUF file on this machine (an
-- absolute path); template is Jinja (a chat_template), parameters are
-- Ollama's options (checked here, applied to every request).
function M.create(_, req)
   local body = oa.decode(req.body)
   local name = name_of(body)
   for _, k in ipairs({ "files", "adapters", "quantize", "messages" }) do
      if not oa.is_null(body[k]) and not (oa.is_object(body[k]) and next(body[k]) == nil) then
         oa.fail(400, string.format("'%s' is not supported by /api/create here: create from a registered model "
            .. "or a GGUF path ('from'), with template, system and parameters", k), k)
      end
   end
   local from = body.from
   if type(from) ~= "string" or from == "" then
      oa.fail(400, "'from' is required: a registered model or the absolute path of a GGUF file", "from")
   end
   local x = { system = body.system, template = body.template, parameters = body.parameters }
   if not oa.is_null(x.system) and type(x.system) ~= "string" then oa.wrong("system", "a string", x.system) end
   if oa.is_null(x.template) then x.template = nil
   elseif type(x.template) ~= "string" then oa.wrong("template", "a string", x.template)
   else
      local ok, err = pcall(require("moonhub.jinja").compile, x.template)
      if not ok then
         oa.fail(400, "'template' is not a Jinja template (moonhub's templates are Jinja, as a Hugging Face "
            .. "chat_template; Go templates are not read): " .. tostring(err):sub(1, 200), "template")
      end
   end
   if oa.is_null(x.system) then x.system = nil end
   if oa.is_null(x.parameters) then x.parameters = nil
   else require("moonhub.server.ollama_adapter").options(x.parameters) end    -- the same checks as options
   local dst
   if from:sub(1, 1) == "/" then             -- registered in place under the new name
      if not from:match("%.gguf$") or not fs.stat(from) then
         oa.fail(400, string.format("'from' %q is not a GGUF file on this machine", from), "from")
      end
      local dname, dtag = split_ref(name, "model")
      local r, err = models.import(from, { name = dname, tag = dtag ~= "latest" and dtag or nil })
      if not r then oa.fail(400, tostring(err), "from") end
      dst = r
   else
      dst = register_as(row(from), name, "model")
   end
   if x.template or x.system or x.parameters then write_extras(dst, x) end
   if body.stream ~= false then
      req:start(200, NDJSON)
      req:write(line({ status = "using existing layers" }))
      req:write(line({ status = "writing manifest" }))
      req:write(line({ status = "success" }))
      return req:finish()
   end
   return 200, JSON, json.encode({ status = "success" })
end

return M
