-- Specs for moonhub.progress and the progress of the long verbs (create,
-- quantize, bench) as a user sees it: stderr is a file here, not a
-- terminal, so each verb prints one line per 10 % and --quiet prints none.
-- Lines and their order are checked, never how long anything took.
local host = require "helpers.host"
local progress = require "moonhub.progress"

-- A fake file that keeps what is written.
local function sink()
   local s = { buf = {} }
   function s:write(...) for _, v in ipairs({ ... }) do self.buf[#self.buf + 1] = v end return self end
   function s.flush() end
   function s:text() return table.concat(self.buf) end
   return s
end

local function lines_of(text, prefix)
   local out = {}
   for l in text:gmatch("[^\n]+") do
      if l:sub(1, #prefix) == prefix then out[#out + 1] = l end
   end
   return out
end

-- The tenths the lines report, in order (10.5 % -> 1, 100.0 % -> 10).
local function tenths(lines)
   local t = {}
   for i, l in ipairs(lines) do
      local pct = assert(tonumber(l:match(" (%d+%.%d)%% ")), "no percentage in: " .. l)
      t[i] = math.floor(pct / 10)
   end
   return t
end

local function count_up(n)
   local t = {}
   for i = 0, n do t[#t + 1] = i end
   return t
end

describe("moonhub.progress", function()
   local t
   local function clock() return t end
   before_each(function() t = 0 end)

   it("off a terminal: one line per tenth crossed, the last at 100 %, none after", function()
      local out = sink()
      local p = progress.new("job", { out = out, tty = false, clock = clock })
      for done = 0, 1000, 7 do t = t + 1; p(done, 1000) end
      p(1000, 1000)
      p(nil, nil, true)                        -- final: 100 % was already said
      local lines = lines_of(out:text(), "job ")
      assert.same(count_up(10), tenths(lines))
      assert.matches("100%.0%% 1000 B/1000 B ", lines[#lines])
   end)

   it("a final call says 100 % when the job's last report fell short of a new tenth", function()
      local out = sink()
      local p = progress.new("job", { out = out, tty = false, unit = "reps", clock = clock })
      p(0, 3, false, "a")
      t = 2; p(3, 3, true, "done")
      local lines = lines_of(out:text(), "job ")
      assert.same({ 0, 10 }, tenths(lines))
      assert.matches("3/3 reps 1%.50 reps/s ETA 0s  done$", lines[2])
   end)

   it("on a terminal: one redrawn line with rate and ETA, ended by the final call", function()
      local out = sink()
      local p = progress.new("job", { out = out, tty = true, clock = clock, from = 0 })
      t = 1; p(256, 1024)
      t = 1.1; p(512, 1024)                    -- within 0.2 s: not redrawn
      t = 2; p(768, 1024)
      p(nil, nil, true)
      local text = out:text()
      assert.equal(3, select(2, text:gsub("\r\27%[K", "")))
      assert.equal(1, select(2, text:gsub("\n", "")))
      assert.matches("\n$", text)
      assert.matches("job %[######%.+%]  25%.0%% 256 B/1.0 KiB 256 B/s ETA 3s", text)
      assert.matches("75%.0%% 768 B/1%.0 KiB 384 B/s ETA 1s", text)
   end)

   it("quiet prints nothing", function()
      local out = sink()
      local p = progress.new("job", { out = out, tty = false, quiet = true })
      p(0, 10); p(10, 10); p(nil, nil, true)
      assert.equal("", out:text())
   end)
end)

describe("progress of create, quantize and bench #integration", function()
   local dir
   setup(function()
      dir = host.tmpdir()
      -- 8 layers: every tensor is under a tenth of the bytes, so every tenth shows
      host.write(dir .. "/cfg.json", '{"arch": "llama", "n_layer": 8, "n_embd": 128, "n_ff": 256, '
         .. '"n_head": 4, "n_head_kv": 2, "n_vocab": 259, "tied": true}')
   end)
   teardown(function() host.rmdir(dir) end)

   it("the Lua API hands a function down to C: rising bytes, the last equal to the total", function()
      local mh = require "moonhub"
      local cfg = { arch = "llama", n_layer = 3, n_embd = 64, n_ff = 128, n_head = 4, n_head_kv = 2,
                    n_vocab = 259, tied = true }
      local calls = {}
      local st = assert(mh.create.model({ config = cfg, out = dir .. "/api.gguf",
         progress = function(d, t) calls[#calls + 1] = { d, t } end }))
      assert.is_true(#calls >= st.tensors)      -- at least one call per tensor
      for i = 2, #calls do
         assert.is_true(calls[i][1] > calls[i - 1][1])
         assert.equal(calls[1][2], calls[i][2])
      end
      assert.equal(calls[#calls][2], calls[#calls][1])
      local qcalls = {}
      local qs = assert(mh.quantize.file(dir .. "/api.gguf", dir .. "/api-q.gguf", "Q4_0",
         function(d, t) qcalls[#qcalls + 1] = { d, t } end))
      assert.equal(qs.bytes_in, qcalls[#qcalls][1])
      assert.equal(qs.bytes_in, qcalls[#qcalls][2])
      -- a failing callback is not called again; its error comes out once the job returns
      local n = 0
      local ok, err = pcall(mh.quantize.file, dir .. "/api.gguf", dir .. "/api-q2.gguf", "Q8_0",
         function() n = n + 1; error("boom from progress") end)
      assert.is_false(ok)
      assert.matches("boom from progress", err)
      assert.equal(1, n)
      assert.has_error(function() mh.quantize.file(dir .. "/api.gguf", dir .. "/x.gguf", "Q8_0", 42) end,
         "quantize.file: argument #4 must be a progress function(done, total)")
      assert.has_error(function() mh.create.model({ config = cfg, out = dir .. "/x.gguf", progress = 1 }) end,
         "create.model: opts.progress must be a function(done, total)")
   end)

   it("create: a line per 10 % on stderr up to 100 %; --quiet prints none", function()
      local out, err, code = host.run(dir, "create --config " .. host.q(dir .. "/cfg.json")
         .. " --out " .. host.q(dir .. "/m.gguf"))
      assert.equal(0, code, err)
      assert.matches("^created ", out)
      local lines = lines_of(err, "create ")
      assert.same(count_up(10), tenths(lines))
      assert.matches("100%.0%% 1%.2 MiB/1%.2 MiB [%d.]+ [KM]iB/s ETA 0s$", lines[#lines])
      out, err, code = host.run(dir, "create --quiet --config " .. host.q(dir .. "/cfg.json")
         .. " --out " .. host.q(dir .. "/m2.gguf"))
      assert.equal(0, code, err)
      assert.matches("^created ", out)
      assert.equal("", err)
   end)

   it("quantize: a line per 10 % of the input up to 100 %; -q prints none", function()
      local _, err, code = host.run(dir, "create -q --config " .. host.q(dir .. "/cfg.json")
         .. " --out " .. host.q(dir .. "/in.gguf"))
      assert.equal(0, code, err)
      local out
      out, err, code = host.run(dir, "quantize " .. host.q(dir .. "/in.gguf") .. " "
         .. host.q(dir .. "/q.gguf") .. " q4_0")
      assert.equal(0, code, err)
      assert.matches("^quantized ", out)
      local lines = lines_of(err, "quantize Q4_0 ")
      assert.same(count_up(10), tenths(lines))
      out, err, code = host.run(dir, "quantize -q " .. host.q(dir .. "/in.gguf") .. " "
         .. host.q(dir .. "/q2.gguf") .. " Q8_0")
      assert.equal(0, code, err)
      assert.matches("^quantized ", out)
      assert.equal("", err)
   end)

   it("bench: names the test and rep in flight, ends at 100 %; --quiet prints none", function()
      local _, err, code = host.run(dir, "create -q --config " .. host.q(dir .. "/cfg.json")
         .. " --out " .. host.q(dir .. "/b.gguf"))
      assert.equal(0, code, err)
      local out
      out, err, code = host.run(dir, "bench " .. host.q(dir .. "/b.gguf") .. " -p 16 -n 8 -r 2 -t 1")
      assert.equal(0, code, err)
      assert.matches("| pp16 ", out, 1, true)
      local lines = lines_of(err, "bench ")
      assert.is_true(#lines >= 5 and #lines <= 11, err)
      local seen = {}
      for _, l in ipairs(lines) do seen[#seen + 1] = l:match("  (%a+%d+ rep %d/%d)$") end
      assert.equal("pp16 rep 1/2", seen[1])
      assert.truthy(err:find("pp16 rep 2/2", 1, true), err)
      assert.truthy(err:find("tg8 rep 1/2", 1, true), err)
      assert.matches(" 100%.0%% 4/4 reps ", lines[#lines])
      local t = tenths(lines)
      for i = 2, #t do assert.is_true(t[i] > t[i - 1], err) end   -- one line per tenth
      out, err, code = host.run(dir, "bench --quiet " .. host.q(dir .. "/b.gguf") .. " -p 16 -n 8 -r 1 -t 1")
      assert.equal(0, code, err)
      assert.matches("| tg8 ", out, 1, true)
      assert.equal("", err)
   end)
   it("bench tokenize: encode then decode rounds, ends at 100 %; -q prints none", function()
      host.write(dir .. "/text.txt", string.rep("a small text to encode, again and again. ", 200))
      local _, err, code = host.run(dir, "create -q --config " .. host.q(dir .. "/cfg.json")
         .. " --out " .. host.q(dir .. "/t.gguf"))
      assert.equal(0, code, err)
      local out
      out, err, code = host.run(dir, "bench tokenize " .. host.q(dir .. "/t.gguf") .. " "
         .. host.q(dir .. "/text.txt") .. " --rounds 2")
      assert.equal(0, code, err)
      assert.matches("best of 2 rounds", out, 1, true)
      local lines = lines_of(err, "bench tokenize ")
      local notes = {}
      for _, l in ipairs(lines) do notes[#notes + 1] = l:match("ETA %S+  (.*)$") end
      assert.same({ "encode round 1/2", "encode round 2/2", "decode round 1/2", "decode round 2/2", "done" }, notes)
      assert.same({ 0, 2, 5, 7, 10 }, tenths(lines))
      _, err, code = host.run(dir, "bench tokenize -q " .. host.q(dir .. "/t.gguf") .. " "
         .. host.q(dir .. "/text.txt") .. " --rounds 1")
      assert.equal(0, code, err)
      assert.equal("", err)
   end)

   it("bench train: the case and trainer in flight, ends at 100 %; -q prints none", function()
      local args = " --case full --steps 1 -t 1 --seq 8 --batch 2 --no-torch --dir " .. host.q(dir .. "/bt")
      local out, err, code = host.run(dir, "bench train" .. args)
      assert.equal(0, code, err)
      assert.matches("| full    | moonhub ", out, 1, true)
      local lines = lines_of(err, "bench train ")
      local notes = {}
      for _, l in ipairs(lines) do notes[#notes + 1] = l:match("ETA %S+  (.*)$") end
      assert.same({ "full: model", "full: moonhub, 1 steps", "done" }, notes)
      assert.matches(" 100%.0%% 2/2 parts ", lines[#lines])
      out, err, code = host.run(dir, "bench train -q" .. args)
      assert.equal(0, code, err)
      assert.matches("| full    | moonhub ", out, 1, true)
      assert.equal("", err)
   end)

   it("bench soak: time, requests so far and RSS in flight, ends at 100 %; -q prints none", function()
      local _, err, code = host.run(dir, "create -q --config " .. host.q(dir .. "/cfg.json")
         .. " --out " .. host.q(dir .. "/s.gguf"))
      assert.equal(0, code, err)
      local args = " " .. host.q(dir .. "/s.gguf") .. " --clients 2 --minutes 0.05 --tokens 2 --threads 1 --ctx 128"
      local out
      out, err, code = host.run(dir, "bench soak" .. args)
      assert.equal(0, code, out .. err)
      assert.matches("\nerrors: 0\n", out)
      local lines = lines_of(err, "bench soak ")
      assert.is_true(#lines >= 2, err)
      assert.matches("%d+ requests, RSS [%d.]+ MiB$", lines[1])
      assert.matches(" 100%.0%% 3/3 s ", lines[#lines])
      local t = tenths(lines)
      for i = 2, #t do assert.is_true(t[i] > t[i - 1], err) end
      out, err, code = host.run(dir, "bench soak -q" .. args)
      assert.equal(0, code, out .. err)
      assert.equal("", err)
   end)
end)
