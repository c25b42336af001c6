-- chat with a model in the terminal: streamed answers, /commands, Ctrl-C stops an answer
-- Layer: recipes (uses the public moonhub API: moonhub.chat holds the session logic).
-- Usage: moonhub chat MODEL [--template NAME] [--system TEXT] [--temp T] [--seed S]
--        [--max-tokens N] [--ctx N] [--resume ID] [--no-history]; /help inside lists
--        the commands. Sessions are stored (moonhub history) unless --no-history.
local cli = require "moonhub.cli"
local chat = require "moonhub.chat"
local host = require "moonhub.host"

local p = cli.parser("chat", "Chat with a model; one line is one message, /help lists the commands.")
p:argument("model", "a GGUF file, a Hugging Face model folder or a registry name "
   .. "(with --resume: default the conversation's)"):args("?")
p:option("--template", "chat template: a built-in or user template name, or a .jinja file")
p:option("--system", "system prompt")
p:option("--temp --temperature", "sampling temperature (0 = greedy)"):convert(tonumber)
p:option("--seed", "random seed"):convert(math.tointeger)
p:option("-n --max-tokens", "most tokens per answer"):convert(math.tointeger)
p:option("--top-k", "keep the k most likely tokens (0 = off)"):convert(math.tointeger)
p:option("--top-p", "nucleus sampling threshold (1 = off)"):convert(tonumber)
p:option("--min-p", "drop tokens below min-p times the top probability"):convert(tonumber)
p:option("--repeat-penalty", "penalty for recently seen tokens (1 = off)"):convert(tonumber)
p:option("--ctx", "context length of the conversation (default: the model's trained "
   .. "context, capped by memory)"):convert(math.tointeger)
p:option("--threads", "compute threads"):convert(math.tointeger)
p:option("--mem-limit", "refuse to load past this many MiB"):convert(tonumber)
p:flag("--ignore-eos", "keep answering past end-of-generation tokens (until --max-tokens)")
p:option("--resume", "continue stored conversation ID (see 'moonhub history list')"):convert(math.tointeger)
p:flag("--no-history", "do not store this session")
p:option("--lora", "apply a LoRA adapter: ADAPTER[:SCALE], a GGUF/safetensors file or a registered "
   .. "adapter (repeatable, up to 8; their effects add up)"):count("*")

local a, code = cli.parse(p, arg)
if not a then return code end

-- the stored conversation to continue, and the store for this session
local history = require "moonhub.history"
local store, conv, resumed
if a.resume or not a.no_history then
   local herr
   store, herr = history.open()
   if not store and a.resume then
      return cli.fail("chat", herr)
   elseif not store then
      io.stderr:write("moonhub chat: not storing this session: ", herr, "\n")
   end
end
if a.resume then
   local msgs
   conv, msgs = store:get(a.resume)
   if not conv then
      return cli.fail("chat", msgs)
   end
   resumed = {}
   for i, m in ipairs(msgs) do resumed[i] = { role = m.role, content = m.content } end
   a.model = a.model or conv.model
end
if not a.model then
   return cli.fail("chat", "give a model: moonhub chat MODEL\n" .. p:get_usage(), 2)
end

-- unset --ctx/--threads: env, config file, then the model's trained
-- context capped by memory (moonhub.config); a context past it warns
local model, err, warn = cli.try(require("moonhub.config").load, a.model, {
   ctx = a.ctx, threads = a.threads, mem_limit = a.mem_limit and a.mem_limit * 2^20,
})
if not model then
   return cli.fail("chat", err)
end
local lora_ok, lora_err = require("moonhub.adapters").apply(model, a.lora)
if not lora_ok then return cli.fail("chat", lora_err) end
if warn then io.stderr:write("moonhub chat: ", warn, "\n") end
local ctx_line = err

local session, serr = chat.new(model, {
   template = a.template, system = a.system, temp = a.temp, seed = a.seed,
   max_tokens = a.max_tokens, top_k = a.top_k, top_p = a.top_p, min_p = a.min_p,
   repeat_penalty = a.repeat_penalty, ignore_eos = a.ignore_eos,
   on_turn = (store and not a.no_history) and function(s, st)
      local done, herr = pcall(function()
         local id = conv and conv.id or store:create({ model = a.model, source = "chat", options = s.settings })
         conv = conv or { id = id }
         assert(store:sync(conv.id, s.messages, { options = s.settings,
            usage = { prompt_tokens = st.prompt_tokens, completion_tokens = st.generated } }))
      end)
      if not done then s.warn("[history: " .. tostring(herr) .. "]\n") end
   end or nil,
})
if not session then
   return cli.fail("chat", serr, 2)
end

if resumed then
   session.messages = resumed
   io.stderr:write(string.format("[resumed conversation %d: %d messages]\n", conv.id, #resumed))
end

local tty = host.isatty(0)
if tty then
   io.write(string.format("moonhub chat: %s, template %s. /help for commands, Ctrl-D to leave.\n",
      a.model, session.choice.label))
   io.write("moonhub chat: ", ctx_line, "\n")
end

-- One round: prompt, read a line, handle it -> "quit" at the end. Ctrl-C
-- while waiting interrupts the read (EINTR) and raises "interrupted!" in
-- here; the session catches it itself while an answer streams.
local function round()
   if tty then
      io.write(session:continuing() and "... " or ">>> ")
      io.flush()
   end
   local line, _, errno = io.read("l")
   if line == nil and errno == 4 then return nil end   -- EINTR: Ctrl-C, a new prompt
   if line == nil then
      if tty then io.write("\n") end
      return "quit"
   end
   return session:input(line)
end

while true do
   local done, res = pcall(round)
   if not done then
      if not chat.is_interrupt(res) then error(res, 0) end
      chat.rearm()
      io.write("\n")
   elseif res == "quit" then
      break
   end
end
if store then store:close() end
return 0
