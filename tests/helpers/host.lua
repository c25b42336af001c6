-- helpers.host: run the moonhub binary as a child process in specs.
-- Layer: tests (pure module: does nothing on require). Each run gets the
-- MOONHUB_HOME the caller passes, so specs never touch ~/.moonhub.
local host = require "moonhub.core.host"

local M = {}

--- Absolute path of the moonhub binary running these specs.
M.exe = host.exe

--- Shell-quotes s.
function M.q(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- A fresh empty directory (os.tmpname-based). Under `make test-pg`
-- ($MOONHUB_TEST_DB set) it is also a home whose database is a fresh
-- PostgreSQL schema (helpers.pg.bind_home writes its config.lua).
function M.tmpdir()
   local p = os.tmpname()
   os.remove(p)
   assert(os.execute("mkdir -p " .. M.q(p)))
   if os.getenv("MOONHUB_TEST_DB") then require("helpers.pg").bind_home(p) end
   return p
end

function M.rmdir(p)
   if p and p:match("^/tmp/") then os.execute("rm -rf " .. M.q(p)) end
end

--- Writes text to path, creating its folder.
function M.write(path, text)
   local dir = path:match("^(.*)/[^/]*$")
   if dir and dir ~= "" then os.execute("mkdir -p " .. M.q(dir)) end
   local f = assert(io.open(path, "w"))
   f:write(text)
   f:close()
end

function M.read(path)
   local f = io.open(path, "r")
   if not f then return nil end
   local s = f:read("a")
   f:close()
   return s
end

--- Runs `moonhub <args>` (args: a shell-quoted string) with MOONHUB_HOME =
-- home and optional stdin text; returns stdout, stderr, exit code.
function M.run(home, args, input)
   local inp = home .. "/.stdin"
   M.write(inp, input or "")
   local cmd = string.format("MOONHUB_HOME=%s %s %s <%s >%s 2>%s", M.q(home), M.q(M.exe),
                             args, M.q(inp), M.q(home .. "/.stdout"), M.q(home .. "/.stderr"))
   local _, _, code = os.execute(cmd)
   return M.read(home .. "/.stdout"), M.read(home .. "/.stderr"), code
end

return M
