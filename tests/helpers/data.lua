-- tests/helpers/data.lua: finds shared test data (models, vectors) for specs.
-- Pure module: does nothing on require. Root: $MOONHUB_TEST_DATA or ../shared.
-- When a file is missing, `need` marks the test pending (skipped) with a
-- message, or fails under MOONHUB_REQUIRE_TEST_DATA=1 (CI).
local M = {}

function M.root()
   local r = os.getenv("MOONHUB_TEST_DATA")
   if r == nil or r == "" then r = "../shared" end
   return r
end

function M.exists(path)
   local f = io.open(path, "rb")
   if f then f:close() return true end
   return false
end

-- Returns the absolute-ish path of rel under the root, or nil + message.
function M.path(rel)
   local p = M.root() .. "/" .. rel
   if M.exists(p) then return p end
   return nil, "test data not found: " .. p .. " (set MOONHUB_TEST_DATA)"
end

-- For use inside it(): returns the path, or skips the test via `pending`.
-- Under MOONHUB_REQUIRE_TEST_DATA=1 a missing file is an error.
function M.need(rel, pending)
   local p, msg = M.path(rel)
   if p then return p end
   if os.getenv("MOONHUB_REQUIRE_TEST_DATA") == "1" then error(msg, 2) end
   if pending then pending(msg) end
   return nil
end

return M
