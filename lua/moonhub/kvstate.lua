-- moonhub.kvstate: KV state files (docs/kv-state.md): what one holds, and a
-- model's identity, which a state carries and a restore checks. Saving and
-- restoring go through model:save_state/load_state (a cache) and
-- sched:save_slot/restore_slot (a server slot). Layer: lua/moonhub (wraps
-- moonhub.core.kvstate).
local core = require "moonhub.core.kvstate"

local M = {}

-- info(path) -> {version, model_id, type, n_layer, n_head_kv, head_dim,
--   n_vocab, n_tokens, bytes} | nil, msg: the whole file is checked
--   (magic, version, every field, the checksum)
function M.info(path)
   if type(path) ~= "string" then error("kvstate.info: path must be a string, got " .. type(path), 2) end
   return core.info(path)
end

-- identity(model) -> hex: SHA-256 over the model's hyperparameters, each
-- weight's type, shape and sampled bytes, and its adapter count
function M.identity(model)
   local h = type(model) == "table" and model._h or model
   return core.identity(h)
end

return M
