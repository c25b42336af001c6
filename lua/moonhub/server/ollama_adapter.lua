-- moonhub.server.ollama_adapter: Ollama's native generation API (/api/chat,
-- /api/generate, /api/embed, /api/embeddings) over the neutral request:
-- Ollama bodies in (options, format, keep_alive, context), NDJSON lines or
-- one JSON object out, timings in nanoseconds; the route list of every
-- Ollama route. Layer: lua/moonhub (uses moonhub.openai checks,
-- .server.request, .server.ollama_models; dkjson). See docs/ollama.md.
local oa = require "moonhub.openai"
local json = require "dkjson"
local request = require "moonhub.server.request"
local models = require "moonhub.server.ollama_models"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local NDJSON = { ["Content-Type"] = "application/x-ndjson" }

local function now() return require("moonhub.core.sys").now() end

-- ===== errors and bodies =====

-- Ollama's error shape: {"error": "message"} (route.error_body).
function M.error_body(err) return json.encode({ error = err.message }) end

-- Body types taken as JSON: Ollama's documentation posts with `curl -d`
-- (application/x-www-form-urlencoded) or no type at all. A browser may send
-- these cross-site without a preflight, which is why the cors middleware
-- (before this one) refuses state-changing requests from foreign origins.
M.BODY_TYPES = { ["application/json"] = true, ["text/plain"] = true,
   ["application/x-www-form-urlencoded"] = true }

function M.body_type(_, req, nxt)
   if (req.body or "") ~= "" then
      local ct = (req.headers["content-type"] or ""):lower():match("^%s*([^;%s]+)")
      if ct and not M.BODY_TYPES[ct] then
         oa.fail(415, string.format("send the body as JSON (got Content-Type '%s'; application/json, "
            .. "text/plain or none are read as JSON)", ct:sub(1, 60)), nil, "unsupported_media_type")
      end
   end
   return nxt()
end

-- ===== fields =====

local is_null = oa.is_null

local function opt_bool(body, name, default)
   local v = body[name]
   if is_null(v) then return default end
   if type(v) ~= "boolean" then oa.wrong(name, "true or false", v) end
   return v
end

local function opt_string(body, name)
   local v = body[name]
   if is_null(v) then return nil end
   if type(v) ~= "string" then oa.wrong(name, "a string", v) end
   return v
end

-- keep_alive(v) -> seconds | nil: as Ollama, a number of seconds or a
-- duration ("5m", "1h30m"); 0 unloads when the request is done, negative
-- keeps the model loaded for good.
function M.keep_alive(v)
   if is_null(v) then return nil end
   if type(v) ~= "number" and type(v) ~= "string" then
      oa.wrong("keep_alive", "a number of seconds or a duration such as \"5m\"", v)
   end
   local secs, err = request.keep_alive(v)
   if not secs then oa.fail(400, err, "keep_alive") end
   return secs
end

-- format: "json", a JSON schema object, or ""/null for free text.
function M.format(v)
   if is_null(v) or v == "" then return nil end
   if v == "json" then return { type = "json_object" } end
   if oa.is_object(v) then return { type = "json_schema", schema = v } end
   oa.fail(400, "'format' must be \"json\" or a JSON schema object", "format")
end

-- ===== options =====

local D = require("moonhub.core.sched").defaults()

-- Options Ollama clients send that have no meaning here (GPU layers,
-- threads, memory mapping: the server's flags decide them): accepted and
-- ignored. docs/ollama.md lists them.
M.IGNORED = { num_keep = true, num_batch = true, num_gpu = true, main_gpu = true, num_thread = true,
   numa = true, low_vram = true, f16_kv = true, vocab_only = true, use_mmap = true, use_mlock = true,
   embedding_only = true, logits_all = true, penalize_newline = true }

-- Sampler options that would change the sampling if honoured: refused
-- unless they ask for the neutral value.
local NEUTRAL = { mirostat = 0, tfs_z = 1, typical_p = 1 }

local function number_in(where, v, lo, hi)
   if type(v) ~= "number" or v ~= v or (lo and v < lo) or (hi and v > hi) then
      oa.fail(400, string.format("'%s' must be a number%s", where,
         lo and hi and string.format(" in [%g, %g]", lo, hi) or lo and string.format(" >= %g", lo) or ""),
         "options")
   end
   return v + 0.0
end

local function integer_in(where, v, lo)
   if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v) and v == v) then
      oa.fail(400, string.format("'%s' must be an integer", where), "options")
   end
   local n = math.tointeger(v)
   if not n then oa.fail(400, string.format("'%s' is out of range: %.15g", where, v), "options") end
   if lo and n < lo then oa.fail(400, string.format("'%s' must be an integer >= %d", where, lo), "options") end
   return n
