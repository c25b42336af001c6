-- Nothing long on the event loop (issue 23): while `moonhub serve` pulls a
-- 200 MB GGUF from the fake Hub (throttled to last seconds) or loads a slow
-- model on demand, /health and requests for the loaded model answer; the
-- pull's sha256 is verified; requests for the loading model wait and then
-- succeed; /metrics shows the loading state and the event-loop lag.
-- Layer: tests. Big files live in a temp dir only; every wait is bounded.
local H = require "helpers.host"
local S = require "helpers.server"
local data = require "helpers.data"
local fake = require "helpers.fake_hub"
local http = require("moonhub").http
local now = require("moonhub.core.sys").now
local fetch = require "moonhub.core.fetch"
local fs = require "moonhub.fs"
local json = require "dkjson"
local q = H.q

local BIG_MB = 200            -- the acceptance asks for >= 200 MB
local THROTTLE = 40 * 2^20    -- bytes/s: the pull lasts ~5 s (held halfway by a gate)

-- start(home, args, env) -> {pid, port, base, home}; stop(s): helpers.server
local function start(home, args, env) return S.start_in(home, "--ctx 128 --parallel 1 " .. args, env) end
local stop = S.stop_in

-- The curl command of one request: its body, status and time go to files tag.*
local function curl_cmd(s, tag, method, path, body)
   local f = s.home .. "/" .. tag
   if body then H.write(f .. ".req", body) end
   return string.format("curl -s -N -m 60 -X %s %s -o %s -w '%%{http_code} %%{time_total}' %s >%s 2>/dev/null",
      method, body and ("--data-binary @" .. q(f .. ".req") .. " -H 'Content-Type: application/json'") or "",
      q(f .. ".body"), q(s.base .. path), q(f .. ".code"))
end

