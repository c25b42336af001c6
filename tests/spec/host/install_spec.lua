-- Spec for `make install` / `make uninstall` into a temporary DESTDIR: the
-- installed binary must find its Lua files and recipes without the source
-- tree. Layer: tests. Tagged #slow (runs make and copies files).
local H = require "helpers.host"
local data = require "helpers.data"
local host = require "moonhub.core.host"
local q = H.q

local function sh(cmd)
   local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
   local out = f:read("a")
   f:close()
   local body, rc = out:match("^(.-)rc=(%d+)\n$")
   return body, tonumber(rc)
end

describe("make install #slow #integration", function()
   local dest

   before_each(function() dest = H.tmpdir() end)
   after_each(function() H.rmdir(dest) end)

   it("installs a binary that runs from anywhere, and uninstalls it", function()
      local makefile = H.read(host.root .. "/Makefile")
      if not makefile then
         return data.skip("no Makefile next to " .. host.root .. " (running an installed moonhub)", pending)
      end
      -- Install the binary running these specs as it is: -o keeps make from
      -- rebuilding it (or relinking the ./moonhub symlink) mid-test.
      local build = host.exe:match("^(.*)/[^/]+$")
      -- A parent `make test` exports its jobserver flags: start clean.
      local make = string.format("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C %s "
                                 .. "BUILD=%s -o moonhub -o %s DESTDIR=%s PREFIX=/usr",
                                 q(host.root), q(build), q(host.exe), q(dest))
      local out, rc = sh(make .. " install")
      assert.equal(0, rc, out)
      local bin = dest .. "/usr/bin/moonhub"
      assert.truthy(H.read(dest .. "/usr/share/moonhub/lua/moonhub/init.lua"))
      assert.truthy(H.read(dest .. "/usr/share/moonhub/recipes/help.lua"))

      local run = string.format("cd / && env -u MOONHUB_LUA_ROOT MOONHUB_HOME=%s %s ",
                                q(dest .. "/home"), q(bin))
      local mh = require "moonhub"
      out, rc = sh(run .. "-e 'print(require\"moonhub\".version)'")
      assert.equal(0, rc, out)
      assert.equal(mh.version .. "\n", out)
      out, rc = sh(run .. "-e 'print(require(\"moonhub.cli\").root())'")
      assert.equal(0, rc, out)
      assert.equal(dest .. "/usr/share/moonhub\n", out)
      out, rc = sh(run .. "help")
      assert.equal(0, rc, out)
      assert.truthy(out:find("\n  version ", 1, true), out)

      out, rc = sh(make .. " uninstall")
      assert.equal(0, rc, out)
      assert.is_nil(H.read(bin))
      assert.is_nil(H.read(dest .. "/usr/share/moonhub/lua/moonhub/init.lua"))
   end)
end)
