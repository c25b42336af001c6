-- serve a model over an OpenAI-compatible HTTP API (chat, completions, embeddings)
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub serve [--model PATH] [--host 127.0.0.1] [--port 8080] [--parallel 4] ...
-- Requests may name any registered model (loaded on first use, unloaded
-- after --keep-alive idle); --model preloads the default one.
local cli = require "moonhub.cli"
local flags = require "moonhub.cli_flags"
local mh = require "moonhub"
local config = require "moonhub.config"

local p = cli.parser("serve", "Serve a model over an OpenAI-compatible API (see docs/server.md).")
p:argument("model", "model (a path, a registry name or hf.co/ORG/REPO:QUANT), instead of --model")
   :args("?"):target("model_arg")
-- the shared options, under llama.cpp's names too (moonhub.cli_flags);
-- unset options come from moonhub.config (env > config file > built-in)
flags.add(p, { "model", "host", "port", "ctx", "parallel", "api_key", "threads", "n_gpu_layers" }, {
   ctx = "context length per sequence (default: the model's trained context, capped by memory)",
   parallel = " (default 4)",
   host = "address to bind (default 127.0.0.1, loopback; MOONHUB_HOST may give host:port, as OLLAMA_HOST)",
   api_key = "require 'Authorization: Bearer KEY' on /v1 routes (default: the key in "
      .. "the file config api_key_file names)" })
p:option("--cache-mb", "prefix cache budget in MiB (finished sequences kept for reuse; "
   .. "default 1/16 of the free memory, at most 512; 0 = off)"):convert(tonumber)
p:option("--cache-dir", "also keep the prefix cache on disk in DIR, so a restarted server answers "
   .. "long shared prefixes warm (docs/kv-state.md)")
p:option("--cache-dir-mb", "disk budget of --cache-dir in MiB (default 1024; the oldest files go)"):convert(tonumber)
p:option("--slot-save-path", "folder for POST /slots/ID?action=save|restore state files (llama-server's)")
p:option("--max-body-mb", "largest request body in MiB", "8"):convert(tonumber)
p:option("--max-connections", "open connections at most (default: from the fd limit)"):convert(math.tointeger)
p:option("--header-timeout", "seconds a client has to send a whole request", "30"):convert(math.tointeger)
p:option("--rate", "requests per second per client (0 = no limit)", "0"):convert(tonumber)
p:option("--template", "chat template name or .jinja file (default: the model's)")
p:option("--kv-type", "KV cache type: f16 (default), q8_0 or f32"):choices({ "f16", "q8_0", "f32" })
p:option("--name", "model id reported by /v1/models (default: the file name)")
p:option("--max-queue", "requests that may wait for a slot before 503", "64"):convert(math.tointeger)
p:option("--max-loaded", "models loaded at once; the least recently used idle one is unloaded",
   "3"):convert(math.tointeger)
p:option("--keep-alive", "unload a model idle this long (30s, 5m, 1h; 0 = after each answer; "
   .. "negative = never); default 5m, and never for --model")
p:option("--mem-budget-mb", "memory for loaded models (weights + KV cache) in MiB"):convert(tonumber)
p:flag("--history", "store every chat conversation (see 'moonhub history')")
p:flag("--worker", "also run queued training jobs, in a child 'moonhub worker' process (docs/jobs.md)")
p:flag("-q --quiet", "no request log on stderr")
p:option("--allowed-hosts", "comma-separated Host names to answer besides localhost and IP addresses "
   .. "(.example.com for a domain, * for any)")
p:option("--cors", "comma-separated origins whose pages may call the API (* for any)")
p:option("--alias", "NAME=MODEL: answer requests for NAME with MODEL (repeatable)"):count("*")
p:option("--default-model", "model that answers requests naming an unknown model")
p:option("--lora", "LoRA adapter for --model: ADAPTER[:SCALE] (a GGUF/safetensors file or a registered "
   .. "adapter) applies to every request; NAME=ADAPTER[:SCALE] serves it to requests that ask for it "
   .. "(\"lora\": [{\"name\": NAME}], docs/lora.md). Repeatable"):count("*")
-- speculative decoding (docs/speculative.md)
p:option("--draft", "speculative decoding for --model: a draft model sharing its tokenizer "
   .. "(path or registry name), or 'ngram' for prompt lookup (every model)")
p:option("--draft-max", "tokens drafted per step with --draft (1..32, default 8)"):convert(math.tointeger)
p:option("--draft-p-min", "a draft model stops drafting at a token it gives less probability "
   .. "(0..1, default 0)"):convert(tonumber)

local a, code = cli.parse(p, arg)
if not a then return code end
a.parallel = a.parallel or 4
flags.ignored("serve", a)
local model_path = a.model or a.model_arg
if #a.lora > 0 and not model_path then return cli.fail("serve", "--lora needs --model (the base it applies to)", 2) end
local ctx_source
local port_flag = a.port
for _, k in ipairs({ "host", "port", "kv_type", "threads", "cache_mb", "keep_alive" }) do
   a[k] = config.pick(k, a[k])