-- curl(s, method, path, body) -> status, body, seconds (curl's time_total)
local function curl(s, method, path, body)
   os.execute(curl_cmd(s, "req", method, path, body))
   local code, secs = (H.read(s.home .. "/req.code") or ""):match("^(%d+) ([%d.]+)")
   return tonumber(code), H.read(s.home .. "/req.body") or "", tonumber(secs)
end

-- background(s, tag, method, path, body): the request runs on; tag.done appears at its end
local function background(s, tag, method, path, body)
   os.remove(s.home .. "/" .. tag .. ".done")
   os.execute("(" .. curl_cmd(s, tag, method, path, body) .. "; touch " .. q(s.home .. "/" .. tag .. ".done")
      .. ") >/dev/null 2>&1 &")
end

local function finished(s, tag) return fs.stat(s.home .. "/" .. tag .. ".done") ~= nil end

local function eventually(fn, secs)
   local t0 = now()
   while now() - t0 < secs do
      local v = fn()
      if v then return v end
      http.sleep(0.02)
   end
   return fn()
end

local function chat_body(model)
   return json.encode({ model = model, max_tokens = 3, temperature = 0,
      messages = { { role = "user", content = "Once upon a time" } } })
end

-- p-quantile of a list of numbers (nearest rank)
local function quantile(xs, p)
   local s = {}
   for i, v in ipairs(xs) do s[i] = v end
   table.sort(s)
   return s[math.max(1, math.ceil(p * #s))]
end

-- The loop-lag histogram of a /metrics text: {le = count...}, n, and its
-- p99 as the upper bound of the bucket holding it
local function lag_of(text)
   local buckets = {}
   for le, c in text:gmatch('moonhub_event_loop_lag_seconds_bucket{le="([%d.e+-]+)"} (%d+)') do
      buckets[#buckets + 1] = { tonumber(le), tonumber(c) }
   end
   local n = tonumber(text:match("moonhub_event_loop_lag_seconds_count (%d+)"))
   local p99 = math.huge
   for _, b in ipairs(buckets) do
      if n and b[2] >= 0.99 * n then p99 = b[1]; break end
   end
   return { buckets = buckets, n = n, p99 = p99,
      max = tonumber(text:match("moonhub_event_loop_lag_max_seconds ([%d.e+-]+)")) }
end

-- A GGUF of BIG_MB MiB: stories260K's bytes, then padding (a reader stops at
-- the tensors' end); each MiB differs, so a misplaced chunk changes the sha256
local function write_big(path, src)
   local f = assert(io.open(path, "wb"))
   local head = H.read(src)          -- (luassert's assert returns more than its value)
   f:write(head)
   local mib = string.rep("moonhub!", 2^17)
   for i = 1, BIG_MB do f:write(string.format("%08d", i), mib:sub(9)) end
   f:close()
end

-- A model whose load takes a while for an honest reason: the smol HF
-- checkpoint with a tokenizer.json carrying a 150 MB unused string, which
-- the JSON parser still has to read (~0.4 s here).
local function write_slow_model(dir, hf)
   assert(fs.mkdirs(dir))
   for _, f in ipairs({ "config.json", "model.safetensors", "tokenizer_config.json" }) do
      assert(fs.symlink(hf .. "/" .. f, dir .. "/" .. f))
   end
   local tok = assert(H.read(hf .. "/tokenizer.json"))
   local pad = string.rep("slow", 150 * 2^18)
   H.write(dir .. "/tokenizer.json", (tok:gsub("^%s*{", '{"unused_padding": "' .. pad .. '",', 1)))
end

describe("serve: pulls and loads off the event loop #integration #slow", function()
   local home, srv, hub, big, big_sha

   setup(function()
      local stories = data.path("models/stories260K.gguf")
      local hf = data.path("models/hf/mh-smol-llama-17m")
      if not (stories and hf) then return end
      home = H.tmpdir()
      big = home .. "/src/big-Q8_0.gguf"
      assert(fs.mkdirs(home .. "/src"))
      write_big(big, stories)
      big_sha = assert(fetch.sha256_file(big))
      write_slow_model(home .. "/slow", fs.realpath(hf))
      local out, err, rc = H.run(home .. "/home", "import " .. q(home .. "/slow") .. " --name slow")
      assert.equal(0, rc, tostring(out) .. tostring(err))
      hub = fake.start(home, { repos = { ["mh/big-GGUF"] = { files = { ["big-Q8_0.gguf"] = big } } },
         throttle = THROTTLE, gate = home .. "/hub.gate" })
      srv = start(home .. "/home", "--model " .. q(stories), "-u HF_TOKEN -u HF_HOME MOONHUB_HF_ENDPOINT="
         .. q(hub.url) .. " HF_HUB_CACHE=" .. q(home .. "/hf-cache"))
      assert.is_true(eventually(function() return curl(srv, "GET", "/health") == 200 end, 60) ~= nil)
   end)
   teardown(function()
      stop(srv)
      if hub then hub.stop() end
      if home then H.rmdir(home) end
   end)

   it("answers /health and completions during a 200 MB pull, which completes verified", function()
      if not srv then return data.need("models/hf/mh-smol-llama-17m", pending) end
      background(srv, "pull", "POST", "/api/moonhub/pull", json.encode({ model = "mh/big-GGUF:Q8_0", name = "big" }))
      local pull_out = srv.home .. "/pull.body"
      assert.truthy(eventually(function() return (H.read(pull_out) or ""):find('"downloading"', 1, true) end, 30),
         "the pull never started downloading: " .. tostring(H.read(pull_out)))
      local health = {}
      for i = 1, 20 do
         local code, _, secs = curl(srv, "GET", "/health")
         assert.equal(200, code)
         health[i] = secs
         http.sleep(0.02)
      end
      for _ = 1, 5 do
         local code, text = curl(srv, "POST", "/v1/chat/completions", chat_body("stories260K"))
         assert.equal(200, code, text)
      end
      -- the event that matters: all 25 answers came while the pull still ran
      -- (the fake hub holds it halfway until the gate file exists)
      assert.is_false(finished(srv, "pull"),
         "the requests were answered only after the pull ended: the loop was blocked")
      H.write(home .. "/hub.gate", "")
      assert.truthy(eventually(function() return finished(srv, "pull") end, 120), "the pull did not end")
      local events = S.sse(H.read(pull_out) or "")
      local last = events[#events]
      assert.equal("success", last.status, H.read(pull_out))
      assert.equal("big:Q8_0", last.model)
      local code, text = curl(srv, "GET", "/api/moonhub/models/big:Q8_0")
      assert.equal(200, code)
      assert.equal(big_sha, json.decode(text).sha256)
      assert.equal(big_sha, fetch.sha256_file(last.path))
      local lag = lag_of(select(2, curl(srv, "GET", "/metrics")))
      print(string.format("\noffloop pull: /health p50 %.1f ms p99 %.1f ms max %.1f ms; loop lag p99 <= %g s "
         .. "(max %.1f ms, %d samples)", quantile(health, 0.5) * 1e3, quantile(health, 0.99) * 1e3,
         quantile(health, 1) * 1e3, lag.p99, lag.max * 1e3, lag.n))
      -- the figures are printed, never asserted (house rule: no wall-clock
      -- bounds in tests; docs/testing.md): what fails here is the order of
      -- events above (every /health answered while the pull was running)
      assert.is_true(lag.n > 0, "the loop-lag probe never ran")
   end)

   it("serves the loaded model while another loads; requests for the loading one wait, then answer", function()
      if not srv then return data.need("models/hf/mh-smol-llama-17m", pending) end
      background(srv, "slow1", "POST", "/v1/chat/completions", chat_body("slow"))
      background(srv, "slow2", "POST", "/v1/chat/completions", chat_body("slow"))
      -- /api/ps answers during the load and shows it (a load on the loop
      -- thread could never be seen in flight)
      local seen = eventually(function()
         local _, text = curl(srv, "GET", "/api/moonhub/ps")
         local st = json.decode(text) or { models = {} }
         for _, m in ipairs(st.models) do
            if m.name == "slow:latest" and m.state == "loading" then return m end
         end
      end, 20)
      assert.truthy(seen, "never saw the model loading")
      local code, text = curl(srv, "POST", "/v1/chat/completions", chat_body("stories260K"))
      assert.equal(200, code, text)
      local metrics = select(2, curl(srv, "GET", "/metrics"))
      local loading_then = tonumber(metrics:match("moonhub_models_loading (%d+)"))
      assert.truthy(eventually(function() return finished(srv, "slow1") and finished(srv, "slow2") end, 60))
      for _, tag in ipairs({ "slow1", "slow2" }) do
         local c = tonumber((H.read(srv.home .. "/" .. tag .. ".code") or ""):match("^%d+"))
         local body = H.read(srv.home .. "/" .. tag .. ".body")
         assert.equal(200, c, body)
         assert.equal("slow:latest", json.decode(body).model)
      end
      local _, ps = curl(srv, "GET", "/api/moonhub/ps")
      local states = {}
      for _, m in ipairs(json.decode(ps).models) do states[m.name] = m.state end
      assert.same({ ["stories260K"] = "loaded", ["slow:latest"] = "loaded" }, states)
      local after = select(2, curl(srv, "GET", "/metrics"))
      assert.equal(0, tonumber(after:match("moonhub_models_loading (%d+)")))
      local lag = lag_of(after)
      print(string.format("\noffloop load: seen loading after %.2f s; moonhub_models_loading was %s during "
         .. "a chat on the other model; loop lag p99 <= %g s (max %.1f ms, %d samples)", seen.loading_s,
         tostring(loading_then), lag.p99, lag.max * 1e3, lag.n))
      assert.is_true(lag.n > 0, "the loop-lag probe never ran")   -- figures printed, not asserted
   end)
end)
