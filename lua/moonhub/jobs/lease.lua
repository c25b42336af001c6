-- moonhub.jobs.lease: who holds a running job — the worker's owner id
-- (host:pid:random), renewing its lease with each heartbeat, judging a
-- holder lost (its pid gone on this host, or its lease expired anywhere),
-- and what each database dialect adds to an atomic claim.
-- Layer: lua/moonhub (uses moonhub.fs and a registry's db handle).
local fs = require "moonhub.fs"

local M = {}

-- A worker renews its lease at every step (and between the phases of
-- loading); a holder silent past its lease is lost. Long enough for the
-- slowest step of a big model; `moonhub worker --lease S` changes it.
M.LEASE_S = 60
-- automatic resumes of one job after lost workers; past this the job stays
-- interrupted for `jobs retry` (a job that kills its workers, e.g. by
-- running out of memory, must not go round the cluster for ever)
M.MAX_RESUMES = 3

local host_name
-- host() -> this machine's name (kernel hostname), cached
function M.host()
   if not host_name then
      host_name = (fs.read("/proc/sys/kernel/hostname") or ""):match("^%s*(%S+)") or "localhost"
   end
   return host_name
end

-- owner_id([pid]) -> "host:pid:random": unique per worker process even
-- where pids repeat across hosts or after a reboot
function M.owner_id(pid)
   local f = io.open("/dev/urandom", "rb")
   local bytes = f and f:read(4) or tostring(os.time())
   if f then f:close() end
   return string.format("%s:%d:%s", M.host(), pid or fs.pid(),
      (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
end

-- parse(owner) -> host, pid | nil
function M.parse(owner)
   if type(owner) ~= "string" then return nil end
   local host, pid = owner:match("^(.+):(%d+):%x+$")
   return host, math.tointeger(tonumber(pid))
end

-- lost(row, now) -> why the worker holding a running job is gone, or nil
-- while it lives. A pid is only checked on its own host; from elsewhere
-- the lease decides. Rows claimed before leases existed carry a pid only.
function M.lost(row, now, legacy_s)
   local host, pid = M.parse(row.lease_owner)
   if not host then
      pid = math.tointeger(row.worker_pid)
      if not pid or not fs.pid_alive(pid) then return string.format("worker %s is gone", tostring(row.worker_pid)) end
      if row.heartbeat_at and now - row.heartbeat_at > legacy_s then
         return string.format("no heartbeat from worker %d for %d s", pid, now - row.heartbeat_at)
      end
      return nil
   end
   if host == M.host() and not fs.pid_alive(pid) then return string.format("worker %d is gone", pid) end
   if row.lease_expires_at and now > row.lease_expires_at then
      return string.format("no heartbeat from worker %d for %d s (the lease of %s expired)", pid,
         now - (row.heartbeat_at or row.lease_expires_at), row.lease_owner)
   end
   return nil
end

-- renew(db, id, owner, lease_s) -> true while `owner` still holds run id
-- (its lease pushed lease_s on), false once another worker has it: the
-- caller stops without touching the run (fencing a worker that stalled
-- past its lease and came back)
function M.renew(d, id, owner, lease_s)
   local now = os.time()
   return d:exec([[UPDATE runs SET lease_expires_at = ?, heartbeat_at = ?
      WHERE id = ? AND lease_owner = ? AND status = 'running']], now + lease_s, now, id, owner) > 0
end

-- holds(db, id, owner) -> whether owner holds running job id
function M.holds(d, id, owner)
   return d:first("SELECT 1 AS x FROM runs WHERE id = ? AND lease_owner = ? AND status = 'running'", id, owner) ~= nil
end

-- What a claim adds per dialect. SQLite: BEGIN IMMEDIATE holds the
-- database's one write lock, so the count of running jobs (--max-active,
-- all workers together) and the pick are exact. PostgreSQL: every moonhub
-- transaction takes the hub's advisory write lock first (moonhub.db.pgconn,
-- the counterpart of BEGIN IMMEDIATE), which orders claims the same way;
-- the pick adds FOR UPDATE SKIP LOCKED, so a claim never waits on (or
-- takes) a row another session holds locked, and the reap re-reads its row
-- FOR UPDATE.
local DIALECT = {
   sqlite = { pick = "", row = "" },
   postgres = { pick = " FOR UPDATE SKIP LOCKED", row = " FOR UPDATE" },
}

-- claim_sql(reg) -> {pick = suffix, row = suffix} for reg's dialect
function M.claim_sql(reg)
   local name = reg.dialect and reg.dialect.name or reg.db.dialect
   if type(name) == "string" and name:match("^postgres") then return DIALECT.postgres end
   return DIALECT.sqlite
end

return M