end

local function stop_list(v)
   if type(v) == "string" then v = { v } end
   if not oa.is_array(v) then oa.fail(400, "'options.stop' must be a string or an array of strings", "options") end
   local out = {}
   for i, s in ipairs(v) do
      if type(s) ~= "string" or s == "" then
         oa.fail(400, string.format("'options.stop[%d]' must be a non-empty string", i - 1), "options")
      end
      out[i] = s
   end
   return out
end

-- The option readers: name -> fn(where, v, out).
local READ = {
   temperature = function(w, v, o) o.sampling.temperature = number_in(w, v, 0, 100) end,
   top_k = function(w, v, o) o.sampling.top_k = integer_in(w, v, 0) end,
   top_p = function(w, v, o) o.sampling.top_p = math.max(1e-6, number_in(w, v, 0, 1)) end,
   min_p = function(w, v, o) o.sampling.min_p = number_in(w, v, 0, 1) end,
   seed = function(w, v, o) o.sampling.seed = integer_in(w, v) end,
   repeat_penalty = function(w, v, o) o.sampling.repeat_penalty = number_in(w, v, 0, 10) end,
   presence_penalty = function(w, v, o) o.sampling.presence_penalty = number_in(w, v, -2, 2) end,
   frequency_penalty = function(w, v, o) o.sampling.frequency_penalty = number_in(w, v, -2, 2) end,
   stop = function(_, v, o) o.stop = stop_list(v) end,
   num_ctx = function(w, v, o) o.num_ctx = integer_in(w, v, 1) end,
   num_predict = function(w, v, o)
      local n = integer_in(w, v, -2)
      if n == 0 then oa.fail(400, "'options.num_predict' must be -1 (no limit), -2 (fill the context) or "
         .. "at least 1", "options") end
      o.max_tokens = n > 0 and n or nil
   end,
   repeat_last_n = function(w, v)
      local n = integer_in(w, v, -1)
      if n ~= D.repeat_last_n then
         oa.fail(400, string.format("'%s' %d is not supported: the penalties look at the last %d tokens", w, n,
            D.repeat_last_n), "options")
      end
   end,
}

-- options(tbl, defaults) -> {sampling, max_tokens, stop, num_ctx}:
-- Ollama's options object over the engine's defaults, then a created
-- model's parameters (defaults), then the request's options.
function M.options(v, defaults)
   local o = { sampling = { temperature = D.temperature, top_p = D.top_p, top_k = D.top_k, min_p = D.min_p,
      presence_penalty = 0, frequency_penalty = 0, repeat_penalty = 1.0 } }
   local function apply(t, label)
      if is_null(t) then return end
      if not oa.is_object(t) then oa.wrong(label, "an object", t) end
      for k, x in pairs(t) do
         local where = label .. "." .. tostring(k)
         if READ[k] then
            if not is_null(x) then READ[k](where, x, o) end
         elseif NEUTRAL[k] ~= nil then
            if not is_null(x) and x ~= NEUTRAL[k] then
               oa.fail(400, string.format("'%s' is not supported by this server's sampler (leave it at %g)", where,
                  NEUTRAL[k]), "options")
            end
         elseif not M.IGNORED[k] then
            oa.fail(400, string.format("'%s' is not an option (docs/ollama.md lists them)", where), "options")
         end
      end
   end
   apply(defaults, "parameters")
   apply(v, "options")
   return o
end

-- ===== chat messages =====

local ROLES = { system = true, user = true, assistant = true, tool = true }

