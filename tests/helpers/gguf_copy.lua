-- tests/helpers/gguf_copy.lua: writes a copy of a GGUF file that keeps the
-- first entry of each key and drops later repeats. moonhub refuses repeated
-- keys as llama.cpp's gguf does; the shared ggml-vocab-dbrx.gguf (from an
-- unmerged llama.cpp branch) repeats general.file_type, and its tokenizer is
-- still worth testing. Pure module: does nothing on require.
local M = {}

local SIZE = { [0] = 1, 1, 2, 2, 4, 4, 4, 1, nil, nil, 8, 8, 8 }

-- Position after the value of type t at pos (1-based) in s.
local function skip(s, pos, t)
   if t == 8 then
      local len = string.unpack("<I8", s, pos)
      return pos + 8 + len
   elseif t == 9 then
      local et, n = string.unpack("<I4I8", s, pos)
      pos = pos + 12
      for _ = 1, n do pos = skip(s, pos, et) end
      return pos
   end
   return pos + assert(SIZE[t], "gguf_copy: unknown value type " .. tostring(t))
end

-- Copies src to dst without repeated keys; returns the number dropped.
function M.dedup(src, dst)
   local f = assert(io.open(src, "rb"))
   local s = f:read("a")
   f:close()
   assert(s:sub(1, 4) == "GGUF", "gguf_copy: not a GGUF file: " .. src)
   local n_kv = string.unpack("<I8", s, 17)
   local pos, seen, parts, dropped = 25, {}, {}, 0
   for _ = 1, n_kv do
      local at = pos
      local key = string.unpack("<s8", s, pos)
      pos = pos + 8 + #key
      local t = string.unpack("<I4", s, pos)
      pos = skip(s, pos + 4, t)
      if seen[key] then dropped = dropped + 1
      else seen[key] = true; parts[#parts + 1] = s:sub(at, pos - 1) end
   end
   local out = assert(io.open(dst, "wb"))
   out:write(s:sub(1, 16), string.pack("<I8", n_kv - dropped), table.concat(parts), s:sub(pos))
   out:close()
   return dropped
end

return M
