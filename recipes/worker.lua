-- run queued training jobs, one at a time by default, oldest first
-- Layer: recipes (uses the public moonhub API only: moonhub.jobs).
-- Usage: moonhub worker [--drain] [--max-active N] [--poll SECONDS] [--lease SECONDS]
-- Several workers (processes or hosts) may share one database: each claims
-- a job atomically and holds it under a lease it renews at every step.
local cli = require "moonhub.cli"
local mh = require "moonhub"
local jobs = require "moonhub.jobs"

local p = cli.parser("worker", "Run queued training jobs (see docs/jobs.md). Jobs wait in order; "
   .. "--max-active bounds how many run at once across all workers, on one database (SQLite or "
   .. "PostgreSQL, MOONHUB_DB). A worker killed mid-job leaves it 'interrupted' once its pid is gone "
   .. "or its lease expires; another worker resumes it from its last checkpoint.")
p:flag("--drain", "exit once no job is queued, running or waiting to resume")
p:option("--max-active", "jobs running at once, all workers together (default 1: memory)", "1")
   :convert(cli.count(1))
p:option("--lease", "seconds a running job stays this worker's without a heartbeat (one per step); "
   .. "after that another worker resumes it from its last checkpoint", tostring(jobs.LEASE_S)):convert(tonumber)
p:option("--poll", "seconds between looks at an empty queue", "0.5"):convert(tonumber)
p:flag("-q --quiet", "no line per job")
p:option("--parent", "exit when this process is gone (what 'serve --worker' passes)"):convert(cli.count(1))

local a, code = cli.parse(p, arg)
if not a then return code end
if not a.poll or a.poll <= 0 then return cli.fail("worker", "--poll must be a positive number of seconds", 2) end
if not a.lease or a.lease < 1 or a.lease ~= math.floor(a.lease) then
   return cli.fail("worker", "--lease must be a whole number of seconds, at least 1", 2)
end

local reg, err = mh.models.open()
if not reg then return cli.fail("worker", err) end
local function say(fmt, ...)
   if not a.quiet then io.stdout:write(string.format(fmt, ...), "\n"); io.stdout:flush() end
end
say("moonhub worker %d: waiting for jobs", require("moonhub.fs").pid())
local ran = jobs.work(reg, { drain = a.drain, max_active = a.max_active, poll_s = a.poll,
   lease_s = math.tointeger(a.lease),
   stop = function() return a.parent ~= nil and not require("moonhub.fs").pid_alive(a.parent) end,
   log = function(id, msg) say("job %d: %s", id, msg) end })
say("moonhub worker: ran %d job(s)", #ran)
reg:close()
return 0
