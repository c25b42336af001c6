-- moonhub.config: user defaults from $MOONHUB_HOME/config.lua and MOONHUB_*
-- variables, and the context a model gets when none is asked for.
-- Layer: lua/moonhub (uses moonhub.fs, moonhub.core.host). Precedence, for
-- every key: flag > environment > config file > built-in. See docs/config.md.
local fs = require "moonhub.fs"

local M = {}

local function home() return require("moonhub.core.host").home end

local function duration(v)
   local s, err = require("moonhub.pool").parse_duration(v)
   if not s then return nil, err end
   return v
end

local KV_TYPES = { f16 = true, q8_0 = true, f32 = true }

-- The keys: type, the variable that overrides the file, the built-in value
-- (a function for the ones that depend on where moonhub runs; nil = decided
-- by the verb, e.g. ctx from the model), and what each means.
M.KEYS = {
   threads = { type = "integer", min = 1, max = 1024, env = "MOONHUB_THREADS",
      doc = "compute threads (built-in: the CPU count)" },
   ctx = { type = "integer", min = 1, env = "MOONHUB_CTX",
      doc = "context length (built-in: the model's trained context, capped by memory)" },
   port = { type = "integer", min = 0, max = 65535, env = "MOONHUB_PORT", builtin = 8080,
      doc = "serve: port (0 picks a free one)" },
   host = { type = "string", env = "MOONHUB_HOST", builtin = "127.0.0.1", doc = "serve: address to bind" },
   models = { type = "string", env = "MOONHUB_MODELS", builtin = function() return home() .. "/models" end,
      doc = "folder pulled and imported models are stored in" },
   kv_type = { type = "string", env = "MOONHUB_KV_TYPE", builtin = "f16",
      check = function(v) return KV_TYPES[v] and v or nil, "expected f16, q8_0 or f32" end,
      doc = "serve: KV cache type (f16, q8_0, f32)" },
   cache_mb = { type = "number", min = 0, env = "MOONHUB_CACHE_MB",
      doc = "serve: prefix cache budget in MiB (built-in: 1/16 of free memory, at most 512)" },
   keep_alive = { type = "string", env = "MOONHUB_KEEP_ALIVE", check = duration,
      doc = "serve: unload a model idle this long (30s, 5m, 1h; negative = never; built-in: 5m, never for --model)" },
   db = { type = "string", env = "MOONHUB_DB",
      doc = "the hub's database: a SQLite path or a postgresql:// URL shared by several nodes "
         .. "(built-in: $MOONHUB_HOME/moonhub.db; docs/scale-out.md)" },
   api_key_file = { type = "string", env = "MOONHUB_API_KEY_FILE",
      doc = "serve: file whose first line is the API key (when no --api-key)" },
}

