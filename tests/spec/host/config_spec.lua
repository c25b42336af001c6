-- Specs for moonhub.config and `moonhub config`: the sandboxed config file,
-- get/set/unset/list with type checks, and the precedence flag > env > file
-- > built-in, checked where each value arrives (generate --verbose's context
-- line, serve's context line and ready address).
-- Layer: tests (unit + ./moonhub children; the shared model is skipped when missing).
local H = require "helpers.host"
local data = require "helpers.data"
local config = require "moonhub.config"
local q = H.q

local MODEL = "models/stories260K.gguf"

-- run(home, env, args) -> stdout, stderr, code, with "VAR=value ..." before moonhub
local function run(home, env, args)
   local cmd = string.format("env %s MOONHUB_HOME=%s %s %s >%s 2>%s </dev/null", env or "", q(home), q(H.exe),
      args, q(home .. "/.stdout"), q(home .. "/.stderr"))
   local _, _, code = os.execute(cmd)
   return H.read(home .. "/.stdout"), H.read(home .. "/.stderr"), code
end

describe("moonhub.config file #unit", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("reads `return {...}` and plain `key = value` files; values keep their types", function()
      H.write(home .. "/a.lua", "return { ctx = 512, host = '0.0.0.0' }")
      assert.same({ ctx = 512, host = "0.0.0.0" }, config.read(home .. "/a.lua"))
      H.write(home .. "/b.lua", "port = 9000\nkeep_alive = '10m'\n")
      assert.same({ port = 9000, keep_alive = "10m" }, config.read(home .. "/b.lua"))
      assert.same({}, config.read(home .. "/none.lua"))        -- no file: nothing set
   end)

   it("runs the file in a sandbox: no io/os/require, no endless loops", function()
      H.write(home .. "/c.lua", "os.execute('touch " .. home .. "/pwned')\nreturn {}")
      local t, err = config.read(home .. "/c.lua")
      assert.is_nil(t)
      assert.matches("global 'os'", err)
      assert.is_nil(H.read(home .. "/pwned"))
      H.write(home .. "/d.lua", "while true do end")
      t, err = config.read(home .. "/d.lua")
      assert.is_nil(t)
      assert.matches("runs too long", err)
   end)

   it("refuses unknown keys and values of the wrong type, naming the key", function()
      H.write(home .. "/e.lua", "return { ctx = '512' }")
      assert.same({ nil, "config file " .. home .. "/e.lua: ctx: expected an integer, got '512'" },
         { config.read(home .. "/e.lua") })
      H.write(home .. "/f.lua", "return { kv_type = 'q4' }")
      assert.matches("kv_type: expected f16, q8_0 or f32", select(2, config.read(home .. "/f.lua")))
      H.write(home .. "/g.lua", "return { cxt = 512 }")
      assert.matches("unknown key 'cxt'", select(2, config.read(home .. "/g.lua")))
      H.write(home .. "/h.lua", "return { port = 70000 }")
      assert.matches("port: expected an integer >= 0 and <= 65535, got 70000", select(2, config.read(home .. "/h.lua")))
   end)

   it("context(): trained, halved until it fits the memory given, warns past the trained context", function()
      local fake = { info = { n_ctx_train = 2048 },
         memory_needed = function(_, n) return 1000 + n end, kv_bytes = function(_, n) return n * 2^10 end }
      local ctx, line, warn = config.context(fake, { mem = 10 * 2^20 })
      assert.same({ 2048, "context 2048 (trained), KV cache 2 MiB" }, { ctx, line })
      assert.is_nil(warn)
      ctx, line = config.context(fake, { mem = 1000 + 1100 })
      assert.same({ 1024, "context 1024 (trained 2048, capped by memory: 2 KiB), KV cache 1 MiB" }, { ctx, line })
      ctx = config.context(fake, { mem = 1000 + 1100, parallel = 4 })   -- 4 sequences share the memory
      assert.equal(256, ctx)
      ctx, line, warn = config.context(fake, { ctx = 4096, source = "env" })
      assert.same({ 4096, "context 4096 (MOONHUB_CTX), KV cache 4 MiB" }, { ctx, line })
      assert.matches("beyond the model's trained context 2048", warn)
   end)
end)

describe("moonhub config verb", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("set checks the type and writes the file; get, list and unset read it back", function()
      local _, err, rc = run(home, nil, "config set ctx 1024")
      assert.same({ "", 0 }, { err, rc })
      assert.equal("1024\n", (run(home, nil, "config get ctx")))
      assert.same({ ctx = 1024 }, config.read(home .. "/config.lua"))   -- a Lua file it can read back
      _, err, rc = run(home, nil, "config set ctx many")
      assert.same({ "moonhub config: ctx: expected an integer, got 'many'\n", 2 }, { err, rc })
      _, err, rc = run(home, nil, "config set kv_type q4")
      assert.same({ "moonhub config: kv_type: expected f16, q8_0 or f32\n", 2 }, { err, rc })
      _, err, rc = run(home, nil, "config set keep_alive soon")
      assert.equal(2, rc)
      assert.matches("keep_alive: .*cannot read \"soon\" as a duration", err)
      assert.same({ ctx = 1024 }, config.read(home .. "/config.lua"))   -- refused sets changed nothing
      run(home, nil, "config set host 0.0.0.0")
      local out = run(home, "MOONHUB_PORT=9001", "config list")
      assert.matches("ctx%s+1024%s+%(file%)", out)
      assert.matches("host%s+0%.0%.0%.0%s+%(file%)", out)
      assert.matches("port%s+9001%s+%(env%)", out)
      assert.matches("kv_type%s+f16%s+%(built%-in%)", out)
      _, err, rc = run(home, nil, "config unset ctx")
      assert.same({ "", 0 }, { err, rc })
      assert.same({ host = "0.0.0.0" }, config.read(home .. "/config.lua"))
      _, err, rc = run(home, nil, "config get nope")
      assert.equal(2, rc)
      assert.matches("unknown key 'nope' %(keys: api_key_file, cache_mb, ctx,", err)
   end)

   it("a broken config file or variable is a one-line error that names it", function()
      H.write(home .. "/config.lua", "return { threads = 'four' }")
      local _, err, rc = run(home, nil, "config list")
      assert.equal(1, rc)
      assert.equal("moonhub config: config file " .. home .. "/config.lua: threads: expected an integer, "
         .. "got 'four' (fix it, or 'moonhub config set' a good value)\n", err)
      H.write(home .. "/config.lua", "return {}")
      _, err, rc = run(home, "MOONHUB_CTX=big", "config get ctx")
      assert.same({ "moonhub config: MOONHUB_CTX: expected an integer, got 'big'\n", 1 }, { err, rc })
   end)
end)

describe("precedence where the value arrives", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   -- the context generate reports with --verbose
   local function gen_ctx(env, flags)
      local model = data.need(MODEL, pending)
      if not model then return nil end
      local _, err, rc = run(home, env, "generate " .. q(model) .. " Once -n 2 --temp 0 --verbose " .. (flags or ""))
      assert.equal(0, rc, err)
      return err:match("moonhub generate: context (%d+ %b())")
   end

   it("ctx: flag > MOONHUB_CTX > config file > the model's trained context", function()
      if not data.need(MODEL, pending) then return end
      assert.equal("2048 (trained)", gen_ctx())
      run(home, nil, "config set ctx 512")
      assert.equal("512 (config file)", gen_ctx())
      assert.equal("384 (MOONHUB_CTX)", gen_ctx("MOONHUB_CTX=384"))
      assert.equal("320 (--ctx)", gen_ctx("MOONHUB_CTX=384", "--ctx 320"))
   end)

   it("models: the folder import --copy stores into, from env over file", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      run(home, nil, "config set models " .. q(home .. "/filed"))
      local out, err, rc = run(home, nil, "import --copy --name a " .. q(model))
      assert.equal(0, rc, err)
      assert.matches("%-> " .. home:gsub("%p", "%%%0") .. "/filed/local/a/", out)
      out = run(home, "MOONHUB_MODELS=" .. q(home .. "/env"), "import --copy --name b " .. q(model))
      assert.matches("%-> " .. home:gsub("%p", "%%%0") .. "/env/local/b/", out)
   end)

   -- starts serve, waits for its ready line, stops it -> stdout, stderr
   local function serve(env, args, during)
      local pidf = home .. "/serve.pid"
      os.remove(home .. "/serve.out")   -- the last run's lines must not count as this one's
      os.remove(pidf)
      os.execute(string.format("(exec env %s MOONHUB_HOME=%s %s serve %s) >%s 2>%s </dev/null & echo $! >%s",
         env or "", q(home), q(H.exe), args, q(home .. "/serve.out"), q(home .. "/serve.err"), q(pidf)))
      local pid = tonumber(H.read(pidf))
      for _ = 1, 300 do                                  -- bounded wait for the ready line
         if (H.read(home .. "/serve.out") or ""):find("ready at", 1, true) then break end
         if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
         os.execute("sleep 0.1")
      end
      if during then during(H.read(home .. "/serve.out") or "") end
      os.execute("kill " .. pid .. " 2>/dev/null")
      for _ = 1, 50 do
         if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
         os.execute("sleep 0.1")
      end
      return H.read(home .. "/serve.out") or "", H.read(home .. "/serve.err") or ""
   end

   it("serve: host, ctx, kv_type, cache_mb, keep_alive from flag > env > file, seen in its lines and in ps", function()
      local model = data.need(MODEL, pending)
      if not model then return end
      run(home, nil, "config set host 127.0.0.2")
      run(home, nil, "config set ctx 640")
      run(home, nil, "config set cache_mb 3")
      run(home, nil, "config set keep_alive 2h")
      local ps = {}
      local function during() ps[#ps + 1] = (run(home, nil, "ps")) end   -- the cache budget it runs with
      local out, err = serve(nil, "--port 0 --parallel 1 " .. q(model), during)
      assert.matches(" / 3%.0 MiB ", ps[1])
      assert.matches("2 hours from now", ps[1])
      assert.matches("moonhub serve: context 640 %(config file%), KV cache 400 KiB\n", out, 1, false)
      assert.matches("ready at http://127%.0%.0%.2:%d+/v1 %(1 parallel, ctx 640%)", out, 1, false)
      assert.is_nil(err:find("warning", 1, true), err)       -- 640 is within the trained 2048
      out = serve("MOONHUB_HOST=127.0.0.3 MOONHUB_CTX=768 MOONHUB_KV_TYPE=f32 MOONHUB_CACHE_MB=5 "
         .. "MOONHUB_KEEP_ALIVE=50m",
         "--port 0 --parallel 1 " .. q(model), during)
      assert.matches(" / 5%.0 MiB ", ps[2])
      assert.matches("50 minutes from now", ps[2])
      assert.matches("context 768 %(MOONHUB_CTX%), KV cache 960 KiB\n", out)   -- f32: 2 x 768/640 x 400 KiB
      assert.matches("ready at http://127%.0%.0%.3:", out)
      out = serve("MOONHUB_HOST=127.0.0.3 MOONHUB_CTX=768", "--host 127.0.0.4 --ctx 896 --port 0 " .. q(model))
      assert.matches("context 896 %(%-%-ctx%)", out)
      assert.matches("ready at http://127%.0%.0%.4:%d+/v1 %(4 parallel, ctx 896%)", out)
   end)

   it("threads: flag > MOONHUB_THREADS > config file, as the engine runs with them (/metrics)", function()
      local model = data.need(MODEL, pending)
      if not model or not data.need_cmd("curl", pending) then return end
      local function threads(env, flags)
         local n
         serve(env, "--port 0 " .. (flags or "") .. " " .. q(model), function(out)
            local url = assert(out:match("ready at (http://[%d.:]+)/v1"), out) .. "/metrics"
            local p = io.popen("curl -s -m 60 " .. q(url))
            n = (p:read("a") or ""):match("\nmoonhub_compute_threads (%d+)\n")
            p:close()
         end)
         return tonumber(n)
      end
      run(home, nil, "config set threads 3")
      assert.equal(3, threads("MOONHUB_THREADS="))           -- an empty variable is unset
      assert.equal(2, threads("MOONHUB_THREADS=2"))
      assert.equal(1, threads("MOONHUB_THREADS=2", "--threads 1"))
   end)

   it("serve: api_key_file from the config guards the POST routes unless --api-key is given", function()
      local model = data.need(MODEL, pending)
      if not model or not data.need_cmd("curl", pending) then return end
      H.write(home .. "/key", "sk-from-file\n")
      run(home, nil, "config set api_key_file " .. q(home .. "/key"))
      local function code(url, key)
         local p = io.popen(string.format("curl -s -o /dev/null -w '%%{http_code}' "
            .. "-H 'Content-Type: application/json' -d '{}' %s %s",
            key and ("-H 'Authorization: Bearer " .. key .. "'") or "", q(url)))
         local c = p:read("a")
         p:close()
         return c
      end
      local seen = {}
      serve(nil, "--port 0 " .. q(model), function(out)
         local url = assert(out:match("ready at (http://[%d.:]+/v1)"), out) .. "/chat/completions"
         seen = { code(url), code(url, "sk-from-file"), code(url, "sk-other") }
      end)
      assert.same({ "401", "400", "401" }, seen)    -- 400: past the key, the body has no messages
      serve(nil, "--port 0 --api-key sk-flag " .. q(model), function(out)
         local url = assert(out:match("ready at (http://[%d.:]+/v1)"), out) .. "/chat/completions"
         seen = { code(url, "sk-from-file"), code(url, "sk-flag") }
      end)
      assert.same({ "401", "400" }, seen)                 -- the flag beats the file
      H.write(home .. "/key", "  \n")
      local _, err, rc = run(home, nil, "serve --port 0 " .. q(model))
      assert.same({ 2, "moonhub serve: api_key_file " .. home .. "/key: cannot read a key from it "
         .. "(one line, the key)\n" }, { rc, err })
   end)
end)
