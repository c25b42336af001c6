-- Specs for moonhub.server.ollama_adapter's pure parts: Ollama bodies to the
-- neutral request (options, keep_alive, format, messages and tool calls,
-- generate's raw/template/system/context), the timing fields, Go template
-- rendering, the error shape, the body-type middleware and the routes.
-- Layer: tests (#unit: no model, no server).
local ol = require "moonhub.server.ollama_adapter"
local oa = require "moonhub.openai"
local json = require "dkjson"

local function err_of(fn)
   local ok, e = pcall(fn)
   assert.is_false(ok)
   assert.is_table(e, tostring(e))
   return e
end

local D = require("moonhub.core.sched").defaults()

describe("ollama adapter: request mapping #unit", function()
   it("keep_alive: seconds, durations, 0 and negative; anything else is a 400", function()
      assert.equal(300, ol.keep_alive("5m"))
      assert.equal(5400, ol.keep_alive("1h30m"))
      assert.equal(10, ol.keep_alive(10))
      assert.equal(42, ol.keep_alive("42"))
      assert.equal(0, ol.keep_alive(0))
      assert.equal(0, ol.keep_alive("0s"))
      assert.equal(-1, ol.keep_alive(-1))
      assert.equal(-1, ol.keep_alive("-5m"))
      assert.is_nil(ol.keep_alive(nil))
      assert.is_nil(ol.keep_alive(json.null))
      local e = err_of(function() ol.keep_alive("soon") end)
      assert.equal(400, e.status)
      assert.equal("keep_alive", e.param)
      assert.matches("5m", e.message)
      assert.equal(400, err_of(function() ol.keep_alive(true) end).status)
      assert.matches("out of range", err_of(function() ol.keep_alive(1e12) end).message)
   end)

   it("options map to the sampler, over the engine's defaults and a created model's parameters", function()
      local o = ol.options(oa.decode([[{"temperature": 0.2, "top_k": 5, "top_p": 0.5, "min_p": 0.1, "seed": 9,
         "num_predict": 7, "num_ctx": 256, "stop": ["a", "b"], "repeat_penalty": 1.3,
         "presence_penalty": 0.5, "frequency_penalty": -0.5}]]))
      assert.same({ temperature = 0.2, top_k = 5, top_p = 0.5, min_p = 0.1, seed = 9, repeat_penalty = 1.3,
         presence_penalty = 0.5, frequency_penalty = -0.5 }, o.sampling)
      assert.equal(7, o.max_tokens)
      assert.equal(256, o.num_ctx)
      assert.same({ "a", "b" }, o.stop)
      local d = ol.options(nil)
      for _, k in ipairs({ "temperature", "top_p", "top_k", "min_p" }) do assert.equal(D[k], d.sampling[k]) end
      assert.is_nil(d.max_tokens)
      -- parameters are defaults; the request's options win
      local m = ol.options({ temperature = 0.9 }, { temperature = 0.1, num_predict = 3, stop = "x" })
      assert.equal(0.9, m.sampling.temperature)
      assert.equal(3, m.max_tokens)
      assert.same({ "x" }, m.stop)
      assert.is_nil(ol.options({ num_predict = -1 }).max_tokens)
      assert.is_nil(ol.options({ num_predict = -2 }).max_tokens)
      assert.equal(4, ol.options({ num_predict = 4.0 }).max_tokens)
   end)

   it("options: unknown and unsupported ones are 400s naming them; runtime-only ones are ignored", function()
      local e = err_of(function() ol.options({ temprature = 1 }) end)
      assert.equal(400, e.status)
      assert.matches("'options.temprature' is not an option", e.message)
      assert.matches("options.mirostat", err_of(function() ol.options({ mirostat = 2 }) end).message)
      assert.matches("at least 1", err_of(function() ol.options({ num_predict = 0 }) end).message)
      assert.matches("options.top_p", err_of(function() ol.options({ top_p = 2 }) end).message)
      assert.matches("options.seed.-integer", err_of(function() ol.options({ seed = 1.5 }) end).message)
      assert.matches("options.stop%[1%]", err_of(function() ol.options({ stop = { "a", 3 } }) end).message)
      -- found by the malformed-body sweep of ollama_serve_spec: both were internal errors
      assert.matches("options.stop%[0%]", err_of(function() ol.options({ stop = "" }) end).message)
      assert.matches("options.seed' is out of range", err_of(function() ol.options({ seed = 1e300 }) end).message)
      assert.matches("parameters.top_k", err_of(function() ol.options({}, { top_k = "x" }) end).message)
      assert.matches("'options' must be an object", err_of(function() ol.options("x") end).message)
      local o = ol.options({ num_gpu = 99, num_thread = 4, use_mmap = false, mirostat = 0, typical_p = 1.0,
         repeat_last_n = D.repeat_last_n })
      assert.equal(D.temperature, o.sampling.temperature)
      assert.matches("repeat_last_n", err_of(function() ol.options({ repeat_last_n = 7 }) end).message)
   end)

   it("format: json, a schema, or free text", function()
      assert.same({ type = "json_object" }, ol.format("json"))
      local schema = oa.decode('{"type": "object"}')
      assert.same({ type = "json_schema", schema = schema }, ol.format(schema))
      assert.is_nil(ol.format(""))
      assert.is_nil(ol.format(nil))
      assert.equal("format", err_of(function() ol.format("yaml") end).param)
   end)

   it("chat: messages, tool calls with object arguments, tools, stream on by default", function()
      local r = ol.chat_request(oa.decode([[{"model": "smol", "messages": [
         {"role": "system", "content": "be brief"},
         {"role": "user", "content": "weather?"},
         {"role": "assistant", "content": "",
          "tool_calls": [{"function": {"name": "get", "arguments": {"city": "Oslo"}}}]},
         {"role": "tool", "content": "rain", "tool_name": "get"}],
         "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
         "keep_alive": "1m", "format": "json", "options": {"num_predict": 4}}]]))
      assert.equal("chat", r.kind)
      assert.equal("smol", r.model)
      assert.is_true(r.stream)
      assert.equal(60, r.keep_alive)
      assert.equal(4, r.max_tokens)
      assert.equal(1, r.n)
      assert.same({ type = "json_object" }, r.format)
      assert.equal("auto", r.tool_choice)
      assert.equal(1, #r.tools)
      assert.equal(4, #r.messages)
      local call = r.messages[3].tool_calls[1]
      assert.equal("get", call["function"].name)
      assert.same({ city = "Oslo" }, json.decode(call["function"].arguments))
      assert.equal("get", r.messages[4].name)
      assert.is_false(r.empty)
      assert.is_false(ol.chat_request({ model = "m", stream = false, messages = {} }).stream)
      assert.is_true(ol.chat_request({ model = "m" }).empty)
   end)

   it("chat: a created model's system prompt goes first unless the client sent one", function()
      local x = { system = "You are terse.", parameters = { num_predict = 2 }, template_file = "/t.jinja" }
      local r = ol.chat_request({ model = "m", messages = { { role = "user", content = "hi" } } }, x)
      assert.same({ role = "system", content = "You are terse." }, r.messages[1])
      assert.equal(2, r.max_tokens)
      assert.equal("/t.jinja", r.template_file)
      local own = ol.chat_request({ model = "m", messages = { { role = "system", content = "mine" },
         { role = "user", content = "hi" } } }, x)
      assert.equal("mine", own.messages[1].content)
      assert.equal(2, #own.messages)
   end)

   it("chat: bad messages, images and missing models are 400s", function()
      local e = err_of(function() ol.chat_request({ messages = {} }) end)
      assert.equal("model", e.param)
      assert.matches("role", err_of(function()
         ol.chat_request({ model = "m", messages = { { role = "robot", content = "x" } } })
      end).message)
      e = err_of(function()
         ol.chat_request({ model = "m", messages = { { role = "user", content = "x", images = { "aGk=" } } } })
      end)
      assert.equal(400, e.status)
      assert.matches("images are not supported", e.message)
      assert.matches("only allowed on assistant", err_of(function()
         ol.chat_request({ model = "m", messages = { { role = "user", content = "x",
            tool_calls = { { ["function"] = { name = "f" } } } } } })
      end).message)
      assert.matches("think", err_of(function() ol.chat_request({ model = "m", think = true }) end).message)
   end)

   it("generate: chat template by default, raw text, a Go template, context ids", function()
      local r = ol.generate_request({ model = "m", prompt = "hi", system = "sys" })
      assert.equal("chat", r.kind)
      assert.same({ { role = "system", content = "sys" }, { role = "user", content = "hi" } }, r.messages)
      r = ol.generate_request({ model = "m", prompt = "hi", raw = true, context = { 1, 2, 3 } })
      assert.equal("text", r.kind)
      assert.same({ "hi" }, r.prompts)
      assert.same({ 1, 2, 3 }, r.context)
      r = ol.generate_request({ model = "m", prompt = "hi", system = "S",
         template = "{{ .System }}\nQ: {{ .Prompt }}\nA: {{ .Response }}<end>" })
      assert.equal("text", r.kind)
      assert.same({ "S\nQ: hi\nA: " }, r.prompts)
      assert.is_true(ol.generate_request({ model = "m", prompt = "" }).empty)
      assert.is_false(ol.generate_request({ model = "m", prompt = "", context = { 5 } }).empty)
      assert.matches("suffix", err_of(function() ol.generate_request({ model = "m", suffix = "x" }) end).message)
      assert.matches("images", err_of(function() ol.generate_request({ model = "m", images = { "x" } }) end).message)
      assert.equal("context", err_of(function() ol.generate_request({ model = "m", context = { -1 } }) end).param)
   end)

   it("Go templates: trim markers, the cut at .Response, other actions refused", function()
      assert.equal("[S]hi", ol.render_template("[{{ .System }}]  {{- .Prompt }}", { System = "S", Prompt = "hi" }))
      assert.equal("<s>hi", ol.render_template("<s>{{.Prompt}}{{.Response}}</s>", { Prompt = "hi" }))
      assert.equal(" x", ol.render_template("{{ .System }} x", {}))
      local e = err_of(function() ol.render_template("{{ if .System }}x{{ end }}", {}) end)
      assert.equal("template", e.param)
      assert.matches("if %.System", e.message)
   end)
end)

describe("ollama adapter: responses #unit", function()
   it("timings are integer nanoseconds from the clock and the scheduler's figures", function()
      local t = ol.timings(10.0, 10.25, 11.5, { prompt_tokens = 12, completion_tokens = 8 },
         { prefill_ms = 40, decode_tps = 16 })
      assert.same({ total_duration = 1500000000, load_duration = 250000000, prompt_eval_count = 12,
         prompt_eval_duration = 40000000, eval_count = 8, eval_duration = 500000000 }, t)
      for _, v in pairs(t) do assert.equal("integer", math.type(v)) end
      -- no decode rate (one token): eval is what is left after load and prefill
      t = ol.timings(0, 0.5, 2.0, { prompt_tokens = 3, completion_tokens = 1 }, { prefill_ms = 500 })
      assert.equal(1000000000, t.eval_duration)
      assert.equal(0, ol.timings(0, 0, 0, { prompt_tokens = 1 }, nil).eval_count)
   end)

   it("tool calls come back with arguments as objects; created_at is RFC 3339", function()
      local m = ol.SHAPES.chat("ignored", { calls = { { name = "get", arguments = '{"city": "Oslo"}' } },
         content = "" })
      local back = json.decode(json.encode(m))
      assert.same({ { ["function"] = { name = "get", arguments = { city = "Oslo" } } } }, back.message.tool_calls)
      assert.equal("", back.message.content)
      assert.same({ message = { role = "assistant", content = "hi" } }, ol.SHAPES.chat("hi", { text = "hi" }))
      assert.same({ response = "x" }, ol.SHAPES.generate("x"))
      assert.equal("1970-01-01T00:00:01.500000000Z", ol.iso_time(1.5))
   end)

   it("errors are Ollama's {\"error\": message}", function()
      assert.same({ error = "model 'x' not found" }, json.decode(ol.error_body({ status = 404,
         message = "model 'x' not found", param = "model" })))
   end)
end)

describe("ollama routes and body types #unit", function()
   local server = require "moonhub.server"
   local mw = require "moonhub.server.middleware"

   local function req(ct, body)
      return { body = body or "{}", headers = { ["content-type"] = ct }, route = {} }
   end

   it("bodies without a JSON content type are read as JSON; other types are 415", function()
      local pass = function() return "next" end
      assert.equal("next", ol.body_type(nil, req(nil), pass))
      assert.equal("next", ol.body_type(nil, req("text/plain; charset=utf-8"), pass))
      assert.equal("next", ol.body_type(nil, req("application/x-www-form-urlencoded"), pass))
      assert.equal("next", ol.body_type(nil, req("Application/JSON"), pass))
      local e = err_of(function() ol.body_type(nil, req("multipart/form-data; boundary=x"), pass) end)
      assert.equal(415, e.status)
      assert.matches("multipart/form%-data", e.message)
      -- the OpenAI routes still want application/json
      assert.equal(415, err_of(function() mw.json(nil, req(nil), pass) end).status)
   end)

   it("the table routes /api/* to Ollama (its error shape, its body check) and admin to /api/moonhub/*", function()
      local t = server.route_table()
      local function has(r, f) for _, m in ipairs(r.middleware) do if m == f then return true end end return false end
      for _, p in ipairs({ { "POST", "/api/chat" }, { "POST", "/api/generate" }, { "GET", "/api/tags" },
            { "POST", "/api/show" }, { "GET", "/api/ps" }, { "POST", "/api/pull" }, { "DELETE", "/api/delete" },
            { "POST", "/api/copy" }, { "POST", "/api/create" }, { "POST", "/api/embed" },
            { "POST", "/api/embeddings" }, { "GET", "/api/version" }, { "HEAD", "/" } }) do
         local r = t:find(p[1], p[2])
         assert.is_table(r, p[2])
         assert.equal(ol.error_body, r.error_body, p[2])
         if p[1] ~= "GET" and p[1] ~= "HEAD" then
            assert.is_true(has(r, ol.body_type) and has(r, mw.auth) and not has(r, mw.json), p[2])
         end
      end
      assert.is_true(has(t:find("POST", "/api/chat"), mw.rate))
      assert.is_false(has(t:find("GET", "/api/version"), mw.auth))
      local chat = t:find("POST", "/v1/chat/completions")
      assert.is_true(has(chat, mw.json) and chat.error_body == nil)
      local ps = t:find("GET", "/api/moonhub/ps")
      assert.is_table(ps)
      assert.is_nil(ps.error_body)
      assert.is_table((t:find("GET", "/api/moonhub/history/3")))
      assert.is_nil((t:find("GET", "/api/models")))
   end)
end)
