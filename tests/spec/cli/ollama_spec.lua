-- Specs for Ollama's habits on the command line: `run MODEL [PROMPT]`
-- answers (in this process, or through MOONHUB_HOST's server or one found
-- running), `run FILE.lua` still runs the script, `stop`, `ls`, `ps` with
-- MOONHUB_HOST. Layer: tests (helpers.host, helpers.server, helpers.data;
-- runs the real binary; tests/spec/cli/fake_server.lua records requests).
local H = require "helpers.host"
local data = require "helpers.data"
local json = require "dkjson"
local http = require("moonhub").http

local FAKE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/fake_server.lua"

-- the recorder: {url, requests(), stop()}
local function start_fake(dir)
   local log, portfile = dir .. "/fake.log", dir .. "/fake.port"
   local p = io.popen(string.format("%s run %s %s >%s 2>%s & echo $!", H.q(H.exe), H.q(FAKE), H.q(log),
      H.q(portfile), H.q(dir .. "/fake.err")))
   local pid = tonumber(p:read("l"))
   p:close()
   local port
   for _ = 1, 1200 do
      port = tonumber((H.read(portfile) or ""):match("^(%d+)\n"))
      if port then break end
      http.sleep(0.05)
   end
   assert(port, "fake server did not start: " .. tostring(H.read(dir .. "/fake.err")))
   return { url = "127.0.0.1:" .. port, port = port,
      requests = function()
         local out = {}
         for line in (H.read(log) or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
         return out
      end,
      stop = function() os.execute("kill " .. pid .. " 2>/dev/null") end }
end

-- `moonhub ARGS` with MOONHUB_HOST = host (when given) and optional stdin
local function run(home, host, args, input)
   if not host then return H.run(home, args, input) end
   local inp = home .. "/.stdin"
   H.write(inp, input or "")
   local cmd = string.format("MOONHUB_HOST=%s MOONHUB_HOME=%s %s %s <%s >%s 2>%s", H.q(host), H.q(home),
      H.q(H.exe), args, H.q(inp), H.q(home .. "/.stdout"), H.q(home .. "/.stderr"))
   local _, _, code = os.execute(cmd)
   return H.read(home .. "/.stdout"), H.read(home .. "/.stderr"), code
end

describe("Ollama's habits #integration", function()
   local home
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("run MODEL PROMPT answers once; run FILE.lua and Lua-looking files run as scripts", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      assert.equal(0, select(3, H.run(home, "import " .. H.q(model) .. " --name stories")))
      local out, err, code = H.run(home, "run stories 'Once upon a time' -n 8 --temp 0")
      assert.equal(0, code, err)
      assert.truthy(#out > 2, out)
      -- the same answer from the file's path, and from a prompt on stdin
      local by_path = H.run(home, "run " .. H.q(model) .. " 'Once upon a time' -n 8 --temp 0")
      assert.equal(out, by_path)
      local piped = H.run(home, "run stories -n 8 --temp 0", "Once upon a time")
      assert.equal(out, piped)
      -- -p and -m as llama.cpp writes them
      assert.equal(out, (H.run(home, "run -m stories -p 'Once upon a time' -n 8 --temp 0")))
      -- scripts: by extension, or by how the file starts
      H.write(home .. "/s.lua", "print('script', ...)\n")
      H.write(home .. "/noext", "-- a script without .lua\nprint('noext', ...)\n")
      H.write(home .. "/loc", "local x = 1\nprint('local', x)\n")
      assert.equal("script\ta\tb\n", (H.run(home, "run " .. H.q(home .. "/s.lua") .. " a b")))
      assert.equal("noext\tc\n", (H.run(home, "run " .. H.q(home .. "/noext") .. " c")))
      assert.equal("local\t1\n", (H.run(home, "run " .. H.q(home .. "/loc"))))
      -- a missing .lua file is still a script's error, not a model lookup
      local _, serr, scode = H.run(home, "run " .. H.q(home .. "/gone.lua"))
      assert.equal(1, scode)
      assert.truthy(serr:find("cannot open", 1, true), serr)
      assert.falsy(serr:find("registered model", 1, true), serr)
   end)

   it("run talks to a running server: MOONHUB_HOST's, or one this machine runs", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local S = require "helpers.server"
      local srv = S.start(model)
      local ok, e = pcall(function()
         local shome = srv.dir .. "/home"
         local here = H.run(home, "run --local " .. H.q(model) .. " 'Once upon a time' -n 6 --temp 0")
         local name = srv.name
         -- MOONHUB_HOST: the server answers (its log shows the request)
         local out, err, code = run(home, srv.base, "run " .. H.q(name) .. " 'Once upon a time' -n 6 --temp 0")
         assert.equal(0, code, err)
         assert.truthy(#out > 2, out)
         local served = H.read(srv.dir .. "/err") or ""
         assert.truthy(served:find("/v1/chat/completions", 1, true), served)
         -- the server's answer is the in-process one (greedy, the model's template both ways)
         assert.equal(here, out)
         -- no MOONHUB_HOST, the server found by its state file under MOONHUB_HOME
         local before = select(2, served:gsub("/v1/chat/completions", ""))
         local out2, err2, code2 = H.run(shome, "run " .. H.q(name) .. " 'Once upon a time' -n 6 --temp 0")
         assert.equal(0, code2, err2)
         assert.equal(out, out2)
         served = H.read(srv.dir .. "/err") or ""
         assert.equal(before + 1, select(2, served:gsub("/v1/chat/completions", "")))
         -- a registry name no server has loaded: still the server (it loads it on first use)
         assert.equal(0, select(3, H.run(shome, "import " .. H.q(model) .. " --name tiny")))
         local out3, err3, code3 = H.run(shome, "run tiny 'Once upon a time' -n 6 --temp 0")
         assert.equal(0, code3, err3)
         assert.equal(out, out3)
         served = H.read(srv.dir .. "/err") or ""
         assert.equal(before + 2, select(2, served:gsub("/v1/chat/completions", "")))
         -- ps through MOONHUB_HOST lists the server's model
         local ps, perr, pcode = run(home, srv.base, "ps")
         assert.equal(0, pcode, perr)
         assert.truthy(ps:find(name, 1, true), ps)
      end)
      srv:stop()
      assert(ok, e)
   end)

   it("stop MODEL sends Ollama's unload to the server; ps and run use MOONHUB_HOST", function()
      local fake = start_fake(home)
      local ok, e = pcall(function()
         local _, out, err, code
         out, err, code = run(home, fake.url, "stop loaded-model")
         assert.equal(0, code, err)
         assert.equal("stopped loaded-model at http://" .. fake.url .. "\n", out)
         local r = fake.requests()[1]
         assert.equal("POST", r.method)
         assert.equal("/api/generate", r.path)
         assert.same({ model = "loaded-model", keep_alive = 0 }, json.decode(r.body))
         -- a model the server does not have: one line, exit 1
         _, err, code = run(home, fake.url, "stop other-model")
         assert.equal(1, code)
         assert.truthy(err:match("^moonhub stop: [^\n]*'other%-model'[^\n]* — see 'moonhub ps'\n$"), err)
         -- ps asks the admin route
         out, err, code = run(home, fake.url, "ps")
         assert.equal(0, code, err)
         assert.truthy(out:find("loaded-model", 1, true), out)
         assert.truthy(out:find(tostring(fake.port), 1, true), out)
         local reqs = fake.requests()
         assert.equal("/api/moonhub/ps", reqs[#reqs].path)
         -- run sends the chat there, with the sampling options
         out, err, code = run(home, fake.url, "run some-model 'hi there' --temp 0.5 -n 7 -s 3")
         assert.equal(0, code, err)
         assert.equal("echo: hi there\n", out)
         reqs = fake.requests()
         local body = json.decode(reqs[#reqs].body)
         assert.equal("some-model", body.model)
         assert.equal(0.5, body.temperature)
         assert.equal(7, body.max_tokens)
         assert.equal(3, body.seed)
         assert.is_true(body.stream)
         -- MOONHUB_HOST's forms, and a malformed one
         for _, form in ipairs({ "http://" .. fake.url, ":" .. fake.port, "http://" .. fake.url .. "/" }) do
            _, err, code = run(home, form, "stop loaded-model")
            assert.equal(0, code, form .. ": " .. tostring(err))
         end
         _, err, code = run(home, "127.0.0.1:99999", "stop loaded-model")
         assert.equal(2, code)
         assert.truthy(err:match("^moonhub stop: MOONHUB_HOST: port out of range in '127.0.0.1:99999' — "), err)
      end)
      fake.stop()
      assert(ok, e)
   end)

   it("one MOONHUB_HOST=host:port: serve binds there, ps and run find it there", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      local shome = home .. "/server"
      local spec, ready, pid
      -- a free port, released for serve: another process may take it in
      -- between (a busy host), so a serve that cannot bind it tries another
      for _ = 1, 3 do
         local probe = http.server({ host = "127.0.0.1", port = 0 })
         spec = "127.0.0.1:" .. probe.port
         probe:close()
         assert(os.execute(string.format("mkdir -p %s && (MOONHUB_HOST=%s MOONHUB_HOME=%s %s serve -m %s >%s 2>&1 & "
            .. "echo $! >%s)", H.q(shome), H.q(spec), H.q(shome), H.q(H.exe), H.q(model), H.q(home .. "/serve.out"),
            H.q(home .. "/serve.pid"))))
         pid = H.read(home .. "/serve.pid"):match("%d+")
         for _ = 1, 1200 do
            ready = (H.read(home .. "/serve.out") or ""):match("ready at (http://[%d.:]+)/v1")
            if ready or not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
            http.sleep(0.05)
         end
         if ready or not (H.read(home .. "/serve.out") or ""):find("in use", 1, true) then break end
      end
      local ok, e = pcall(function()
         assert.equal("http://" .. spec, ready, H.read(home .. "/serve.out"))
         local ps, err, code = run(home, spec, "ps")
         assert.equal(0, code, err)
         assert.truthy(ps:find("stories260K", 1, true), ps)
         local out
         out, err, code = run(home, spec, "run stories260K 'Once upon a time' -n 4 --temp 0")
         assert.equal(0, code, err)
         assert.truthy(#out > 2, out)
      end)
      os.execute("kill " .. pid)
      assert(ok, e)
   end)

   it("ls is list; help shows the alias and answers for it", function()
      local model = data.need("models/stories260K.gguf", pending)
      if not model then return end
      assert.equal(0, select(3, H.run(home, "import " .. H.q(model) .. " --name stories")))
      local list, _, code = H.run(home, "list")
      assert.equal(0, code)
      assert.truthy(list:find("stories", 1, true), list)
      assert.equal(list, (H.run(home, "ls")))
      local help = H.run(home, "help")
      assert.truthy(help:find("\n  list (ls) ", 1, true), help)
      assert.equal((H.run(home, "help list")), (H.run(home, "help ls")))
      -- a user's recipe named ls wins over the alias
      H.write(home .. "/recipes/ls.lua", "-- mine\nprint('my ls')\n")
      assert.equal("my ls\n", (H.run(home, "ls")))
   end)
end)
