-- moonhub.gguf: read GGUF model files (metadata and tensor table).
-- Layer: lua/moonhub (wraps moonhub.core.gguf). The file stays mmapped
-- while the object lives (or until f:close()).
--
--   local f = assert(mh.gguf.open("model.gguf"))
--   print(f.metadata["general.architecture"], f.version, #f:tensors())
--   -- arrays of more than 64 items (token lists) appear as {type=, n=}
local core = require "moonhub.core.gguf"

local M = {}

local File = {}
File.__index = File

-- open(path) -> file | nil, msg (a missing or malformed file is not an error).
function M.open(path)
   if type(path) ~= "string" or path == "" then
      error("gguf.open: path must be a non-empty string, got " .. type(path), 2)
   end
   local h, msg = core.open(path)
   if not h then return nil, msg end
   local info = h:info()
   return setmetatable({
      path = path,
      version = info.version,
      size = info.size,
      alignment = info.alignment,
      data_offset = info.data_offset,
      n_tensors = info.n_tensors,
      warning = info.warning,
      metadata = h:metadata(),
      _h = h,
   }, File)
end

-- f:tensors() -> list of {name, dtype, shape (ggml order), offset, nbytes}
function File:tensors() return self._h:tensors() end

-- f:tensor(name) -> one entry of f:tensors(), or nil
function File:tensor(name)
   if type(name) ~= "string" then
      error("gguf:tensor: name must be a string, got " .. type(name), 2)
   end
   return self._h:tensor(name)
end

function File:close() self._h:close() end

return M
