-- Doc test for README.md: every command line of its ```sh blocks runs, in
-- order, in a scratch folder with a fresh MOONHUB_HOME, shared models in
-- place of the placeholders (MODEL, IN.gguf, PATH...) and the fake Hub
-- (tests/helpers/fake_hub.lua) in place of huggingface.co; each must exit 0.
-- Each ```lua block runs whole as a script (`./moonhub run`), "model.gguf"
-- and "text.txt" standing for a shared model and a text file; it must exit
-- 0 and print what its comments promise (tests/spec/host/repl_tty_spec.lua
-- types the same block into the REPL line by line).
-- Layer: tests (runs ./moonhub as a child; never touches the network). #slow
local H = require "helpers.host"
local data = require "helpers.data"
local fake = require "helpers.fake_hub"
local host = require "moonhub.core.host"

-- Commands not run, with why. A name here that the README no longer has
-- fails the spec, so the list cannot go stale.
local SKIPPED = {
   ["make test"] = "the suite this spec runs in",
   ["make demo"] = "relinks ./moonhub mid-suite; tests/spec/examples_spec.lua runs examples/lifecycle.lua",
   ["./moonhub serve --model MODEL --port 8080"] =
      "serves until stopped, on a fixed port; tests/spec/server and tests/e2e drive the same API",
}

-- What a command reads on stdin (the others read /dev/null): a chat turn,
-- so that `history export ID` has a conversation to export.
local INPUT = { ["./moonhub chat MODEL"] = "Hi\n/bye\n" }

local MODELS = "models/"

-- the commands run elsewhere: a shared path must not depend on the folder
local function abs(path)
   if not path or path:sub(1, 1) == "/" then return path end
   local p = io.popen("pwd")
   local cwd = p:read("l")
   p:close()
   return cwd .. "/" .. path
end
local NAME, NEW = "readme-model", "readme-alias"

