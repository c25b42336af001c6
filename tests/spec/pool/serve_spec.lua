-- End-to-end specs for several models in one server: `moonhub serve` as a
-- child on port 0 over a temporary registry of two small models — JIT load
-- by name, keep_alive unload, LRU eviction at --max-loaded 1, `moonhub ps`,
-- the admin routes (list, show, rm, pull as SSE), --api-key, --history.
-- Layer: tests. Every curl and wait is bounded; servers are killed in teardown.
local H = require "helpers.host"
local S = require "helpers.server"
local data = require "helpers.data"
local fake = require "helpers.fake_hub"
local http = require("moonhub").http
local now = require("moonhub.core.sys").now
local json = require "dkjson"
local q = H.q

-- start(home, args, env) -> {pid, port, base, home}; stop(s): helpers.server
local function start(home, args, env) return S.start_in(home, "--ctx 128 --parallel 1 " .. args, env, 15) end
local stop = S.stop_in

-- curl(s, method, path, body, headers) -> status, body text
local function curl(s, method, path, body, headers)
   local f = s.home .. "/req.json"
   H.write(f, body or "")
   local cmd = string.format("curl -s -N -m 60 -X %s %s -o %s -w '%%{http_code}' %s %s", method,
      body and ("--data-binary @" .. q(f) .. " -H 'Content-Type: application/json'") or "",
      q(s.home .. "/resp"), headers or "", q(s.base .. path))
   local p = io.popen(cmd)
   local code = tonumber(p:read("a"))
   p:close()
   return code, H.read(s.home .. "/resp") or ""
end

local function chat(s, model, extra)
   local body = { messages = { { role = "user", content = "Once upon a time" } }, max_tokens = 3,
      temperature = 0, model = model }
   for k, v in pairs(extra or {}) do body[k] = v end
   local code, text = curl(s, "POST", "/v1/chat/completions", json.encode(body))
   return code, json.decode(text)
end

