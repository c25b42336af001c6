-- End-to-end specs of the Ollama routes over HTTP: `moonhub serve` as a
-- child on port 0 over a temporary registry holding the shared smol model;
-- curl as Ollama's documentation uses it (-d, no JSON content type), error
-- shapes per protocol, NDJSON streams, keep_alive load/unload, a created
-- model's template. Layer: tests. Every curl is bounded; the server is
-- killed in teardown.
local H = require "helpers.host"
local data = require "helpers.data"
local http = require("moonhub").http
local now = require("moonhub.core.sys").now
local json = require "dkjson"
local q = H.q

local MODEL = "models/mh-smol-llama-17m-Q8_0.gguf"

local function alive(pid)
   local stat = H.read("/proc/" .. pid .. "/stat")
   return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

local function start(home)
   local p = io.popen(string.format("MOONHUB_HOME=%s %s serve --port 0 --ctx 256 --parallel 1 --threads 1 "
      .. ">%s 2>%s & echo $!", q(home), q(H.exe), q(home .. "/serve.out"), q(home .. "/serve.err")))
   local pid = tonumber(p:read("l"))
   p:close()
   local t0, port = now(), nil
   while not port and now() - t0 < 15 do
      local ls = io.popen("ls " .. q(home .. "/run") .. " 2>/dev/null")
      port = tonumber((ls:read("a") or ""):match("server%-(%d+)%.json"))
      ls:close()
      if not port then http.sleep(0.05) end
   end
   assert(port, "server did not start: " .. tostring(H.read(home .. "/serve.err")))
   return { pid = pid, base = "http://127.0.0.1:" .. port, home = home }
end

local function stop(s)
   if not s then return end
   os.execute("kill " .. s.pid .. " 2>/dev/null")
   local t0 = now()
   while alive(s.pid) and now() - t0 < 5 do http.sleep(0.05) end
   if alive(s.pid) then os.execute("kill -9 " .. s.pid .. " 2>/dev/null") end
end

-- curl(s, method, path, body, args) -> status, body text, content type.
-- The body goes as `curl -d` sends it (form content type) unless args say.
local function curl(s, method, path, body, args)
   local f = s.home .. "/req.json"
   H.write(f, body or "")
   local p = io.popen(string.format("curl -s -N -m 30 -X %s %s %s -o %s -w '%%{http_code} %%{content_type}' %s",
      method, body and ("--data-binary @" .. q(f)) or "", args or "", q(s.home .. "/resp"), q(s.base .. path)))
   local out = p:read("a")
   p:close()
   local code, ct = out:match("^(%d+) ?(.*)$")
   return tonumber(code), H.read(s.home .. "/resp") or "", ct
end

