-- Specs for moonhub.hub (references, quant names, picking, the HF cache
-- path, model info, tree pages, search, resumed downloads) and
-- moonhub.core.fetch (requests, redirects, ETag, HEAD, errors, full disks).
-- Layer: tests (the HTTP parts use tests/helpers/fake_hub.lua on loopback).
local H = require "helpers.host"
local data = require "helpers.data"
local fake = require "helpers.fake_hub"
local hub = require "moonhub.hub"
local fetch = require "moonhub.core.fetch"
local fs = require "moonhub.fs"

describe("hub references and quants", function()
   it("parses repo, repo:quant and repo/file", function()
      assert.same({ "a/b" }, { hub.parse_ref("a/b") })
      assert.same({ "a/b", "Q8_0" }, { hub.parse_ref("a/b:q8_0") })
      assert.same({ "a/b", nil, "sub/x.gguf" }, { hub.parse_ref("a/b/sub/x.gguf") })
      assert.is_nil((hub.parse_ref("nope")))
      assert.is_nil((hub.parse_ref("a/b/../../etc/passwd")))
   end)

   it("finds quant names in file names", function()
      assert.equal("Q4_K_M", hub.quant_of("SmolLM2-135M-Instruct-Q4_K_M.gguf"))
      assert.equal("Q8_0", hub.quant_of("dir/model.q8_0.gguf"))
      assert.equal("IQ4_XS", hub.quant_of("x-IQ4_XS.gguf"))
      assert.equal("BF16", hub.quant_of("x-bf16.gguf"))
      assert.is_nil(hub.quant_of("model.gguf"))
      assert.is_nil(hub.quant_of("XQ4_0Y.gguf"))
   end)

   it("picks Q4_K_M, then Q4_K_S, Q5_K_M, Q8_0, then the smallest", function()
      local function f(p, size) return { path = p, size = size } end
      local files = { f("m-Q8_0.gguf", 8), f("m-Q4_K_S.gguf", 4), f("m-Q4_K_M.gguf", 5), f("README.md", 1) }
      assert.equal("m-Q4_K_M.gguf", hub.pick(files).path)
      table.remove(files, 3)
      assert.equal("m-Q4_K_S.gguf", hub.pick(files).path)
      assert.equal("m-Q8_0.gguf", hub.pick(files, "q8_0").path)
      local odd = { f("m-Q2_K.gguf", 3), f("m-F16.gguf", 20), f("m-00001-of-00002.gguf", 1),
         f("mmproj-m.gguf", 1) }
      assert.equal("m-Q2_K.gguf", hub.pick(odd).path)
      local none, msg = hub.pick(odd, "Q6_K")
      assert.is_nil(none)
      assert.equal("no Q6_K file in the repo (it has: F16, Q2_K)", msg)
      assert.equal("no single-file GGUF in the repo", select(2, hub.pick({ f("config.json", 1) })))
   end)

   it("builds resolve URLs with escaped paths", function()
      assert.equal(hub.endpoint() .. "/a/b/resolve/main/dir/my%20file.gguf",
         hub.file_url("a/b", "main", "dir/my file.gguf"))
   end)
end)

