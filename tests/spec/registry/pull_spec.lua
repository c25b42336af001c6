-- Specs for `moonhub pull` and `moonhub search` against the fake Hugging
-- Face Hub (tests/helpers/fake_hub.lua, moonhub's own server) on loopback:
-- quant choice, a cut transfer resumed with Range from the break point,
-- sha256 refusal, 401/403/404, a full disk, HF cache reuse, safetensors.
-- Layer: tests (runs ./moonhub as a child; never touches the network).
local H = require "helpers.host"
local data = require "helpers.data"
local fake = require "helpers.fake_hub"

local M = "models/"
local function shared(rel) return data.path(M .. rel) end

local function sha256(path) return require("moonhub.core.fetch").sha256_file(path) end

-- registered rows of home, read through the registry module
local function rows(home)
   local reg = assert(require("moonhub.registry").open(home))
   local list = reg:list()
   reg:close()
   local by = {}
   for _, r in ipairs(list) do by[r.name .. ":" .. r.tag] = r end
   return by, list
end

local function count_downloads(srv, file)
   local n = 0
   for _, r in ipairs(srv.requests()) do
      if r.path:find("/" .. file, 1, true) and not r.path:find("^/api/") and r.method == "GET" then n = n + 1 end
   end
   return n
end

describe("pull from the fake Hub", function()
   local dir, srv, home
   local q4, q8, st_q8, st_q4, hf

   setup(function()
      q4, q8 = shared("mh-smol-llama-17m-Q4_K_M.gguf"), shared("mh-smol-llama-17m-Q8_0.gguf")
      st_q8, st_q4 = shared("stories260K-Q8_0.gguf"), shared("stories260K-Q4_0.gguf")
      hf = shared("hf/mh-smol-llama-17m/config.json") and (data.root() .. "/models/hf/mh-smol-llama-17m")
      if not (q4 and q8 and st_q8 and st_q4 and hf) then return end
      dir = H.tmpdir()
      local hfd = function(f) return hf .. "/" .. f end
      srv = fake.start(dir, {
         token = "secret-token",
         break_after = { ["cut-Q8_0.gguf"] = 100000 },
         repos = {
            ["mh/smol-llama-17m-GGUF"] = { downloads = 900, files = {
               ["smol-llama-17m-Q8_0.gguf"] = q8, ["smol-llama-17m-Q4_K_M.gguf"] = q4,
               ["README.md"] = data.root() .. "/models/MODELS.md" } },
            ["mh/stories-GGUF"] = { downloads = 5, files = {
               ["stories-Q8_0.gguf"] = st_q8, ["stories-Q4_0.gguf"] = st_q4 } },
            ["mh/bad-GGUF"] = { files = { ["bad-Q8_0.gguf"] = st_q8 }, wrong_sha = { "bad-Q8_0.gguf" } },
            ["mh/cut-GGUF"] = { files = { ["cut-Q8_0.gguf"] = st_q8 } },
            ["mh/gated-GGUF"] = { gated = true, files = { ["gated-Q8_0.gguf"] = st_q8 } },
            ["mh/cached-GGUF"] = { files = { ["cached-Q8_0.gguf"] = st_q8 } },
            ["mh/full-GGUF"] = { files = { ["full-Q8_0.gguf"] = st_q8 } },
            ["mh/smol-hf"] = { files = { ["config.json"] = hfd("config.json"),
               ["model.safetensors"] = hfd("model.safetensors"), ["tokenizer.json"] = hfd("tokenizer.json"),
               ["tokenizer_config.json"] = hfd("tokenizer_config.json"),
               ["generation_config.json"] = hfd("generation_config.json") } },
         },
      })
   end)

   teardown(function()
      if srv then srv.stop() end
      H.rmdir(dir)
   end)

   before_each(function()
      if dir then home = H.tmpdir() end
   end)
   after_each(function() H.rmdir(home) end)

   local function ready()
      if not srv then
         data.skip("shared test models missing", pending)
         return false
      end
      return true
   end

   it("picks Q4_K_M among the repo's files, verifies and registers it", function()
      if not ready() then return end
      local out, err, code = fake.run(home, srv, "pull mh/smol-llama-17m-GGUF")
      assert.equal(0, code, err)
      assert.matches("pulled smol%-llama%-17m:Q4_K_M", out)
      local by = rows(home)
      local r = by["smol-llama-17m:Q4_K_M"]
      assert.is_table(r)
      assert.equal(sha256(q4), r.sha256)
      assert.equal(home .. "/models/mh/smol-llama-17m-GGUF/smol-llama-17m-Q4_K_M.gguf", r.path)
      assert.equal(sha256(q4), sha256(r.path))
      assert.equal("llama", r.arch)
      assert.equal(2048, r.ctx)
      assert.equal(13990272, r.size)
      assert.matches("^Q4_K", r.quant)
      assert.is_true(r.params > 15e6 and r.params < 17e6)
      -- one row: `latest` marks it, it is no second row
      assert.is_true(r.latest)
      assert.equal(1, #select(2, rows(home)))
      assert.equal(0, count_downloads(srv, "smol-llama-17m-Q8_0.gguf"))
      -- progress went to stderr as plain lines (not a terminal here)
      assert.matches("smol%-llama%-17m%-Q4_K_M%.gguf%s+100%.0%% 13%.3 MiB/13%.3 MiB", err)
      -- and it runs by its registry name
      local text, gerr, gcode = fake.run(home, nil, "generate smol-llama-17m:Q4_K_M hi -n 4 --temp 0")
      assert.equal(0, gcode, gerr)
      assert.is_true(#text > 1)
   end)

   it("pulls REPO:QUANT and REPO/FILE, with source URL and revision", function()
      if not ready() then return end
      local _, err, code = fake.run(home, srv, "pull mh/stories-GGUF:Q8_0")
      assert.equal(0, code, err)
      _, err, code = fake.run(home, srv, "pull mh/stories-GGUF/stories-Q4_0.gguf --name st")
      assert.equal(0, code, err)
      local by = rows(home)
      assert.equal(sha256(st_q8), by["stories:Q8_0"].sha256)
      assert.equal(sha256(st_q4), by["st:Q4_0"].sha256)
      local reg = assert(require("moonhub.registry").open(home))
      local v = assert(reg:resolve("stories:Q8_0"))
      reg:close()
      local commit = "0123456789abcdef0123456789abcdef01234567"
      assert.equal(srv.url .. "/mh/stories-GGUF/resolve/" .. commit .. "/stories-Q8_0.gguf", v.source_url)
      assert.equal("0123456789abcdef0123456789abcdef01234567", v.source_revision)
      -- a quant the repo lacks names the ones it has
      local _, e2, c2 = fake.run(home, srv, "pull mh/stories-GGUF:Q6_K")
      assert.equal(1, c2)
      assert.matches("no Q6_K file in the repo %(it has: Q4_0, Q8_0%)", e2)
   end)

   -- the naming rule (docs/registry.md, "Names"): a pull and an import of the
   -- same file register the same NAME:TAG, one row each; the Hub reference
   -- reaches the pulled model whatever it is called
   it("pull and import of the same file give the same NAME:TAG; hf.co/ references resolve", function()
      if not ready() then return end
      local out, err, code = fake.run(home, srv, "pull mh/stories-GGUF:Q4_0")
      assert.equal(0, code, err)
      assert.matches("pulled stories:Q4_0 ", out)
      local pulled = select(2, rows(home))
      local other = H.tmpdir()
      local iout, ierr, icode = fake.run(other, nil, "import " .. H.q(pulled[1].path))
      assert.equal(0, icode, ierr)
      assert.matches("imported stories:Q4_0 ", iout)
      local imported = select(2, rows(other))
      H.rmdir(other)
      assert.equal(1, #pulled)
      assert.equal(1, #imported)
      assert.same({ pulled[1].name, pulled[1].tag, pulled[1].sha256, true },
         { imported[1].name, imported[1].tag, imported[1].sha256, imported[1].latest })
      -- a Hub reference to what was pulled, with or without hf.co/, even renamed
      assert.equal(0, select(3, fake.run(home, srv, "pull mh/stories-GGUF:Q8_0 --name renamed")))
      for ref, want in pairs({ ["hf.co/mh/stories-GGUF:Q4_0"] = "stories:Q4_0",
            ["mh/stories-GGUF:Q8_0"] = "renamed:Q8_0", ["hf.co/mh/stories-GGUF:q8_0"] = "renamed:Q8_0",
            ["hf.co/mh/stories-GGUF/stories-Q4_0.gguf"] = "stories:Q4_0" }) do
         local sout, serr, scode = fake.run(home, nil, "show " .. ref)
         assert.equal(0, scode, ref .. ": " .. tostring(serr))
         assert.matches("registry%s+" .. want:gsub("%p", "%%%0"), sout)
      end
      local _, gerr, gcode = fake.run(home, nil, "show hf.co/mh/stories-GGUF:Q6_K")
      assert.equal(1, gcode)
      assert.matches("no such file or registered model: 'hf.co/mh/stories%-GGUF:Q6_K'", gerr)
      -- cp and rm take the same references
      local cout, cerr, ccode = fake.run(home, nil, "cp hf.co/mh/stories-GGUF:Q4_0 fav")
      assert.equal(0, ccode, cerr)
      assert.equal("fav -> stories:Q4_0\n", cout)
      local rout, rerr, rcode = fake.run(home, nil, "rm mh/stories-GGUF:Q8_0")
      assert.equal(0, rcode, rerr)
      assert.matches("^removed mh/stories%-GGUF:Q8_0\n", rout)
      local left = {}
      for _, r in ipairs(select(2, rows(home))) do left[#left + 1] = r.name .. ":" .. r.tag end
      assert.same({ "stories:Q4_0" }, left)
   end)

   -- the log lines of requests for file, as "top-path status range from sent [cut]"
   local function transfers(file)
      local out = {}
      for _, r in ipairs(srv.requests()) do
         if r.path:match(file:gsub("%p", "%%%0") .. "$") then
            out[#out + 1] = string.format("%s %d %s %s %s%s", r.path:match("^/(%l+)"), r.status,
               tostring(r.range), tostring(r.from), tostring(r.sent), r.cut and " cut" or "")
         end
      end
      return out
   end

   it("resumes a transfer cut mid-file from the break point, refetching nothing", function()
      if not ready() then return end
      local size = 379168
      local part = home .. "/models/mh/cut-GGUF/cut-Q8_0.gguf.part"
      local _, err, code = fake.run(home, srv, "pull mh/cut-GGUF")
      assert.equal(1, code)
      assert.matches("transfer closed with %d+ bytes remaining", err)
      assert.matches("partial file .* is kept: pull again to resume", err)
      -- the redirect was followed, and the file store cut its answer at 100000 bytes
      assert.same({ "mh 302 nil nil nil", "cdn 200 nil 0 100000 cut" }, transfers("cut-Q8_0.gguf"))
      local f = assert(io.open(part, "rb"))
      assert.equal(100000, f:seek("end"))
      f:close()
      assert.same({}, (rows(home)))
      srv.clear()
      _, err, code = fake.run(home, srv, "pull mh/cut-GGUF")
      assert.equal(0, code, err)
      -- the Range rides the /resolve/ request and its redirect; the file store
      -- sends exactly the bytes past the break point
      assert.same({ "mh 302 bytes=100000- nil nil", "cdn 206 bytes=100000- 100000 " .. (size - 100000) },
         transfers("cut-Q8_0.gguf"))
      assert.equal(sha256(st_q8), rows(home)["cut:Q8_0"].sha256)
      assert.equal(sha256(st_q8), sha256(home .. "/models/mh/cut-GGUF/cut-Q8_0.gguf"))
      assert.is_nil(io.open(part, "rb"))
   end)

   it("refuses a file whose sha256 does not match and registers nothing", function()
      if not ready() then return end
      local _, err, code = fake.run(home, srv, "pull mh/bad-GGUF")
      assert.equal(1, code)
      assert.matches("sha256 mismatch", err)
      assert.matches("nothing was registered", err)
      assert.same({}, (rows(home)))
      assert.is_nil(io.open(home .. "/models/mh/bad-GGUF/bad-Q8_0.gguf.part", "rb"))
      assert.is_nil(io.open(home .. "/models/mh/bad-GGUF/bad-Q8_0.gguf", "rb"))
   end)

   it("sends HF_TOKEN as a bearer token; without it a gated repo says so", function()
      if not ready() then return end
      srv.clear()
      local _, err, code = fake.run(home, srv, "pull mh/gated-GGUF")
      assert.equal(1, code)
      assert.matches("the Hub refused access to model mh/gated%-GGUF %(HTTP 401%).*set HF_TOKEN", err)
      assert.is_nil(srv.requests()[1].auth)
      _, err, code = fake.run(home, srv, "pull mh/gated-GGUF", { HF_TOKEN = "wrong-token" })
      assert.equal(1, code)
      assert.matches("HTTP 403.*set HF_TOKEN", err)
      assert.same({}, (rows(home)))
      srv.clear()
      _, err, code = fake.run(home, srv, "pull mh/gated-GGUF", { HF_TOKEN = "secret-token" })
      assert.equal(0, code, err)
      local seen = 0
      for _, r in ipairs(srv.requests()) do
         assert.equal("Bearer secret-token", r.auth)
         seen = seen + 1
      end
      assert.is_true(seen >= 2)
   end)

   it("stops on a full disk with a clear error and registers nothing", function()
      if not ready() then return end
      local mdir = home .. "/models/mh/full-GGUF"
      assert(os.execute("mkdir -p " .. H.q(mdir)))
      -- every write to the part file fails with ENOSPC
      assert(require("moonhub.fs").symlink("/dev/full", mdir .. "/full-Q8_0.gguf.part"))
      local _, err, code = fake.run(home, srv, "pull mh/full-GGUF")
      assert.equal(1, code)
      assert.matches("disk full while downloading to .*full%-Q8_0%.gguf%.part: .*No space left on device", err)
      assert.matches("free some space and pull again", err)
      assert.same({}, (rows(home)))
      assert.is_nil(io.open(mdir .. "/full-Q8_0.gguf", "rb"))
   end)

   it("reuses a file already in the Hugging Face cache", function()
      if not ready() then return end
      local cache = home .. "/hfc"
      local repo = cache .. "/models--mh--cached-GGUF"
      local sum = sha256(st_q8)
      local commit = "0123456789abcdef0123456789abcdef01234567"
      local snap = repo .. "/snapshots/" .. commit
      assert(os.execute(string.format("mkdir -p %s/blobs %s/refs %s && cp %s %s/blobs/%s", H.q(repo),
         H.q(repo), H.q(snap), H.q(st_q8), H.q(repo), sum)))
      assert(os.execute(string.format("ln -s ../../blobs/%s %s/cached-Q8_0.gguf && printf %s > %s/refs/main",
         sum, H.q(snap), commit, H.q(repo))))
      srv.clear()
      local _, err, code = fake.run(home, srv, "pull mh/cached-GGUF", { HF_HUB_CACHE = cache })
      assert.equal(0, code, err)
      assert.matches("found in the Hugging Face cache", err)
      assert.equal(0, count_downloads(srv, "cached-Q8_0.gguf"))
      local r = rows(home)["cached:Q8_0"]
      assert.equal(snap .. "/cached-Q8_0.gguf", r.path)
      -- registered in place: rm keeps the cache's file
      local out
      out, err, code = fake.run(home, nil, "rm cached")
      assert.equal(0, code, err)
      assert.matches("kept", out)
      assert.equal(sum, sha256(r.path))
   end)

   it("pulls a safetensors repo as a folder that generate can run", function()
      if not ready() then return end
      local _, err, code = fake.run(home, srv, "pull mh/smol-hf")
      assert.equal(0, code, err)
      local r = rows(home)["smol-hf:bf16"]
      assert.is_table(r)
      assert.equal("safetensors", r.format)
      assert.equal(home .. "/models/mh/smol-hf", r.path)
      assert.equal("llama", r.arch)
      assert.equal(sha256(hf .. "/model.safetensors"), sha256(r.path .. "/model.safetensors"))
      local text, gerr, gcode = fake.run(home, nil, "generate smol-hf hi -n 4 --temp 0")
      assert.equal(0, gcode, gerr)
      assert.is_true(#text > 1)
      -- rm deletes the folder it downloaded
      _, err, code = fake.run(home, nil, "rm smol-hf")
      assert.equal(0, code, err)
      assert.is_nil(io.open(r.path .. "/config.json", "r"))
   end)

   it("--quiet pulls without a progress line (moonhub.progress's quiet)", function()
      if not ready() then return end
      local out, err, code = fake.run(home, srv, "pull mh/stories-GGUF:Q8_0 --quiet")
      assert.equal(0, code, err)
      assert.matches("pulled ", out)
      assert.is_nil(err:find("%", 1, true), err)
   end)

   it("reports unknown repos and unreachable hubs clearly", function()
      if not ready() then return end
      local _, err, code = fake.run(home, srv, "pull mh/missing-GGUF")
      assert.equal(1, code)
      assert.matches("model mh/missing%-GGUF was not found on http://127%.0%.0%.1:%d+ %(HTTP 404%)", err)
      assert.same({}, (rows(home)))
      _, err, code = fake.run(home, srv, "pull mh/stories-GGUF/nothing-Q8_0.gguf")
      assert.equal(1, code)
      assert.matches("mh/stories%-GGUF has no file nothing%-Q8_0%.gguf", err)
      _, err, code = fake.run(home, { url = "http://127.0.0.1:1" }, "pull mh/stories-GGUF")
      assert.equal(1, code)
      assert.matches("cannot reach the Hub at http://127%.0%.0%.1:1", err)
      _, err, code = fake.run(home, srv, "pull not-a-repo")
      assert.equal(1, code)
      assert.matches("is not a Hub reference", err)
   end)

   it("searches with downloads, quants, sizes and a memory verdict", function()
      if not ready() then return end
      local out, err, code = fake.run(home, srv, "search GGUF --limit 5")
      assert.equal(0, code, err)
      -- most downloaded first
      assert.is_true(out:find("mh/smol-llama-17m-GGUF  (900 downloads)", 1, true)
         < out:find("mh/stories-GGUF  (5 downloads)", 1, true))
      assert.matches("Q4_K_M%s+13%.3 MiB%s+needs 16%.0 MiB at ctx 4096; "
         .. "this machine has [%d.]+ GiB free%s+%[default%]", out)
      assert.matches("Q8_0%s+17%.6 MiB%s+needs 21%.2 MiB at ctx 4096", out)
      out, err, code = fake.run(home, srv, "search nothing-like-this")
      assert.equal(0, code, err)
      assert.matches("no models match", out)
   end)
end)
