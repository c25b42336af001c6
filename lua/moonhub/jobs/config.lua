-- moonhub.jobs.config: a training job's configuration — the known keys with
-- their types, ranges and defaults, reading a .lua or .json config file,
-- and the trainer options a config becomes. Layer: lua/moonhub (pure Lua;
-- dkjson). An unknown key or a bad value is a one-line error.
local json = require "dkjson"

local M = {}

local function int(min) return { kind = "int", min = min } end
local function pos() return { kind = "num", pos = true } end

-- key -> {kind, ...}; `default` where the job needs a value
M.KEYS = {
   model = { kind = "str", required = true }, data = { kind = "str", required = true },
   val = { kind = "str" },                         -- validation dataset (NAME:val)
   method = { kind = "enum", values = { lora = 1, qlora = 1, full = 1 }, default = "lora" },
   quant = { kind = "str", default = "Q8_0" },     -- qlora: the base's type when it is not quantized
   steps = int(1), epochs = int(1),
   lr = { kind = "num", pos = true, default = 2e-4 },
   seed = { kind = "int", min = 0, default = 1 },
   batch = { kind = "int", min = 1, default = 4 }, seq = { kind = "int", min = 2, default = 256 },
   accumulate = { kind = "int", min = 1, default = 1 },
   rank = { kind = "int", min = 1, default = 8 }, alpha = { kind = "num", pos = true, default = 16 },
   dropout = { kind = "num", min = 0, max = 0.99, default = 0 },
   targets = { kind = "list" },
   weight_decay = { kind = "num", min = 0 }, warmup = int(0),
   decay = { kind = "enum", values = { constant = 1, linear = 1, cosine = 1 } },
   min_lr = { kind = "num", min = 0 }, grad_clip = pos(),
   eval_every = { kind = "int", min = 0, default = 0 },
   patience = { kind = "int", min = 0, default = 0 },
   checkpoint_every = { kind = "int", min = 1, default = 50 },
   threads = int(1), name = { kind = "str" }, tag = { kind = "str" },
   gradient_checkpointing = { kind = "bool" },
}

local function known_list()
   local ks = {}
   for k in pairs(M.KEYS) do ks[#ks + 1] = k end
   table.sort(ks)
   return table.concat(ks, ", ")
end

local function check_value(v, spec)
   local kind = spec.kind
   if kind == "str" then
      if type(v) ~= "string" or v == "" then return "must be a non-empty string" end
   elseif kind == "enum" then
      if not spec.values[v] then
         local vs = {}
         for x in pairs(spec.values) do vs[#vs + 1] = x end
         table.sort(vs)
         return "must be one of " .. table.concat(vs, ", ") .. ", got " .. tostring(v)
      end
   elseif kind == "int" then
      if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v) and v == v) then
         return "must be an integer, got " .. tostring(v)
      end
      if spec.min and v < spec.min then return "must be at least " .. spec.min .. ", got " .. tostring(v) end
   elseif kind == "num" then
      if type(v) ~= "number" or v ~= v then return "must be a number, got " .. tostring(v) end
      if spec.pos and v <= 0 then return "must be above 0, got " .. tostring(v) end
      if spec.min and v < spec.min then return "must be at least " .. spec.min .. ", got " .. tostring(v) end
      if spec.max and v > spec.max then return "must be at most " .. spec.max .. ", got " .. tostring(v) end
   elseif kind == "bool" then
      if type(v) ~= "boolean" then return "must be true or false" end
   elseif kind == "list" then
      if type(v) ~= "table" or #v == 0 then return "must be a non-empty list such as {\"q\", \"v\"}" end
      for _, x in ipairs(v) do if type(x) ~= "string" then return "must list strings" end end
   end
   return nil
end

-- check(t) -> cfg (defaults filled, integers as integers) | nil, msg
function M.check(t)
   if type(t) ~= "table" then return nil, "config must be a table" end
   local cfg = {}
   local keys = {}
   for k in pairs(t) do keys[#keys + 1] = tostring(k) end
   table.sort(keys)
   for _, k in ipairs(keys) do
      local spec = M.KEYS[k]
      if not spec then return nil, string.format("config: unknown key '%s' (known: %s)", k, known_list()) end
      local v = t[k]
      local why = check_value(v, spec)
      if why then return nil, string.format("config: %s %s", k, why) end
      if spec.kind == "int" then v = math.tointeger(v) end
      cfg[k] = v
   end
   for k, spec in pairs(M.KEYS) do
      if cfg[k] == nil and spec.required then return nil, "config: " .. k .. " is required" end
      if cfg[k] == nil and spec.default ~= nil then cfg[k] = spec.default end
   end
   if cfg.steps and t.epochs then return nil, "config: give steps or epochs, not both" end
   if not cfg.steps and not cfg.epochs then cfg.epochs = 1 end
   if cfg.method == "full" and (t.rank or t.alpha or t.targets or t.dropout) then
      return nil, "config: rank, alpha, dropout and targets are LoRA options; method is full"
   end
   if cfg.patience > 0 and cfg.eval_every == 0 then
      return nil, "config: patience needs eval_every (evaluations on the val split to compare)"
   end
   return cfg
end

-- read_file(path) -> table | nil, msg. FILE.lua returns a table (run with
-- no globals: a config is data); FILE.json holds an object.
function M.read_file(path)
   local f, err = io.open(path, "rb")
   if not f then return nil, "config: " .. tostring(err) end
   local text = f:read("a")
   f:close()
   local t
   if path:match("%.lua$") then
      local chunk, lerr = load(text, "@" .. path, "t", {})
      if not chunk then return nil, "config: " .. tostring(lerr) end
      local ok, v = pcall(chunk)
      if not ok then return nil, "config: " .. tostring(v) end
      t = v
   elseif path:match("%.json$") then
      local v, _, jerr = json.decode(text)
      if jerr then return nil, "config: " .. path .. ": " .. tostring(jerr) end
      t = v
   else
      return nil, "config: " .. path .. ": expected a .lua or .json file"
   end
   if type(t) ~= "table" then return nil, "config: " .. path .. " must give a table of options" end
   return t
end

-- trainer_opts(cfg) -> the options of moonhub.train.trainer
function M.trainer_opts(cfg)
   local o = {
      method = cfg.method == "full" and "full" or "lora",
      optimizer = { lr = cfg.lr, weight_decay = cfg.weight_decay },
      schedule = { warmup = cfg.warmup, decay = cfg.decay, min_lr = cfg.min_lr,
         total = cfg.decay and cfg.decay ~= "constant" and cfg.total_steps or nil },
      grad_clip = cfg.grad_clip, batch = cfg.batch, seq = cfg.seq, accumulate = cfg.accumulate,
      seed = cfg.seed, gradient_checkpointing = cfg.gradient_checkpointing,
   }
   if o.method == "lora" then
      o.lora = { rank = cfg.rank, alpha = cfg.alpha, dropout = cfg.dropout, targets = cfg.targets }
   end
   return o
end

return M
