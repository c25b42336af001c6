-- Spec for `make install` / `make uninstall` into a temporary DESTDIR: the
-- installed binary must find its Lua files and recipes without the source
-- tree; the docs land in share/doc/moonhub and the man pages, made from the
-- CLI's help text, in share/man/man1. Layer: tests. Tagged #slow (runs make and copies files).
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

      -- docs and man pages: the docs as they are in the tree, the pages
      -- made from the help text this binary prints
      local doc, man = dest .. "/usr/share/doc/moonhub/", dest .. "/usr/share/man/man1/"
      assert.equal(H.read(host.root .. "/README.md"), H.read(doc .. "README.md"))
      assert.equal(H.read(host.root .. "/docs/server.md"), H.read(doc .. "server.md"))
      local main = assert(H.read(man .. "moonhub.1"), "no moonhub.1")
      assert.truthy(main:find("\n.TH MOONHUB 1 ", 1, true), main)
      local help = sh(run .. "help")
      local pages = {}
      for verb in help:match("\nverbs:\n(.-\n)\n"):gmatch("  (%S+)[^\n]*\n") do
         -- every verb is listed in moonhub(1) and points at its group's page,
         -- which holds the verb's --help text word for word (roff-escaped)
         local group = main:match("\n.B " .. verb .. "\n[^\n]*%(see \\fB(moonhub%-%a+)\\fR%(1%)%)")
         assert.truthy(group, "moonhub.1 lists no " .. verb)
         pages[group] = pages[group] or assert(H.read(man .. group .. ".1"), "no " .. group .. ".1")
         local usage = sh(run .. verb .. " --help"):match("^[^\n]*")
         assert.truthy(pages[group]:find("\n" .. usage:gsub("\\", "\\e") .. "\n", 1, true),
            group .. ".1 lacks the usage of " .. verb .. ": " .. usage)
      end
      assert.truthy(pages["moonhub-run"] and pages["moonhub-run"]:find("--ctx <ctx>", 1, true))

      out, rc = sh(make .. " uninstall")
      assert.equal(0, rc, out)
      assert.is_nil(H.read(bin))
      assert.is_nil(H.read(dest .. "/usr/share/moonhub/lua/moonhub/init.lua"))
      assert.is_nil(H.read(doc .. "README.md"))
      out = sh("find " .. q(dest) .. " -type f")
      assert.equal("", out, "uninstall left files behind")
   end)
end)
