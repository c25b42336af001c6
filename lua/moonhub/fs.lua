-- moonhub.fs: the file-system helpers every module shares — stat (with
-- inode identity), mkdirs, realpath, free bytes, isatty, directory listing,
-- whole-file reads, the memory /proc says is free, atomic whole-file writes (temp + fsync + rename),
-- copies (temp + rename) and the cleanup of temp files a crashed writer left. Layer: lua/moonhub (wraps
-- moonhub.core.fs). Failures return nil, msg; misuse raises.
local core = require "moonhub.core.fs"

local M = {}

M.stat = core.stat              -- stat(path) -> {type, size, mtime, link, dev, ino, nlink} | nil, msg
M.mkdirs = core.mkdirs          -- mkdirs(path) -> true | nil, msg (mkdir -p)
M.symlink = core.symlink        -- symlink(target, link) -> true | nil, msg
M.readlink = core.readlink      -- readlink(path) -> target | nil, msg
M.realpath = core.realpath      -- realpath(path) -> absolute path, links resolved | nil, msg
M.free_bytes = core.free_bytes  -- free_bytes(path) -> bytes free to us there | nil, msg
M.isatty = core.isatty          -- isatty(fd 0..2) -> bool
M.list = core.list              -- list(dir) -> names (unsorted) | nil, msg
M.pid = core.pid                -- pid() -> this process's id
M.pid_alive = core.pid_alive    -- pid_alive(pid) -> bool

local function check_path(fname, path)
   if type(path) ~= "string" or path == "" then
      error("fs." .. fname .. ": path must be a non-empty string, got "
         .. (path == "" and "an empty string" or type(path)), 3)
   end
end

function M.exists(path)
   check_path("exists", path)
   return core.stat(path) ~= nil
end

-- dirname("a/b/c") -> "a/b"; dirname("c") -> "."; dirname("/c") -> "/"
function M.dirname(path)
   check_path("dirname", path)
   local d = path:match("^(.*)/[^/]*$")
   if d == nil then return "." end
   return d == "" and "/" or d
end

-- read(path) -> the whole content (bytes as they are) | nil, msg
function M.read(path)
   check_path("read", path)
   local f, err = io.open(path, "rb")
   if not f then return nil, err end
   local s, rerr = f:read("a")
   f:close()
   if not s then return nil, path .. ": " .. tostring(rerr) end
   return s
end

-- mem_available() -> bytes the kernel can give us without swapping
-- (MemAvailable in /proc/meminfo) | nil where there is no /proc (the
-- callers then skip their memory checks).
local function proc_kb(path, key)
   local kb = (M.read(path) or ""):match(key .. ":%s*(%d+) kB")
   return kb and tonumber(kb) * 1024 or nil
end

function M.mem_available() return proc_kb("/proc/meminfo", "MemAvailable") end

-- peak_rss() -> this process's peak resident bytes (VmHWM) | nil without /proc
function M.peak_rss() return proc_kb("/proc/self/status", "VmHWM") end

-- write(path, data) -> true | nil, msg. Readers (and a crash) see the old
-- content or the new one, never a part: data goes to "<path>.tmp.<pid>.<n>",
-- is synced, then renamed over path.
function M.write(path, data)
   check_path("write", path)
   if type(data) ~= "string" then
      error("fs.write: data must be a string, got a " .. type(data), 2)
   end
   return core.write_atomic(path, data)
end

-- copy(src, dst) -> true | nil, msg. Through "dst.tmp.<pid>.<n>" and a
-- rename: a copy killed half-way leaves a temp file the next registry open
-- removes (clean_temps), never a half file under dst's name.
local copies = 0
function M.copy(src, dst)
   check_path("copy", src)
   check_path("copy", dst)
   local i, msg = io.open(src, "rb")
   if not i then return nil, msg end
   copies = copies + 1
   local tmp = string.format("%s.tmp.%d.%d", dst, core.pid(), copies)
   local o, omsg = io.open(tmp, "wb")
   if not o then i:close(); return nil, omsg end
   while true do
      local chunk = i:read(1 << 20)
      if not chunk then break end
      local ok, werr = o:write(chunk)
      if not ok then i:close(); o:close(); os.remove(tmp); return nil, werr end
   end
   i:close()
   local ok, cerr = o:close()
   if not ok then os.remove(tmp); return nil, cerr end
   return os.rename(tmp, dst)
end

-- same_file(a, b) -> true when both paths name one file (the same inode:
-- through a symlink, a hard link or another spelling), false otherwise,
-- also when either does not exist.
function M.same_file(a, b)
   check_path("same_file", a)
   check_path("same_file", b)
   local sa, sb = core.stat(a), core.stat(b)
   return sa ~= nil and sb ~= nil and sa.dev == sb.dev and sa.ino == sb.ino
end

-- temp_pid(name) -> the writer's pid of a "<x>.tmp.<pid>.<n>" name, or nil
M.temp_pid = core.temp_pid

-- clean_temps(dir [, base]) -> names removed. Removes the
-- "<x>.tmp.<pid>.<n>" files in dir whose writer is gone (a crash or kill -9
-- mid-write); a live writer's temp files stay. With base, only the temp
-- files of dir/base. A missing dir cleans nothing.
function M.clean_temps(dir, base)
   check_path("clean_temps", dir)
   local removed = {}
   for _, name in ipairs(core.list(dir) or {}) do
      local pid = core.temp_pid(name)
      if pid and pid ~= core.pid() and not core.pid_alive(pid)
         and (base == nil or name:sub(1, #base + 5) == base .. ".tmp.") then
         local path = dir .. "/" .. name
         local st = core.stat(path)
         if st and st.type == "file" and os.remove(path) then removed[#removed + 1] = name end
      end
   end
   table.sort(removed)
   return removed
end

-- clean_temps_tree(dir [, depth = 4]) -> paths removed (relative to dir):
-- clean_temps in dir and its folders, depth levels down; symlinked folders
-- are not followed (they point outside what we own).
function M.clean_temps_tree(dir, depth)
   check_path("clean_temps_tree", dir)
   depth = depth or 4
   local removed = M.clean_temps(dir)
   if depth <= 0 then return removed end
   for _, name in ipairs(core.list(dir) or {}) do
      local st = core.stat(dir .. "/" .. name)
      if st and st.type == "dir" and not st.link then
         for _, r in ipairs(M.clean_temps_tree(dir .. "/" .. name, depth - 1)) do
            removed[#removed + 1] = name .. "/" .. r
         end
      end
   end
   return removed
end

return M