local function lines(text)
   local out = {}
   for l in text:gmatch("[^\n]+") do out[#out + 1] = json.decode(l) end
   return out
end

describe("Ollama routes over HTTP #integration", function()
   local home, srv

   setup(function()
      local path = data.path(MODEL)
      if not path then return end
      home = H.tmpdir()
      assert.equal(0, select(3, H.run(home, "import " .. q(path) .. " --name smol")))
      srv = start(home)
   end)
   teardown(function()
      stop(srv)
      if home then H.rmdir(home) end
   end)

   local function ready()
      if srv then return true end
      data.need(MODEL, pending)
      return false
   end

   it("takes bodies without a JSON content type, as Ollama's curl examples send them", function()
      if not ready() then return end
      local body = json.encode({ model = "smol", prompt = "Hi", stream = false, options = { num_predict = 2 } })
      local code, text, ct = curl(srv, "POST", "/api/generate", body)            -- curl -d: a form type
      assert.equal(200, code, text)
      assert.matches("application/json", ct)
      assert.equal(2, json.decode(text).eval_count)
      code = curl(srv, "POST", "/api/generate", body, "-H 'Content-Type:'")       -- none at all
      assert.equal(200, code)
      code, text = curl(srv, "POST", "/api/generate", body, "-H 'Content-Type: text/plain'")
      assert.equal(200, code, text)
      -- the OpenAI routes keep wanting application/json, in their own error shape
      code, text = curl(srv, "POST", "/v1/completions", json.encode({ prompt = "x", max_tokens = 1 }))
      assert.equal(415, code)
      assert.equal("unsupported_media_type", json.decode(text).error.code)
   end)

   it("returns a context that continues the text: the prompt's ids, then the answer's, one BOS", function()
      if not ready() then return end
      local st = data.path("models/stories260K.gguf")      -- a tokenizer that adds a BOS
      assert.equal(0, select(3, H.run(home, "import " .. q(st) .. " --name st")))
      local code, text = curl(srv, "POST", "/api/generate", json.encode({ model = "st", prompt = "Once",
         stream = false, options = { num_predict = 6, seed = 1 } }))        -- stays loaded for /detokenize
      assert.equal(200, code, text)
      local res = json.decode(text)
      local bos = 0
      for _, id in ipairs(res.context) do if id == 1 then bos = bos + 1 end end
      assert.equal(1, bos)
      local tail = table.move(res.context, res.prompt_eval_count + 1, #res.context, 1, {})
      code, text = curl(srv, "POST", "/detokenize", json.encode({ model = "st", tokens = tail }),
         "-H 'Content-Type: application/json'")
      assert.equal(200, code, text)
      assert.equal(res.response, (json.decode(text).content:gsub("^ ", "")))
      assert.equal(200, (curl(srv, "POST", "/api/generate", json.encode({ model = "st", keep_alive = 0 }))))
   end)

   it("answers errors in Ollama's shape on /api/* and OpenAI's on /v1/*", function()
      if not ready() then return end
      local code, text = curl(srv, "POST", "/api/chat", json.encode({ model = "nope",
         messages = { { role = "user", content = "x" } } }))
      assert.equal(404, code)
      local e = json.decode(text)
      assert.equal("string", type(e.error), text)
      assert.matches("nope", e.error)
      code, text = curl(srv, "POST", "/api/chat", "{not json")
      assert.equal(400, code)
      assert.equal("string", type(json.decode(text).error))
      code, text = curl(srv, "POST", "/api/generate", json.encode({ model = "smol", prompt = "x",
         options = { num_predict = 0 } }))
      assert.equal(400, code)
      assert.matches("num_predict", json.decode(text).error)
      code, text = curl(srv, "POST", "/api/generate", json.encode({ model = "smol", prompt = "x", stream = false,
         format = { type = "strange" } }))
      assert.equal(400, code)
      assert.matches("^format: ", json.decode(text).error)             -- Ollama's field, not OpenAI's
      code, text = curl(srv, "POST", "/api/chat", "{}", "-H 'Content-Type: multipart/form-data'")
      assert.equal(415, code)
      assert.equal("string", type(json.decode(text).error))
      code, text = curl(srv, "POST", "/v1/chat/completions", json.encode({ model = "nope",
         messages = { { role = "user", content = "x" } } }), "-H 'Content-Type: application/json'")
      assert.equal(404, code)
      assert.equal("model_not_found", json.decode(text).error.code)
   end)

   it("answers malformed bodies with 4xx in Ollama's shape, never a 500 (every field x wrong values)", function()
      if not ready() then return end
      local oa = require "moonhub.openai"
      local function msgs() return oa.array({ { role = "user", content = "hi" } }) end
      local routes = {
         { "POST", "/api/chat", function() return { model = "smol", messages = msgs(), stream = false,
            options = { num_predict = 1 } } end, { "tools", "format", "keep_alive", "think", "options.stop",
            "options.seed", "options.num_ctx", "options.top_p", "options.mirostat", "messages" } },
         { "POST", "/api/generate", function() return { model = "smol", prompt = "hi", stream = false,
            options = { num_predict = 1 } } end, { "system", "template", "raw", "context", "images", "suffix",
            "format", "keep_alive", "options.temperature", "options.num_predict" } },
         { "POST", "/api/embed", function() return { model = "smol", input = "hi" } end,
            { "truncate", "dimensions", "options", "keep_alive" } },
         { "POST", "/api/embeddings", function() return { model = "smol", prompt = "hi" } end, { "options" } },
         { "POST", "/api/show", function() return { model = "smol" } end, {} },
         { "POST", "/api/pull", function() return { model = "not a repo", stream = false } end, { "stream" } },
         { "POST", "/api/copy", function() return { source = "smol", destination = "fz" } end, {} },
         { "POST", "/api/create", function() return { model = "fz2", from = "smol", stream = false } end,
            { "template", "system", "parameters", "files", "quantize" } },
         { "DELETE", "/api/delete", function() return { model = "no-such" } end, {} },
      }
      local values = { 1, -1, 1.5, "x", "", true, oa.object({}), oa.array({ 1 }), oa.object({ a = 1 }), 1e300 }
      local n = 0
      for _, rt in ipairs(routes) do
         local fields = {}
         for k in pairs(rt[3]()) do if k ~= "stream" then fields[#fields + 1] = k end end
         table.sort(fields)
         for _, f in ipairs(rt[4]) do fields[#fields + 1] = f end
         for _, f in ipairs(fields) do
            for _, v in ipairs(values) do
               local body = rt[3]()
               local top, sub = f:match("^([^.]+)%.(.+)$")
               if top then body[top] = body[top] or {}; body[top][sub] = v else body[f] = v end
               local code, text = curl(srv, rt[1], rt[2], json.encode(body))
               n = n + 1
               local what = string.format("%s %s %s=%s: %s", rt[1], rt[2], f, json.encode(v), text:sub(1, 200))
               assert.is_true(code ~= nil and code < 500, what)
               if code >= 400 then assert.equal("string", type((json.decode(text) or {}).error), what) end
            end
         end
      end
      assert.is_true(n > 300)
      local code = curl(srv, "POST", "/api/chat", json.encode({ model = "smol", messages = msgs(), stream = false,
         options = { num_predict = 1 } }))
      assert.equal(200, code)
      assert.is_nil((H.read(home .. "/serve.err") or ""):find("internal error", 1, true))
   end)

   it("streams NDJSON by default: pieces, then one done line with the counts", function()
      if not ready() then return end
      local code, text, ct = curl(srv, "POST", "/api/chat", json.encode({ model = "smol",
         messages = { { role = "user", content = "Hello" } }, options = { num_predict = 3, seed = 1 } }))
      assert.equal(200, code)
      assert.matches("application/x%-ndjson", ct)
      local ls = lines(text)
      assert.is_true(#ls >= 2)
      local last = ls[#ls]
      assert.is_true(last.done)
      assert.equal("length", last.done_reason)
      assert.equal(3, last.eval_count)
      assert.equal("integer", math.type(last.total_duration))
      local pieces = {}
      for i = 1, #ls - 1 do
         assert.is_false(ls[i].done)
         pieces[#pieces + 1] = ls[i].message.content
      end
      local _, one = curl(srv, "POST", "/api/chat", json.encode({ model = "smol", stream = false,
         messages = { { role = "user", content = "Hello" } }, options = { num_predict = 3, seed = 1 } }))
      assert.equal(json.decode(one).message.content, table.concat(pieces))
   end)

   it("keep_alive: an empty request loads (-1: for good) or unloads (0); HEAD / answers", function()
      if not ready() then return end
      local function ps()
         local _, text = curl(srv, "GET", "/api/ps")
         return json.decode(text).models
      end
      local _, text = curl(srv, "POST", "/api/generate", json.encode({ model = "smol", keep_alive = -1 }))
      assert.equal("load", json.decode(text).done_reason)
      assert.equal(1, #ps())
      assert.equal("smol:latest", ps()[1].name)
      _, text = curl(srv, "POST", "/api/generate", json.encode({ model = "smol", keep_alive = "0" }))
      assert.equal("unload", json.decode(text).done_reason)
      assert.equal(0, #ps())
      local code = curl(srv, "HEAD", "/", nil, "-I")
      assert.equal(200, code)
   end)

   it("a created model's Jinja template and system prompt shape its prompts", function()
      if not ready() then return end
      local tpl = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]"
      local code, text = curl(srv, "POST", "/api/create", json.encode({ model = "bracket", from = "smol",
         template = tpl, system = "S", stream = false }))
      assert.equal(200, code, text)
      local function prompt_count(model)
         local _, t = curl(srv, "POST", "/api/chat", json.encode({ model = model, stream = false,
            messages = { { role = "user", content = "hello there" } }, options = { num_predict = 1 } }))
         return json.decode(t).prompt_eval_count
      end
      -- the rendered prompt, tokenized by hand, is what the model was fed
      local tok_code, toks = curl(srv, "POST", "/tokenize", json.encode({ model = "smol",
         content = "[system] S\n[user] hello there\n[assistant]" }), "-H 'Content-Type: application/json'")
      assert.equal(200, tok_code)
      local n = #json.decode(toks).tokens
      local got = prompt_count("bracket")
      assert.is_true(got == n or got == n + 1, string.format("%d tokens, %d prompt", n, got))   -- + BOS
      code, text = curl(srv, "POST", "/api/create", json.encode({ model = "go", from = "smol",
         template = "{{ .Prompt }}{{ if .System }}x{{ end }}", stream = false }))
      assert.equal(400, code)
      assert.matches("Jinja", json.decode(text).error)
      code, text = curl(srv, "POST", "/api/show", json.encode({ model = "bracket" }))
      assert.equal(200, code)
      assert.equal(tpl, json.decode(text).template)
      assert.equal(200, (curl(srv, "DELETE", "/api/delete", json.encode({ model = "bracket" }))))
      assert.equal(404, (curl(srv, "POST", "/api/show", json.encode({ model = "bracket" }))))
   end)
end)