--- The sorted key names.
function M.keys()
   local out = {}
   for k in pairs(M.KEYS) do out[#out + 1] = k end
   table.sort(out)
   return out
end

--- $MOONHUB_HOME/config.lua
function M.path() return home() .. "/config.lua" end

-- check(key, v) -> the value of type key.type | nil, msg. Strings (from the
-- environment or the command line) are converted; file values must already
-- have the type.
local function check(key, v, from_text)
   local k = M.KEYS[key]
   if not k then
      return nil, string.format("unknown key '%s' (keys: %s)", tostring(key), table.concat(M.keys(), ", "))
   end
   if k.type ~= "string" then
      local n = from_text and tonumber(v) or (math.type(v) and v)
      if k.type == "integer" then n = n and math.tointeger(n) end
      if not n then return nil, string.format("%s: expected %s %s, got '%s'", key,
         k.type == "integer" and "an" or "a", k.type, tostring(v)) end
      if (k.min and n < k.min) or (k.max and n > k.max) then
         return nil, string.format("%s: expected %s %s%s, got %s", key,
            k.type == "integer" and "an integer" or "a number",
            k.min and (">= " .. k.min) or "", k.max and (" and <= " .. k.max) or "", tostring(v))
      end
      v = n
   elseif type(v) ~= "string" or v == "" then
      return nil, string.format("%s: expected a non-empty string, got %s", key, type(v) == "string" and "''" or type(v))
   end
   if k.check then
      local ok, why = k.check(v)
      if ok == nil then return nil, key .. ": " .. why end
   end
   return v
end
M.check = check

-- ===== the file =====

-- read() -> table of the file's values (empty when there is no file) |
-- nil, msg. The file is Lua run with an empty environment (no globals, no
-- io/os, no require) and an instruction limit: either `return { ... }` or
-- plain `key = value` lines.
function M.read(path)
   path = path or M.path()
   local src = fs.read(path)
   if not src then return {} end
   local env = {}
   local chunk, err = load(src, "@" .. path, "t", env)
   if not chunk then return nil, "config file: " .. err end
   local co = coroutine.create(chunk)
   debug.sethook(co, function() error("runs too long (a config file is a table of values)", 0) end, "", 1e6)
   local ok, ret = coroutine.resume(co)
   if not ok then return nil, string.format("config file %s: %s", path, tostring(ret)) end
   local t = type(ret) == "table" and ret or env
   local out = {}
   for key, v in pairs(t) do
      local val, why = check(key, v)
      if val == nil then return nil, string.format("config file %s: %s", path, why) end
      out[key] = val
   end
   return out
end

local cache      -- the file's values, read once per process
local function file_values()
   if not cache then
      local t, err = M.read()
      if not t then error(err .. " (fix it, or 'moonhub config set' a good value)", 0) end
      cache = t
   end
   return cache
end

--- Forgets the cached file (after set, or in tests).
function M.reload() cache = nil end

-- ===== lookups =====

--- get(key) -> value, source ("env", "file", "built-in"; value nil when no
-- layer sets it). A bad environment value or file raises a one-line error.
function M.get(key)
   local k = M.KEYS[key]
   if not k then error("config: " .. select(2, check(key)), 0) end
   local e = os.getenv(k.env)
   if e and e ~= "" then
      local v, why = check(key, e, true)
      if v == nil then error(k.env .. ": " .. why:gsub("^[%w_]+: ", ""), 0) end
      return v, "env"
   end
   local f = file_values()[key]
   if f ~= nil then return f, "file" end
   local b = k.builtin
   if type(b) == "function" then b = b() end
   return b, "built-in"
end

--- default(key) -> the value a verb uses when its flag is not given.
function M.default(key) return (M.get(key)) end

--- pick(key, flag) -> value, source: the flag when given, else get(key).
function M.pick(key, flag)
   if flag ~= nil then return flag, "flag" end
   return M.get(key)
end

--- Every key: { key, value, source, env, doc }.
function M.list()
   local out = {}
   for _, key in ipairs(M.keys()) do
      local v, src = M.get(key)
      out[#out + 1] = { key = key, value = v, source = src, env = M.KEYS[key].env, doc = M.KEYS[key].doc }
   end
   return out
end

local function serialise(t)
   local lines = { "-- moonhub configuration (docs/config.md); 'moonhub config set KEY VALUE' edits it", "return {" }
   for _, key in ipairs(M.keys()) do
      local v = t[key]
      if v ~= nil then
         lines[#lines + 1] = string.format("   %s = %s,", key,
            type(v) == "string" and string.format("%q", v) or tostring(v))
      end
   end
   lines[#lines + 1] = "}"
   return table.concat(lines, "\n") .. "\n"
end

--- set(key, text) -> value | nil, msg: checks the value against the key's
-- type and rewrites the file atomically (other keys kept). text nil unsets.
function M.set(key, text)
   local v, why
   if text ~= nil then
      v, why = check(key, text, true)
      if v == nil then return nil, why end
   elseif not M.KEYS[key] then
      return nil, select(2, check(key))
   end
   local t, err = M.read()
   if not t then return nil, err end
   t[key] = v
   fs.mkdirs(home())
   local ok, werr = fs.write(M.path(), serialise(t))
   if not ok then return nil, werr end
   M.reload()
   return v
end

-- ===== the context a model gets =====

local function mib(n)
   if n < 2^20 then return string.format("%.0f KiB", n / 2^10) end
   return string.format("%.0f MiB", n / 2^20)
end

--- context(model, {ctx =, source =, parallel = 1, mem = bytes}) -> ctx, line.
-- Without ctx: the model's trained context, halved while its weights and KV
-- cache (for parallel sequences) do not fit in mem (default: the memory
-- available now), never below 256 or the trained context. line is the
-- one-line report ("context 2048 (trained), KV cache 24 MiB"), with a
-- warning when an asked ctx is beyond the trained one.
function M.context(model, o)
   o = o or {}
   local train = model.info.n_ctx_train
   local par = o.parallel or 1
   local ctx, why = o.ctx, o.source or "flag"
   if ctx == nil then
      ctx, why = train, "trained"
      local mem = o.mem or fs.mem_available()
      local floor = math.min(256, train)
      while mem and ctx > floor and model:memory_needed(ctx * par) > mem do
         ctx, why = math.max(ctx // 2, floor), string.format("trained %d, capped by memory: %s", train, mib(mem))
      end
   elseif why ~= "flag" then
      why = why == "env" and M.KEYS.ctx.env or "config file"
   else
      why = "--ctx"
   end
   local line = string.format("context %d (%s), KV cache %s", ctx, why, mib(model:kv_bytes(ctx * par)))
   if par > 1 then line = line .. string.format(" for %d sequences", par) end
   local warn
   if ctx > train then
      warn = string.format("warning: context %d is beyond the model's trained context %d; "
         .. "answers past %d tokens may degrade", ctx, train, train)
   end
   return ctx, line, warn
end

--- least_ctx(ref) -> the smallest context the default would choose: 256,
-- or the trained context when smaller (read from the file's header). A
-- model loads at it (the loader's memory check) before M.context grows it.
function M.least_ctx(ref)
   local models = require "moonhub.models"
   local path = models.resolve(ref)
   local f = path and models.facts(path)
   return math.min(256, f and f.ctx or 256)
end

--- load(ref, {ctx =, threads =, mem_limit =, kv_type =}) -> model, line, warn
-- | nil, msg: mh.load with the unset options from the config (flag > env >
-- file > built-in) and the context chosen by M.context; for chat/generate.
function M.load(ref, o)
   local ctx, src = M.pick("ctx", o.ctx)
   local m, err = require("moonhub.model").load(ref, { ctx = ctx or M.least_ctx(ref),
      threads = M.pick("threads", o.threads),
      mem_limit = o.mem_limit, kv_type = o.kv_type })
   if not m then return nil, err end
   local line, warn
   m.ctx, line, warn = M.context(m, { ctx = ctx, source = src, mem = o.mem_limit })
   return m, line, warn
end

return M
