-- tests/helpers/data.lua: finds shared test data (models, vectors) for specs,
-- and is the one way a spec says "this test needs X" (a file, a command).
-- Pure module: does nothing on require. Root: $MOONHUB_TEST_DATA or ../shared.
-- An unmet need marks the test pending (a counted skip), or fails it under
-- MOONHUB_REQUIRE_TEST_DATA=1 (CI), where every need must be met.
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

-- The skip helper. Inside it() (or a function it calls), with busted's
-- `pending` passed in: `if not x then return data.skip("why", pending) end`.
-- Skips the test with the reason, or raises it when data is required.
-- Returns nil, so `return data.skip(...)` ends the test either way.
function M.skip(why, pending)
   if os.getenv("MOONHUB_REQUIRE_TEST_DATA") == "1" then
      error("required by MOONHUB_REQUIRE_TEST_DATA=1: " .. why, 0)
   end
   if pending then pending(why) end
   return nil
end

-- For use inside it(): returns the path of rel, or skips (see skip).
function M.need(rel, pending)
   local p, msg = M.path(rel)
   if p then return p end
   return M.skip(msg, pending)
end

-- For what a describe's setup() built from rel (a server, a model): returns
-- it; when it is missing, skips if rel is missing too (see need), and fails
-- if rel is there, since then the setup broke: never a quiet pass.
function M.started(x, rel, pending)
   if x then return x end
   if M.need(rel, pending) then error("setup did not finish although " .. rel .. " is present", 0) end
   return nil
end

-- True when the shell finds cmd; else skips (see skip). node, npm and
-- tmux come from deps/debian.txt, which make test installs.
function M.need_cmd(cmd, pending)
   if os.execute("command -v " .. cmd .. " >/dev/null 2>&1") then return true end
   return M.skip(cmd .. " is not installed (sh deps/install.sh installs it)", pending)
end

return M
