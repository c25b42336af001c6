-- moonhub.cli_flags: the options several verbs share, defined once, under
-- the names llama.cpp gives them too (-m, -c, -t, -n, -p, -s, -np, -ngl...),
-- and the converters that name what they expected. Layer: lua/moonhub
-- (pure Lua over lua-argparse parsers made by moonhub.cli). See docs/cli.md.
local M = {}

-- ===== converters: value | nil, "expected ..., got '...'" =====
-- moonhub.cli puts the option's name in front ("-n: expected an integer, got 'abc'").

function M.int(s)
   local n = math.tointeger(tonumber(s))
   if n == nil then return nil, string.format("expected an integer, got '%s'", s) end
   return n
end

function M.num(s)
   local n = tonumber(s)
   if n == nil or n ~= n then return nil, string.format("expected a number, got '%s'", s) end
   return n
end

-- ===== the shared definitions =====
-- key -> { names, help, convert }. The first long name is the result's field
-- (argparse's rule): "-n --max-tokens --n-predict" fills a.max_tokens.
M.DEFS = {
   model = { "-m --model", "model: a GGUF file, a Hugging Face folder or a registry name" },
   prompt = { "-p --prompt", "the prompt text (instead of the PROMPT argument)" },
   ctx = { "-c --ctx --ctx-size", "context length (default: the model's trained context, capped by memory)", M.int },
   threads = { "-t --threads", "compute threads", M.int },
   max_tokens = { "-n --max-tokens --n-predict", "tokens to generate", M.int },
   temp = { "--temp --temperature", "sampling temperature (0 = greedy)", M.num },
   seed = { "-s --seed", "random seed (same seed, same text)", M.int },
   top_k = { "--top-k", "keep the k most likely tokens (0 = off)", M.int },
   top_p = { "--top-p", "nucleus sampling threshold (1 = off)", M.num },
   min_p = { "--min-p", "drop tokens below min-p times the top probability", M.num },
   repeat_penalty = { "--repeat-penalty", "penalty for recently seen tokens (1 = off)", M.num },
   parallel = { "-np --parallel", "sequences decoded together (continuous batching)", M.int },
   host = { "--host", "address to bind (default 127.0.0.1, loopback)" },
   port = { "--port", "port (0 picks a free one; default 8080)", M.int },
   api_key = { "--api-key", "require 'Authorization: Bearer KEY'" },
   n_gpu_layers = { "-ngl --n-gpu-layers --gpu-layers",
      "layers to offload to a GPU (llama.cpp's flag; accepted and ignored: this build runs on the CPU)" },
}

-- The sampling options generate, chat and run share, in help order.
M.SAMPLING = { "max_tokens", "temp", "seed", "top_k", "top_p", "min_p", "repeat_penalty" }

--- add(p, keys, extra) -> p: the options named by keys (M.DEFS keys) on
-- parser p. extra[key] replaces the help text (a string) or appends to it
-- (a string starting with " "), so a verb can say its own default.
function M.add(p, keys, extra)
   extra = extra or {}
   for _, k in ipairs(keys) do
      local d = M.DEFS[k]
      if not d then error("cli_flags.add: no shared option '" .. tostring(k) .. "'", 2) end
      local help, e = d[2], extra[k]
      if type(e) == "string" then help = e:sub(1, 1) == " " and (help .. e) or e end
      local o = p:option(d[1], help)
      if d[3] then o:convert(d[3]) end
   end
   return p
end

--- ignored(verb, a): the one-line note for flags moonhub accepts and does
-- not use (-ngl on this CPU-only engine); nothing when none was given.
function M.ignored(verb, a)
   if a.n_gpu_layers ~= nil then
      io.stderr:write(string.format("moonhub %s: note: -ngl %s ignored — this build runs on the CPU\n",
         verb, tostring(a.n_gpu_layers)))
   end
end

--- positionals(a, names) -> true | nil, msg: llama.cpp passes the model and
-- prompt as -m/-p, moonhub as arguments; both work. names maps the
-- positional fields in order to the option fields that may stand for them,
-- e.g. {{"model_arg", "model"}, {"prompt_arg", "prompt"}}: when an option
-- is given, the positionals shift to the next field still unset.
function M.positionals(a, names)
   local free = {}
   for _, n in ipairs(names) do
      if a[n[1]] ~= nil then free[#free + 1] = a[n[1]] end
   end
   local i = 1
   for _, n in ipairs(names) do
      if a[n[2]] == nil then
         a[n[2]] = free[i]
         i = i + 1
      end
   end
   if free[i] ~= nil then return nil, string.format("unexpected argument '%s'", free[i]) end
   return true
end

return M
