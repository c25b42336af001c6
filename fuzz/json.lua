-- json.lua: fuzz harness (run by fuzz_json) for the Lua-side JSON decoder of
-- request bodies, moonhub.openai.decode (dkjson). Layer: fuzz.
-- A finding: decode raising anything but its 400 error table (an internal
-- error becomes a 500), or a decoded value that does not survive
-- encode -> decode.
local oa = require "moonhub.openai"

return function(data)
   local ok, v = pcall(oa.decode, data)
   if not ok then
      if type(v) ~= "table" or v.status ~= 400 or type(v.message) ~= "string" then
         error("decode raised an internal error: " .. tostring(type(v) == "table" and v.message or v), 0)
      end
      return
   end
   local text = oa.encode(v)
   local ok2, again = pcall(oa.decode, text)
   if not ok2 then
      error("re-decoding the encoder's output failed: " .. tostring(type(again) == "table"
         and again.message or again) .. "\n" .. text, 0)
   end
end
