-- generate text from a prompt with a model, streaming it, then a stats line
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub generate MODEL "prompt" [--max-tokens N] [--temp T] [--seed S] ...
local cli = require "moonhub.cli"
local mh = require "moonhub"

-- Unset sampling options take the defaults every path shares (the engine's,
-- mh.model.defaults()); the help shows them.
local D = mh.model.defaults()
local function dflt(v) return string.format(" (default %g)", v) end

local p = cli.parser("generate", "Generate text from a prompt; the stats line goes to stderr.")
p:argument("model", "a GGUF file or a Hugging Face model folder")
p:argument("prompt", "the prompt text")
p:option("-n --max-tokens", "tokens to generate" .. dflt(D.max_tokens)):convert(math.tointeger)
p:option("--temp --temperature", "sampling temperature (0 = greedy)" .. dflt(D.temperature)):convert(tonumber)
p:option("--seed", "random seed (same seed, same text)"):convert(math.tointeger)
p:option("--top-k", "keep the k most likely tokens (0 = off)" .. dflt(D.top_k)):convert(math.tointeger)
p:option("--top-p", "nucleus sampling threshold (1 = off)" .. dflt(D.top_p)):convert(tonumber)
p:option("--min-p", "drop tokens below min-p times the top probability" .. dflt(D.min_p)):convert(tonumber)
p:option("--repeat-penalty", "penalty for recently seen tokens (1 = off)" .. dflt(D.repeat_penalty)):convert(tonumber)
p:option("--presence-penalty", "OpenAI presence penalty" .. dflt(D.presence_penalty)):convert(tonumber)
p:option("--frequency-penalty", "OpenAI frequency penalty" .. dflt(D.frequency_penalty)):convert(tonumber)
p:option("--stop", "stop string (repeatable)"):count("*")
p:option("--json-schema", "constrain the output to JSON valid under this schema (JSON text)")
p:flag("--json", "constrain the output to a JSON object")
p:option("--ctx", "context length (default: the model's trained context, capped by memory)"):convert(math.tointeger)
p:option("--threads", "compute threads"):convert(math.tointeger)
p:option("--mem-limit", "refuse to load past this many MiB"):convert(tonumber)
p:option("--template", "send the prompt as a chat message through this template "
   .. "(a built-in or user name, a .jinja file, or 'auto' for the model's own)")
p:option("--system", "system prompt (with --template)")
p:flag("--special", "let control tokens in the prompt be matched")
p:flag("--ignore-eos", "keep going past end-of-generation tokens")
p:flag("-v --verbose", "after the stats line, print the settings the sampler ran with (stderr)")
p:option("--lora", "apply a LoRA adapter: ADAPTER[:SCALE], a GGUF/safetensors file or a registered "
   .. "adapter (repeatable, up to 8; their effects add up)"):count("*")

local a, code = cli.parse(p, arg)
if not a then return code end
if a.threads and a.threads < 1 then return cli.fail("generate", "--threads must be a positive integer", 2) end

-- a value the library refuses (--ctx 0, --top-p 2) is the user's error:
-- cli.try raises it without a position and the host prints it once
-- unset --ctx/--threads: env, config file, then the model's trained
-- context capped by memory (moonhub.config); a context past it warns
local model, err, warn = cli.try(require("moonhub.config").load, a.model, {
   ctx = a.ctx, threads = a.threads, mem_limit = a.mem_limit and a.mem_limit * 2^20,
})
if not model then return cli.fail("generate", err) end
local lora_ok, lora_err = require("moonhub.adapters").apply(model, a.lora)
if not lora_ok then return cli.fail("generate", lora_err) end
if warn then io.stderr:write("moonhub generate: ", warn, "\n") end
if a.verbose then io.stderr:write("moonhub generate: ", err, "\n") end

-- With --template the prompt is one user message rendered by the chat
-- template, whose stop strings join --stop.
local prompt = a.prompt
if a.template then
   local choice, terr = mh.template.for_model(model, a.template ~= "auto" and a.template or nil)
   if not choice then return cli.fail("generate", terr, 2) end
   prompt = { messages = { { role = "user", content = a.prompt } } }
   if a.system then table.insert(prompt.messages, 1, { role = "system", content = a.system }) end
   a.template = choice
elseif a.system then
   return cli.fail("generate", "--system needs --template (NAME or auto)", 2)
end

local step, st = cli.try(model.stream, model, prompt, {
   max_tokens = a.max_tokens, temperature = a.temp, seed = a.seed, top_k = a.top_k,
   top_p = a.top_p, min_p = a.min_p, repeat_penalty = a.repeat_penalty,
   presence_penalty = a.presence_penalty, frequency_penalty = a.frequency_penalty,
   stop = a.stop, special = a.special, ignore_eos = a.ignore_eos, template = a.template,
   json_schema = a.json_schema, json_object = a.json or nil,
})
for piece in step do
   io.write(piece)
   io.stdout:flush()
end
io.write("\n")
io.stderr:write(string.format(
   "prompt %d tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | first token %.0f ms | %s\n",
   st.prompt_tokens, st.prompt_tps, st.generated, st.gen_tps, st.ttft_s * 1000, st.finish_reason))
-- --verbose: "settings: key=value ..." sorted by key, as the loop reported
-- them when the generation ended (what each flag became, defaults included)
if a.verbose and st.settings then
   local keys, out = {}, {}
   for k in pairs(st.settings) do keys[#keys + 1] = k end
   table.sort(keys)
   for i, k in ipairs(keys) do
      local v = st.settings[k]
      out[i] = k .. "=" .. (math.type(v) == "float" and string.format("%.9g", v) or tostring(v))
   end
   io.stderr:write("settings: ", table.concat(out, " "), "\n")
end
return 0
