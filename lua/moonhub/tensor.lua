-- moonhub.tensor: the public tensor API (Torch7-like; dims and indices are
-- 1-based, negative ones count from the end). Layer: lua/moonhub; wraps the
-- C module moonhub.core.tensor and adds Lua sugar: construction from nested
-- tables, printing (moonhub.pretty), save/load (moonhub.safetensors).
local core = require "moonhub.core.tensor"
local pretty = require "moonhub.pretty"

local M = {}
local methods = core.methods

M.dtypes = { "f32", "f16", "bf16", "i32", "i64", "u8", "i8" }

for k, f in pairs(core) do
   if k ~= "methods" and k ~= "meta" and k ~= "from_flat" then M[k] = f end
end

-- ===== construction from nested tables =====

-- Shape of a nested table, read down its first elements.
local function infer_shape(data)
   local shape, v = {}, data
   while type(v) == "table" do
      local n = #v
      shape[#shape + 1] = n
      if n == 0 then break end
      v = v[1]
   end
   return shape
end

local function where_str(idx, d)
   local parts = {}
   for i = 1, d - 1 do parts[i] = tostring(idx[i]) end
   return "[" .. table.concat(parts, "][") .. "]"
end

-- Appends the numbers of v (depth d of shape) to out; nil, msg on a ragged
-- or non-numeric table. idx holds the current position for the message.
local function flatten(v, shape, d, out, idx)
   if d > #shape then
      if type(v) ~= "number" then
         return nil, ("element %s is %s, expected a number"):format(where_str(idx, d), type(v))
      end
      out[#out + 1] = v
      return true
   end
   if type(v) ~= "table" then
      return nil, ("entry %s is %s, expected a table of %d elements")
         :format(where_str(idx, d), type(v), shape[d])
   end
   if #v ~= shape[d] then
      return nil, ("entry %s has %d elements, expected %d (ragged table)")
         :format(where_str(idx, d), #v, shape[d])
   end
   for i = 1, #v do
      idx[d] = i
      local ok, msg = flatten(v[i], shape, d + 1, out, idx)
      if not ok then return nil, msg end
   end
   return true
end

--- T.tensor(data[, opts]): a tensor from a number or a nested table of
-- numbers ({{1, 2}, {3, 4}} is 2x2); opts.dtype defaults to "f32".
function M.tensor(data, opts)
   if core.is_tensor(data) then
      local t = data:clone()
      if opts and opts.dtype then t = t:to(opts.dtype) end
      return t
   end
   if type(data) ~= "number" and type(data) ~= "table" then
      error(("tensor.tensor: expected a number or a nested table, got %s"):format(type(data)), 2)
   end
   if opts ~= nil and type(opts) ~= "table" then
      error(("tensor.tensor: options must be a table, got %s"):format(type(opts)), 2)
   end
   local shape = infer_shape(data)
   local flat = {}
   local ok, msg = flatten(data, shape, 1, flat, {})
   if not ok then error("tensor.tensor: " .. msg, 2) end
   return core.from_flat(flat, shape, opts and opts.dtype)
end
M.from_table = M.tensor

-- ===== Lua-side methods =====

--- t:flatten(): a 1-D view (or copy when the layout needs one).
function methods.flatten(t)
   return t:reshape(-1)
end

--- t:allclose(u[, rtol = 1e-5[, atol = 1e-8]]): |t - u| <= atol + rtol*|u|
-- everywhere (u broadcasts); NaNs are never close.
function methods.allclose(t, u, rtol, atol)
   rtol, atol = rtol or 1e-5, atol or 1e-8
   if type(u) == "number" then u = M.full({}, u) end
   local a, b = t:to("f32"), u:to("f32")
   if a:numel() == 0 and b:numel() == 0 then return true end
   local ok = (a - b):abs():le(b:abs() * rtol + atol)
   return ok:min() == 1
end

--- t:equal(u): same shape and the same values.
function methods.equal(t, u)
   if not core.is_tensor(u) then return false end
   local sa, sb = t:shape(), u:shape()
   if #sa ~= #sb then return false end
   for i = 1, #sa do if sa[i] ~= sb[i] then return false end end
   if t:numel() == 0 then return true end
   return t:eq(u):min() == 1
end

-- every method is also a module function: T.matmul(a, b), T.sum(t, 1)
for k, f in pairs(methods) do
   if M[k] == nil then M[k] = f end
end

core.meta.__tostring = pretty.tensor

-- ===== files =====

--- T.save(path, tensor_or_table[, metadata]) -> true | nil, msg: writes a
-- .safetensors file; a single tensor is stored under the name "tensor".
function M.save(...)
   return require("moonhub.safetensors").save(...)
end

--- T.load(path) -> tensors, metadata | nil, msg: the table of named tensors,
-- or the tensor itself when the file holds only one named "tensor".
function M.load(path)
   return require("moonhub.safetensors").load_tensor(path)
end

return M