-- The README's ```sh lines, comments and blank lines dropped, in order.
local function readme_commands()
   local text = assert(H.read(host.root .. "/README.md"), "no README.md next to " .. host.root)
   local cmds = {}
   for block in text:gmatch("\n```sh\n(.-)\n```") do
      for line in (block .. "\n"):gmatch("(.-)\n") do
         line = line:gsub("%s+#.*$", ""):gsub("^%s+", ""):gsub("%s+$", "")
         if line ~= "" and not line:match("^#") then cmds[#cmds + 1] = line end
      end
   end
   return cmds
end

-- The README's ```lua blocks, whole.
local function readme_lua_blocks()
   local text = assert(H.read(host.root .. "/README.md"), "no README.md next to " .. host.root)
   local blocks = {}
   for block in text:gmatch("\n```lua\n(.-\n)```") do blocks[#blocks + 1] = block end
   return blocks
end

describe("README.md commands #slow", function()
   local cmds = readme_commands()
   local dir, srv, home, subst

   -- runs one shell command line in the scratch folder -> stdout, stderr, code
   local function sh(line, input)
      H.write(dir .. "/.stdin", input or "")
      -- a command that never ends (a server the README starts) is stopped
      -- after 300 s and fails, rather than hanging the suite
      local cmd = string.format("cd %s && env -u HF_TOKEN -u HF_HOME MOONHUB_HOME=%s HF_HUB_CACHE=%s "
         .. "MOONHUB_HF_ENDPOINT=%s MOONHUB_THREADS=2 timeout -k 5 300 sh -c %s <.stdin >.stdout 2>.stderr",
         H.q(dir), H.q(home), H.q(home .. "/hf-cache"), H.q(srv.url), H.q(line))
      local _, _, code = os.execute(cmd)
      return H.read(dir .. "/.stdout"), H.read(dir .. "/.stderr"), code
   end

   setup(function()
      local model = abs(data.path(MODELS .. "mh-smol-llama-17m-Q8_0.gguf"))
      local f16 = abs(data.path(MODELS .. "mh-smol-llama-17m-F16.gguf"))
      local other = abs(data.path(MODELS .. "stories260K-Q8_0.gguf"))
      if not (model and f16 and other) then return end
      dir = H.tmpdir()
      home = dir .. "/home"
      -- ./moonhub and examples/ as in the repo; outputs (m.gguf...) stay here
      assert(os.execute(string.format("mkdir -p %s && ln -s %s %s/moonhub && ln -s %s %s/examples",
         H.q(home), H.q(host.exe), H.q(dir), H.q(host.root .. "/examples"), H.q(dir))))
      H.write(dir .. "/messages.json", '[{"role": "user", "content": "Hi"}]\n')
      local rows = {}                  -- rows.jsonl of the datasets block
      for i = 1, 20 do
         rows[i] = string.format('{"prompt": "Question %d: what is the secret?", "completion": " moonhub"}', i)
      end
      H.write(dir .. "/rows.jsonl", table.concat(rows, "\n") .. "\n")
      srv = fake.start(dir, { repos = {
         ["HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"] = { downloads = 10, files = {
            ["smollm2-135m-instruct-q8_0.gguf"] = model } } } })
      subst = { MODEL = model, PATH = other, NAME = NAME, NEW = NEW, TEXT = "Hi" }
      subst["IN.gguf"] = f16
   end)

   teardown(function()
      if srv then srv.stop() end
      H.rmdir(dir)
   end)

   -- the command with its placeholders filled; ID is the first stored
   -- conversation, read when a command needs it
   local function fill(line)
      if line:find("%f[%w]ID%f[%W]") and not subst.ID then
         local out = sh("./moonhub history list")
         subst.ID = (out or ""):match("\n%s*(%d+)%s")
         assert.truthy(subst.ID, "no conversation stored for ID: " .. tostring(out))
      end
      return (line:gsub("%f[%w]IN%.gguf", subst["IN.gguf"]):gsub("%f[%w]([A-Z]+)%f[%W]", function(w)
         return subst[w]
      end))
   end

   it("runs each Lua block as a script, printing what its comments say", function()
      if not srv then return data.skip("shared test models missing", pending) end
      local blocks = readme_lua_blocks()
      assert.truthy(#blocks >= 1, "README.md has no ```lua block")
      H.write(dir .. "/text.txt", string.rep("Once upon a time there was a little fox in the forest. ", 20))
      for i, block in ipairs(blocks) do
         local file = ("readme-%d.lua"):format(i)
         H.write(dir .. "/" .. file, (block:gsub('"model%.gguf"', ('%q'):format(subst.MODEL))))
         local out, err, code = sh("./moonhub run " .. file)
         assert.equal(0, code, string.format("README Lua block %d failed:\n%s\nstdout:\n%s\nstderr:\n%s", i,
            block, out, err))
         if block:find("a:sum(), a:shape()[2], a[2][3]", 1, true) then     -- the tour's promises
            assert.matches("\n21%.0\t3\t6%.0\n", out)
            assert.truthy(out:find("dtype=bf16, shape=(3,2))", 1, true), out)
            assert.matches("%d%.%d+\ttable: 0x%x+\n$", out)          -- the perplexity and its details, last
         end
      end
   end)

   it("finds the command blocks, and every skipped command is still in them", function()
      assert.truthy(#cmds >= 20, "only " .. #cmds .. " commands found in README.md")
      local have = {}
      for _, c in ipairs(cmds) do have[c] = true end
      for c in pairs(SKIPPED) do assert.truthy(have[c], "SKIPPED names a command README.md lacks: " .. c) end
   end)

   for _, line in ipairs(cmds) do
      -- a SKIPPED command gets no test (by design, not a missing need)
      if not SKIPPED[line] then it("runs: " .. line, function()
         if not srv then return data.skip("shared test models missing", pending) end
         local cmd = fill(line)
         local out, err, code = sh(cmd, INPUT[line])
         assert.equal(0, code, string.format("README command failed: %s\n(run as: %s)\nstdout:\n%s\nstderr:\n%s",
            line, cmd, out, err))
      end) end
   end
end)
