-- Specs for `moonhub pull` of a safetensors-only repository and its offer
-- to convert: the printed command off a terminal, --convert [--type T]
-- (the GGUF registered beside the folder), and the y/N question on a
-- terminal (tmux). The repository is a tiny folder exported from a
-- `moonhub create` preset (helpers.hf_folder), served by the fake Hub.
-- Layer: tests (runs ./moonhub as a child; never touches the network).
local H = require "helpers.host"
local data = require "helpers.data"
local fake = require "helpers.fake_hub"
local hf = require "helpers.hf_folder"
local mh = require "moonhub"

local function rows(home)
   local reg = assert(require("moonhub.registry").open(home))
   local list = reg:list()
   reg:close()
   local by = {}
   for _, r in ipairs(list) do by[r.name .. ":" .. r.tag] = r end
   return by
end

local function read(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

describe("pull of a safetensors repo: the convert offer #integration", function()
   local dir, srv, home, src

   setup(function()
      dir = H.tmpdir()
      local tok = dir .. "/tokenizer.json"
      hf.write_tokenizer(tok)
      local g = dir .. "/tiny.gguf"
      assert(mh.create.model({ preset = "tiny-qwen3", type = "F32", out = g, tokenizer = tok, seed = 9 }))
      src = hf.export(g, dir .. "/tiny-hf", { tokenizer = tok, shards = 1 })
      local files = {}
      for _, f in ipairs({ "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" }) do
         files[f] = src .. "/" .. f
      end
      srv = fake.start(dir, { repos = { ["mh/tiny-hf"] = { files = files } } })
   end)
   teardown(function()
      if srv then srv.stop() end
      H.rmdir(dir)
   end)
   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   it("prints the convert command when not on a terminal", function()
      local out, err, code = fake.run(home, srv, "pull mh/tiny-hf -q")
      assert.equal(0, code, err)
      local path = home .. "/models/mh/tiny-hf"
      assert.matches("moonhub convert " .. path:gsub("%p", "%%%0") .. " " .. path:gsub("%p", "%%%0")
         .. "%-F16%.gguf %-%-type F16", out)
      assert.is_nil(io.open(path .. "-F16.gguf", "rb"))
      local by = rows(home)
      assert.equal("safetensors", by["tiny-hf:f32"].format)
      assert.is_nil(by["tiny-hf:F16"])
   end)

   it("--convert --type Q8_0 writes and registers the GGUF beside the folder", function()
      local out, err, code = fake.run(home, srv, "pull mh/tiny-hf --convert --type Q8_0 -q")
      assert.equal(0, code, err)
      assert.matches("converted tiny%-hf:f32 %-> tiny%-hf:Q8_0 %(qwen3", out)
      local by = rows(home)
      local g = by["tiny-hf:Q8_0"]
      assert.is_table(g)
      assert.equal("gguf", g.format)
      assert.equal(by["tiny-hf:f32"].id, g.parent_id)
      -- the bytes mh.convert writes from the same folder under the same name
      local ref = dir .. "/ref-Q8_0.gguf"
      assert(mh.convert(src, ref, { type = "Q8_0", name = "tiny-hf" }))
      assert.is_true(read(g.path) == read(ref))
      local text, gerr, gcode = fake.run(home, nil, "generate tiny-hf:Q8_0 hi -n 3 --temp 0")
      assert.equal(0, gcode, gerr)
      assert.is_true(#text > 0)
   end)

   it("refuses an unknown --type before downloading", function()
      srv.clear()
      local _, err, code = fake.run(home, srv, "pull mh/tiny-hf --convert --type Q9")
      assert.equal(2, code)
      assert.matches("unknown %-%-type 'Q9'", err)
      assert.same({}, srv.requests())
   end)

   it("asks y/N on a terminal and converts on y", function()
      if not data.need_cmd("tmux", pending) then return end
      local t = require("helpers.tmux").open(home, string.format(
         "env -u HF_TOKEN MOONHUB_HOME=%s HF_HUB_CACHE=%s MOONHUB_HF_ENDPOINT=%s %s pull mh/tiny-hf -q",
         H.q(home), H.q(home .. "/hf-cache"), H.q(srv.url), H.q(H.exe)))
      t.wait("the question", function(s) return s:find("[y/N]", 1, true) ~= nil end)
      t.type("y")
      t.wait("the conversion", function(s) return s:find("converted tiny-hf:f32", 1, true) ~= nil end)
      t.close()
      assert.is_table(rows(home)["tiny-hf:F16"])
   end)
end)
