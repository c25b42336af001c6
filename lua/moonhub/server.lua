-- moonhub.server: the HTTP application: one route table with middleware,
-- protocol adapters over one neutral generation request (server/*.lua),
-- the models of a pool. Layer: lua/moonhub (uses moonhub.http, .openai,
-- .sched, .metrics, .admin, .server.*). Each request runs in a coroutine;
-- waits yield to the loop. See docs/server.md.
local http = require "moonhub.http"
local oa = require "moonhub.openai"
local metrics_mod = require "moonhub.metrics"
local routes = require "moonhub.server.routes"
local mw = require "moonhub.server.middleware"
local names = require "moonhub.server.names"
local request = require "moonhub.server.request"

local M = {}
local App = {}
App.__index = App

local JSON = { ["Content-Type"] = "application/json" }

local function now() return require("moonhub.core.sys").now() end

-- ===== app =====

-- new{model_name =, api_key =, rate =, keepalive =, template =, max_queue =,
--   history =, quiet =, max_body =, allowed_hosts = {names}, cors = {origins},
--   aliases = {NAME = MODEL}, default_model =} -> app
function M.new(opts)
   local self = setmetatable({ opts = opts or {}, model = nil, sched = nil, ids = { n = 0 },
      buckets = {}, metrics = metrics_mod.new() }, App)
   self.name = self.opts.model_name or "model"
   self.aliases = self.opts.aliases or {}
   self.table = M.route_table()
   return self
end

-- keep_alive(v) -> seconds | nil, msg: a keep_alive checked as requests'
-- are (serve --keep-alive uses it too).
M.keep_alive = request.keep_alive
M.parse_alias = names.parse_alias

-- listen(srv): serves srv's requests; its address is the one Host
-- headers may name and the one `moonhub ps` reports.
function App:listen(srv)
   self.host, self.port = srv.host, srv.port
   srv:handle(self:handler())
   self.sampler = require("moonhub.server.status").start(self)    -- tokens/s for the status panel
end

function App:attach(model, sched)
   self.model, self.sched = model, sched
   self.ctx = model.ctx
   self.created = os.time()
end

-- ready([entry]): the server answers /health with 200 from now on; entry,
-- the preloaded model's pool entry, becomes the one /metrics reports.
function App:ready(entry)
   if entry then self:attach(entry.model, entry.sched) end
   self.is_ready = true
   if self.pool then require("moonhub.batch.runner").serve(self) end    -- queued batches (docs/batch.md)
   self:write_state()
end

-- forget(entry): the pool unloaded entry; /metrics stops reporting it.
function App:forget(entry)
   if self.sched == entry.sched then self.model, self.sched = nil, nil end
end

-- The run-state file `moonhub ps` reads (admin.lua).
function App:write_state() require("moonhub.admin").write_state(self) end
function App:state_file() return self.port and require("moonhub.admin").state_file(self.port) end

-- The counter is a table the app and its model views share: a view's own
-- field would count from 1 again on every request (ids repeated in a second).
function App:next_id(prefix)
   local ids = self.ids
   ids.n = ids.n + 1
   return string.format("%s-%x%04x", prefix, os.time(), ids.n % 0x10000)
end

-- ===== generation through the scheduler =====

-- Runs one generation: calls on_text(text, logprob_info) for each visible
-- piece; returns finish_reason, usage, timings, error, the effective
-- sampler settings (the echo of docs/server.md), the index in stops of the
-- stop string that ended it (nil otherwise). Text and stop strings come
-- from the scheduler's loop; cancels when should_stop() says the client
-- has gone.
function App:generate(ids, p, stops, on_text, should_stop, http_req)
   if #ids >= self.ctx then
      oa.fail(400, string.format("the prompt has %d tokens but the context holds %d; shorten it", #ids, self.ctx),
         "messages", "exceed_context_size_error")
   end
   local max_queue = self.opts.max_queue or 64
   if self.sched:stats().waiting >= max_queue then
      oa.fail(503, "the server is busy: too many requests waiting", nil, "server_busy", { ["Retry-After"] = "1" })
   end
   local room = self.ctx - #ids
   if p.draft_model then      -- speculation: only the draft loaded with --draft (docs/speculative.md)
      local d = self.model.draft
      local name = type(d) == "table" and d.path or nil
      if not name or (p.draft_model ~= name and p.draft_model ~= name:match("([^/]+)$")
            and p.draft_model ~= name:match("([^/]+)%.gguf$")) then
         oa.fail(400, string.format("'draft_model' %q is not loaded: this server drafts with %s", p.draft_model,
            name and name:match("([^/]+)$") or "no model (start it with --draft MODEL)"), "draft_model")
      end
   end
   local req, err = self.sched:submit({
      tokens = ids, max_tokens = math.min(p.max_tokens, room), temperature = p.temperature, top_k = p.top_k,
      top_p = p.top_p, min_p = p.min_p, repeat_penalty = p.repeat_penalty,
      presence_penalty = p.presence_penalty, frequency_penalty = p.frequency_penalty,
      seed = p.seed, logit_bias = p.logit_bias, logprobs = p.top_logprobs or (p.logprobs and 0 or nil),
      eog = true, grammar = p.grammar, stop = stops,   -- text and stops: the scheduler's loop
      speculative = p.speculative, lora = p.lora, processors = request.chain(self.model, p),
   })
   if not req then oa.fail(400, tostring(err)) end
   if http_req then http_req:on_close(function() req:cancel() end) end   -- frees the slot at once
   local reason
   local t0, last = now(), nil
   while true do
      local ev = req:next()
      local t = now()
      if not ev.done then       -- latency metrics: first token, then each next one
         if last then self.metrics:observe("moonhub_time_per_output_token_seconds", t - last)
         else self.metrics:observe("moonhub_time_to_first_token_seconds", t - t0) end
         last = t
      end
      if ev.done then
         if ev.text ~= "" and not reason then on_text(ev.text, nil) end
         return reason or ev.reason, ev.usage, ev.timings, ev.error, ev.settings, ev.stop_index
      end
      if should_stop and should_stop() then
         req:cancel()
         reason = "cancel"
      elseif not reason then
         local info = p.logprobs and { id = ev.token, logprob = ev.logprob, top = ev.top } or nil
         if ev.text ~= "" or info then on_text(ev.text, info) end
      end
   end
end

function App:count_usage(u)
   local m = self.metrics
   m:add("moonhub_prompt_tokens_total", u.prompt_tokens or 0)
   m:add("moonhub_generated_tokens_total", u.completion_tokens or 0)
   m:add("moonhub_prompt_cached_tokens_total", u.cached_tokens or 0)
end

-- ===== models (moonhub.pool) =====

-- use_pool(pool, {default_ref =}): requests name their model ("model"),
-- loaded on first use; default_ref (serve --model) answers requests that
-- name no model or this model's id.
function App:use_pool(pool, opts)
   opts = opts or {}
   self.pool, self.default_ref = pool, opts.default_ref
   self.metrics.pool = pool          -- loaded/loading gauges in /metrics
   if opts.default_ref then pool:set_default(opts.default_ref, self.name) end
   self.created = self.created or os.time()
end

-- with_model(r, fn): runs fn(view) with the model r.model names (an
-- alias, the default when none, --default-model when the name is
-- unknown); view is the app with that entry's model, sched, ctx and name.
-- r.keep_alive (checked already) applies when the request is done.
function App:with_model(r, fn)
   if not self.pool then oa.fail(503, "no model is served") end
   local ref, shown = names.pick(self, r.model), nil
   if r.model and not self.pool:find(ref) then ref, shown = self:adapter_route(r, ref) end
   local e, err, status, public = self.pool:acquire(ref)
   local fallback = self.opts.default_model
   if not e and status == 404 and fallback and ref ~= fallback then
      e, err, status, public = self.pool:acquire(fallback)
   end
   if not e then
      if status == 404 then names.not_found(self, r.model or ref) end
      if status == 503 then oa.fail(503, tostring(err), "model", "model_unavailable", { ["Retry-After"] = "1" }) end
      if public then oa.fail(status or 500, tostring(err), "model", "model_load_failed") end
      local id = http.error_id()
      io.stderr:write(string.format("moonhub serve: [%s] loading %s: %s\n", id, ref, tostring(err)))
      oa.fail(500, string.format("model %q failed to load (id %s; details in the server log)", ref, id), "model",
         "model_load_failed")
   end
   self.model, self.sched = e.model, e.sched        -- for /metrics: the latest used
   local view = setmetatable({ model = e.model, sched = e.sched, ctx = e.ctx, name = shown or e.name, entry = e },
      { __index = self })
   local ok, a, b, c = pcall(fn, view)
   self.pool:release(e, r.keep_alive)
   if not ok then error(a, 0) end
   return a, b, c
end

-- adapter_route(r, ref) -> ref to load, name to show: a model name that is
-- a registered adapter version runs on its base's entry (the --model one
-- when that is the base's file) with the adapter as the request's own, so
-- it batches with the base's other requests (docs/lora.md).
function App:adapter_route(r, ref)
   local base, v = require("moonhub.adapters").version_base(ref)
   if not base then return ref end
   r.lora = r.lora or {}
   table.insert(r.lora, 1, { name = ref })
   local shown, d = v.model .. ":" .. v.tag, self.pool.default
   local dpath = d and require("moonhub.models").resolve(d.ref)
   if dpath and require("moonhub.fs").same_file(dpath, base.path) then return d.ref, shown end
   return base.ref, shown
end

local STORED_OPTIONS = { "temperature", "top_p", "top_k", "min_p", "seed", "repeat_penalty", "presence_penalty",
   "frequency_penalty" }

-- Stores one chat exchange when --history is on or the request says
-- "store": true (and not when it says false).
function App:record_chat(r, answer, usage, timings)
   if not (self.opts.history or r.store == true) or r.store == false then return end
   local options = { max_tokens = r.max_tokens, stop = r.stop, n = r.n }
   for _, k in ipairs(STORED_OPTIONS) do options[k] = r.sampling[k] end
   local ok, err = pcall(function()
      local h = assert(require("moonhub.history").open())
      local stored_ok, serr = pcall(h.store, h, { model = self.name, source = "server", options = options,
         messages = r.messages, answer = type(answer) == "string" and answer or "", usage = usage,
         timings = timings })
      h:close()
      if not stored_ok then error(serr, 0) end
   end)
   if not ok then io.stderr:write("moonhub serve: history: ", tostring(err), "\n") end
end

-- ===== routes =====

-- POST /tokenize {"content", "add_special"?, "parse_special"?, "with_pieces"?} (llama.cpp's shape)
local function tokenize(app, req)
   local body = oa.decode(req.body)
   if type(body.content) ~= "string" then oa.wrong("content", "a string", body.content) end
   local bos, special = oa.opt_bool(body, "add_special", false), oa.opt_bool(body, "parse_special", false)
   local pieces = oa.opt_bool(body, "with_pieces", false)
   return app:with_model({ model = oa.opt_string(body, "model") }, function(view)
      local tok = view.model.tokenizer
      local ids = tok:encode(body.content, { bos = bos, special = special })
      if pieces then
         local out = oa.array()
         for i, t in ipairs(ids) do out[i] = { id = t, piece = oa.valid_utf8(tok:piece(t)) } end
         return 200, JSON, oa.encode({ tokens = out })
      end
      return 200, JSON, oa.encode({ tokens = oa.array(ids) })
   end)
end

-- POST /detokenize {"tokens": [ids]}
local function detokenize(app, req)
   local body = oa.decode(req.body)
   if not oa.is_array(body.tokens) then oa.wrong("tokens", "an array of token ids", body.tokens) end
   return app:with_model({ model = oa.opt_string(body, "model") }, function(view)
      if #body.tokens > 0 then oa.token_ids(body.tokens, "tokens", "tokens", view.model.info.n_vocab) end
      return 200, JSON, oa.encode({ content = view.model.tokenizer:decode(body.tokens) })
   end)
end

local function health(app)
   if not app.sched and not app.is_ready then return 503, JSON, oa.encode({ status = "loading" }) end
   return 200, JSON, oa.encode({ status = "ok" })
end

local function metrics(app)
   return 200, { ["Content-Type"] = "text/plain; version=0.0.4" }, app.metrics:render(app.sched)
end

local function models(app, _, one)
   if app.pool then return require("moonhub.admin").v1_models(app, one) end
   local info = { id = app.name, object = "model", created = app.created or os.time(), owned_by = "moonhub" }
   if one then
      if one ~= app.name then names.not_found(app, one) end
      return 200, JSON, oa.encode(info)
   end
   return 200, JSON, oa.encode({ object = "list", data = oa.array({ info }) })
end

-- The middleware of each kind of route (outermost first). Requests no
-- route takes (404, 405, OPTIONS) get BASE.
local BASE = { mw.log, mw.host, mw.cors }
local API = { mw.log, mw.host, mw.cors, mw.auth, mw.rate, mw.body, mw.json }
local ADMIN = { mw.log, mw.host, mw.cors, mw.auth, mw.body, mw.json }
M.BASE, M.API, M.ADMIN = BASE, API, ADMIN

-- route_table() -> the server's routes: the OpenAI adapters (chat, Responses),
-- Anthropic's Messages, llama.cpp's tokenize routes, health and metrics, the
-- admin routes of moonhub.admin, the Ollama adapter.
function M.route_table()
   local openai = require "moonhub.server.openai_adapter"
   local t = routes.new()
   t:add({ "GET", "/health", health, middleware = BASE })
   t:add({ "GET", "/metrics", metrics, middleware = BASE })
   t:add({ "GET", "/v1/models", models, middleware = BASE })
   t:add({ "GET", "/v1/models/{*id}", models, middleware = BASE })
   t:add({ "POST", "/v1/chat/completions", openai.chat, middleware = API, json = true })
   t:add({ "POST", "/v1/completions", openai.completions, middleware = API, json = true })
   t:add({ "POST", "/v1/embeddings", openai.embeddings, middleware = API, json = true })
   local responses, anthropic = require "moonhub.server.responses_adapter", require "moonhub.server.messages_adapter"
   t:add({ "POST", "/v1/responses", responses.create, middleware = API, json = true })
   t:add({ "POST", "/v1/messages", anthropic.create, middleware = API, json = true, error_body = anthropic.error_body })
   t:add({ "POST", "/v1/messages/count_tokens", anthropic.count_tokens, middleware = API, json = true,
      error_body = anthropic.error_body })
   t:add({ "POST", "/tokenize", tokenize, middleware = API, json = true })
   t:add({ "POST", "/detokenize", detokenize, middleware = API, json = true })
   for _, mod in ipairs({ "moonhub.admin", "moonhub.server.eval_routes", "moonhub.server.jobs_routes",
      "moonhub.server.slots_routes", "moonhub.server.chat_history", "moonhub.server.status",
      "moonhub.server.models_routes", "moonhub.server.compare_routes" }) do
      for _, r in ipairs(require(mod).ROUTES) do
         t:add({ r[1], r[2], r[3], middleware = ADMIN, json = r.json, max_body = r.max_body })
      end
   end
   -- datasets (an upload's body is the file itself: no JSON type check)
   local upload = { mw.log, mw.host, mw.cors, mw.auth, mw.body }
   for _, r in ipairs(require("moonhub.server.data_routes").routes(ADMIN, upload)) do t:add(r) end
   local v1_upload = { mw.log, mw.host, mw.cors, mw.auth, mw.rate, mw.body }    -- OpenAI's files and batches
   for _, r in ipairs(require("moonhub.server.batch_routes").routes(API, v1_upload)) do t:add(r) end
   -- the web UI (GET / for browsers; others keep Ollama's "is running")
   local ollama = require "moonhub.server.ollama_adapter"
   require("moonhub.server.static").add_routes(t, BASE, require("moonhub.server.ollama_models").root,
      ollama.error_body)
   ollama.add_routes(t, mw)     -- Ollama's /api/*
   return t
end

-- ===== errors and the handler =====

-- error_of(err, req) -> {status, message, param, code, headers}: raised
-- request errors as they are; anything else is an internal error, logged
-- with an id that the client gets instead of the details (which may
-- name files and lines).
function App.error_of(_, err, req)
   if type(err) == "table" and math.type(err.status) then return err end
   local id = http.error_id()
   io.stderr:write(string.format("moonhub serve: %s %s: [%s] %s\n", req.method, req.path:match("^[^?]*"), id,
      tostring(err)))
   return { status = 500, message = "internal error (id " .. id .. "; details in the server log)",
      code = "internal_error" }
end

-- The error in the route's protocol: route.error_body(err) -> body when
-- the route has one (Ollama's {"error": "..."}), else OpenAI's object.
local function respond_error(req, err)
   local headers = { ["Content-Type"] = "application/json" }
   for k, v in pairs(err.headers or {}) do headers[k] = v end
   local shape = req.route and req.route.error_body
   return req:respond(err.status, headers,
      shape and shape(err) or oa.error_body(err.status, err.message, err.param, err.code))
end

-- The handler for http.server: dispatches through the route table, turns
-- raised errors into OpenAI error bodies, records metrics.
function App:handler()
   return function(req)
      local t0 = now()
      local ok, status, headers, body = pcall(self.table.dispatch, self.table, self, req, BASE)
      if not ok then
         local err = self:error_of(status, req)
         status = err.status
         if req:state() == "new" then respond_error(req, err) end
      elseif status then
         req:respond(status, headers, body)
      end
      self.metrics:request(req.route and req.route.pattern or "(unmatched)", req.status or status or 200, now() - t0)
   end
end

return M
