-- moonhub.batch.runner without a model: an executor stands in for the
-- route handlers, so resuming (a line cut short by a crash is redone, the
-- finished ones are not), cancelling mid-run, claiming (a server never
-- takes a `moonhub batch` run) and the files' shapes are checked exactly.
-- Layer: tests (moonhub.batch, .batch.runner, .batch.files in a temp home).
local H = require "helpers.host"
local json = require "dkjson"
local batch = require "moonhub.batch"
local runner = require "moonhub.batch.runner"
local files = require "moonhub.batch.files"
local registry = require "moonhub.registry"

local function input(n)
   local out = {}
   for i = 1, n do
      out[i] = json.encode({ custom_id = "c" .. i, method = "POST", url = "/v1/embeddings",
         body = { input = "x" .. i } })
   end
   return table.concat(out, "\n") .. "\n"
end

local function lines(path)
   local out = {}
   for l in (H.read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = assert(json.decode(l, 1, json.null)) end
   return out
end

describe("batch runner #unit", function()
   local core_host = require "moonhub.core.host"
   local saved, home, reg
   before_each(function()
      saved = core_host.home
      home = H.tmpdir()
      core_host.home = home
      reg = assert(registry.open(home))
   end)
   after_each(function()
      reg:close()
      core_host.home = saved
      H.rmdir(home)
   end)

   local function new_batch(n, owner)
      local f = assert(files.add(input(n), { filename = "in.jsonl" }))
      return assert(batch.create(reg, { input_file_id = f.id, endpoint = "/v1/embeddings", owner = owner }))
   end

   it("redoes a line cut short by a crash and none of the finished ones", function()
      local id = new_batch(5)
      local row = assert(runner.claim(reg, require("moonhub.fs").pid(), "server"))
      assert.equal(id, row.id)
      -- a crash left two whole lines and half of a third
      local dir = batch.dir(id)
      require("moonhub.fs").mkdirs(dir)
      H.write(dir .. "/output.jsonl", '{"id":"batch_req_x","custom_id":"c1","response":{"status_code":200,'
         .. '"request_id":"r","body":{}},"error":null}\n{"id":"batch_req_y","custom_id":"c2","response":'
         .. '{"status_code":200,"request_id":"r","body":{}},"error":null}\n{"id":"batch_req_z","custom_id":"c3","re')
      local ran = {}
      local status = runner.run(reg, row, function(url, body)
         assert.equal("/v1/embeddings", url)
         ran[#ran + 1] = body.input
         if body.input == "x4" then return 400, '{"error":{"message":"bad","type":"invalid_request_error",'
            .. '"param":"input","code":null}}' end
         return 200, '{"object":"list","data":[]}'
      end)
      assert.equal("succeeded", status)
      assert.same({ "x3", "x4", "x5" }, ran)
      local obj = batch.object(reg, reg:run(id))
      assert.equal("completed", obj.status)
      assert.same({ total = 5, completed = 4, failed = 1 }, obj.request_counts)
      local out = lines(batch.dir(id):gsub("/active/", "/archive/") .. "/output.jsonl")
      local ids = {}
      for i, l in ipairs(out) do ids[i] = l.custom_id end
      assert.same({ "c1", "c2", "c3", "c5" }, ids)
      assert.same({ object = "list", data = {} }, out[3].response.body)
      assert.equal(json.null, out[3].error)
      local err = json.decode(assert(files.content(obj.error_file_id)), 1, json.null)
      assert.equal("c4", err.custom_id)
      assert.equal(400, err.response.status_code)
      assert.equal("input", err.response.body.error.param)
      assert.equal("batch_output", files.get(obj.output_file_id).purpose)
   end)

   it("stops after the request in flight when cancelled, keeping the lines it finished", function()
      local id = new_batch(6)
      local row = assert(runner.claim(reg, require("moonhub.fs").pid(), "server"))
      local n = 0
      local status, why = runner.run(reg, row, function()
         n = n + 1
         if n == 2 then assert(batch.cancel(reg, batch.public_id(id))) end
         return 200, "{}"
      end)
      assert.equal("cancelled", status, why)
      assert.equal(2, n)
      local obj = batch.object(reg, reg:run(id))
      assert.equal("cancelled", obj.status)
      assert.same({ total = 6, completed = 2, failed = 0 }, obj.request_counts)
      assert.is_number(obj.cancelling_at)
      assert.equal(2, select(2, assert(files.content(obj.output_file_id)):gsub("\n", "")))
      assert.equal(json.null, obj.error_file_id)
   end)

   it("cancels a waiting batch at once, and an interrupted one with the lines it finished", function()
      local id = new_batch(3)
      local row = assert(batch.cancel(reg, batch.public_id(id)))
      assert.equal("cancelled", row.status)
      assert.is_nil(runner.claim(reg, require("moonhub.fs").pid(), "server"))
      -- a batch whose server died after one line
      local id2 = new_batch(3)
      assert(runner.claim(reg, 999999999, "server"))       -- no such process: reaped as interrupted
      require("moonhub.fs").mkdirs(batch.dir(id2))
      H.write(batch.dir(id2) .. "/output.jsonl", '{"custom_id":"c1","response":{"status_code":200,"body":{}}}\n')
      row = assert(batch.cancel(reg, batch.public_id(id2)))
      local obj = batch.object(reg, row)
      assert.equal("cancelled", obj.status)
      assert.equal('{"custom_id":"c1","response":{"status_code":200,"body":{}}}\n', files.content(obj.output_file_id))
      local again, msg, status = batch.cancel(reg, batch.public_id(new_batch(1)) .. "0")
      assert.is_nil(again)
      assert.equal(404, status, msg)
   end)

   it("lets a server take only server batches; a CLI batch is its own", function()
      local cli_id = new_batch(2, "cli")
      assert.is_nil(runner.claim(reg, require("moonhub.fs").pid(), "server"))
      local id = new_batch(2)
      assert.equal(id, runner.claim(reg, require("moonhub.fs").pid(), "server").id)
      assert.equal(cli_id, runner.claim(reg, 4243, "cli").id)
      -- listed newest first, with paging
      local rows, more = batch.list(reg, { limit = 1 })
      assert.equal(id, rows[1].id)
      assert.is_true(more)
      rows, more = batch.list(reg, { after = batch.public_id(id), limit = 5 })
      assert.equal(cli_id, rows[1].id)
      assert.is_false(more)
   end)

   it("checks file ids before making paths of them; parses multipart bodies", function()
      for _, bad in ipairs({ "../moonhub.db", "file-../../x", "file-0123456789abcdef0123456",
            "FILE-0123456789abcdef01234567", "file-0123456789abcdef01234567/", "file-0123456789ABCDEF01234567" }) do
         assert.is_false(files.valid_id(bad), bad)
         assert.is_nil(files.get(bad))
      end
      local f = assert(files.add("abc", { filename = "../../etc/x.jsonl" }))
      assert.is_true(files.valid_id(f.id))
      assert.equal("x.jsonl", f.filename)
      local body = "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XyZ\r\n"
         .. "Content-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: "
         .. "application/octet-stream\r\n\r\nline1\r\nline2\n\r\n--XyZ--\r\n"
      local parts = assert(files.multipart(body, "multipart/form-data; boundary=XyZ"))
      assert.equal("batch", parts.purpose.value)
      assert.equal("line1\r\nline2\n", parts.file.value)
      assert.equal("in.jsonl", parts.file.filename)
      assert.is_nil(files.multipart(body, "application/json"))
      assert.is_nil(files.multipart("--XyZ\r\nno end", "multipart/form-data; boundary=XyZ"))
   end)
end)
