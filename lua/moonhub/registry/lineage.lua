-- moonhub.registry.lineage: versions made by training — a LoRA adapter or a
-- merged model registered as a new version whose lineage names its base
-- version (parent_id), the run and the dataset version it came from.
-- Methods of a registry handle. Layer: lua/moonhub (portable SQL over
-- moonhub.db; moonhub.gguf and moonhub.fs for the file's facts and copy).
local fs = require "moonhub.fs"
local names = require "moonhub.registry.models"

local M = {}

-- Adapter formats: a version of one of these is applied to its parent (the base)
M.ADAPTER_FORMATS = { ["lora-gguf"] = true, ["lora-safetensors"] = true }

local function is_adapter(row) return row ~= nil and M.ADAPTER_FORMATS[row.format] == true end

-- reg:is_adapter(version row) -> true when the version is an adapter applied to its parent
function M.is_adapter(_, row) return is_adapter(row) end

local function fail(fmt, ...) error("registry.add_adapter_version: " .. string.format(fmt, ...), 3) end

-- Facts of an adapter file: format, arch, rank, alpha, params | nil, msg
local function adapter_facts(path)
   local head = io.open(path, "rb")
   if not head then return nil, "no such file: " .. path end
   local magic = head:read(4)
   head:close()
   if magic ~= "GGUF" then
      if path:match("%.safetensors$") then return { format = "lora-safetensors" } end
      return nil, path .. " is neither a GGUF nor a safetensors LoRA adapter"
   end
   local g, msg = require("moonhub.gguf").open(path)
   if not g then return nil, msg end
   local md = g.metadata
   local facts = { format = "lora-gguf", arch = md["general.architecture"], alpha = md["adapter.lora.alpha"],
      params = 0 }
   local lora = md["general.type"] == "adapter" and (md["adapter.type"] or "lora") == "lora"
   for _, t in ipairs(g:tensors()) do
      local n = 1
      for _, d in ipairs(t.shape) do n = n * d end
      facts.params = facts.params + n
      if not facts.rank and t.name:match("%.lora_a$") then facts.rank = t.shape[2] end
   end
   g:close()
   if not lora then return nil, path .. " is not a LoRA adapter (its general.type is not 'adapter')" end
   return facts
end

local function version(self, id)
   return self.db:first([[SELECT v.*, m.name AS model FROM versions v JOIN models m ON m.id = v.model_id
      WHERE v.id = ?]], id)
end

-- add_adapter_version{base_version_id=, path=, run_id=, dataset_version_id=,
--   name=, tag=, merged=bool, copy=bool} -> version id.
-- path is a LoRA adapter (GGUF in llama.cpp's format, or PEFT safetensors)
-- trained on the base version, or with merged = true a whole merged GGUF.
-- The file is copied under the home's models/local/NAME/ (copy = false
-- registers it in place), so a run's folder may move or go. name defaults to
-- "<base model>-lora" (or "-merged"); the version becomes that model's latest.
-- Raises on bad input; nothing is registered (or copied) when it fails.
function M:add_adapter_version(spec)
   if type(spec) ~= "table" then fail("expected a table {base_version_id=, path=, ...}, got a %s", type(spec)) end
   if math.type(spec.base_version_id) ~= "integer" then
      fail("base_version_id must be an integer version id, got %s", tostring(spec.base_version_id))
   end
   for _, k in ipairs({ "run_id", "dataset_version_id" }) do
      if spec[k] ~= nil and math.type(spec[k]) ~= "integer" then
         fail("%s must be an integer, got %s", k, tostring(spec[k]))
      end
   end
   if type(spec.path) ~= "string" or spec.path == "" then fail("path must be a non-empty string") end
   local base = version(self, spec.base_version_id)
   if not base then fail("no base version %d in the registry", spec.base_version_id) end
   if is_adapter(base) then
      fail("version %d (%s) is itself an adapter; train adapters on a model version", base.id, base.model)
   end
   local merged = spec.merged and true or false
   local facts, ferr
   if merged then
      facts, ferr = require("moonhub.models").facts(spec.path)
      if facts and facts.format ~= "gguf" then ferr = spec.path .. " is not a GGUF model" end
   else
      facts, ferr = adapter_facts(spec.path)
   end
   if not facts or ferr then fail("%s", ferr) end
   if not merged and facts.arch and base.arch and facts.arch ~= base.arch then
      fail("%s was trained on a %s model, but base version %d (%s) is %s", spec.path, facts.arch,
         base.id, base.model, base.arch)
   end
   local name = spec.name or (base.model .. (merged and "-merged" or "-lora"))
   names.check_name("add_adapter_version", "name", name, names.NAME_PAT)
   local path = fs.realpath(spec.path)
   local sha = require("moonhub.core.fetch").sha256_file(path)
   local copied, copy_dir       -- the copy this call made (removed again if registering fails)
   if spec.copy ~= false then
      -- the models folder of this registry's home (the configured one for the default home)
      local models = self.home == require("moonhub").home() and require("moonhub.models").models_dir()
         or (self.home .. "/models")
      local dir = models .. "/local/" .. name:gsub("/", "--")
      copy_dir = dir
      local ok, merr = fs.mkdirs(dir)
      if not ok then fail("%s", merr) end
      -- named by content: runs that all write "adapter.gguf" never overwrite each other
      local target = string.format("%s/%s-%s-%s", dir, merged and "merged" or "lora", sha:sub(1, 12),
         spec.path:match("[^/]+$"))
      if not fs.stat(target) then
         local done, cerr = fs.copy(path, target)
         if not done then fail("copying %s: %s", spec.path, tostring(cerr)) end
         copied = target
      end
      path = target
   end
   local st = fs.stat(path)
   local ok, res = pcall(self.db.transaction, self.db, function(d)
      local row = self:add_model{ name = name, tag = spec.tag, path = path, sha256 = sha,
         format = facts.format, quant = merged and facts.quant or (facts.rank and ("r" .. facts.rank)),
         size = st and st.size, params = facts.params, arch = base.arch or facts.arch,
         ctx = merged and facts.ctx or base.ctx, parent = base.id,
         description = merged and ("merged from " .. base.model) or ("LoRA adapter on " .. base.model) }
      d:exec("UPDATE versions SET run_id = ?, dataset_version_id = ? WHERE id = ?",
         spec.run_id, spec.dataset_version_id, row.id)
      return row.id
   end)
   if not ok then
      if copied then
         os.remove(copied)
         os.remove(copy_dir)          -- only when empty: another version's file keeps it
      end
      error(res, 2)
   end
   return res
end

-- version_lineage(id) -> {version =, base =, adapter = bool, merged = bool,
-- run_id =, run =, dataset_version_id =, dataset =} | nil, msg. run and
-- dataset are their rows when those tables still hold them.
function M:version_lineage(id)
   local v = version(self, id)
   if not v then return nil, "registry: no version " .. tostring(id) end
   local out = { version = v, adapter = is_adapter(v), run_id = v.run_id,
      dataset_version_id = v.dataset_version_id }
   out.base = v.parent_id and version(self, v.parent_id) or nil
   out.merged = not out.adapter and v.run_id ~= nil and out.base ~= nil
   if v.run_id then
      local ok, run = pcall(self.db.first, self.db, "SELECT * FROM runs WHERE id = ?", v.run_id)
      out.run = ok and run or nil
   end
   if v.dataset_version_id and self.dataset_version then
      local ok, ds = pcall(self.dataset_version, self, v.dataset_version_id)
      out.dataset = ok and ds or nil
   end
   return out
end

-- lineage_summary(id) -> {kind = "adapter"|"merged"|nil, base =, dataset =,
-- run =} as text for people (moonhub show), nil fields when unknown | nil, msg
function M:lineage_summary(id)
   local lin, err = self:version_lineage(id)
   if not lin then return nil, err end
   local out = { kind = lin.adapter and "adapter" or (lin.merged and "merged" or nil) }
   if lin.base then
      out.base = string.format("%s  (version %d)", self:version_label(lin.base.id) or lin.base.model, lin.base.id)
   end
   if lin.dataset_version_id then
      local d = lin.dataset
      out.dataset = d and string.format("%s@%s%s  (dataset version %d)", d.name or "?", tostring(d.version),
         d.split and (":" .. d.split) or "", lin.dataset_version_id)
         or string.format("dataset version %d (gone)", lin.dataset_version_id)
   end
   if lin.run_id then
      local r = lin.run
      out.run = r and string.format("run %d  (%s, %s)", r.id, r.kind or "?", r.status or "?")
         or string.format("run %d (gone)", lin.run_id)
   end
   return out
end

-- adapter_by_path(path) -> the newest adapter version registered at path
-- (the same file) with its base row | nil
function M:adapter_by_path(path)
   local real = fs.realpath(path) or path
   for _, r in ipairs(self.db:query([[SELECT id, path FROM versions WHERE format IN
         ('lora-gguf', 'lora-safetensors') ORDER BY id DESC]])) do
      if r.path == real or r.path == path or fs.same_file(r.path, path) then
         local v = version(self, r.id)
         return v, v.parent_id and version(self, v.parent_id)
      end
   end
   return nil
end

-- base_of(version row) -> the base version row of an adapter version | nil, msg
function M:base_of(v)
   local base = v.parent_id and version(self, v.parent_id)
   if not base then
      return nil, string.format("adapter %s (version %d) has lost its base model version; "
         .. "register the base again and the adapter with it", v.model or "?", v.id)
   end
   return base
end

return M
