-- moonhub.server.models_routes: what the web UI's Models page needs beyond
-- the registry routes of moonhub.admin: a memory estimate for a registered
-- model at a chosen context, and a Hub search with memory-fit verdicts (as
-- `moonhub search`). Layer: lua/moonhub (uses moonhub.models, .hub, .gguf,
-- .registry; Hub requests yield to the loop through moonhub.hub).
local oa = require "moonhub.openai"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }

-- A registry reference from a URL (name, name:tag, org/name:tag): no
-- path, no "..", nothing a file name could smuggle in.
function M.check_ref(ref)
   if type(ref) ~= "string" or ref == "" then oa.fail(400, "'model' is required (a registered name[:tag])", "model") end
   if #ref > 200 or not ref:match("^[%w][%w%._%-/:]*$") or ref:find("..", 1, true) or ref:find("//", 1, true) then
      oa.fail(400, string.format("'model' must be a registered name[:tag], not a path (got %q)", ref:sub(1, 80)),
         "model", "invalid_model_name")
   end
   return ref
end

local function ctx_arg(v, default)
   if v == nil then return default end
   local n = math.tointeger(tonumber(v))
   if not n or n < 1 or n > 1048576 then
      oa.fail(400, "'ctx' must be an integer from 1 to 1048576, got " .. tostring(v):sub(1, 40), "ctx")
   end
   return n
end

-- The shape estimate() wants, from a GGUF's metadata (its header only).
local function gguf_cfg(path)
   local ok, f = pcall(require("moonhub.gguf").open, path)
   if not ok or not f then return nil end
   local md = f.metadata or {}
   f:close()
   local arch = md["general.architecture"]
   if not arch then return nil end
   local function k(s) return md[arch .. "." .. s] end
   return { num_hidden_layers = k("block_count"), num_attention_heads = k("attention.head_count"),
      num_key_value_heads = k("attention.head_count_kv"), hidden_size = k("embedding_length"),
      head_dim = k("attention.key_length"), n_ctx_train = k("context_length") }
end

-- GET /api/moonhub/memory?model=NAME[:TAG]&ctx=N -> {model, ctx, weights_bytes,
-- kv_bytes, total_bytes, available_bytes, fits, verdict, method}: the
-- estimate `moonhub search` gives (weights + an f16 KV cache).
local function memory(_, req)
   local ref = M.check_ref(req.args.model)
   local models = require "moonhub.models"
   local reg, err = models.open()
   if not reg then oa.fail(500, err) end
   local ok, row = pcall(reg.resolve, reg, ref)
   reg:close()
   if not ok or not row then oa.fail(404, "model '" .. ref .. "' not found", "model", "model_not_found") end
   local ctx = ctx_arg(req.args.ctx, row.ctx or 4096)
   local size = row.size or 0
   local out = { model = row.model .. ":" .. row.tag, ctx = ctx, weights_bytes = size,
      available_bytes = models.mem_available() or oa.null }
   -- a loaded model belongs to its scheduler's thread: the estimate is the
   -- one `moonhub search` gives, from the file's shape (f16 KV cache)
   local cfg = row.format == "gguf" and gguf_cfg(row.path) or nil
   out.total_bytes = models.estimate(size, cfg, ctx)
   out.kv_bytes = cfg and out.total_bytes - size or oa.null
   out.method = cfg and "weights + f16 KV cache from the file's shape" or "file size x 1.2 (shape unknown)"
   local have, human = models.mem_available(), require("moonhub.hub").human
   out.fits = not have or out.total_bytes <= have
   out.verdict = string.format("needs %s at ctx %d%s", human(out.total_bytes), ctx,
      have and string.format("; this machine has %s free", human(have)) or "")
   return 200, JSON, oa.encode(out)
end

-- GET /api/moonhub/search?q=WORDS[&ctx=N][&limit=N]: Hub models (GGUF), each
-- with its quants, sizes and memory-fit verdicts (moonhub search --json).
local function search(_, req)
   local q = req.args.q
   if type(q) ~= "string" or not q:match("%S") or #q > 200 then
      oa.fail(400, "'q' must be 1 to 200 characters of search words", "q")
   end
   local ctx = ctx_arg(req.args.ctx, 4096)
   local limit = math.tointeger(tonumber(req.args.limit or 10))
   if not limit or limit < 1 or limit > 50 then oa.fail(400, "'limit' must be an integer from 1 to 50", "limit") end
   local hub, models = require "moonhub.hub", require "moonhub.models"
   local found, err = hub.search(q, { limit = limit })
   if not found then oa.fail(502, tostring(err), nil, "hub_unavailable") end
   local results = oa.array()
   for _, m in ipairs(found) do
      local r = { id = m.id, downloads = m.downloads or 0, quants = oa.array() }
      local info, ierr = hub.model_info(m.id)
      if info then
         local pick = hub.pick(info.files)
         for _, f in ipairs(hub.gguf_files(info.files)) do
            local verdict, fits = models.fit(f.size or 0, nil, ctx)
            r.quants[#r.quants + 1] = { quant = hub.quant_of(f.path) or f.path, file = f.path, size = f.size,
               fit = verdict, fits = fits, default = pick == f }
         end
         table.sort(r.quants, function(x, y) return (x.size or 0) < (y.size or 0) end)
      else
         r.error = tostring(ierr)
      end
      results[#results + 1] = r
   end
   return 200, JSON, oa.encode({ query = q, ctx = ctx, results = results })
end

M.ROUTES = {
   { "GET", "/api/moonhub/memory", memory },
   { "GET", "/api/moonhub/search", search },
}

return M
