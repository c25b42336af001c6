-- Acceptance specs for `moonhub serve` limits: API key (401, public
-- routes), body size (413), rate limit (429 + Retry-After), a full queue
-- (503 + Retry-After), a client that hangs up mid-stream, and SIGTERM.
-- Layer: tests (helpers.server). After each error the server must still serve.
local S = require "helpers.server"
local data = require "helpers.data"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"
local KEY = "sekrit-key"

local function body(n, stream)
   return { messages = { { role = "user", content = "Hello" } }, max_tokens = n, stream = stream or nil }
end

-- A streamed chat with every end-of-generation token banned: it runs to
-- the end of the context (2000 tokens), so it is surely still running
-- while a spec does its steps, however slow the host; the spec hangs up.
local function endless(path)
   local tok = assert(require("moonhub").tokenizer.load(path))
   local b = body(2000, true)
   b.logit_bias = {}
   for _, id in ipairs(tok:eog_ids()) do b.logit_bias[tostring(id)] = -100 end
   return b
end

local function assert_error(r, status, code)
   assert.equal(status, r.status, r.body)
   local e = assert(r.json and r.json.error, r.body)
   assert.equal("string", type(e.message))
   if code then assert.equal(code, e.code) end
end

describe("moonhub serve --api-key --rate --max-body-mb #integration", function()
   local srv
   local auth = { Authorization = "Bearer " .. KEY }

   setup(function()
      local path = data.path(SMOL)
      if path then
         srv = S.start(path, "--parallel 2 --ctx 256 --threads 1 --api-key " .. KEY
            .. " --rate 1 --max-body-mb 0.01")
      end
   end)
   teardown(function() if srv then srv:stop() end end)

   local function ok_request()
      local r = srv:post("/v1/chat/completions", body(2), { headers = auth })
      assert.equal(200, r.status, r.body)
   end

   it("401 without or with a wrong key; /health, /v1/models, /metrics stay public", function()
      if not data.started(srv, SMOL, pending) then return end
      local r = srv:post("/v1/chat/completions", body(2))
      assert_error(r, 401, "invalid_api_key")
      assert.equal("authentication_error", r.json.error.type)
      assert_error(srv:post("/v1/chat/completions", body(2), { headers = { Authorization = "Bearer wrong" } }),
         401, "invalid_api_key")
      assert_error(srv:post("/v1/embeddings", { input = "x" }), 401)
      assert.equal(200, srv:request("/health").status)
      assert.equal(200, srv:request("/v1/models").status)
      assert.equal(200, srv:request("/v1/models/" .. srv.name).status)
      assert.equal(200, srv:request("/metrics").status)
      ok_request()
   end)

   it("413 for a body over --max-body-mb", function()
      if not data.started(srv, SMOL, pending) then return end
      local big = body(2)
      big.messages[1].content = string.rep("a", 20000)
      local r = srv:post("/v1/chat/completions", big, { headers = auth })
      -- answered before the handler runs, as an OpenAI error object
      assert.equal(413, r.status)
      assert.matches('"code":"request_too_large"', r.body, 1, true)
      S.eventually(function() return false end, 1.1)   -- refill the rate bucket
      ok_request()
   end)

   it("429 with Retry-After over --rate, then served again", function()
      if not data.started(srv, SMOL, pending) then return end
      local reqs = {}
      -- 8 at once against a burst of 2 and 1/s: all would pass only if they
      -- were spread over 6 s
      for i = 1, 8 do reqs[i] = { "/tokenize", { body = { content = "x" }, headers = auth } } end
      local limited
      for _, r in ipairs(srv:many(reqs)) do
         if r.status == 429 then limited = r else assert.equal(200, r.status, r.body) end
      end
      assert(limited, "no request was rate limited")
      assert_error(limited, 429, "rate_limit_exceeded")
      assert.equal("rate_limit_error", limited.json.error.type)
      local wait = tonumber(limited.headers["retry-after"])
      assert.is_true(wait >= 1 and wait <= 2)
      S.eventually(function() return false end, wait + 0.1)
      ok_request()
   end)
end)

describe("moonhub serve --parallel 1 --max-queue 1 #integration", function()
   local srv, path

   setup(function()
      path = data.path(SMOL)
      if path then srv = S.start(path, "--parallel 1 --max-queue 1 --ctx 2048 --threads 1") end
   end)
   teardown(function() if srv then srv:stop() end end)

   local function metrics() return srv:request("/metrics").body end
   local function streaming(bg)
      return S.eventually(function() return srv:body_so_far(bg):find("data: ", 1, true) end, 60)
   end

   -- Events, not luck: one request streams (and cannot end by itself), one
   -- waits in the queue of one (seen in /metrics), so the next is refused;
   -- four requests sent at once could run one after another on a slow host.
   it("503 with Retry-After when the queue is full", function()
      if not data.started(srv, SMOL, pending) then return end
      local a = srv:background("/v1/chat/completions", { body = endless(path) })
      assert.truthy(streaming(a), "the first request never streamed")
      local b = srv:background("/v1/chat/completions", { body = body(2) })
      assert.truthy(S.eventually(function() return S.metric(metrics(), "moonhub_requests_waiting") == 1 end, 60),
         "the second request never queued")
      local busy = srv:post("/v1/chat/completions", body(2))
      assert_error(busy, 503, "server_busy")
      assert.equal("1", busy.headers["retry-after"])
      srv:hang_up(a)
      local rb = srv:finish(b)
      assert.equal(200, rb.status, rb.body)         -- the queued one is served once the slot frees
      assert.equal(200, srv:post("/v1/chat/completions", body(2)).status)
   end)

   -- Events, not durations: the stream was cut before it finished, then the
   -- slot-free event (requests_running 0) comes while that request's 2000
   -- tokens are not all generated, and the one slot serves the next request.
   it("a client that hangs up mid-stream frees its slot", function()
      if not data.started(srv, SMOL, pending) then return end
      local before = S.metric(metrics(), "moonhub_generated_tokens_total") or 0
      local a = srv:background("/v1/chat/completions", { body = endless(path) })
      assert.truthy(streaming(a), "the request never streamed")
      local r = srv:hang_up(a)
      assert.matches("^HTTP/1.1 200", r.raw_headers)
      assert.matches("^data: ", r.body)            -- it was streaming when the client left
      assert.is_nil(r.body:find("[DONE]", 1, true))
      local freed = S.eventually(function()
         return S.metric(metrics(), "moonhub_requests_running") == 0
      end, 60)                                      -- a guard against hanging, not a bound
      assert.is_true(freed, "the slot never became free after the client left")
      local after = S.metric(metrics(), "moonhub_generated_tokens_total") or 0
      assert.is_true(after - before < 2000, "the abandoned request ran to the end")
      local ok = srv:post("/v1/chat/completions", body(3))
      assert.equal(200, ok.status)
      assert.equal(3, ok.json.usage.completion_tokens)
   end)

   it("SIGTERM stops the server with exit code 0", function()
      if not data.started(srv, SMOL, pending) then return end
      assert.is_true(srv:alive())
      -- stop() sends SIGTERM and SIGKILLs after 30 s: exit code 0 is the
      -- event that the server ended by itself
      assert.equal(0, srv:stop(30))
      assert.is_false(srv:alive())
   end)
end)
