-- OpenAI's Files and Batch API (moonhub.batch, .batch.runner, .server.batch_routes):
-- a batch of 100 requests on a shared model survives its server being
-- killed mid-batch (resumed by the next server: none lost, none twice);
-- input validation, the file routes, cancel, and the CLI verb.
-- Layer: tests. Every wait is bounded; nothing is asserted on time.
local H = require "helpers.host"
local S = require "helpers.server"
local data = require "helpers.data"
local json = require "dkjson"
local q = H.q

local MODEL = "models/stories260K.gguf"

local function lines(path_or_text, is_text)
   local text = is_text and path_or_text or H.read(path_or_text) or ""
   local out = {}
   for l in text:gmatch("[^\n]+") do out[#out + 1] = assert(json.decode(l, 1, json.null), l) end
   return out
end

-- n chat requests; line `bad` asks for max_tokens "x" (a 400); long (the
-- model's path): 200 tokens each with end-of-generation banned, so a batch
-- surely still runs while a spec looks at it, however slow the host
local function input(n, bad, long)
   local out, bias = {}, nil
   if long then
      bias = {}
      for _, id in ipairs(require("moonhub").tokenizer.load(long):eog_ids()) do bias[tostring(id)] = -100 end
   end
   for i = 1, n do
      out[i] = json.encode({ custom_id = "req-" .. i, method = "POST", url = "/v1/chat/completions",
         body = { model = "stories260K", max_tokens = i == bad and "x" or long and 200 or 3, temperature = 0,
            logit_bias = bias, messages = { { role = "user", content = "Once upon a time " .. i } } } })
   end
   return table.concat(out, "\n") .. "\n"
end

-- one curl: {status, json, body}
local function call(s, method, path, body, extra)
   s.n = (s.n or 0) + 1
   local f = string.format("%s/call%d", s.home, s.n)
   local parts = { "curl -s -m 30 -X", method, "-o", q(f .. ".body"), "-w '%{http_code}'" }
   if body then
      H.write(f .. ".req", json.encode(body))
      parts[#parts + 1] = "-H 'Content-Type: application/json' --data-binary @" .. q(f .. ".req")
   end
   if extra then parts[#parts + 1] = extra end
   parts[#parts + 1] = q(s.base .. path)
   local p = io.popen(table.concat(parts, " ") .. " 2>/dev/null")
   local code = tonumber(p:read("a"))
   p:close()
   local text = H.read(f .. ".body") or ""
   os.remove(f .. ".body")
   os.remove(f .. ".req")
   return { status = code, body = text, json = json.decode(text, 1, json.null) }
end

local function upload(s, path, purpose)
   return call(s, "POST", "/v1/files", nil, "-F purpose=" .. (purpose or "batch") .. " -F " .. q("file=@" .. path))
end

describe("the Batch API on a shared model #integration", function()
   local home, srv
   before_each(function() home = H.tmpdir() end)
   after_each(function()
      if srv then S.stop_in(srv) srv = nil end
      H.rmdir(home)
   end)

   it("finishes a batch of 100 with 0 lost and none twice after the server is killed mid-batch", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      -- the first server kills itself (SIGKILL) right after writing line 37, before counting it
      srv = S.start_in(home, "--model " .. q(model) .. " -q", "MOONHUB_BATCH_FAULT=kill:37")
      H.write(home .. "/in.jsonl", input(100, 50))
      local f = upload(srv, home .. "/in.jsonl")
      assert.equal(200, f.status, f.body)
      assert.equal("batch", f.json.purpose)
      assert.equal("file", f.json.object)
      local b = call(srv, "POST", "/v1/batches", { input_file_id = f.json.id, endpoint = "/v1/chat/completions",
         completion_window = "24h", metadata = { job = "spec" } })
      assert.equal(200, b.status, b.body)
      local id = b.json.id
      assert.equal(100, b.json.request_counts.total)
      assert.truthy(S.eventually(function() return not S.alive(srv.pid) end, 120), "the fault killed the server")
      -- 37 lines on disk, 36 counted: the file is what a resume trusts
      local active = home .. "/runs/active/" .. id:match("%d+")
      assert.equal(37, #lines(active .. "/output.jsonl") + #lines(active .. "/errors.jsonl"))
      -- the next server resumes it by itself
      srv = S.start_in(home, "--model " .. q(model) .. " -q")
      local done = S.eventually(function()
         local r = call(srv, "GET", "/v1/batches/" .. id)
         return r.json and r.json.status == "completed" and r.json
      end, 180)
      assert.truthy(done, "the batch completed after the restart")
      assert.same({ total = 100, completed = 99, failed = 1 }, done.request_counts)
      assert.same({ job = "spec" }, done.metadata)
      local out = call(srv, "GET", "/v1/files/" .. done.output_file_id .. "/content")
      assert.equal(200, out.status)
      local errs = call(srv, "GET", "/v1/files/" .. done.error_file_id .. "/content")
      local seen, n = {}, 0
      for _, l in ipairs(lines(out.body, true)) do
         assert.is_nil(seen[l.custom_id], "twice: " .. l.custom_id)
         seen[l.custom_id], n = true, n + 1
         assert.equal(200, l.response.status_code)
         assert.equal("chat.completion", l.response.body.object)
         assert.equal(json.null, l.error)
         assert.truthy(l.id:match("^batch_req_"))
      end
      local el = lines(errs.body, true)
      assert.equal(1, #el)
      assert.equal("req-50", el[1].custom_id)
      assert.equal(400, el[1].response.status_code)
      assert.equal("max_tokens", el[1].response.body.error.param)
      seen[el[1].custom_id], n = true, n + 1
      assert.equal(100, n)
      for i = 1, 100 do assert.truthy(seen["req-" .. i], "lost: req-" .. i) end
      -- the batch went through interrupted (the crash) and running again
      local reg = assert(require("moonhub.registry").open(home))
      local states = {}
      for _, e in ipairs(reg:run_events(math.tointeger(tonumber(id:match("%d+"))))) do
         states[#states + 1] = e.status
      end
      reg:close()
      assert.same({ "queued", "running", "interrupted", "running", "succeeded" }, states)
      -- listed, newest first; the output file is listed as batch_output
      local list = call(srv, "GET", "/v1/batches?limit=5")
      assert.equal(id, list.json.data[1].id)
      local fl = call(srv, "GET", "/v1/files?purpose=batch_output")
      assert.equal(2, #fl.json.data)
   end)

   it("checks inputs, files and ids; cancels a batch", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      srv = S.start_in(home, "--model " .. q(model) .. " -q")
      -- a bad input makes a failed batch with the errors by line, as OpenAI's validation does
      H.write(home .. "/bad.jsonl", '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n'
         .. '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n'
         .. 'not json\n{"custom_id":"c","method":"POST","url":"/v1/embeddings","body":{}}\n')
      local f = upload(srv, home .. "/bad.jsonl")
      local b = call(srv, "POST", "/v1/batches", { input_file_id = f.json.id, endpoint = "/v1/chat/completions",
         completion_window = "24h" })
      assert.equal(200, b.status, b.body)
      assert.equal("failed", b.json.status)
      local codes = {}
      for _, e in ipairs(b.json.errors.data) do codes[#codes + 1] = e.code .. "@" .. e.line end
      assert.same({ "duplicate_custom_id@2", "invalid_json_line@3", "mismatched_endpoint@4" }, codes)
      -- refusals
      assert.equal(400, call(srv, "POST", "/v1/batches", { input_file_id = f.json.id, endpoint = "/v1/images",
         completion_window = "24h" }).status)
      assert.equal(400, call(srv, "POST", "/v1/batches", { input_file_id = f.json.id,
         endpoint = "/v1/chat/completions", completion_window = "1h" }).status)
      assert.equal(404, call(srv, "POST", "/v1/batches", { input_file_id = "file-000000000000000000000000",
         endpoint = "/v1/chat/completions" }).status)
      local other = upload(srv, home .. "/bad.jsonl", "fine-tune")
      assert.equal(400, call(srv, "POST", "/v1/batches", { input_file_id = other.json.id,
         endpoint = "/v1/chat/completions" }).status)
      assert.equal(400, upload(srv, home .. "/bad.jsonl", "nonsense").status)
      assert.equal(400, call(srv, "POST", "/v1/files", nil, "-F purpose=batch").status)        -- no file
      for _, bad in ipairs({ "file-..%2F..%2Fmoonhub.db", "..%2Fmoonhub.db", "FILE-000000000000000000000000" }) do
         assert.equal(404, call(srv, "GET", "/v1/files/" .. bad .. "/content").status, bad)
      end
      assert.equal(404, call(srv, "GET", "/v1/batches/batch_999").status)
      assert.equal(404, call(srv, "GET", "/v1/batches/..").status)
      -- delete
      local del = call(srv, "DELETE", "/v1/files/" .. other.json.id)
      assert.equal(200, del.status)
      assert.is_true(del.json.deleted)
      assert.equal(404, call(srv, "GET", "/v1/files/" .. other.json.id).status)
      -- cancel: a batch behind a long one waits queued and is cancelled at once
      -- (100 lines of 200 tokens: 100 lines of 3 could all be done before the
      -- second batch's cancel on a loaded host, which then found it running)
      H.write(home .. "/in.jsonl", input(100, nil, model))
      local good = upload(srv, home .. "/in.jsonl")
      local b1 = call(srv, "POST", "/v1/batches", { input_file_id = good.json.id, endpoint = "/v1/chat/completions" })
      local b2 = call(srv, "POST", "/v1/batches", { input_file_id = good.json.id, endpoint = "/v1/chat/completions" })
      -- interactive traffic is answered while the batch has lines left (it takes one slot at a time)
      local chat = call(srv, "POST", "/v1/chat/completions", { model = "stories260K", max_tokens = 3,
         messages = { { role = "user", content = "Hello" } } })
      assert.equal(200, chat.status, chat.body)
      local during = call(srv, "GET", "/v1/batches/" .. b1.json.id)
      assert.is_true(during.json.request_counts.completed < 100, "the chat waited for the whole batch")
      local c2 = call(srv, "POST", "/v1/batches/" .. b2.json.id .. "/cancel")
      assert.equal(200, c2.status, c2.body)
      assert.equal("cancelled", c2.json.status)
      assert.equal(0, c2.json.request_counts.completed)
      -- the running one stops after its current request, with the lines it finished
      local c1 = call(srv, "POST", "/v1/batches/" .. b1.json.id .. "/cancel")
      assert.equal(200, c1.status, c1.body)
      local fin = S.eventually(function()
         local r = call(srv, "GET", "/v1/batches/" .. b1.json.id)
         return r.json.status ~= "cancelling" and r.json.status ~= "in_progress" and r.json
      end, 60)
      assert.truthy(fin)
      if fin.status == "cancelled" then
         assert.is_true(fin.request_counts.completed < 100)
         if fin.request_counts.completed > 0 then
            local out = call(srv, "GET", "/v1/files/" .. fin.output_file_id .. "/content")
            assert.equal(fin.request_counts.completed, #lines(out.body, true))
         end
      else
         assert.equal("completed", fin.status)      -- it finished before the cancel arrived
      end
      -- a finished batch cannot be cancelled again... but a cancelled one answers as it is
      assert.equal("cancelled", call(srv, "POST", "/v1/batches/" .. b2.json.id .. "/cancel").json.status)
      assert.equal(409, call(srv, "POST", "/v1/batches/" .. b.json.id .. "/cancel").status)   -- failed already
   end)
end)

describe("moonhub batch (the CLI) #integration", function()
   it("runs a file on a model and writes OpenAI-shaped output and error lines", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      local home = H.tmpdir()
      H.write(home .. "/in.jsonl", input(12, 5))
      local cmd = "batch " .. q(home .. "/in.jsonl") .. " --model " .. q(model) .. " -q"
      local out_text, err_text, code = H.run(home, cmd)
      assert.equal(1, code, err_text)                  -- one line failed
      assert.truthy(out_text:find("12 requests, 11 completed, 1 failed", 1, true), out_text)
      local out, errs = lines(home .. "/in.output.jsonl"), lines(home .. "/in.errors.jsonl")
      assert.equal(11, #out)
      assert.equal(1, #errs)
      assert.equal("req-5", errs[1].custom_id)
      assert.equal("stories260K", out[1].response.body.model)
      -- a bad input is one line per problem, exit 1
      H.write(home .. "/bad.jsonl", '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n'
         .. '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n')
      err_text, code = select(2, H.run(home, "batch " .. q(home .. "/bad.jsonl") .. " --model " .. q(model) .. " -q"))
      assert.equal(1, code)
      assert.truthy(err_text:find("line 2 repeats custom_id", 1, true), err_text)
      code = select(3, H.run(home, "batch " .. q(home .. "/in.jsonl") .. " -q"))
      assert.equal(2, code)
      -- killed after line 4 (SIGKILL), --resume finishes it: every line once
      H.write(home .. "/r.jsonl", input(9))
      os.execute(string.format("MOONHUB_HOME=%s MOONHUB_BATCH_FAULT=kill:4 %s batch %s --model %s -q >/dev/null 2>&1",
         q(home), q(H.exe), q(home .. "/r.jsonl"), q(model)))
      assert.is_nil(H.read(home .. "/r.output.jsonl"))
      local id = assert(require("moonhub.registry").open(home)):runs({ kind = "batch" })[1].id
      local text
      text, err_text, code = H.run(home, "batch --resume batch_" .. id .. " --model " .. q(model) .. " -q --out "
         .. q(home .. "/r.out.jsonl"))
      assert.equal(0, code, err_text)
      assert.truthy(text:find("9 requests, 9 completed, 0 failed", 1, true), text)
      local ids = {}
      for i, l in ipairs(lines(home .. "/r.out.jsonl")) do ids[i] = l.custom_id end
      assert.same({ "req-1", "req-2", "req-3", "req-4", "req-5", "req-6", "req-7", "req-8", "req-9" }, ids)
      err_text, code = select(2, H.run(home, "batch --resume batch_" .. id .. " --model " .. q(model) .. " -q"))
      assert.equal(1, code)                             -- done already: nothing to resume
      assert.truthy(err_text:find("cannot resume", 1, true), err_text)
      H.rmdir(home)
   end)
end)
