-- a try-out cluster on this machine: PostgreSQL, N servers, M workers, nginx in front
-- Layer: recipes (uses the public moonhub API only: moonhub.cluster, moonhub.fs).
-- Usage: moonhub cluster up N [--workers M] [--port 8080] [--model M] | down | status | nginx-conf N
local cli = require "moonhub.cli"
local mh = require "moonhub"
local cluster = require "moonhub.cluster"
local json = require "dkjson"

local p = cli.parser("cluster", "Start a cluster on loopback for a try-out (see docs/scale-out.md): "
   .. "PostgreSQL (its data under MOONHUB_HOME/cluster/pg), N 'moonhub serve' and M 'moonhub worker' "
   .. "processes sharing it, and nginx in front, which keeps each X-Session-Id (or each long shared "
   .. "prompt start) on one server. 'up' runs until Ctrl-C or 'moonhub cluster down'.")
p:command_target("command")
local c_up = p:command("up", "start PostgreSQL, N servers, M workers and nginx; print the URL; "
   .. "stop them all on Ctrl-C")
c_up:argument("n", "servers"):convert(cli.count(1))
c_up:option("--workers", "training workers", "1"):convert(cli.count(0))
c_up:option("--port", "nginx's port on 127.0.0.1 (0: a free one)", "8080"):convert(cli.count(0))
c_up:option("--model", "the servers' default model (a path, or a name in the cluster's registry)")
c_up:option("--lease", "the workers' job lease in seconds (see 'moonhub worker --help')"):convert(cli.count(1))
c_up:option("--pg-data", "PostgreSQL's data folder (default MOONHUB_HOME/cluster/pg; kept across up and down)")
c_up:option("--serve-args", "more options for each 'moonhub serve', one shell string")
p:command("down", "stop the cluster this MOONHUB_HOME runs (nginx, servers, workers, PostgreSQL)")
local c_status = p:command("status", "the cluster's processes, URL and database")
c_status:flag("--json", "print JSON")
local c_conf = p:command("nginx-conf", "print the nginx config for N servers on consecutive ports")
c_conf:argument("n", "servers"):convert(cli.count(1))
c_conf:option("--port", "nginx's port", "8080"):convert(cli.count(1))
c_conf:option("--base-port", "the first server's port", "8081"):convert(cli.count(1))

local a, code = cli.parse(p, arg)
if not a then return code end
local home = mh.home()

-- a free loopback port for nginx when --port 0
local function free_port()
   local srv = mh.http.server({ host = "127.0.0.1", port = 0 })
   local port = srv.port
   srv:close()
   return port
end

if a.command == "nginx-conf" then
   local servers = {}
   for i = 1, a.n do servers[i] = "127.0.0.1:" .. (a.base_port + i - 1) end
   io.stdout:write(cluster.nginx_conf({ servers = servers, listen = "127.0.0.1:" .. a.port }))
   return 0
end

if a.command == "status" then
   local st = cluster.read_state(home)
   if not st then
      io.stdout:write("no cluster runs for ", home, "\n")
      return 1
   end
   if a.json then
      io.stdout:write(json.encode(st, { indent = true }), "\n")
      return 0
   end
   local function row(what, pid, extra)
      io.stdout:write(string.format("%-10s %-8s %-8s %s\n", what, tostring(pid),
         cluster.alive(pid) and "running" or "gone", extra or ""))
   end
   io.stdout:write("url ", tostring(st.url), "\ndb  ", tostring(st.db), "\n")
   row("up", st.pid)
   if st.nginx then row("nginx", st.nginx.pid, st.nginx.prefix) end
   for i, s in ipairs(st.servers or {}) do row("server " .. i, s.pid, "127.0.0.1:" .. tostring(s.port)) end
   for i, w in ipairs(st.workers or {}) do row("worker " .. i, w.pid, w.log) end
   return 0
end

if a.command == "down" then
   local st = cluster.read_state(home)
   if not st then
      io.stdout:write("moonhub cluster: nothing runs for ", home, "\n")
      return 0
   end
   cluster.down(st)
   io.stdout:write("moonhub cluster: stopped\n")
   return 0
end

-- up
if a.port == 0 then a.port = free_port() end
local st, err = cluster.up({ home = home, servers = a.n, workers = a.workers, port = a.port, model = a.model,
   lease_s = a.lease, pg_data = a.pg_data,
   serve_args = a.serve_args })
if not st then return cli.fail("cluster", err) end
io.stdout:write(string.format("moonhub cluster: %d server(s), %d worker(s), PostgreSQL; ready at %s/v1\n",
   #st.servers, #st.workers, st.url))
io.stdout:write("  export MOONHUB_DB='", st.db, "'   # the cluster's registry for other verbs\n")
io.stdout:write("  logs in ", st.logs, "; Ctrl-C or 'moonhub cluster down' stops it\n")
io.stdout:flush()

-- wait: until Ctrl-C (then stop everything) or `cluster down` (which stops
-- everything and removes the state file); a child that ends is reported once
local told = {}
local ok, why = pcall(function()
   while true do
      mh.http.sleep(0.5)
      local now = cluster.read_state(home)
      if not now or now.pid ~= st.pid or now.stopping then return "down" end
      local kids = { { "nginx", st.nginx.pid } }
      for i, s in ipairs(st.servers) do kids[#kids + 1] = { "server " .. i, s.pid } end
      for i, w in ipairs(st.workers) do kids[#kids + 1] = { "worker " .. i, w.pid } end
      for _, k in ipairs(kids) do
         if not told[k[2]] and not cluster.alive(k[2]) then
            told[k[2]] = true
            io.stderr:write(string.format("moonhub cluster: %s (pid %d) has ended; see %s\n", k[1], k[2], st.logs))
         end
      end
   end
end)
if not ok and tostring(why):find("interrupted!", 1, true) then
   io.stdout:write("\nmoonhub cluster: stopping\n")
   cluster.down(st)
   return 0
end
if not ok then
   cluster.down(st)
   error(why, 0)
end
return 0