end
-- MOONHUB_HOST (or --host) may carry a scheme and a port, as OLLAMA_HOST
-- does, since the client verbs read the same variable: --port still wins
a.host = a.host:gsub("^https?://", ""):gsub("/+$", "")
local bind, bport = a.host:match("^([^:]+):(%d+)$")
if not bind then bind, bport = a.host:match("^%[(.+)%]:(%d+)$") end
if bind then a.host, a.port = bind, port_flag or math.tointeger(tonumber(bport)) end
a.ctx, ctx_source = config.pick("ctx", a.ctx)
if not a.api_key and config.default("api_key_file") then
   local f = config.default("api_key_file")
   local text = require("moonhub.fs").read(f)
   a.api_key = text and text:match("^%s*(%S+)")
   if not a.api_key then
      return cli.fail("serve", "api_key_file " .. f .. ": cannot read a key from it (one line, the key)", 2)
   end
end
local keep_alive
if a.keep_alive then
   local kerr
   keep_alive, kerr = mh.server.keep_alive(a.keep_alive)
   if not keep_alive then
      return cli.fail("serve", "--keep-alive: " .. kerr:gsub("^keep_alive:? ?", ""), 2)
   end
end
-- integer options, checked here so a bad one is a usage error, not a
-- failure deep in the loader: {option, least, most}; --threads may be unset
for _, r in ipairs({ { "port", 0, 65535 }, { "ctx", 1 }, { "parallel", 1 }, { "max_loaded", 1 }, { "threads", 1 } }) do
   local v, flag = a[r[1]], "--" .. r[1]:gsub("_", "-")
   if v == nil and r[1] ~= "threads" and r[1] ~= "ctx" or v ~= nil and v < r[2] then
      return cli.fail("serve", flag .. (r[2] == 0 and " must be an integer >= 0" or " must be a positive integer"), 2)
   elseif v ~= nil and r[3] and v > r[3] then
      return cli.fail("serve", flag .. " must be at most " .. r[3], 2)
   end
end

-- a Hub reference (hf.co/ORG/REPO:QUANT) not pulled yet is pulled first, as `run` does
if model_path and mh.models.is_hub_ref(model_path) and not mh.models.resolve(model_path) then
   io.stderr:write("moonhub serve: pulling ", model_path, "\n")
   local row, perr = mh.models.pull(model_path, { log = function(msg) io.stderr:write(msg, "\n") end,
      progress = function(label) return require("moonhub.progress").new(label) end })
   if not row then return cli.fail("serve", perr) end
end

