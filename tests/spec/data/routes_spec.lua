-- Specs for the dataset routes under /api/moonhub/datasets on a live
-- server (stories260K): upload import of CSV and JSONL bodies, list, show,
-- preview, PII, split, validate, delete, and their errors. Layer: tests
-- (starts `moonhub serve` through helpers.server, talks to it with curl).
local H = require "helpers.host"
local D = require "helpers.data"
local S = require "helpers.server"

local MODEL = "models/stories260K.gguf"
local P = "/api/moonhub/datasets"

describe("dataset routes #integration", function()
   local srv, path

   setup(function()
      path = D.path(MODEL)
      if path then srv = S.start(path, "--ctx 64 --threads 1") end
   end)
   teardown(function() if srv then srv:stop() end end)

   local function need() return D.started(srv, MODEL, pending) end

   -- POSTs the file text with a content type
   local function upload(query, text, ctype)
      local f = srv.dir .. "/upload.bin"
      H.write(f, text)
      return srv:request(P .. query, { method = "POST",
         args = "-H " .. H.q("Content-Type: " .. ctype) .. " --data-binary @" .. H.q(f) })
   end

   it("imports an uploaded CSV or JSONL body and refuses bad rows with their numbers", function()
      if not need() then return end
      local r = upload("?name=up&map=prompt%3Dq%2Ccompletion%3Da",
         'q,a\n"x, y","say ""hi""\nplease"\nmail,bob@example.com\n', "text/csv")
      assert.equal(201, r.status, r.body)
      assert.same({ "up@1", "completion", 2, false }, { r.json.ref, r.json.kind, r.json.rows, r.json.existing })
      r = upload("?name=bad", '{"text": "ok"}\n{"text": \n', "application/jsonl")
      assert.equal(400, r.status)
      assert.equal("invalid_dataset", r.json.error.code)
      assert.same({ { row = 2, msg = "bad JSON: value expected at line 1, column 10" } }, r.json.problems)
      r = upload("?name=x", "a,b\n", "text/plain")
      assert.equal(415, r.status)
      r = upload("", '{"text": "t"}\n', "application/jsonl")
      assert.same({ 400, "name" }, { r.status, r.json.error.param })
      r = srv:request(P)
      assert.equal(200, r.status)
      assert.equal(1, #r.json.datasets)                 -- nothing of "bad" was registered
      assert.equal("up", r.json.datasets[1].name)
   end)

   it("previews, reports and redacts PII, splits, validates and deletes", function()
      if not need() then return end
      local r = srv:request(P .. "/up/preview?n=1")
      assert.equal(200, r.status)
      assert.same({ "up@1", { { prompt = "x, y", completion = 'say "hi"\nplease' } } }, { r.json.dataset, r.json.rows })
      r = srv:post(P .. "/up/pii", { mode = "report" })
      assert.same({ 200, { email = 1 }, 1 }, { r.status, r.json.counts, r.json.rows_with_pii })
      r = srv:post(P .. "/up/pii", { mode = "redact" })
      assert.equal(200, r.status)
      local id1 = srv:request(P .. "/up@1").json.id
      assert.same({ "up@2", id1, "redact" }, { r.json.version.ref, r.json.version.parent_id, r.json.version.op })
      r = srv:post(P .. "/up/split", { train = 0.5, val = 0.5, test = 0, seed = 7 })
      assert.equal(200, r.status, r.body)
      assert.same({ "up@2:train", "up@2:val" }, { r.json.train.ref, r.json.val.ref })
      assert.is_nil(r.json.test)
      r = srv:post(P .. "/up/split", { train = 0.5, val = 0.1, test = 0.1 })
      assert.same({ 400, "--train, --val and --test must add up to 1, got 0.7" }, { r.status, r.json.error.message })
      -- the model is named as the registry knows it; a path is refused (no server files)
      r = srv:request(P .. "/up/validate?model=" .. H.q(path):gsub("'", "") .. "&ctx=4")
      assert.same({ 400, "model" }, { r.status, r.json.error.param })
      local _, ierr, icode = H.run(srv.dir .. "/home", "import " .. H.q(path) .. " --name st --tag t")
      assert.equal(0, icode, ierr)
      r = srv:request(P .. "/up/validate?model=st:t&ctx=4")
      assert.equal(200, r.status, r.body)
      assert.equal(2, #r.json.problems)
      assert.matches("^row is %d+ tokens, over the context of 4$", r.json.problems[1].msg)
      r = srv:request(P .. "/up")
      assert.same({ "up@2", 4 }, { r.json.ref, #r.json.versions })   -- up@2, its two splits, up@1
      r = srv:request(P .. "/nope/preview")
      assert.same({ 404, "dataset_not_found", "no dataset named 'nope' (see 'moonhub data list')" },
         { r.status, r.json.error.code, r.json.error.message })
      -- names that try to leave the datasets folder are refused, nothing read or removed
      for _, bad in ipairs({ "..%2F..%2Fetc", "up%2F..%2F..", "%2Fetc%2Fpasswd", ".hidden" }) do
         r = srv:request(P .. "/" .. bad .. "/preview")
         assert.equal(400, r.status, bad .. ": " .. r.body)
         assert.matches("letters, digits", r.json.error.message)
         assert.equal(400, srv:request(P .. "/" .. bad, { method = "DELETE" }).status)
      end
      r = upload("?name=..%2Fescape", '{"text": "t"}\n', "application/jsonl")
      assert.same({ 400, "name" }, { r.status, r.json.error.param })
      r = srv:request(P .. "/up", { method = "DELETE" })
      assert.same({ 200, 4 }, { r.status, #r.json.versions })
      assert.same({}, srv:request(P).json.datasets)
   end)
end)
