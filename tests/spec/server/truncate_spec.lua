-- Acceptance spec for issue 13 item 4: truncating the file of a model the
-- server has loaded (mmapped) must not kill the server with SIGBUS. The
-- model answers a clear error naming the file from then on; /health and
-- the process stay up. Layer: tests (helpers.server; a copy of a shared
-- model in a temp dir is truncated, never the shared file).
local S = require "helpers.server"
local H = require "helpers.host"
local data = require "helpers.data"

local SMOL = "models/mh-smol-llama-17m-Q8_0.gguf"

local function chat(n)
   return { messages = { { role = "user", content = "Hello" } }, max_tokens = n, temperature = 0 }
end

describe("moonhub serve with its model file truncated #integration", function()
   local srv, dir, copy

   setup(function()
      local path = data.path(SMOL)
      if not path then return end
      dir = H.tmpdir()
      copy = dir .. "/smol-copy.gguf"
      assert(os.execute("cp " .. H.q(path) .. " " .. H.q(copy)))
      srv = S.start(copy, "--parallel 1 --ctx 256 --threads 1")
   end)
   teardown(function()
      if srv then srv:stop() end
      H.rmdir(dir)
   end)

   it("keeps answering: the model errors naming its file, /health is 200", function()
      if not data.started(srv, SMOL, pending) then return end
      local r = srv:post("/v1/chat/completions", chat(4))
      assert.equal(200, r.status, r.body)
      -- a long generation in flight while the file shrinks to its header
      local cmd = srv:command("/v1/chat/completions", { body = chat(200) }, "long")
      assert(os.execute("(" .. cmd .. ") & sleep 0.2; truncate -s 4096 " .. H.q(copy) .. "; wait"))
      local long = srv:result("long")
      assert.is_true(long.status == 200 or long.status >= 400, long.body)
      assert.is_true(srv:alive(), "the server died")
      for _ = 1, 2 do    -- unusable from then on, with the same clear error
         r = srv:post("/v1/chat/completions", chat(4))
         assert.is_true(r.status >= 400 and r.status < 600, r.status .. " " .. r.body)
         local e = assert(r.json and r.json.error, r.body)
         assert.matches("was truncated on disk", e.message, 1, true)
         assert.is_nil(e.message:find("/", 1, true), e.message)     -- the file's name, never a server path
         assert.equal(200, srv:request("/health").status)
      end
      assert.is_true(srv:alive(), "the server died")
   end)
end)