local function list(v)
   local out = {}
   for x in (v or ""):gmatch("[^,%s]+") do out[#out + 1] = x end
   return out
end
local aliases = {}
for _, spec in ipairs(a.alias) do
   local alias, target = mh.server.parse_alias(spec)
   if not alias then return cli.fail("serve", target, 2) end
   aliases[alias] = target
end

local name = a.name or (model_path and model_path:match("([^/]+)/?$"):gsub("%.gguf$", "")) or "moonhub"
local max_body = math.floor(a.max_body_mb * 2^20)
local app = mh.server.new({ model_name = name, api_key = a.api_key, rate = a.rate, template = a.template,
   max_queue = a.max_queue, history = a.history, quiet = a.quiet, max_body = max_body,
   allowed_hosts = list(a.allowed_hosts), cors = list(a.cors), aliases = aliases,
   default_model = a.default_model, slot_save_path = a.slot_save_path })
for _, k in ipairs({ "max_connections", "header_timeout" }) do
   if a[k] ~= nil and a[k] < 1 then
      return cli.fail("serve", "--" .. k:gsub("_", "-") .. " must be a positive integer", 2)
   end
end
local srv, err = cli.try(mh.http.server, { host = a.host, port = a.port, max_body = max_body,
   max_connections = a.max_connections, header_timeout = a.header_timeout })
if not srv then
   if tostring(err):find("in use", 1, true) then      -- EADDRINUSE: say how to pick another
      err = err .. " — another server holds the port: pick another with --port N (or --port 0 for a free one)"
   end
   return cli.fail("serve", err)
end
app:listen(srv)
-- training never runs on the event loop: a child process takes the queue
local worker_pid
if a.worker then
   local werr
   worker_pid, werr = require("moonhub.jobs").spawn_worker()
   if not worker_pid then return cli.fail("serve", werr) end
end

-- Each model loads at --ctx (or env/config) or, when none is set, at its
-- trained context capped by memory; the choice and its KV memory are printed.
local mem_budget = a.mem_budget_mb and a.mem_budget_mb * 2^20 or nil
if (a.draft_max or a.draft_p_min) and not a.draft then
   return cli.fail("serve", "--draft-max and --draft-p-min need --draft MODEL (or ngram)", 2)
end
if a.draft and a.draft ~= "ngram" and not model_path then
   return cli.fail("serve", "--draft MODEL drafts for --model: name the model too", 2)
end
local function load(_, path, key)
   local m, lerr = mh.load(path, { ctx = a.ctx or config.least_ctx(path), threads = a.threads, kv_type = a.kv_type })
   if not m then return nil, lerr end
   -- --lora ADAPTER: on every request; --lora NAME=ADAPTER: per request, by name
   local adapters, whole = require("moonhub.adapters"), {}
   for _, spec in ipairs(key == "default" and a.lora or {}) do
      local lname, lspec = adapters.parse_named(spec)
      if lname then
         local ok, rerr = m:add_lora(lname, lspec)
         if not ok then m:close(); return nil, "--lora " .. spec .. ": " .. tostring(rerr) end
      else
         whole[#whole + 1] = spec
      end
   end
   local lora_ok, lora_err = adapters.apply(m, whole)
   if not lora_ok then m:close(); return nil, lora_err end
   -- --draft: a draft model for the --model one, ngram lookup for all
   if a.draft and (a.draft == "ngram" or key == "default") then
      local ok, derr = m:set_draft(a.draft, a.draft_max, a.draft_p_min)
      if not ok then
         m:close()
         return nil, derr
      end
   end
   local line, warn
   m.ctx, line, warn = config.context(m, { ctx = a.ctx, source = ctx_source, parallel = a.parallel,
      mem = mem_budget })
   io.stdout:write("moonhub serve: ", line, "\n")
   io.stdout:flush()
   if warn then io.stderr:write("moonhub serve: ", warn, "\n") end
   return m
end

-- KV state on disk (docs/kv-state.md): checked here, where the flags arrive
local cache_dir_bytes
if a.cache_dir_mb and not a.cache_dir then return cli.fail("serve", "--cache-dir-mb needs --cache-dir DIR", 2) end
if a.cache_dir then
   if a.cache_mb == 0 then return cli.fail("serve", "--cache-dir needs the prefix cache (--cache-mb above 0)", 2) end
   if a.cache_dir_mb and a.cache_dir_mb <= 0 then return cli.fail("serve", "--cache-dir-mb must be positive", 2) end
   cache_dir_bytes = math.floor((a.cache_dir_mb or 1024) * 2^20)
end
for _, k in ipairs({ "cache_dir", "slot_save_path" }) do
   local ok, derr = true, nil
   if a[k] then ok, derr = require("moonhub.fs").mkdirs(a[k]) end
   if not ok then
      return cli.fail("serve", "--" .. k:gsub("_", "-") .. ": cannot create " .. a[k] .. ": " .. tostring(derr), 2)
   end
end

-- Every model goes through the pool; its state file is what `moonhub ps` reads.
local pool = require("moonhub.pool").new({
   max_loaded = a.max_loaded, keep_alive = keep_alive, ctx = a.ctx, parallel = a.parallel,
   kv_type = a.kv_type, threads = a.threads,
   mem_budget = mem_budget, load = load,
   sched = { prefix_cache = (a.cache_mb or 1) > 0,
      cache_bytes = a.cache_mb and math.floor(math.max(a.cache_mb, 0) * 2^20) or mh.sched.default_cache_bytes(),
      cache_dir = a.cache_dir, cache_dir_bytes = cache_dir_bytes },
   on_change = function() app:write_state() end,
   on_unload = function(e) app:forget(e) end,
})
app:use_pool(pool, { default_ref = model_path })

-- The web UI's address: a wildcard bind is reached through loopback here,
-- an IPv6 literal needs brackets.
local function ui_line()
   local h = a.host
   if h == "0.0.0.0" or h == "::" or h == "" then h = "127.0.0.1" end
   if h:find(":", 1, true) then h = "[" .. h .. "]" end
   io.stdout:write(string.format("moonhub serve: web UI at http://%s:%d/\n", h, srv.port))
end

-- Load after the socket is up, so /health answers 503 until the model is ready.
local failed
mh.http.timer(0, function()
   if not model_path then
      app:ready()
      io.stdout:write(string.format("moonhub serve: ready at http://%s:%d/v1 (registry models load on first use)\n",
         a.host, srv.port))
      ui_line()
      io.stdout:flush()
      return
   end
   local ok, e, lerr = pcall(pool.acquire, pool, model_path)
   if not ok then                              -- a value the loader refused: reported below, once
      e, lerr = nil, cli.user_message(e) or error(e, 0)
   end
   if not e then
      failed = lerr
      mh.http.stop(0)
      return
   end
   pool:release(e, keep_alive or -1)
   app:ready(e)
   io.stdout:write(string.format("moonhub serve: %s ready at http://%s:%d/v1 (%d parallel, ctx %d)\n",
      name, a.host, srv.port, a.parallel, e.ctx))
   ui_line()
   io.stdout:flush()
end, { once = true })

mh.http.run()
if worker_pid then require("moonhub.jobs").stop_worker(worker_pid) end
pool:close()
os.remove(app:state_file())
if failed then return cli.fail("serve", failed) end
return 0
