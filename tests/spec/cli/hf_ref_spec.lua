-- Specs for Hugging Face references as Ollama and llama.cpp users write
-- them (hf.co/OWNER/REPO[:QUANT], OWNER/REPO:QUANT) in pull, run and serve,
-- and for HF_ENDPOINT and HF_TOKEN as huggingface_hub reads them, against
-- the fake Hub (tests/helpers/fake_hub.lua), which checks the bearer token.
-- Layer: tests (moonhub.hub, moonhub.models; helpers.fake_hub runs the real binary).
local H = require "helpers.host"
local data = require "helpers.data"
local fake = require "helpers.fake_hub"
local hub = require "moonhub.hub"

describe("Hub references", function()
   it("hf.co/, huggingface.co/ and https:// prefixes; a quant in any case; :latest names none", function()
      assert.same({ "bartowski/Llama-3.2-1B-Instruct-GGUF", "Q4_K_M" },
         { hub.parse_ref("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M") })
      assert.same({ "a/b", "Q8_0" }, { hub.parse_ref("hf.co/a/b:q8_0") })
      assert.same({ "a/b", "IQ4_XS" }, { hub.parse_ref("https://huggingface.co/a/b:iq4_xs") })
      assert.same({ "a/b" }, { hub.parse_ref("huggingface.co/a/b") })
      assert.same({ "a/b" }, { hub.parse_ref("hf.co/a/b:latest") })
      assert.same({ "a/b", nil, "dir/x.gguf" }, { hub.parse_ref("hf.co/a/b/dir/x.gguf") })
      assert.same({ "a/b", "Q4_K_M" }, { hub.parse_ref("a/b:Q4_K_M") })
      local none, msg = hub.parse_ref("hf.co/onlyone")
      assert.is_nil(none)
      assert.equal("hub: 'hf.co/onlyone' is not a Hub reference (ORG/NAME, ORG/NAME:QUANT or ORG/NAME/FILE, "
         .. "each may start with hf.co/)", msg)
   end)

   it("is_hub_ref: what run may pull on its own", function()
      local models = require "moonhub.models"
      assert.is_true(models.is_hub_ref("hf.co/a/b"))
      assert.is_true(models.is_hub_ref("hf.co/a/b:Q4_K_M"))
      assert.is_true(models.is_hub_ref("a/b:Q4_K_M"))
      assert.is_false(models.is_hub_ref("a/b"))             -- may be a registry name with a slash
      assert.is_false(models.is_hub_ref("smol"))
      assert.is_false(models.is_hub_ref("smol:Q8_0"))
      assert.is_false(models.is_hub_ref("a/b/x.gguf"))      -- a path unless hf.co/ says otherwise
   end)

   it("HF_ENDPOINT is the Hub's base URL; MOONHUB_HF_ENDPOINT wins over it #integration", function()
      local home = H.tmpdir()
      local code = H.q("print(require('moonhub.hub').endpoint())")
      local function endpoint(env)
         local p = io.popen(string.format("env -u MOONHUB_HF_ENDPOINT -u HF_ENDPOINT %s MOONHUB_HOME=%s %s -e %s",
            env, H.q(home), H.q(H.exe), code))
         local out = p:read("a")
         p:close()
         return out
      end
      assert.equal("https://huggingface.co\n", endpoint(""))
      assert.equal("http://mirror.example:8000\n", endpoint("HF_ENDPOINT=http://mirror.example:8000/"))
      assert.equal("http://ours.example\n",
         endpoint("HF_ENDPOINT=http://mirror.example MOONHUB_HF_ENDPOINT=http://ours.example"))
      H.rmdir(home)
   end)
end)

