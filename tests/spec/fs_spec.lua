-- Specs for moonhub.fs: stat identity through links, atomic whole-file
-- writes, reads, the cleanup of a dead writer's temp files, argument checks.
-- Layer: tests (unit; temp folders only).
local H = require "helpers.host"
local fs = require "moonhub.fs"

describe("moonhub.fs #unit", function()
   local dir
   before_each(function() dir = H.tmpdir() end)
   after_each(function() H.rmdir(dir) end)

   it("stat names one file through a symlink and a hard link; same_file compares inodes", function()
      local a = dir .. "/a.bin"
      assert.is_true(fs.write(a, "abc"))
      assert(fs.symlink("a.bin", dir .. "/sym"))
      assert(os.execute("ln " .. H.q(a) .. " " .. H.q(dir .. "/hard")))
      local st, sl = fs.stat(a), fs.stat(dir .. "/sym")
      assert.equal("file", st.type)
      assert.equal(3, st.size)
      assert.equal(2, st.nlink)
      assert.is_false(st.link)
      assert.is_true(sl.link)
      assert.same({ st.dev, st.ino }, { sl.dev, sl.ino })
      assert.is_true(fs.same_file(a, dir .. "/sym"))
      assert.is_true(fs.same_file(a, dir .. "/hard"))
      assert.is_true(fs.same_file(a, dir .. "/../" .. dir:match("[^/]+$") .. "/a.bin"))
      assert(fs.write(dir .. "/b.bin", "abc"))
      assert.is_false(fs.same_file(a, dir .. "/b.bin"))      -- equal bytes, another file
      assert.is_false(fs.same_file(a, dir .. "/missing"))
      local none, msg = fs.stat(dir .. "/missing")
      assert.is_nil(none)
      assert.matches("missing: No such file", msg)
      assert.equal(fs.realpath(a), fs.realpath(dir .. "/sym"))
      assert.equal("a.bin", fs.readlink(dir .. "/sym"))
   end)

   it("write replaces the whole file or nothing, and leaves no temp file", function()
      local p = dir .. "/f.json"
      assert.is_true(fs.write(p, "old"))
      assert.is_true(fs.write(p, "new\0with a NUL"))
      assert.equal("new\0with a NUL", fs.read(p))
      assert.is_true(fs.write(p, ""))
      assert.equal("", fs.read(p))
      -- the target is a folder: the rename fails, the folder and its file stay
      assert(fs.mkdirs(dir .. "/d/e"))
      assert(fs.write(dir .. "/d/e/x", "kept"))
      local ok, err = fs.write(dir .. "/d", "y")
      assert.is_nil(ok)
      assert.matches("cannot rename", err)
      assert.equal("kept", fs.read(dir .. "/d/e/x"))
      ok, err = fs.write(dir .. "/no/such/dir/f", "y")
      assert.is_nil(ok)
      assert.matches("cannot create .*no/such/dir/f%.tmp%.%d+%.%d+", err)
      local names = fs.list(dir)
      table.sort(names)
      assert.same({ "d", "f.json" }, names)
      local none, rerr = fs.read(dir .. "/missing")
      assert.is_nil(none)
      assert.matches("missing", rerr)
   end)

   it("clean_temps removes a dead writer's temp files only", function()
      -- a pid that surely is gone: a child that has exited and been reaped
      local p = io.popen("sh -c 'echo $$'")
      local dead = math.tointeger(tonumber(p:read("l")))
      p:close()
      assert.is_false(fs.pid_alive(dead))
      assert.is_true(fs.pid_alive(fs.pid()))
      local files = {
         ["m.safetensors.tmp." .. dead .. ".3"] = true,     -- removed
         ["n.gguf.tmp." .. dead .. ".0"] = true,            -- removed
         ["m.safetensors.tmp." .. fs.pid() .. ".1"] = false, -- ours: live
         ["m.safetensors.tmp.x.1"] = false,                  -- not a temp name
         ["m.safetensors"] = false,
      }
      for name in pairs(files) do H.write(dir .. "/" .. name, "x") end
      assert.same({ "m.safetensors.tmp." .. dead .. ".3" }, fs.clean_temps(dir, "m.safetensors"))
      assert.same({ "n.gguf.tmp." .. dead .. ".0" }, fs.clean_temps(dir))
      for name, gone in pairs(files) do assert.equal(not gone, fs.exists(dir .. "/" .. name), name) end
      -- the tree walk reaches folders, not symlinked ones
      H.write(dir .. "/a/b/w.tmp." .. dead .. ".1", "x")
      local outside = H.tmpdir()
      H.write(outside .. "/v.tmp." .. dead .. ".1", "x")
      assert(fs.symlink(outside, dir .. "/link"))
      assert.same({ "a/b/w.tmp." .. dead .. ".1" }, fs.clean_temps_tree(dir))
      assert.is_true(fs.exists(outside .. "/v.tmp." .. dead .. ".1"))
      H.rmdir(outside)
      assert.same({}, fs.clean_temps(dir .. "/missing"))
   end)

   it("mkdirs, dirname, free_bytes, isatty and argument checks", function()
      assert.is_true(fs.mkdirs(dir .. "/x/y/z"))
      assert.is_true(fs.mkdirs(dir .. "/x/y/z"))               -- already there
      assert(fs.write(dir .. "/file", "x"))
      local ok, err = fs.mkdirs(dir .. "/file/sub")
      assert.is_nil(ok)
      assert.matches("file", err)
      assert.equal("a/b", fs.dirname("a/b/c"))
      assert.equal(".", fs.dirname("c"))
      assert.equal("/", fs.dirname("/c"))
      assert.is_true(fs.free_bytes(dir) > 0)
      assert.is_boolean(fs.isatty(1))
      assert.has_error(function() fs.write(nil, "x") end, "fs.write: path must be a non-empty string, got nil")
      assert.has_error(function() fs.write(dir .. "/f", 5) end, "fs.write: data must be a string, got a number")
      assert.has_error(function() fs.read("") end, "fs.read: path must be a non-empty string, got an empty string")
      assert.has_error(function() fs.isatty(7) end)
      -- the HTTP binding is the HTTP binding only: the file calls live here
      local fetch = require "moonhub.core.fetch"
      for _, name in ipairs{ "stat", "mkdirs", "symlink", "readlink", "realpath", "free_bytes", "isatty" } do
         assert.is_nil(fetch[name], name)
         assert.is_function(fs[name], name)
      end
   end)

   it("mem_available and peak_rss read /proc (one home for the schedulers' and benchmarks' checks)", function()
      local avail = fs.mem_available()
      assert.is_true(math.type(avail) == "integer" and avail > 0 and avail % 1024 == 0)
      local big = string.rep("x", 64 << 20)             -- touched: the peak is at least this
      assert.is_true(fs.peak_rss() >= #big)
      assert.equal(fs.mem_available, require("moonhub.models").mem_available)
   end)
end)
