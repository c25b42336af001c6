-- moonhub.safetensors: save and load Hugging Face .safetensors files.
-- Layer: lua/moonhub (wraps moonhub.core.safetensors). Loaded tensors are
-- zero-copy views on a private (copy-on-write) mapping of the file: writing
-- to them never changes the file, and the mapping lives as long as they do.
--
--   local st = require "moonhub.safetensors"
--   st.save("w.safetensors", {wq = a, wk = b}, {format = "pt"})
--   local ts, meta = st.load("w.safetensors")    -- ts.wq, ts.wk; meta.format
--   st.save("x.safetensors", t)                  -- one tensor, named "tensor"
--   local h = st.open("model_dir")               -- lazy; sharded checkpoints too
--   local w = h:get("model.norm.weight")
--
-- mh.tensor.save/load use this module: load_tensor returns the tensor itself
-- when the file holds exactly one tensor named "tensor" (what save writes for
-- a single tensor), otherwise the name -> tensor table.
local core = require "moonhub.core.safetensors"

local M = {}

M.TENSOR_NAME = "tensor"   -- the name a lone tensor is saved under

local function check_path(fname, path)
   if type(path) ~= "string" or path == "" then
      error(string.format("safetensors.%s: path must be a non-empty string, got %s",
         fname, path == "" and "an empty string" or "a " .. type(path)), 3)
   end
end

-- save(path, tensor | {name = tensor, ...}, metadata?) -> true | nil, msg.
-- Metadata is a table of string keys and string values (the format allows
-- nothing else). The write goes to a temporary file renamed at the end.
function M.save(path, tensors, metadata)
   check_path("save", path)
   if core.is_tensor(tensors) then
      tensors = { [M.TENSOR_NAME] = tensors }
   elseif type(tensors) ~= "table" then
      error("safetensors.save: expected a tensor or a table of named tensors, got a "
         .. type(tensors), 2)
   end
   if metadata ~= nil and type(metadata) ~= "table" then
      error("safetensors.save: metadata must be a table of strings, got a " .. type(metadata), 2)
   end
   return core.save(path, tensors, metadata)
end

-- open(path) -> handle | nil, msg. path: a .safetensors file, a
-- model.safetensors.index.json, or a directory holding either. The handle
-- has :names(), :info(name), :get(name), :metadata(), :shards(), :close()
-- and #h; it can go in a to-be-closed variable.
function M.open(path)
   check_path("open", path)
   return core.open(path)
end

-- load(path) -> {name = tensor, ...}, metadata | nil, msg
function M.load(path)
   check_path("load", path)
   local h <close>, msg = core.open(path)
   if not h then return nil, msg end
   local out = {}
   for _, name in ipairs(h:names()) do
      local info = h:info(name)
      if not info.dtype then
         return nil, string.format("%s: tensor '%s' has unsupported dtype %s "
            .. "(moonhub reads F32 F16 BF16 I32 I64 U8 I8)", path, name, info.file_dtype)
      end
      out[name] = h:get(name)
   end
   return out, h:metadata()
end

-- load_tensor(path) -> tensor | table, metadata | nil, msg: like load, but
-- a file holding only a tensor named "tensor" gives that tensor.
function M.load_tensor(path)
   check_path("load_tensor", path)
   local ts, meta = M.load(path)
   if not ts then return nil, meta end
   local only = next(ts)
   if only == M.TENSOR_NAME and next(ts, only) == nil then
      return ts[only], meta
   end
   return ts, meta
end

return M
