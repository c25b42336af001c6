-- Specs for llama.cpp's flags where they mean what moonhub's do: -m, -c,
-- -t, -n, -p, -s, --temp, --top-k, --top-p, --min-p, --repeat-penalty,
-- -np, --host, --port, --api-key, and -ngl accepted with a note, on
-- generate, chat, run, serve and bench. Each is checked where it arrives
-- (the sampler's settings, the context line, the server's banner).
-- Layer: tests (helpers.host, helpers.server, helpers.data; the real binary).
local H = require "helpers.host"
local data = require "helpers.data"

local NOTE = "note: %-ngl 99 ignored — this build runs on the CPU\n"

describe("llama.cpp flags #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("generate: the short and long llama.cpp names reach the sampler and the loader", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local m = H.q(model)
      local _, out, err, code
      out, err, code = H.run(home, "generate -m " .. m .. " -p 'Once upon a time' -n 5 -c 96 -t 1 "
         .. "-s 7 --temp 0.8 --top-k 40 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.1 -ngl 99 -v")
      assert.equal(0, code, err)
      assert.truthy(err:find("^moonhub generate: " .. NOTE), err)
      assert.truthy(err:find("context 96 (--ctx)", 1, true), err)
      assert.truthy(err:find("generated 5 tokens", 1, true), err)
      local s = err:match("settings: ([^\n]*)")
      for _, kv in ipairs({ "max_tokens=5", "seed=7", "temperature=0.80", "top_k=40", "top_p=0.89", "min_p=0.05",
            "repeat_penalty=1.10" }) do
         assert.truthy(s:find(kv, 1, true), kv .. " in " .. s)
      end
      -- the long names give the same text; MODEL PROMPT as arguments too
      local long = H.run(home, "generate --model " .. m .. " --prompt 'Once upon a time' --n-predict 5 "
         .. "--ctx-size 96 --threads 1 --seed 7 --temp 0.8 --top-k 40 --top-p 0.9 --min-p 0.05 "
         .. "--repeat-penalty 1.1 --n-gpu-layers 99")
      assert.equal(out, long)
      assert.equal(out, (H.run(home, "generate " .. m .. " 'Once upon a time' -n 5 -c 96 -s 7 --temp 0.8 "
         .. "--top-k 40 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.1")))
      -- -m with the prompt as the argument
      assert.equal(out, (H.run(home, "generate -m " .. m .. " 'Once upon a time' -n 5 -c 96 -s 7 --temp 0.8 "
         .. "--top-k 40 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.1")))
      -- values the loader checks arrive there
      _, err, code = H.run(home, "generate -m " .. m .. " -p hi -c 0")
      assert.equal(1, code)
      assert.equal("moonhub generate: ctx must be a positive integer, got 0\n", err)
      _, err, code = H.run(home, "generate -m " .. m .. " -p hi -t 0")
      assert.equal(2, code)
      assert.truthy(err:find("--threads must be a positive integer", 1, true), err)
      -- both -p and a PROMPT argument: one too many
      _, err, code = H.run(home, "generate -m " .. m .. " -p hi there")
      assert.equal(2, code)
      assert.truthy(err:find("unexpected argument 'there'", 1, true), err)
   end)

   it("chat and run take the same names", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local m = H.q(model)
      local _, out, err, code
      out, err, code = H.run(home, "chat -m " .. m .. " -n 4 -s 1 -c 64 -t 1 --temp 0 -ngl 99 --no-history",
         "Once upon a time\n")
      assert.equal(0, code, err)
      assert.truthy(#out > 0)
      assert.truthy(err:find("moonhub chat: " .. NOTE), err)
      _, err, code = H.run(home, "run -m " .. m .. " -p 'Once upon a time' -n 4 -c 64 -t 1 -s 1 --temp 0 "
         .. "--top-k 40 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.1 -ngl 99")
      assert.equal(0, code, err)
      assert.truthy(err:find("moonhub run: " .. NOTE), err)
      _, err, code = H.run(home, "run -m " .. m .. " -p hi -c 0")
      assert.equal(1, code)
      assert.equal("moonhub run: ctx must be a positive integer, got 0\n", err)
   end)

   it("serve: -m, -c, -t, -np, --host, --port, --api-key, -ngl", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local S = require "helpers.server"
      local srv = S.start(model, "-c 128 -t 1 -np 2 --host 127.0.0.1 --api-key sekrit -ngl 99")
      local ok, e = pcall(function()
         local out, err = H.read(srv.dir .. "/out"), H.read(srv.dir .. "/err")
         assert.truthy(out:find("(2 parallel, ctx 128)", 1, true), out)
         assert.truthy(err:find("moonhub serve: " .. NOTE), err)
         local function status(auth)
            local p = io.popen("curl -s -m 60 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "
               .. (auth or "") .. " -d '{\"prompt\":\"hi\",\"max_tokens\":1}' " .. srv.base .. "/v1/completions")
            local c = p:read("a")
            p:close()
            return c
         end
         assert.equal("401", status())
         assert.equal("200", status("-H 'Authorization: Bearer sekrit'"))
      end)
      srv:stop()
      assert(ok, e)
   end)

   it("bench: -m, -p, -n, -r, -t and -ngl as llama-bench spells them", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local out, err, code = H.run(home, "bench -m " .. H.q(model) .. " -p 8 -n 4 -r 1 -t 1 -ngl 99 -q")
      assert.equal(0, code, err)
      assert.truthy(err:find("moonhub bench: " .. NOTE), err)
      assert.truthy(out:find("| pp8 ", 1, true), out)
      assert.truthy(out:find("| tg4 ", 1, true), out)
      assert.truthy(out:match("|%s+1 | pp8"), out)          -- the threads column
   end)
end)
