-- chat with a model, or answer a prompt once (Ollama's run); 'run FILE.lua' runs a script
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub run MODEL [PROMPT...] [--temp T] [-n N] [--system TEXT] [--local] ...
-- The host sends `run X` here when X is not a Lua script (engine/host/main.c,
-- docs/cli.md). With MOONHUB_HOST set, or a `moonhub serve` running on this
-- machine, the server answers (/v1/chat/completions); otherwise the model
-- loads in this process. A Hub reference not pulled yet is pulled first.
local cli = require "moonhub.cli"
local flags = require "moonhub.cli_flags"
local client = require "moonhub.cli_client"
local mh = require "moonhub"
local host = require "moonhub.host"

local p = cli.parser("run", "Chat with a model, or answer PROMPT once and exit. Words after MODEL are "
   .. "the prompt; without them a terminal gets a chat and a pipe is read as the prompt. "
   .. "MOONHUB_HOST (host[:port]) or a running 'moonhub serve' answers instead of this process. "
   .. "(moonhub run FILE.lua runs a Lua script.)")
p:argument("model", "a registry name, a .gguf file, a Hugging Face folder or reference "
   .. "(hf.co/ORG/REPO[:QUANT], ORG/REPO:QUANT)"):args("?"):target("model_arg")
p:argument("prompt", "the prompt (several words are joined with spaces)"):args("*"):target("prompt_arg")
flags.add(p, { "model", "prompt" })
flags.add(p, flags.SAMPLING)
flags.add(p, { "ctx", "threads", "n_gpu_layers" })
p:option("--system", "system prompt")
p:flag("--local", "load the model in this process even when a server is running")

local a, code = cli.parse(p, arg)
if not a then return code end
a.prompt_arg = #a.prompt_arg > 0 and table.concat(a.prompt_arg, " ") or nil
local okp, perr = flags.positionals(a, { { "model_arg", "model" }, { "prompt_arg", "prompt" } })
if not okp then return cli.fail("run", perr .. " — quote a prompt of several words", 2) end
if not a.model then return cli.fail("run", "missing argument 'model' — moonhub run MODEL [PROMPT]", 2) end
flags.ignored("run", a)

-- a prompt on a pipe, as `echo hi | ollama run MODEL`
local tty = host.isatty(0)
if not a.prompt and not tty then
   a.prompt = io.read("a")
   if a.prompt:match("^%s*$") then return cli.fail("run", "stdin held no prompt — give PROMPT or type it", 2) end
end

local function messages()
   local m = { { role = "user", content = a.prompt } }
   if a.system then table.insert(m, 1, { role = "system", content = a.system }) end
   return m
end

-- ===== a running server answers =====

local servers, serr = client.servers()
if not servers then return cli.fail("run", serr .. " — e.g. MOONHUB_HOST=127.0.0.1:8080", 2) end
-- MOONHUB_HOST's server always (unless --local); of this machine's, one
-- that has the model loaded, else the first. A file or folder is this
-- process's to load: a server found here answers names only.
local function pick()
   if a["local"] or #servers == 0 then return nil end
   if servers[1].explicit then return servers[1] end
   if require("moonhub.fs").stat(a.model) then return nil end
   for _, s in ipairs(servers) do
      for _, m in ipairs(s.state.models or {}) do
         if m.name == a.model or m.ref == a.model then return s end
      end
   end
   return servers[1]
end
local use = pick()

local function ask_server(msgs)
   local body = { model = a.model, messages = msgs, max_tokens = a.max_tokens, temperature = a.temp,
      seed = a.seed, top_k = a.top_k, top_p = a.top_p, min_p = a.min_p, repeat_penalty = a.repeat_penalty }
   local text = {}
   local ok, err = client.chat(use.url, body, function(piece)
      text[#text + 1] = piece
      io.write(piece)
      io.stdout:flush()
   end)
   if ok or #text > 0 then io.write("\n") end
   if not ok then return nil, err end
   return table.concat(text)
end

if use then
   if a.prompt then
      local ok, err = ask_server(messages())
      if not ok then return cli.fail("run", err .. " — see 'moonhub ps', or add --local to load it here") end
      return 0
   end
   -- a terminal chat against the server: one line is one message
   local msgs = a.system and { { role = "system", content = a.system } } or {}
   io.write(string.format("moonhub run: %s at %s. /bye or Ctrl-D to leave.\n", a.model, use.url))
   while true do
      io.write(">>> ")
      io.flush()
      local line = io.read("l")
      if line == nil or line == "/bye" then break end
      if not line:match("^%s*$") then
         msgs[#msgs + 1] = { role = "user", content = line }
         local answer, err = ask_server(msgs)
         if not answer then return cli.fail("run", err) end
         msgs[#msgs + 1] = { role = "assistant", content = answer }
      end
   end
   return 0
end

-- ===== in this process =====

-- a Hub reference not pulled yet is pulled first (as Ollama's run does)
local path, rerr = mh.models.resolve(a.model)
if not path then
   if not mh.models.is_hub_ref(a.model) then return cli.fail("run", rerr) end
   io.stderr:write("moonhub run: pulling ", a.model, "\n")
   local row, perr2 = mh.models.pull(a.model, {
      progress = function(label) return require("moonhub.progress").new(label) end,
      log = function(msg) io.stderr:write(msg, "\n") end,
   })
   if not row then return cli.fail("run", perr2) end
   path = row.path
end

if not a.prompt then
   -- a terminal chat: the chat verb, with the options that mean the same there
   local args = { path }
   for _, k in ipairs({ "system", "max_tokens", "temp", "seed", "top_k", "top_p", "min_p",
         "repeat_penalty", "ctx", "threads" }) do
      if a[k] ~= nil then
         args[#args + 1] = "--" .. k:gsub("_", "-")
         args[#args + 1] = tostring(a[k])
      end
   end
   _G.arg = { [0] = "chat", table.unpack(args) }
   return cli.main("chat", table.unpack(args))
end

local model, err, warn = cli.try(require("moonhub.config").load, path, { ctx = a.ctx, threads = a.threads })
if not model then return cli.fail("run", err) end
if warn then io.stderr:write("moonhub run: ", warn, "\n") end
local choice, terr = mh.template.for_model(model)
if not choice then return cli.fail("run", terr) end
local step = cli.try(model.stream, model, { messages = messages() }, {
   max_tokens = a.max_tokens, temperature = a.temp, seed = a.seed, top_k = a.top_k, top_p = a.top_p,
   min_p = a.min_p, repeat_penalty = a.repeat_penalty, template = choice,
})
for piece in step do
   io.write(piece)
   io.stdout:flush()
end
io.write("\n")
return 0
