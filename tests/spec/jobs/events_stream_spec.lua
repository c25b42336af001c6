-- Specs for GET /api/moonhub/jobs/{id}/events called in-process on a
-- registry alone: a job that ends between the stream's reads of its events
-- and of its status still streams its final transition (the web UI waits
-- for it; CI once saw a cancel never shown). No model needed. Layer: tests.
local H = require "helpers.host"
local jobs = require "moonhub.jobs"
local registry = require "moonhub.registry"
local models = require "moonhub.models"
local http = require "moonhub.http"
local routes = require "moonhub.server.jobs_routes"
local sqlite_it = require("helpers.pg").sqlite_it(it)   -- SQLite-file specs: not under test-pg

local function events_route()
   for _, r in ipairs(routes.ROUTES) do
      if r[2] == "/api/moonhub/jobs/{id}/events" then return r[3] end
   end
end

describe("the jobs events stream #unit", function()
   local home, reg, saved_open, saved_sleep
   before_each(function()
      home = H.tmpdir()
      reg = assert(registry.open(home))
      saved_open, saved_sleep = models.open, http.sleep
   end)
   after_each(function()
      models.open, http.sleep = saved_open, saved_sleep
      if reg then reg:close() end
      H.rmdir(home)
   end)

   sqlite_it("ends with the last transition even when the job ends between two reads", function()
      local id = reg:add_run({ kind = "train", model = "m", dataset = "d", total_steps = 3 })
      assert.equal(id, jobs.claim(reg, {}).id)
      -- the stream's registry: the worker cancels the job right after the
      -- stream has read the events (the race, made certain)
      models.open = function()
         local r = assert(registry.open(home))
         local read = r.run_events
         local fired = false
         r.run_events = function(self, rid)
            local evs = read(self, rid)
            if not fired then
               fired = true
               assert.is_true(reg:transition(id, { running = true }, "cancelled", "cancelled by the user"))
            end
            return evs
         end
         return r
      end
      http.sleep = function() end
      local out = {}
      local req = { closed = false }
      function req.start() end
      function req.finish() end
      function req.write(_, s) out[#out + 1] = s return true end
      events_route()(nil, req, tostring(id))
      local seen = {}
      for line in table.concat(out):gmatch("data: ([^\n]+)") do
         local st = line:match('"status":"(%a+)"')
         if st then seen[#seen + 1] = st end
      end
      assert.equal("queued running cancelled", table.concat(seen, " "))
   end)
end)
