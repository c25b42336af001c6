-- Specs for the cluster's nginx config and the `cluster` verb's edges:
-- examples/cluster/nginx.conf is what `moonhub cluster nginx-conf 2` prints
-- (so the example cannot drift), nginx itself accepts the config (as root
-- too), and down/status/up with nothing running or bad counts answer in one
-- line. Layer: tests (moonhub.cluster, the CLI, nginx -t).
local H = require "helpers.host"
local data = require "helpers.data"
local cluster = require "moonhub.cluster"

describe("moonhub cluster config and verb #unit", function()
   it("examples/cluster/nginx.conf is the generated config for 2 servers", function()
      local want = cluster.nginx_conf({ servers = { "127.0.0.1:8081", "127.0.0.1:8082" }, listen = "127.0.0.1:8080" })
      assert.equal(want, H.read("examples/cluster/nginx.conf"))
      local home = H.tmpdir()
      local out, _, code = H.run(home, "cluster nginx-conf 2")
      H.rmdir(home)
      assert.equal(0, code)
      assert.equal(want, out)
      -- the affinity: the session header first, else the body's first bytes
      assert.matches("hash $moonhub_affinity consistent;", want, 1, true)
      assert.matches('"~(?s)^(?<head>.{1,' .. cluster.HEAD_BYTES .. '})" $head;', want, 1, true)
      assert.matches("default $http_x_session_id;", want, 1, true)
      assert.is_nil(want:find("\nuser ", 1, true), "no user directive unless root")
      assert.matches("\nuser nobody nogroup;", cluster.nginx_conf({ servers = { "127.0.0.1:1" },
         listen = "127.0.0.1:2", root = true }), 1, true)
   end)

   it("nginx accepts the config, with and without the user directive", function()
      if not data.need_cmd("nginx", pending) then return end
      for _, root in ipairs({ false, true }) do
         local dir = H.tmpdir()
         H.write(dir .. "/nginx.conf", cluster.nginx_conf({ servers = { "127.0.0.1:8081", "127.0.0.1:8082" },
            listen = "127.0.0.1:8080", root = root }))
         local p = io.popen(string.format("nginx -t -p %s/ -e %s/error.log -c %s/nginx.conf 2>&1", dir, dir, dir))
         local out = p:read("a")
         local ok = p:close()
         H.rmdir(dir)
         assert.is_true(ok, out)
      end
   end)

   it("down and status with nothing running; a bad count is a usage error", function()
      local home = H.tmpdir()
      local out, _, code = H.run(home, "cluster down")
      assert.equal(0, code)
      assert.matches("nothing runs for", out)
      out, _, code = H.run(home, "cluster status")
      assert.equal(1, code)
      assert.matches("no cluster runs for", out)
      local _, err
      _, err, code = H.run(home, "cluster up 0")
      assert.equal(2, code)
      assert.equal(1, select(2, err:gsub("\n", "")), "one line: " .. err)
      H.rmdir(home)
   end)
end)
