-- generate text from a prompt with a model, streaming it, then a stats line
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub generate MODEL "prompt" [--max-tokens N] [--temp T] [--seed S] ...
local cli = require "moonhub.cli"
local flags = require "moonhub.cli_flags"
local mh = require "moonhub"

-- Unset sampling options take the defaults every path shares (the engine's,
-- mh.model.defaults()); the help shows them.
local D = mh.model.defaults()
local function dflt(v) return string.format(" (default %g)", v) end

local p = cli.parser("generate", "Generate text from a prompt; the stats line goes to stderr.")
p:argument("model", "a GGUF file, a Hugging Face model folder or a registry name (or -m)"):args("?"):target("model_arg")
p:argument("prompt", "the prompt text (or -p)"):args("?"):target("prompt_arg")
-- the shared options, under llama.cpp's names too (moonhub.cli_flags)
flags.add(p, { "model", "prompt" })
flags.add(p, flags.SAMPLING, { max_tokens = dflt(D.max_tokens), temp = dflt(D.temperature),
   top_k = dflt(D.top_k), top_p = dflt(D.top_p), min_p = dflt(D.min_p), repeat_penalty = dflt(D.repeat_penalty) })
flags.add(p, { "ctx", "threads", "n_gpu_layers" })
p:option("--presence-penalty", "OpenAI presence penalty" .. dflt(D.presence_penalty)):convert(tonumber)
p:option("--frequency-penalty", "OpenAI frequency penalty" .. dflt(D.frequency_penalty)):convert(tonumber)
p:option("--stop", "stop string (repeatable)"):count("*")
p:option("--json-schema", "constrain the output to JSON valid under this schema (JSON text)")
p:flag("--json", "constrain the output to a JSON object")
p:option("--mem-limit", "refuse to load past this many MiB"):convert(tonumber)
p:option("--template", "send the prompt as a chat message through this template "
   .. "(a built-in or user name, a .jinja file, or 'auto' for the model's own)")
p:option("--system", "system prompt (with --template)")
p:flag("--special", "let control tokens in the prompt be matched")
p:flag("--ignore-eos", "keep going past end-of-generation tokens")
-- speculative decoding (docs/speculative.md)
p:option("--draft", "speculative decoding: a draft model sharing the tokenizer (path or registry name), "
   .. "or 'ngram' for prompt lookup")
p:option("--draft-max", "tokens drafted per step with --draft (1..32, default 8)"):convert(math.tointeger)
p:option("--draft-p-min", "a draft model stops drafting at a token it gives less probability "
   .. "(0..1, default 0)"):convert(tonumber)
p:flag("-v --verbose", "after the stats line, print the settings the sampler ran with (stderr)")
p:option("--lora", "apply a LoRA adapter: ADAPTER[:SCALE], a GGUF/safetensors file or a registered "
   .. "adapter (repeatable, up to 8; their effects add up)"):count("*")
p:option("--processor", "a Lua logits processor: NAME[:JSON-ARGS], a built-in (ban_words, force_prefix, "
   .. "max_line_length) or $MOONHUB_HOME/processors/NAME.lua (repeatable, run in order; docs/processors.md)")
   :count("*")

local a, code = cli.parse(p, arg)
if not a then return code end
local okp, perr = flags.positionals(a, { { "model_arg", "model" }, { "prompt_arg", "prompt" } })
if not okp then return cli.fail("generate", perr .. " — quote a prompt of several words", 2) end
if not a.model or not a.prompt then
   return cli.fail("generate", string.format("missing argument '%s' — moonhub generate MODEL PROMPT "
      .. "(or -m MODEL -p PROMPT)", a.model and "prompt" or "model"), 2)
end
flags.ignored("generate", a)
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
if (a.draft_max or a.draft_p_min) and not a.draft then
   return cli.fail("generate", "--draft-max and --draft-p-min need --draft MODEL (or ngram)", 2)
end
if a.draft then
   local ok, derr = model:set_draft(a.draft, a.draft_max, a.draft_p_min)
   if not ok then return cli.fail("generate", (derr:gsub("^moonhub%.load: ", ""))) end
end

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

local procs
for _, spec in ipairs(a.processor) do
   local pr, prerr = require("moonhub.processors").parse_cli(spec)
   if not pr then return cli.fail("generate", prerr, 2) end
   procs = procs or {}
   procs[#procs + 1] = pr
end

local step, st = cli.try(model.stream, model, prompt, {
   max_tokens = a.max_tokens, temperature = a.temp, seed = a.seed, top_k = a.top_k,
   top_p = a.top_p, min_p = a.min_p, repeat_penalty = a.repeat_penalty,
   presence_penalty = a.presence_penalty, frequency_penalty = a.frequency_penalty,
   stop = a.stop, special = a.special, ignore_eos = a.ignore_eos, template = a.template,
   json_schema = a.json_schema, json_object = a.json or nil, processors = procs,
})
for piece in step do
   io.write(piece)
   io.stdout:flush()
end
io.write("\n")
io.stderr:write(string.format(
   "prompt %d tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | first token %.0f ms | %s\n",
   st.prompt_tokens, st.prompt_tps, st.generated, st.gen_tps, st.ttft_s * 1000, st.finish_reason))
if st.draft_tokens then
   io.stderr:write(string.format("speculative: %d drafted, %d accepted (%.0f%%), %.2f tokens per target step\n",
      st.draft_tokens, st.accepted_tokens, 100 * st.acceptance_rate, st.tokens_per_step))
end
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
