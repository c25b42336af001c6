-- run a JSONL file of OpenAI batch requests on a model, in this process, with progress
-- Layer: recipes (uses the public moonhub API only: moonhub.batch, .batch.runner, .server, .pool).
-- Usage: moonhub batch FILE.jsonl --model M [--out OUT.jsonl] [--errors ERR.jsonl]
--        moonhub batch --resume batch_N --model M    (after Ctrl-C or a crash)
local cli = require "moonhub.cli"
local mh = require "moonhub"
local json = require "dkjson"
local fs = require "moonhub.fs"
local batch = require "moonhub.batch"
local runner = require "moonhub.batch.runner"
local files = require "moonhub.batch.files"

local p = cli.parser("batch", "Run a file of OpenAI Batch API requests (one JSON object per line: custom_id, "
   .. "method POST, url /v1/chat/completions | /v1/completions | /v1/embeddings, body) on one model, in this "
   .. "process. Lines go in order with a progress line; each finished line is recorded, so after Ctrl-C or a "
   .. "crash --resume goes on where it stopped. Output and error lines have OpenAI's shapes (docs/batch.md).")
p:argument("file", "the requests, JSONL (as uploaded to POST /v1/files with purpose batch)"):args("?")
p:option("--model", "the model every line runs on (a path or a registry name; a line's own 'model' is ignored)")
p:option("--out", "where the output lines go (default FILE.output.jsonl)")
p:option("--errors", "where the failed lines go, when there are any (default FILE.errors.jsonl)")
p:option("--resume", "go on with an interrupted batch of this command: its id (batch_N)")
p:option("--ctx", "context length"):convert(math.tointeger)
p:option("--threads", "compute threads"):convert(math.tointeger)
p:flag("--json", "print the batch object (OpenAI's shape) at the end")
p:flag("-q --quiet", "no progress line")

local a, code = cli.parse(p, arg)
if not a then return code end
if not a.model then return cli.fail("batch", "give the model: --model M", 2) end
if not a.file and not a.resume then return cli.fail("batch", "give the requests file (or --resume batch_N)", 2) end
if a.file and a.resume then return cli.fail("batch", "give a FILE or --resume, not both", 2) end
for _, k in ipairs({ "ctx", "threads" }) do
   if a[k] ~= nil and a[k] < 1 then return cli.fail("batch", "--" .. k .. " must be a positive integer", 2) end
end

local reg, err = mh.models.open()
if not reg then return cli.fail("batch", err) end
local pid = fs.pid()

-- the batch: a new one from FILE, or the interrupted one --resume names
local id, base
if a.file then
   local text = fs.read(a.file)
   if not text then return cli.fail("batch", "cannot read " .. a.file) end
   local first = text:match("^%s*([^\n]+)")
   local ok, obj = pcall(json.decode, first or "")
   local endpoint = ok and type(obj) == "table" and obj.url or nil
   if not batch.ENDPOINTS[endpoint] then
      return cli.fail("batch", string.format("%s: line 1 needs \"url\": one of /v1/chat/completions, "
         .. "/v1/completions, /v1/embeddings", a.file))
   end
   local f, ferr = files.add(text, { filename = a.file:match("([^/]*)$"), purpose = "batch" })
   if not f then return cli.fail("batch", ferr) end
   local cerr
   id, cerr = batch.create(reg, { input_file_id = f.id, endpoint = endpoint, owner = "cli", model = a.model,
      pid = pid })
   if not id then return cli.fail("batch", cerr) end
   local row = reg:run(id)
   if row.status == "failed" then
      for _, e in ipairs(batch.config(row).errors or {}) do io.stderr:write(a.file, ": ", e.message, "\n") end
      return cli.fail("batch", string.format("%s is not a valid batch input (%s failed)", a.file,
         batch.public_id(id)))
   end
   base = a.file:gsub("%.jsonl?$", "")
else
   require("moonhub.jobs").reap(reg)
   local row, gerr = batch.get(reg, a.resume)
   if not row then return cli.fail("batch", gerr) end
   if batch.config(row).owner ~= "cli" then
      return cli.fail("batch", a.resume .. " belongs to a server, which resumes it itself")
   end
   local ok, terr = reg:transition(row.id, { interrupted = true, queued = true }, "running",
      "resumed by moonhub batch " .. pid, { worker_pid = pid, heartbeat_at = os.time(), cancel_requested = 0 })
   if not ok then return cli.fail("batch", "cannot resume: " .. terr) end
   id, base = row.id, batch.public_id(row.id)
end
local public = batch.public_id(id)

-- one model in this process, answering through the server's own route handlers
local name = a.model:match("([^/]+)/?$"):gsub("%.gguf$", "")
local app = mh.server.new({ model_name = name, quiet = true })
local pool = require("moonhub.pool").new({ max_loaded = 1, keep_alive = -1, ctx = a.ctx, threads = a.threads,
   parallel = 1 })
app:use_pool(pool, { default_ref = a.model })
local e, lerr = pool:acquire(a.model)
if not e then
   reg:transition(id, { running = true }, "interrupted", "the model did not load: " .. tostring(lerr))
   return cli.fail("batch", lerr)
end
pool:release(e, -1)

local progress = require("moonhub.progress").new(public, { unit = "requests", quiet = a.quiet })
local ok, res, rerr = pcall(runner.run, reg, reg:run(id), runner.executor(app), { progress = progress })
progress(nil, nil, true)
pool:close()
if not ok then
   local why = tostring(res):find("interrupted!", 1, true) and "stopped by Ctrl-C" or tostring(res)
   reg:transition(id, { running = true }, "interrupted", why)
   reg:close()
   return cli.fail("batch", string.format("%s; 'moonhub batch --resume %s --model %s' goes on from where it stopped",
      why, public, a.model))
end
if not res then return cli.fail("batch", rerr) end

local row = reg:run(id)
local obj = batch.object(reg, row)
reg:close()
local out, errs = a.out or (base .. ".output.jsonl"), a.errors or (base .. ".errors.jsonl")
local cfg = batch.config(row)
for _, t in ipairs({ { cfg.output_file_id, out }, { cfg.error_file_id, errs } }) do
   if t[1] then
      local ok_w, werr = fs.write(t[2], assert(files.content(t[1])))
      if not ok_w then return cli.fail("batch", "cannot write " .. t[2] .. ": " .. tostring(werr)) end
   end
end
local c = obj.request_counts
if a.json then
   io.write(json.encode(obj, { indent = true }), "\n")
else
   io.write(string.format("%s: %d requests, %d completed, %d failed%s%s\n", public, c.total, c.completed, c.failed,
      cfg.output_file_id and (" -> " .. out) or "", cfg.error_file_id and (", errors in " .. errs) or ""))
end
return c.failed == 0 and 0 or 1
