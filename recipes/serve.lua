-- serve a model over an OpenAI-compatible HTTP API (chat, completions, embeddings)
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub serve --model PATH [--host 127.0.0.1] [--port 8080] [--parallel 4] ...
local argparse = require "argparse"
local mh = require "moonhub"

local p = argparse("moonhub serve", "Serve a model over an OpenAI-compatible API (see docs/server.md).")
p:argument("model_arg", "model (a path or a registry name), instead of --model"):args("?")
p:option("-m --model", "model: a GGUF file, a Hugging Face folder or a registry name")
p:option("--host", "address to bind (loopback unless told otherwise)", "127.0.0.1")
p:option("--port", "port (0 picks a free one)", "8080"):convert(math.tointeger)
p:option("--ctx", "context length per sequence", "4096"):convert(math.tointeger)
p:option("--parallel", "sequences decoded together (continuous batching)", "4"):convert(math.tointeger)
p:option("--api-key", "require 'Authorization: Bearer KEY' on /v1 routes")
p:option("--cache-mb", "prefix cache budget in MiB (finished sequences kept for reuse)", "512"):convert(tonumber)
p:option("--max-body-mb", "largest request body in MiB", "8"):convert(tonumber)
p:option("--rate", "requests per second per client (0 = no limit)", "0"):convert(tonumber)
p:option("--template", "chat template name or .jinja file (default: the model's)")
p:option("--kv-type", "KV cache type: f16, q8_0 or f32", "f16")
p:option("--threads", "compute threads"):convert(math.tointeger)
p:option("--name", "model id reported by /v1/models (default: the file name)")
p:option("--max-queue", "requests that may wait for a slot before 503", "64"):convert(math.tointeger)

local ok, a = p:pparse(arg)
if not ok then
   io.stderr:write(a, "\n", p:get_usage(), "\n")
   return 2
end
local model_path = a.model or a.model_arg
if not model_path then
   io.stderr:write("moonhub serve: give a model: moonhub serve --model PATH\n")
   return 2
end
for _, k in ipairs({ "port", "ctx", "parallel" }) do
   if not a[k] or a[k] < 0 or (k ~= "port" and a[k] < 1) then
      io.stderr:write("moonhub serve: --", k, " must be a positive integer\n")
      return 2
   end
end

local name = a.name or model_path:match("([^/]+)/?$"):gsub("%.gguf$", "")
local app = mh.server.new({ model_name = name, api_key = a.api_key, rate = a.rate, template = a.template,
   max_queue = a.max_queue })
local srv, err = mh.http.server({ host = a.host, port = a.port, max_body = math.floor(a.max_body_mb * 2^20) })
if not srv then
   io.stderr:write("moonhub serve: ", err, "\n")
   return 1
end
srv:handle(app:handler())

-- Load after the socket is up, so /health answers 503 until the model is ready.
local failed
mh.http.timer(0, function()
   local model, lerr = mh.load(model_path, { ctx = a.ctx, threads = a.threads, kv_type = a.kv_type })
   if not model then
      failed = lerr
      mh.http.stop(0)
      return
   end
   local sched, serr = mh.sched.new(model, {
      parallel = a.parallel, ctx = a.ctx, kv_type = a.kv_type,
      prefix_cache = a.cache_mb > 0,
   })
   if not sched then
      failed = serr
      mh.http.stop(0)
      return
   end
   app:attach(model, sched)
   io.stdout:write(string.format("moonhub serve: %s ready at http://%s:%d/v1 (%d parallel, ctx %d)\n",
      name, a.host, srv.port, a.parallel, a.ctx))
   io.stdout:flush()
end, { once = true })

mh.http.run()
if failed then
   io.stderr:write("moonhub serve: ", tostring(failed), "\n")
   return 1
end
return 0