local function no_images(v, where)
   if not is_null(v) and not (oa.is_array(v) and #v == 0) then
      oa.fail(400, where .. ": images are not supported (this server has no vision models yet); "
         .. "send text only", "images")
   end
end

-- Ollama's tool calls {function: {name, arguments: object}} -> the neutral
-- (OpenAI) shape, arguments as JSON text.
local function tool_calls(v, where)
   if is_null(v) then return nil end
   if not oa.is_array(v) then oa.wrong(where, "an array", v, "messages") end
   local out = {}
   for k, c in ipairs(v) do
      local f = oa.is_object(c) and c["function"]
      if not oa.is_object(f) or type(f.name) ~= "string" or f.name == "" then
         oa.fail(400, string.format("%s[%d] must be {function: {name, arguments}}", where, k - 1), "messages")
      end
      local args = f.arguments
      if is_null(args) then args = oa.object() end
      if type(args) ~= "string" then args = json.encode(args) end
      out[k] = { id = string.format("call_%d", k), type = "function", ["function"] = { name = f.name,
         arguments = args } }
   end
   return out
end

-- messages(v) -> neutral messages (an empty list: load or unload only)
function M.messages(v)
   if is_null(v) then return {} end
   if not oa.is_array(v) then oa.wrong("messages", "an array", v) end
   local out = {}
   for i, m in ipairs(v) do
      local where = string.format("messages[%d]", i - 1)
      if not oa.is_object(m) or not ROLES[m.role] then
         oa.fail(400, where .. ".role must be one of system, user, assistant, tool", "messages")
      end
      local c = m.content
      if is_null(c) then c = "" end
      if type(c) ~= "string" then oa.wrong(where .. ".content", "a string", c, "messages") end
      no_images(m.images, where)
      local msg = { role = m.role, content = c, tool_calls = tool_calls(m.tool_calls, where .. ".tool_calls") }
      if msg.tool_calls and m.role ~= "assistant" then
         oa.fail(400, where .. ".tool_calls is only allowed on assistant messages", "messages")
      end
      if m.role == "tool" then
         local name = m.tool_name or m.name
         if not is_null(name) and type(name) ~= "string" then oa.wrong(where .. ".tool_name", "a string", name) end
         msg.name = not is_null(name) and name or nil
         msg.tool_call_id = msg.name or "call_1"
      end
      out[i] = msg
   end
   return out
end

-- ===== Go templates (/api/generate "template") =====

-- render_template(src, vars) -> text: the part of an Ollama (Go) template
-- before {{ .Response }}, with {{ .System }} and {{ .Prompt }} filled in
-- ({{- and -}} trim spaces as in Go). Other actions (if, range) are
-- refused: moonhub's chat templates are Jinja.
function M.render_template(src, vars)
   local head = src
   local cut = src:find("{{%-?%s*%.Response%s*%-?}}")
   if cut then head = src:sub(1, cut - 1) end
   local bad
   local text = head:gsub("(%s*){{(%-?)%s*(.-)%s*(%-?)}}(%s*)", function(pre, l, action, r, post)
      local name = action:match("^%.(%a+)$")
      if not name or (name ~= "System" and name ~= "Prompt") then
         bad = bad or action
         return ""
      end
      return (l == "-" and "" or pre) .. (vars[name] or "") .. (r == "-" and "" or post)
   end)
   if bad then
      oa.fail(400, string.format("'template': {{ %s }} is not supported; a template may use {{ .System }}, "
         .. "{{ .Prompt }} and {{ .Response }} only (or send raw: true with a prompt you formatted)",
         bad:sub(1, 40)), "template")
   end
   return text
end

-- ===== Ollama bodies -> neutral requests =====

local function base_request(body, kind, extras)
   local model = opt_string(body, "model") or opt_string(body, "name")
   if not model or model == "" then oa.fail(400, "'model' is required: GET /api/tags lists the models", "model") end
   local o = M.options(body.options, extras and extras.parameters)
   local stream = opt_bool(body, "stream", true)
   if opt_bool(body, "think", false) then
      oa.fail(400, "'think' is not supported: these models have no separate thinking output", "think")
   end
   if opt_bool(body, "logprobs", false) then
      oa.fail(400, "'logprobs' is not supported on /api/*; POST /v1/chat/completions returns them", "logprobs")
   end
   return request.extensions(body, { kind = kind, model = model, keep_alive = M.keep_alive(body.keep_alive),
      sampling = o.sampling, max_tokens = o.max_tokens, stop = o.stop, num_ctx = o.num_ctx, n = 1, stream = stream,
      format = M.format(body.format), tool_choice = "none" })
end

-- chat_request(body, extras) -> neutral request (r.empty: no messages,
-- only load or unload). extras: a created model's {system, parameters}.
function M.chat_request(body, extras)
   local r = base_request(body, "chat", extras)
   r.messages = M.messages(body.messages)
   r.empty = #r.messages == 0
   if extras and extras.system and extras.system ~= "" and not r.empty and r.messages[1].role ~= "system" then
      table.insert(r.messages, 1, { role = "system", content = extras.system })
   end
   if not is_null(body.tools) then
      r.tools, r.tool_choice = oa.tools({ tools = body.tools })
   end
   r.template_file = extras and extras.template_file
   return r
end

-- generate_request(body, extras) -> neutral request: raw or templated
-- text ("text"), else the prompt as one user turn through the chat
-- template ("chat"); r.context: token ids to continue from.
function M.generate_request(body, extras)
   local r = base_request(body, "chat", extras)
   local prompt = opt_string(body, "prompt") or ""
   local system = opt_string(body, "system") or (extras and extras.system) or nil
   local template = opt_string(body, "template")
   local raw = opt_bool(body, "raw", false)
   no_images(body.images, "images")
   local suffix = opt_string(body, "suffix")
   if suffix and suffix ~= "" then
      oa.fail(400, "'suffix' (fill in the middle) is not supported", "suffix")
   end
   local ctx = body.context
   if not is_null(ctx) then
      if not oa.is_array(ctx) then oa.wrong("context", "an array of token ids", ctx) end
      if #ctx > 0 then r.context = oa.token_ids(ctx, "context", "context") end
   end
   r.empty = prompt == "" and not r.context
   if raw then
      r.kind, r.prompts = "text", { prompt }
   elseif template then
      r.kind, r.prompts = "text", { M.render_template(template, { System = system, Prompt = prompt }) }
   else
      r.messages = { { role = "user", content = prompt } }
      if system and system ~= "" then table.insert(r.messages, 1, { role = "system", content = system }) end
      r.template_file = extras and extras.template_file
   end
   return r
end

-- ===== responses =====

local function ns(seconds) return math.max(0, math.floor(seconds * 1e9 + 0.5)) end

-- timings(t0, t_loaded, t_end, usage, timings) -> Ollama's duration and
-- count fields, durations in integer nanoseconds: total from the request's
-- start, load until the model was bound, prompt eval from the
-- scheduler's prefill, eval from its decode rate (else the rest).
function M.timings(t0, t_loaded, t_end, usage, tm)
   tm = tm or {}
   local prefill = (tm.prefill_ms or 0) / 1000
   local n = usage.completion_tokens or 0
   local eval = (tm.decode_tps or 0) > 0 and n / tm.decode_tps or math.max(0, t_end - t_loaded - prefill)
   return { total_duration = ns(t_end - t0), load_duration = ns(t_loaded - t0),
      prompt_eval_count = usage.prompt_tokens or 0, prompt_eval_duration = ns(prefill),
      eval_count = n, eval_duration = ns(eval) }
end

-- RFC 3339 UTC with nanoseconds, as Ollama writes created_at (to the
-- second: os.time's resolution).
function M.iso_time(t)
   t = t or os.time()
   local secs = math.floor(t)
   return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%09dZ", math.floor((t - secs) * 1e9))
end

-- Ollama's done_reason for a finished choice.
local function done_reason(reason)
   if reason == "length" then return "length" end
   return "stop"                              -- stop strings, end of generation, tool calls
end

local function ollama_calls(res)
   if not res.calls then return nil end
   local out = oa.array()
   for k, c in ipairs(res.calls) do
      local args = json.decode(c.arguments or "{}")
      out[k] = { ["function"] = { name = c.name, arguments = type(args) == "table" and oa.object(args)
         or oa.object() } }
   end
   return out
end

local function line(v) return json.encode(v) .. "\n" end

-- The view with a created model's chat template in place of the server's.
local function with_template(view, file)
   if not file then return view end
   local opts = setmetatable({ template = file }, { __index = view.opts })
   return setmetatable({ opts = opts }, { __index = view })
end

-- Binds r to its model; the prompt ids with r.context in front; the
-- num_ctx limit (the served context is fixed: a smaller one is a limit).
local function prepare(view, r)
   local ok, job = pcall(request.prepare, r, with_template(view, r.template_file))
   if not ok then
      if type(job) == "table" and job.param == "response_format" then     -- in Ollama's words
         job.message, job.param = job.message:gsub("^response_format", "format"), "format"
      end
      error(job, 0)
   end
   local ids = job.prompts[1]
   if r.context then
      local tok = view.model.tokenizer
      oa.token_ids(r.context, "context", "context", view.model.info.n_vocab)
      local skip = (tok.bos and ids[1] == tok.bos) and 1 or 0
      local all = table.move(r.context, 1, #r.context, 1, {})
      table.move(ids, 1 + skip, #ids, #all + 1, all)
      job.prompts[1] = all
      ids = all
   end
   local limit = math.min(r.num_ctx or view.ctx, view.ctx)
   if #ids >= limit then
      oa.fail(400, string.format("the prompt has %d tokens but the context holds %d (options.num_ctx, or the "
         .. "server's --ctx); shorten it", #ids, limit), "options")
   end
   job.params.max_tokens = math.min(job.params.max_tokens, limit - #ids)
   return job
end

-- The pieces, the final line and the non-streamed answer of /api/chat
-- and /api/generate: shape(text, res|nil) -> the kind's own fields.
M.SHAPES = {
   chat = function(text, res)
      local msg = { role = "assistant", content = text }
      if res and res.calls then msg.content, msg.tool_calls = res.content or "", ollama_calls(res) end
      return { message = msg }
   end,
   generate = function(text) return { response = text } end,
}

-- Load or unload without generating (no prompt, no messages).
local function load_only(app, r, kind)
   local shape = M.SHAPES[kind]
   local function answer(reason)
      local out = shape("")
      out.model, out.created_at, out.done, out.done_reason = r.model, M.iso_time(), true, reason
      return 200, JSON, json.encode(out)
   end
   if r.keep_alive == 0 then
      models.unload(app, r.model)
      return answer("unload")
   end
   return app:with_model(r, function() return answer("load") end)
end

-- Runs chat or generate: NDJSON lines when r.stream, else one object.
local function run(app, req, r, kind)
   if r.empty then return load_only(app, r, kind) end
   local shape, t0 = M.SHAPES[kind], now()
   return app:with_model(r, function(view)
      local t_loaded = now()
      local job = prepare(view, r)
      local function fields(text, res, done)
         local out = shape(text, res)
         out.model, out.created_at, out.done = r.model, M.iso_time(), done
         return out
      end
      local final
      local function finish_fields(total, timings)
         local out = fields(r.stream and "" or final.text, final, true)
         if r.stream and final.calls then out = fields("", nil, true) end
         out.done_reason = done_reason(final.reason)
         for k, v in pairs(M.timings(t0, t_loaded, now(), total, timings)) do out[k] = v end
         if kind == "generate" then
            local ids = table.move(job.prompts[1], 1, #job.prompts[1], 1, {})
            -- the answer's ids after the prompt's, without a second BOS in the middle
            for _, id in ipairs(view.model.tokenizer:encode(final.text, { bos = false })) do ids[#ids + 1] = id end
            out.context = oa.array(ids)
         end
         return out
      end
      local sink = { choice = function(_, res) final = res end }
      if not r.stream then
         local total, timings = request.run(view, r, job, sink, req)
         if kind == "chat" then view:record_chat(r, final.calls and (final.content or "") or final.text, total,
            timings) end
         return 200, JSON, json.encode(finish_fields(total, timings))
      end
      req:start(200, NDJSON)
      sink.text = function(_, text) req:write(line(fields(text, nil, false))) end
      local ok, err = pcall(function()
         local total, timings = request.run(view, r, job, sink, req)
         if final.calls then req:write(line(fields("", final, false)))
         elseif job.with_tools and final.text ~= "" then      -- withheld while it might have been a call
            req:write(line(fields(final.text, nil, false)))
         end
         req:write(line(finish_fields(total, timings)))
         if kind == "chat" then view:record_chat(r, final.calls and (final.content or "") or final.text, total,
            timings) end
      end)
      if not ok then req:write(line({ error = view:error_of(err, req).message })) end
      req:finish()
   end)
end

-- POST /api/chat
function M.chat(app, req)
   local body = oa.decode(req.body)
   local r = M.chat_request(body, models.extras_for(app, body.model or body.name))
   return run(app, req, r, "chat")
end

-- POST /api/generate
function M.generate(app, req)
   local body = oa.decode(req.body)
   local r = M.generate_request(body, models.extras_for(app, body.model or body.name))
   return run(app, req, r, "generate")
end

-- ===== embeddings =====

local function normalize(v, dims)
   local out, s = {}, 0.0
   for i = 1, dims or #v do out[i] = v[i]; s = s + v[i] * v[i] end
   s = math.sqrt(s)
   if s > 0 then for i = 1, #out do out[i] = out[i] / s end end
   return oa.array(out)
end

-- POST /api/embed {"model", "input": string | [strings], "truncate",
-- "dimensions", "keep_alive", "options"} -> L2-normalized vectors
function M.embed(app, req)
   local body = oa.decode(req.body)
   local model = opt_string(body, "model") or opt_string(body, "name")
   if not model or model == "" then oa.fail(400, "'model' is required: GET /api/tags lists the models", "model") end
   local input = body.input
   local inputs
   if type(input) == "string" then inputs = { input }
   elseif oa.is_array(input) and #input > 0 then
      inputs = {}
      for i, s in ipairs(input) do
         if type(s) ~= "string" then oa.wrong(string.format("input[%d]", i - 1), "a string", s, "input") end
         inputs[i] = s
      end
   else
      oa.fail(400, "'input' must be a string or a non-empty array of strings", "input")
   end
   local truncate = opt_bool(body, "truncate", true)
   local dims = body.dimensions
   if not is_null(dims) then dims = integer_in("dimensions", dims, 1) else dims = nil end
   M.options(body.options)
   local r, t0 = { model = model, keep_alive = M.keep_alive(body.keep_alive) }, now()
   return app:with_model(r, function(view)
      local t_loaded = now()
      local vecs, n = request.embed(view, inputs, truncate, " (or send truncate: true)")
      if dims and dims > #vecs[1] then
         oa.fail(400, string.format("'dimensions' %d is more than this model's %d", dims, #vecs[1]), "dimensions")
      end
      local out = oa.array()
      for i, v in ipairs(vecs) do out[i] = normalize(v, dims) end
      req.tokens = { prompt_tokens = n, completion_tokens = 0 }
      local t = M.timings(t0, t_loaded, now(), { prompt_tokens = n }, nil)
      return 200, JSON, json.encode({ model = model, embeddings = out, total_duration = t.total_duration,
         load_duration = t.load_duration, prompt_eval_count = n })
   end)
end

-- POST /api/embeddings {"model", "prompt"} -> {"embedding": [...]} (the
-- older route: one vector, not normalized; an empty prompt gives [])
function M.embeddings(app, req)
   local body = oa.decode(req.body)
   local model = opt_string(body, "model") or opt_string(body, "name")
   if not model or model == "" then oa.fail(400, "'model' is required: GET /api/tags lists the models", "model") end
   local prompt = opt_string(body, "prompt") or ""
   M.options(body.options)
   local r = { model = model, keep_alive = M.keep_alive(body.keep_alive) }
   return app:with_model(r, function(view)
      if prompt == "" then return 200, JSON, json.encode({ embedding = oa.array() }) end
      local vecs, n = request.embed(view, { prompt }, true)
      req.tokens = { prompt_tokens = n, completion_tokens = 0 }
      return 200, JSON, json.encode({ embedding = oa.array(vecs[1]) })
   end)
end

-- ===== routes =====

-- add_routes(t, mw): Ollama's routes into the server's route table. mw:
-- the middleware module; every route answers errors in Ollama's shape.
function M.add_routes(t, mw)
   local base = { mw.log, mw.host, mw.cors }
   local gen = { mw.log, mw.host, mw.cors, mw.auth, mw.rate, mw.body, M.body_type }
   local admin = { mw.log, mw.host, mw.cors, mw.auth, mw.body, M.body_type }
   local function add(method, path, fn, list, max_body)
      t:add({ method, path, fn, middleware = list, json = true, error_body = M.error_body, max_body = max_body })
   end
   add("GET", "/", models.root, base)
   add("GET", "/api/version", models.version, base)
   add("POST", "/api/chat", M.chat, gen)
   add("POST", "/api/generate", M.generate, gen)
   add("POST", "/api/embed", M.embed, gen)
   add("POST", "/api/embeddings", M.embeddings, gen)
   add("GET", "/api/tags", models.tags, admin)
   add("POST", "/api/show", models.show, admin)
   add("GET", "/api/ps", models.ps, admin)
   add("POST", "/api/pull", models.pull, admin, 65536)
   add("POST", "/api/push", models.push, admin, 65536)
   add("DELETE", "/api/delete", models.delete, admin, 65536)
   add("POST", "/api/copy", models.copy, admin, 65536)
   add("POST", "/api/create", models.create, admin, 1048576)
end

return M
