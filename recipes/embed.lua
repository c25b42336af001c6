-- embed texts with a model: one L2-normalized vector per text
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub embed MODEL "text" [--json] [--truncate]
--        moonhub embed MODEL --file texts.txt [--json]   (one text per line)
-- Encoder files (bert, nomic-bert: bge, nomic-embed-text...) give their
-- pooled vectors, several texts per forward; decoders their mean-pooled
-- final hidden states.
local cli = require "moonhub.cli"
local json = require "dkjson"

local p = cli.parser("embed", "Embed texts: one L2-normalized vector per text, one line each "
   .. "(space-separated floats), or JSON with --json.",
   "Encoder models (bert, nomic-bert) pool as their file says (CLS or mean); decoder models mean-pool "
   .. "their final hidden states. Served as /v1/embeddings and /api/embed by moonhub serve.")
p:argument("model", "a GGUF file, a Hugging Face folder (BertModel, NomicBertModel) or a registry name")
p:argument("text", "the text to embed"):args("?")
p:option("--file", "embed each line of this file instead ('-': standard input)")
p:flag("--json", 'print {"model", "dims", "pooling", "tokens", "embeddings": [[...], ...]}')
p:flag("--truncate", "cut texts longer than the model takes instead of failing")
p:option("--threads", "compute threads"):convert(math.tointeger)

local BATCH = 64        -- texts per call: bounds the activations of a long file

local function read_lines(path)
   local f = io.stdin
   if path ~= "-" then
      local err
      f, err = io.open(path, "r")
      if not f then return nil, err end
   end
   local out = {}
   for line in f:lines() do out[#out + 1] = line end
   if f ~= io.stdin then f:close() end
   return out
end

local a, code = cli.parse(p, arg)
if not a then return code end
if (a.text == nil) == (a.file == nil) then
   return cli.fail("embed", "give one text or --file FILE\n" .. p:get_usage(), 2)
end
if a.threads and a.threads < 1 then return cli.fail("embed", "--threads must be a positive integer", 2) end
local texts = { a.text }
if a.file then
   local lines, err = read_lines(a.file)
   if not lines then return cli.fail("embed", err) end
   if #lines == 0 then return cli.fail("embed", a.file .. " has no lines to embed") end
   texts = lines
end
local model, err = cli.try(require("moonhub.config").load, a.model, { threads = a.threads })
if not model then return cli.fail("embed", err) end
local vecs, tokens = {}, 0
for i = 1, #texts, BATCH do
   local batch = table.move(texts, i, math.min(i + BATCH - 1, #texts), 1, {})
   local ok, out = pcall(model.embed, model, batch, { truncate = a.truncate })
   if not ok then
      local msg = (cli.user_message(out) or tostring(out)):gsub("pass truncate = true", "pass --truncate")
      return cli.fail("embed", msg)
   end
   for _, v in ipairs(out) do vecs[#vecs + 1] = v:totable() end
   for _, t in ipairs(batch) do tokens = tokens + #model.tokenizer:encode(t) end
end
if a.json then
   local rows = {}
   for i, v in ipairs(vecs) do rows[i] = setmetatable(v, { __jsontype = "array" }) end
   io.write(json.encode({ model = a.model, dims = #vecs[1], pooling = model.info.pooling or "mean",
      tokens = tokens, embeddings = setmetatable(rows, { __jsontype = "array" }) }), "\n")
else
   for _, v in ipairs(vecs) do
      local parts = {}
      for j, x in ipairs(v) do parts[j] = string.format("%.7g", x) end
      io.write(table.concat(parts, " "), "\n")
   end
end
model:close()
return 0