local function loaded(s)
   local code, text = curl(s, "GET", "/api/moonhub/ps")
   assert.equal(200, code)
   local out = {}
   for _, m in ipairs(json.decode(text).models) do out[#out + 1] = m.name end
   table.sort(out)
   return table.concat(out, ","), json.decode(text)
end

local function eventually(fn, secs)
   local t0 = now()
   while now() - t0 < secs do
      if fn() then return true end
      http.sleep(0.05)
   end
   return fn()
end

describe("serve with many models #integration", function()
   local home, srv, stories, smol

   setup(function()
      stories = data.path("models/stories260K.gguf")
      smol = data.path("models/mh-smol-llama-17m-Q8_0.gguf")
      if not (stories and smol) then return end
      home = H.tmpdir()
      assert.equal(0, select(3, H.run(home, "import " .. q(stories) .. " --name stories")))
      assert.equal(0, select(3, H.run(home, "import " .. q(smol) .. " --name smol")))
      srv = start(home, "--max-loaded 1")
   end)
   teardown(function()
      stop(srv)
      if srv then assert.is_nil(H.read(home .. "/run/server-" .. srv.port .. ".json")) end
      H.rmdir(home)
   end)

   local function ready()
      if srv then return true end
      data.need("models/stories260K.gguf", pending)
      data.need("models/mh-smol-llama-17m-Q8_0.gguf", pending)
      return false
   end

   it("lists the registry on /v1/models and loads nothing before a request", function()
      if not ready() then return end
      local code, text = curl(srv, "GET", "/v1/models")
      assert.equal(200, code)
      local ids = {}
      for _, m in ipairs(json.decode(text).data) do ids[#ids + 1] = m.id end
      table.sort(ids)
      assert.same({ "smol:Q8_0", "stories:F32" }, ids)   -- one per version: latest is no row
      code, text = curl(srv, "GET", "/v1/models/smol")   -- the name answers with its latest version
      assert.equal(200, code)
      assert.equal("smol:Q8_0", json.decode(text).id)
      assert.equal("", (loaded(srv)))
   end)

   it("loads a model by name on first use; the least recently used goes at --max-loaded 1", function()
      if not ready() then return end
      local code, res = chat(srv, "stories")
      assert.equal(200, code)
      assert.equal("stories:latest", res.model)
      assert.equal(3, res.usage.completion_tokens)
      assert.equal("stories:latest", (loaded(srv)))
      code, res = chat(srv, "smol:Q8_0")
      assert.equal(200, code)
      assert.equal("smol:Q8_0", res.model)
      assert.equal("smol:Q8_0", (loaded(srv)))
      -- smol and smol:Q8_0 are the same version: no second load
      code = chat(srv, "smol")
      assert.equal(200, code)
      assert.equal("smol:Q8_0", (loaded(srv)))
   end)

   it("answers 404 model_not_found for a name the registry lacks", function()
      if not ready() then return end
      local code, res = chat(srv, "no-such-model")
      assert.equal(404, code)
      assert.equal("model_not_found", res.error.code)
      assert.matches("no%-such%-model", res.error.message)
      code = chat(srv, "/etc/passwd")
      assert.equal(404, code)
   end)

   it("keep_alive 0 unloads after the answer; a short one expires; negative keeps", function()
      if not ready() then return end
      assert.equal(200, (chat(srv, "stories", { keep_alive = 0 })))
      assert.equal("", (loaded(srv)))
      -- 10m first, so ps surely sees it loaded however slow the host; then
      -- a request with 1s replaces that, and the model goes once idle
      assert.equal(200, (chat(srv, "stories", { keep_alive = "10m" })))
      local names, st = loaded(srv)
      assert.equal("stories:latest", names)
      assert.is_number(st.models[1].expires_at)
      assert.equal(200, (chat(srv, "stories", { keep_alive = "1s" })))
      assert.is_true(eventually(function() return loaded(srv) == "" end, 60))
      assert.equal(200, (chat(srv, "stories", { keep_alive = -1 })))
      st = select(2, loaded(srv))
      assert.is_true(st.models[1].forever)
      local code, res = chat(srv, "stories", { keep_alive = "soon" })
      assert.equal(400, code)
      assert.equal("keep_alive", res.error.param)
   end)

   it("moonhub ps prints the loaded models of running servers", function()
      if not ready() then return end
      assert.equal(200, (chat(srv, "stories", { keep_alive = -1 })))
      local out, _, rc = H.run(home, "ps")
      assert.equal(0, rc)
      assert.matches("NAME%s+SIZE%s+CONTEXT%s+UNTIL%s+PREFIX CACHE%s+PORT", out)
      -- the prefix store: bytes held / budget (serve's default: a slice of free memory)
      assert.matches("stories:latest%s+[%d%.]+ [KM]iB%s+128%s+Forever%s+[%d%.]+ [KMG]?i?B / [%d%.]+ [KMG]iB%s+"
         .. srv.port, out)
      assert.equal(200, (chat(srv, "smol", { keep_alive = "10m" })))
      out = H.run(home, "ps")
      assert.matches("smol:%S+ .- 128%s+%d+ minutes from now", out)
      assert.not_matches("stories", out)
      local js = json.decode((H.run(home, "ps --json")))
      assert.equal(srv.port, js.servers[1].port)
      assert.matches("^smol:", js.servers[1].models[1].name)
   end)

   it("admin routes: list, show, rm", function()
      if not ready() then return end
      assert.equal(0, select(3, H.run(home, "import " .. q(stories) .. " --name extra")))
      local code, text = curl(srv, "GET", "/api/moonhub/models")
      assert.equal(200, code)
      local names = {}
      for _, r in ipairs(json.decode(text).models) do names[#names + 1] = r.name .. ":" .. r.tag end
      assert.same({ "extra:F32", "smol:Q8_0", "stories:F32" }, names)
      code, text = curl(srv, "GET", "/api/moonhub/models/extra")
      assert.equal(200, code)
      local rec = json.decode(text)
      local real = require("moonhub.fs").realpath(stories)
      assert.equal(real, rec.path)
      assert.equal("gguf", rec.format)
      assert.equal(64, #rec.sha256)
      assert.equal(200, (chat(srv, "extra")))
      assert.matches("extra", (loaded(srv)))
      code, text = curl(srv, "DELETE", "/api/moonhub/models/extra")
      assert.equal(200, code)
      assert.same({ real }, json.decode(text).kept)     -- imported in place: the file stays
      assert.equal("", (loaded(srv)))
      assert.equal(404, (curl(srv, "GET", "/api/moonhub/models/extra")))
      assert.equal(404, (curl(srv, "DELETE", "/api/moonhub/models/extra")))
      assert.equal(405, (curl(srv, "POST", "/api/moonhub/models/stories", "{}")))
      assert.equal(404, (chat(srv, "extra")))
   end)
end)

describe("serve --model --api-key --history #integration", function()
   local home, srv, hub, stories, st_q8

   setup(function()
      stories = data.path("models/stories260K.gguf")
      st_q8 = data.path("models/stories260K-Q8_0.gguf")
      if not (stories and st_q8) then return end
      home = H.tmpdir()
      local env = ""
      if fake.available() then
         hub = fake.start(home, { repos = { ["mh/stories-GGUF"] = { files = { ["stories-Q8_0.gguf"] = st_q8 } } } })
         env = "-u HF_TOKEN -u HF_HOME MOONHUB_HF_ENDPOINT=" .. q(hub.url) .. " HF_HUB_CACHE=" .. q(home .. "/hf-cache")
      end
      srv = start(home, "--model " .. q(stories) .. " --api-key sekrit --history --alias gpt-4o=stories260K", env)
      assert.is_true(eventually(function() return curl(srv, "GET", "/health") == 200 end, 60))
   end)
   teardown(function()
      stop(srv)
      if hub then hub.stop() end
      H.rmdir(home)
   end)

   local AUTH = "-H 'Authorization: Bearer sekrit'"

   it("serves the preloaded model by default (here through an alias) and keeps it loaded", function()
      if not srv then return data.need("models/stories260K.gguf", pending) end
      local code, text = curl(srv, "POST", "/v1/chat/completions",
         json.encode({ model = "gpt-4o", max_tokens = 2,
            messages = { { role = "user", content = "Hi <|im_start|>" } } }),
         AUTH)
      assert.equal(200, code)
      assert.equal("stories260K", json.decode(text).model)
      local _, ps = curl(srv, "GET", "/api/moonhub/ps", nil, AUTH)
      local st = json.decode(ps)
      assert.equal("stories260K", st.models[1].name)
      assert.is_true(st.models[1].forever)
   end)

   it("puts the admin routes behind the API key", function()
      if not srv then return data.need("models/stories260K.gguf", pending) end
      assert.equal(401, (curl(srv, "GET", "/api/moonhub/models")))
      assert.equal(401, (curl(srv, "GET", "/api/moonhub/ps")))
      assert.equal(200, (curl(srv, "GET", "/api/moonhub/models", nil, AUTH)))
   end)

   it("--history stores each conversation; /api/history lists and searches it", function()
      if not srv then return data.need("models/stories260K.gguf", pending) end
      local code = curl(srv, "POST", "/v1/chat/completions",
         json.encode({ messages = { { role = "user", content = "tell me about zebras" } }, max_tokens = 2,
            temperature = 0 }), AUTH)
      assert.equal(200, code)
      local _, text = curl(srv, "GET", "/api/moonhub/history?q=zebras", nil, AUTH)
      local hits = json.decode(text).results
      assert.equal(1, #hits)
      assert.matches("%[zebras%]", hits[1].snippet)
      local id = hits[1].conversation_id
      local _, one = curl(srv, "GET", "/api/moonhub/history/" .. id, nil, AUTH)
      local c = json.decode(one)
      assert.equal("stories260K", c.model)
      assert.equal(2, #c.messages)
      assert.equal("assistant", c.messages[2].role)
      assert.equal(0, c.options.temperature)
      assert.equal(2, c.usage.completion_tokens)
      -- export as Markdown or JSON, a file to save
      local md
      code, md = curl(srv, "GET", "/api/moonhub/history/" .. id .. "/export?format=md", nil, AUTH)
      assert.equal(200, code)
      assert.matches("\n## user\n\ntell me about zebras\n\n## assistant\n", md)
      local doc
      code, doc = curl(srv, "GET", "/api/moonhub/history/" .. id .. "/export?format=json", nil, AUTH)
      assert.equal(200, code)
      doc = json.decode(doc)
      assert.same({ id, "user", "tell me about zebras" }, { doc.id, doc.messages[1].role, doc.messages[1].content })
      assert.equal(400, (curl(srv, "GET", "/api/moonhub/history/" .. id .. "/export?format=html", nil, AUTH)))
      assert.equal(404, (curl(srv, "GET", "/api/moonhub/history/999/export", nil, AUTH)))
      -- "store": false opts out
      curl(srv, "POST", "/v1/chat/completions", json.encode({ store = false,
         messages = { { role = "user", content = "zebras again" } }, max_tokens = 1 }), AUTH)
      _, text = curl(srv, "GET", "/api/moonhub/history?q=again", nil, AUTH)
      assert.equal(0, #json.decode(text).results)
      assert.equal(200, (curl(srv, "DELETE", "/api/moonhub/history/" .. id, nil, AUTH)))
      assert.equal(404, (curl(srv, "GET", "/api/moonhub/history/" .. id, nil, AUTH)))
   end)

   it("pulls with progress as server-sent events", function()
      if not srv then return data.need("models/stories260K.gguf", pending) end
      if not hub then return data.skip("no fake hub", pending) end
      local code, text = curl(srv, "POST", "/api/moonhub/pull", json.encode({ model = "mh/stories-GGUF:Q8_0" }), AUTH)
      assert.equal(200, code)
      local events = {}
      for line in text:gmatch("data: ([^\n]+)") do events[#events + 1] = json.decode(line) end
      assert.equal("pulling mh/stories-GGUF:Q8_0", events[1].status)
      local last, progress = events[#events], nil
      for _, e in ipairs(events) do if e.status == "downloading" then progress = e end end
      assert.equal("success", last.status, text)
      assert.equal("stories:Q8_0", last.model)
      assert.equal(progress.total, progress.completed)
      code, text = curl(srv, "POST", "/api/moonhub/pull", json.encode({ model = "mh/none-GGUF" }), AUTH)
      assert.equal(200, code)
      assert.matches('"error"', text)
      assert.equal(400, (curl(srv, "POST", "/api/moonhub/pull", "{}", AUTH)))
      -- the pulled model answers by name
      local c2 = curl(srv, "POST", "/v1/chat/completions", json.encode({ model = "stories:Q8_0",
         messages = { { role = "user", content = "x" } }, max_tokens = 1 }), AUTH)
      assert.equal(200, c2)
   end)
end)

describe("serve --max-loaded 1: a load that cannot succeed evicts nothing #integration", function()
   local home, srv

   setup(function()
      local stories = data.path("models/stories260K.gguf")
      local smol = data.path("models/mh-smol-llama-17m-Q8_0.gguf")
      if not (stories and smol) then return end
      home = H.tmpdir()
      assert.equal(0, select(3, H.run(home, "import " .. q(stories) .. " --name stories")))
      -- q8_0 KV blocks are 32 wide: smol (head_dim 64) fits, stories (head_dim 8) cannot
      srv = start(home, "--model " .. q(smol) .. " --max-loaded 1 --kv-type q8_0")
      assert.is_true(eventually(function() return curl(srv, "GET", "/health") == 200 end, 60))
   end)
   teardown(function()
      stop(srv)
      H.rmdir(home)
   end)

   it("answers the failed load with its reason and keeps the working model loaded", function()
      if not srv then return data.need("models/mh-smol-llama-17m-Q8_0.gguf", pending) end
      local _, before = loaded(srv)
      assert.equal(1, #before.models)
      local smol_name, loaded_at = before.models[1].name, before.models[1].loaded_at
      local code, res = chat(srv, "stories")
      assert.equal(500, code)
      assert.matches("model 'stories' cannot be served: kv cache: q8_0 needs head_dim a multiple of 32, got 8",
         res.error.message)
      local names, after = loaded(srv)
      assert.equal(smol_name, names)
      assert.equal(loaded_at, after.models[1].loaded_at)      -- never unloaded and reloaded
      assert.equal(200, (chat(srv)))
   end)
end)
