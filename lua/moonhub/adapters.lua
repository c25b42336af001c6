-- moonhub.adapters: LoRA adapters by name — "ADAPTER[:SCALE]" specs (a file
-- or a registered adapter version), an adapter version loaded as its base
-- plus the adapter, and the check that an adapter belongs to the model.
-- Layer: lua/moonhub (uses moonhub.registry, moonhub.fs; the model applies
-- adapters through moonhub.model's set_adapters).
local fs = require "moonhub.fs"

local M = {}

local function open_registry()
   local home = require("moonhub").home()
   if not require("moonhub.registry").exists(home) then return nil end
   return require("moonhub.registry").open(home)
end

-- with_registry(fn) -> fn(reg)'s results, or nil when there is no registry
local function with_registry(fn)
   local reg, msg = open_registry()
   if not reg then return nil, msg end
   local ok, a, b = pcall(fn, reg)
   reg:close()
   if not ok then return nil, tostring(a) end
   return a, b
end

-- parse("ADAPTER[:SCALE]") -> ref, scale. A trailing ":<number>" is the
-- scale unless the whole text names a file (file names may hold colons).
function M.parse(spec)
   if type(spec) ~= "string" or spec == "" then
      return nil, "--lora needs ADAPTER[:SCALE] (a LoRA file or a registered adapter)"
   end
   local ref, s = spec:match("^(.+):([-+]?%d*%.?%d+)$")
   if ref and not fs.stat(spec) then
      local scale = tonumber(s)
      if scale ~= scale or math.abs(scale) == math.huge then
         return nil, "--lora " .. spec .. ": the scale must be a finite number"
      end
      return ref, scale
   end
   return spec, 1.0
end

-- find(spec) -> {path =, scale =, ref =, version = row|nil, base = row|nil} | nil, msg.
-- An existing file is used as is; else a registered adapter version.
function M.find(spec)
   local ref, scale = M.parse(spec)
   if not ref then return nil, scale end
   if fs.stat(ref) then return { path = ref, scale = scale, ref = ref } end
   local looks_path = ref:match("^[/.~]") or ref:match("%.gguf$") or ref:match("%.safetensors$")
   if looks_path then return nil, "no such adapter file: " .. ref end
   local res, err = with_registry(function(reg)
      local ok, v = pcall(reg.resolve, reg, ref)
      if not ok or not v then return nil end
      if not reg:is_adapter(v) then
         return false, string.format("'%s' is a model (format %s), not a LoRA adapter; "
            .. "give it as the model, or an adapter with --lora", ref, v.format)
      end
      local base, berr = reg:base_of(v)
      if not base then return false, berr end
      return { path = v.path, scale = scale, ref = ref, version = v, base = base }
   end)
   if res then
      if not fs.stat(res.path) then
         return nil, string.format("adapter '%s' is registered at %s, which no longer exists", ref, res.path)
      end
      return res
   end
   if res == false then return nil, err end
   return nil, string.format("no such adapter file or registered adapter: '%s' (see 'moonhub list')", ref)
end

-- Refuses a registered adapter on a model other than its base: same file,
-- or the same sha256 when the model came from the registry too.
local function check_base(a, model)
   if not a.base then return true end          -- a plain file: the engine checks the shapes
   local mpath = model.base_path or model.path
   if fs.same_file(a.base.path, mpath) then return true end
   local mv = model.version
   if mv and mv.sha256 and a.base.sha256 and (mv.base_sha256 or mv.sha256) == a.base.sha256 then return true end
   return nil, string.format("adapter '%s' was trained on %s (version %d, %s), not on %s; "
      .. "load that base with it (or give the adapter's file path to apply it anyway)",
      a.ref, a.base.model, a.base.id, a.base.path, mpath)
end

-- resolve(model, {spec, ...}) -> {{path =, scale =}, ...} | nil, msg: the
-- specs found and checked against the model (nil or {} -> {})
function M.resolve(model, specs)
   local list = {}
   if specs == nil then return list end
   if type(specs) == "string" then specs = { specs } end
   for _, spec in ipairs(specs) do
      local a, err = M.find(spec)
      if not a then return nil, err end
      local ok, berr = check_base(a, model)
      if not ok then return nil, berr end
      list[#list + 1] = { path = a.path, scale = a.scale }
   end
   return list
end

-- apply(model, {spec, ...}) -> true | nil, msg. Adds the adapters to the
-- ones the model already carries (an adapter version keeps its own).
function M.apply(model, specs)
   if specs == nil or (type(specs) == "table" and #specs == 0) then return true end
   local list, err = M.resolve(model, specs)
   if not list then return nil, err end
   local all = {}
   for _, a in ipairs(model.adapters or {}) do all[#all + 1] = a end
   for _, a in ipairs(list) do all[#all + 1] = a end
   if #all > 8 then return nil, string.format("at most 8 adapters at once, got %d", #all) end
   local ok, aerr = pcall(model.set_adapters, model, all)
   if not ok then return nil, (tostring(aerr):gsub("^moonhub%.load: ", "")) end
   return true
end

-- ===== adapters per request (docs/lora.md) =====
-- A model keeps the adapters requests may pick by name in model.loras:
-- NAME -> {adapter = (core handle), scale =, path =}; requests share the
-- base weights and each row of a batch applies its own.

-- parse_named("NAME=ADAPTER[:SCALE]") -> name, spec | nil (not that form:
-- a plain ADAPTER[:SCALE], or a file whose name holds '=')
function M.parse_named(spec)
   if type(spec) ~= "string" or fs.stat(spec) then return nil end
   local name, rest = spec:match("^([%w_][%w_.%-]*)=(.+)$")
   return name, rest
end

-- register(model, name, spec) -> true | nil, msg: loads ADAPTER[:SCALE] (a
-- file or a registered adapter, checked against model) under name.
function M.register(model, name, spec)
   if type(name) ~= "string" or not name:match("^[%w_][%w_.:%-]*$") then
      return nil, string.format("adapter names are letters, digits and _ . : -, got %q", tostring(name))
   end
   local list, err = M.resolve(model, { spec })
   if not list then return nil, err end
   local a = list[1]
   local h, lerr = model._h:load_lora(a.path, 1.0)
   if not h then return nil, string.format("adapter '%s': %s", name, tostring(lerr)) end
   model.loras = model.loras or {}
   model.loras[name] = { adapter = h, scale = a.scale, path = a.path }
   return true
end

-- lookup(model, name, files) -> entry | nil, msg: a name registered on the
-- model, else a registered adapter version whose base is the model (loaded
-- on first use and kept), else (files true) an adapter file.
function M.lookup(model, name, files)
   local known = model.loras and model.loras[name]
   if known then return known end
   local a = M.find(name)
   if a and (a.base or files) then
      local ok = M.register(model, name, name)
      if ok then return model.loras[name] end
   end
   local names = {}
   for k in pairs(model.loras or {}) do names[#names + 1] = k end
   table.sort(names)
   return nil, string.format("unknown adapter '%s': %s", name, #names > 0
      and "this model serves " .. table.concat(names, ", ")
      or "no adapter is registered for this model (serve --lora NAME=PATH, or a registered adapter of it)")
end

-- for_request(model, list, {files = bool}) -> {{adapter =, scale =}, ...} |
-- nil, msg. list: names, or {name =, scale =} tables (Lua may also give
-- {path =, scale =}); scale defaults to the one the name was registered with.
function M.for_request(model, list, opts)
   if list == nil then return nil end
   if type(list) ~= "table" then return nil, "lora must be a list of {name =, scale =}" end
   if #list > 8 then return nil, string.format("at most 8 adapters per request, got %d", #list) end
   local files = opts and opts.files
   local out = {}
   for i, x in ipairs(list) do
      if type(x) == "string" then x = { name = x } end
      if type(x) ~= "table" then return nil, string.format("lora[%d] must be {name =, scale =}", i) end
      local name = x.name or (files and x.path)
      if type(name) ~= "string" or name == "" then return nil, string.format("lora[%d] has no name", i) end
      if x.scale ~= nil and (type(x.scale) ~= "number" or x.scale ~= x.scale or math.abs(x.scale) > 1e6) then
         return nil, string.format("lora[%d].scale must be a finite number", i)
      end
      local e, err = M.lookup(model, name, files)
      if not e then return nil, err end
      out[i] = { adapter = e.adapter, scale = x.scale or e.scale or 1.0 }
   end
   return out
end

-- version_base(ref) -> base row (.ref: a name for it), adapter row | nil:
-- the base version of a registered adapter version named by ref
-- (name[:tag]); nil for anything else.
function M.version_base(ref)
   if type(ref) ~= "string" or ref == "" or ref:match("^[/.~]") then return nil end
   local base, v = with_registry(function(reg)
      local ok, row = pcall(reg.resolve, reg, ref)
      if not ok or not row or not reg:is_adapter(row) then return nil end
      local b = reg:base_of(row)
      if not b then return nil end
      -- b.ref: a name the pool resolves to that version ("name" when it is
      -- the newest, else "name:TAG" by one of its tags)
      local newest = reg:resolve(b.model)
      if newest and newest.id == b.id then b.ref = b.model
      else
         local t = reg.db:first("SELECT name FROM tags WHERE version_id = ? ORDER BY name LIMIT 1", b.id)
         b.ref = t and (b.model .. ":" .. t.name) or nil
      end
      return b, row
   end)
   if base and v and base.ref then return base, v end
   return nil
end

-- for_load(ref, path, row) -> base path, {adapter}, adapter version, base
-- version | path (not an adapter) | nil, msg. Called by moonhub.model.load
-- with the adapter version's row, or with nil when path failed to load as a
-- model: a registered adapter version (by name, or by its file's path)
-- loads as its base plus the adapter; an unregistered adapter file is an error.
function M.for_load(ref, path, row)
   if row and not require("moonhub.registry.lineage").ADAPTER_FORMATS[row.format] then return path end
   if not row then
      local f = io.open(path, "rb")
      local magic = f and f:read(4)
      if f then f:close() end
      if magic ~= "GGUF" then return path end
      local g = require("moonhub.gguf").open(path)
      local kind = g and g.metadata["general.type"]
      if g then g:close() end
      if kind ~= "adapter" then return path end
   end
   local v, base = with_registry(function(reg)
      if row then return row, reg:base_of(row) end
      return reg:adapter_by_path(path)
   end)
   if not v then
      return nil, string.format("%s is a LoRA adapter, not a model: load its base model with "
         .. "--lora %s (or register it with its base)", ref, ref)
   end
   if not base then return nil, string.format("adapter '%s' has lost its base model version", ref) end
   if not fs.stat(base.path) then
      return nil, string.format("adapter '%s' needs its base %s at %s, which no longer exists", ref,
         base.model, base.path)
   end
   return base.path, { path = v.path, scale = 1.0 }, v, base
end

return M