describe("fetch", function()
   it("rejects misuse with the function's name", function()
      assert.has_error(function() fetch.request{} end, "fetch.request: option 'url' (a string) is required")
      assert.has_error(function() fetch.request{ url = "ftp://x/y" } end,
         "fetch.request: only http:// and https:// URLs, got 'ftp://x/y'")
      assert.has_error(function() fetch.request{ url = "http://x/", method = "PUT" } end,
         "fetch.request: method must be \"GET\" or \"HEAD\", got \"PUT\"")
      assert.has_error(function() fetch.request{ url = "http://x/", headers = { ["A\r\nB"] = "v" } } end)
      assert.has_error(function() fetch.request{ url = "http://x/", resume_from = 5 } end)
      assert.has_error(function() fetch.request{ url = "http://x/", timeout = -1 } end,
         "fetch.request: option 'timeout' must be an integer >= 0")
   end)

   it("reports a refused connection as an environmental failure", function()
      local res, msg, code = fetch.request{ url = "http://127.0.0.1:1/x", connect_timeout = 5 }
      assert.is_nil(res)
      assert.matches("Couldn't connect", msg)
      assert.equal("EIO", code)
   end)

   it("hashes files", function()
      local dir = H.tmpdir()
      H.write(dir .. "/abc", "abc")
      assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", fetch.sha256_file(dir .. "/abc"))
      assert.is_nil((fetch.sha256_file(dir .. "/none")))
      H.rmdir(dir)
   end)

   describe("against the fake Hub", function()
      local dir, srv, file, real_endpoint
      setup(function()
         file = data.path("models/stories260K-Q8_0.gguf")
         if not file then return end
         dir = H.tmpdir()
         local cfgjson = data.root() .. "/models/hf/mh-smol-llama-17m/config.json"
         srv = fake.start(dir, { token = "tok", tree_page = 1, break_after = { ["c-Q8_0.gguf"] = 4096 },
            repos = { ["mh/s"] = { downloads = 7, files = { ["s-Q8_0.gguf"] = file, ["config.json"] = cfgjson } },
               ["mh/c"] = { files = { ["c-Q8_0.gguf"] = file } },
               ["mh/private"] = { gated = true, files = { ["config.json"] = cfgjson } } } })
         -- the hub module reads its endpoint from the environment: point it here
         real_endpoint = hub.endpoint
         hub.endpoint = function() return srv.url end
      end)
      teardown(function()
         if real_endpoint then hub.endpoint = real_endpoint end
         if srv then srv.stop() end
         H.rmdir(dir)
      end)

      it("reads model info, tree pages and search results", function()
         if not srv then return data.skip("models/stories260K-Q8_0.gguf missing", pending) end
         local sum = fetch.sha256_file(file)
         local info = assert(hub.model_info("mh/s"))
         assert.equal("0123456789abcdef0123456789abcdef01234567", info.sha)
         assert.same({ "config.json", "s-Q8_0.gguf" }, { info.files[1].path, info.files[2].path })
         assert.same({ 379168, sum, true }, { info.files[2].size, info.files[2].sha256, info.files[2].lfs })
         assert.same({ 673, false }, { info.files[1].size, info.files[1].lfs })
         assert.is_nil(info.files[1].sha256)
         -- one entry per page: the Link rel="next" chain is followed to the end
         srv.clear()
         local files = assert(hub.tree("mh/s"))
         assert.same({ "config.json", "s-Q8_0.gguf" }, { files[1].path, files[2].path })
         assert.equal(sum, files[2].sha256)
         assert.equal(2, #srv.requests())
         local found = assert(hub.search("s", { limit = 5 }))
         assert.same({ "mh/s", 7 }, { found[1].id, found[1].downloads })
         assert.same({}, assert(hub.search("zzz")))
      end)

      it("maps 401 without a token and 404 for an unknown repo to clear errors", function()
         if not srv then return data.skip("models/stories260K-Q8_0.gguf missing", pending) end
         local none, msg, status = hub.model_info("mh/private")
         assert.is_nil(none)
         assert.equal(401, status)
         assert.matches("refused access to model mh/private %(HTTP 401%).*set HF_TOKEN", msg)
         none, msg, status = hub.model_info("mh/nothing")
         assert.is_nil(none)
         assert.equal(404, status)
         assert.equal("model mh/nothing was not found on " .. srv.url .. " (HTTP 404)", msg)
         local res = assert(fetch.request{ url = srv.url .. "/mh/nothing/resolve/main/x.gguf" })
         assert.equal(404, res.status)
         assert.equal("RepoNotFound", res.headers["x-error-code"])
      end)

      it("resumes hub.download from the break point and verifies the result", function()
         if not srv then return data.skip("models/stories260K-Q8_0.gguf missing", pending) end
         local dest, url = dir .. "/c.gguf", srv.url .. "/mh/c/resolve/main/c-Q8_0.gguf"
         local want = { size = 379168, sha256 = fetch.sha256_file(file) }
         srv.clear()
         local ok, msg, kind = hub.download(url, dest, want)
         assert.is_nil(ok)
         assert.equal("partial", kind)
         assert.matches("pull again to resume", msg)
         assert.equal(4096, fs.stat(dest .. ".part").size)
         assert(hub.download(url, dest, want))
         assert.equal(want.sha256, fetch.sha256_file(dest))
         local served = {}
         for _, r in ipairs(srv.requests()) do
            if r.path:match("^/cdn/") then served[#served + 1] = { r.from, r.sent, r.range } end
         end
         assert.same({ { 0, 4096 }, { 4096, 379168 - 4096, "bytes=4096-" } }, served)
      end)

      it("follows the resolve redirect, reports progress, ETags and HEAD headers", function()
         if not srv then return data.skip("models/stories260K-Q8_0.gguf missing", pending) end
         local seen = {}
         srv.clear()
         local res = assert(fetch.request{ url = srv.url .. "/mh/s/resolve/main/s-Q8_0.gguf",
            path = dir .. "/s.gguf", progress = function(done, total) seen[#seen + 1] = { done, total } end })
         assert.equal(200, res.status)
         assert.equal(379168, res.written)
         assert.matches("/cdn/mh/s/s%-Q8_0%.gguf$", res.url)
         -- the Hub answered 302 and the file store sent the bytes, named by their sha256
         local log = srv.requests()
         assert.same({ 302, 200 }, { log[1].status, log[2].status })
         assert.equal('"' .. fetch.sha256_file(file) .. '"', res.headers.etag)
         assert.same({ 379168, 379168 }, seen[#seen])
         assert.equal(fetch.sha256_file(file), fetch.sha256_file(dir .. "/s.gguf"))
         local head = assert(fetch.request{ url = srv.url .. "/mh/s/resolve/main/config.json", method = "HEAD" })
         assert.equal(200, head.status)
         assert.equal("0123456789abcdef0123456789abcdef01234567", head.headers["x-repo-commit"])
         assert.equal("673", head.headers["content-length"])
         assert.matches('^"%x+"$', head.headers.etag)
         assert.equal("", head.body)
         -- a progress callback's error stops the transfer and comes through
         assert.has_error(function()
            fetch.request{ url = srv.url .. "/mh/s/resolve/main/s-Q8_0.gguf", path = dir .. "/t.gguf",
               progress = function() error("stop here", 0) end }
         end, "stop here")
      end)

      it("runs transfers, hashes and unlinks on worker threads, reporting on a channel", function()
         if not srv then return data.started(srv, "models/stories260K-Q8_0.gguf", pending) end
         local url, w = srv.url .. "/mh/s/resolve/main/s-Q8_0.gguf", dir .. "/w.gguf"
         local function wait(job, ch)
            local msgs = {}
            while true do
               local m, tag = ch:recv()
               if not m then break end
               msgs[#msgs + 1] = { m, tag }
            end
            return msgs, job:result()
         end
         local msgs, res = wait(fetch.start{ url = url, path = w, sha256 = true })
         assert.equal(200, res.status)
         assert.equal(fetch.sha256_file(file), res.sha256)       -- hashed as the bytes arrived
         assert.same({ "379168 379168", 1 }, msgs[#msgs])
         local _, h = wait(fetch.hash_start(w))
         assert.equal(res.sha256, h.sha256)
         assert.truthy((wait(fetch.unlink_start(w))))
         assert.is_nil(fs.stat(w))
         local _, none, msg = wait(fetch.unlink_start(w))
         assert.is_nil(none)
         assert.matches("unlink: .*No such file", msg)
         -- hub.request waits on the channel; false from progress cancels the
         -- job. From a hub that holds the transfer halfway (its gate never
         -- opens): a 379 KB local transfer can be over before the first
         -- progress message is read on a loaded host, and then nothing is left
         -- to cancel.
         assert(fs.mkdirs(dir .. "/held"))
         local held = fake.start(dir .. "/held", { throttle = 2^40, gate = dir .. "/held/never",
            repos = { ["mh/s"] = { files = { ["s-Q8_0.gguf"] = file } } } })
         local hurl = held.url .. "/mh/s/resolve/main/s-Q8_0.gguf"
         local ok, e = pcall(function()
            local stopped, smsg, code = hub.request{ url = hurl, path = w, progress = function() return false end }
            assert.is_nil(stopped)
            assert.equal("EINTR", code)
            assert.matches("transfer stopped", smsg)
            assert.has_error(function()
               hub.request{ url = hurl, path = w, progress = function() error("stop here", 0) end }
            end, "stop here")
         end)
         held.stop()
         assert(ok, e)
         assert.has_error(function() fetch.start{ url = url, progress = print } end,
            "fetch.start: progress arrives on the channel; drop the 'progress' option")
         assert.has_error(function() fetch.start{ url = url, sha256 = true } end,
            "fetch.request: option 'sha256' hashes the file: it needs 'path'")
      end)

      it("keeps 404 bodies out of the file and names full disks", function()
         if not srv then return data.skip("models/stories260K-Q8_0.gguf missing", pending) end
         local res = assert(fetch.request{ url = srv.url .. "/mh/s/resolve/main/none.gguf", path = dir .. "/n" })
         assert.equal(404, res.status)
         assert.matches("Entry not found", res.body)
         assert.is_nil(io.open(dir .. "/n", "rb"))
         -- a part file on a full device: the download stops, the part stays for a resume
         local dest = dir .. "/full.gguf"
         assert(fs.symlink("/dev/full", dest .. ".part"))
         local ok, msg, kind = hub.download(srv.url .. "/mh/s/resolve/main/s-Q8_0.gguf", dest, { size = 379168 })
         assert.is_nil(ok)
         assert.equal("disk", kind)
         assert.matches("disk full while downloading to .*No space left on device.*partial file is kept", msg)
         assert.truthy(fs.stat(dest .. ".part"))
      end)
   end)
end)