describe("Hub references against the fake Hub #integration", function()
   local dir, srv, home, st_q8, st_q4

   setup(function()
      st_q8, st_q4 = data.path("models/stories260K-Q8_0.gguf"), data.path("models/stories260K-Q4_0.gguf")
      if not (st_q8 and st_q4) then return end
      dir = H.tmpdir()
      srv = fake.start(dir, { token = "secret-token", repos = {
         ["mh/stories-GGUF"] = { files = { ["stories-Q8_0.gguf"] = st_q8, ["stories-Q4_0.gguf"] = st_q4 } },
         ["mh/gated-GGUF"] = { gated = true, files = { ["gated-Q8_0.gguf"] = st_q8 } },
      } })
   end)
   teardown(function()
      if srv then srv.stop() end
      H.rmdir(dir)
   end)
   before_each(function()
      home = H.tmpdir()
      if srv then srv.clear() end
   end)
   after_each(function() H.rmdir(home) end)

   -- moonhub ARGS with HF_ENDPOINT (not moonhub's own variable) at the fake Hub
   local function run(args, env)
      env = env or {}
      env.HF_ENDPOINT = srv.url
      return fake.run(home, nil, args, env)
   end

   it("pull hf.co/OWNER/REPO:QUANT through HF_ENDPOINT, HF_TOKEN as a bearer header", function()
      if not data.need("models/stories260K-Q8_0.gguf", pending) then return end
      local _, out, err, code
      _, err, code = run("pull hf.co/mh/gated-GGUF:q8_0 -q")
      assert.equal(1, code)
      assert.truthy(err:find("HTTP 401", 1, true), err)
      assert.truthy(err:find("set HF_TOKEN", 1, true), err)
      _, err, code = run("pull hf.co/mh/gated-GGUF:q8_0 -q", { HF_TOKEN = "wrong" })
      assert.equal(1, code)
      assert.truthy(err:find("HTTP 403", 1, true), err)
      srv.clear()
      out, err, code = run("pull hf.co/mh/gated-GGUF:q8_0 -q", { HF_TOKEN = "secret-token" })
      assert.equal(0, code, err)
      assert.truthy(out:find("^pulled gated:Q8_0 "), out)
      local reqs = srv.requests()
      assert.truthy(#reqs >= 2)
      for _, r in ipairs(reqs) do
         if r.path:find("^/api/") or r.path:find("/resolve/", 1, true) then
            assert.equal("Bearer secret-token", r.auth, r.path)
         end
      end
   end)

   it("run hf.co/... pulls a reference not pulled yet, then answers; the next run finds it", function()
      if not data.need("models/stories260K-Q8_0.gguf", pending) then return end
      local out, err, code = run("run hf.co/mh/stories-GGUF:Q4_0 'Once upon a time' -n 5 --temp 0")
      assert.equal(0, code, err)
      assert.truthy(err:find("moonhub run: pulling hf.co/mh/stories-GGUF:Q4_0", 1, true), err)
      assert.truthy(#out > 2, out)
      local list = run("ls")
      assert.truthy(list:find("stories:Q4_0", 1, true), list)
      -- OWNER/REPO:QUANT is the same model, now resolved from the registry
      srv.clear()
      local again, err2, code2 = run("run mh/stories-GGUF:Q4_0 'Once upon a time' -n 5 --temp 0")
      assert.equal(0, code2, err2)
      assert.equal(out, again)
      assert.equal(0, #srv.requests())
      -- serve and generate resolve the same references
      local gen, _
      gen, err2, code2 = run("generate hf.co/mh/stories-GGUF:q4_0 'Once' -n 2")
      assert.equal(0, code2, err2)
      assert.truthy(#gen > 0)
      -- serve pulls a reference not pulled yet before it starts (here it then finds its port busy)
      local busy = require("moonhub").http.server({ host = "127.0.0.1", port = 0 })
      _, err2, code2 = run("serve hf.co/mh/stories-GGUF:Q8_0 --port " .. busy.port)
      busy:close()
      assert.equal(1, code2)
      assert.truthy(err2:find("moonhub serve: pulling hf.co/mh/stories-GGUF:Q8_0", 1, true), err2)
      assert.truthy(err2:find("pick another with --port", 1, true), err2)
      assert.truthy(run("ls"):find("stories:Q8_0", 1, true))
      -- a reference the Hub does not have: the pull's error, one line
      _, err2, code2 = run("run hf.co/mh/nothing-GGUF:Q8_0 hi")
      assert.equal(1, code2)
      assert.truthy(err2:match("\nmoonhub run: pull: model mh/nothing%-GGUF was not found on [^\n]*HTTP 404%)\n$"),
         err2)
   end)
end)
