-- tokenize text with a model's tokenizer, or decode ids back to text
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub tokenize MODEL_OR_VOCAB "text" [--special] [--bos] [--eos]
--        moonhub tokenize MODEL_OR_VOCAB --ids 1,2,3 [--skip-special]
-- MODEL_OR_VOCAB: a .gguf, a tokenizer.json or a folder holding one.
-- Ids are the vocabulary's own 0-based ids. Without --bos/--eos nothing is
-- added; --special lets control tokens such as <|im_start|> be matched.
local mh = require "moonhub"
local cli = require "moonhub.cli"

local p = cli.parser("tokenize", "Tokenize text with a model's tokenizer, or decode ids back to text.",
   "Ids are the vocabulary's own 0-based ids.")
p:argument("model", "a .gguf, a tokenizer.json, a folder holding one, or a registry name")
p:argument("text", "the text to tokenize"):args("?")
p:flag("--special", "match control tokens such as <|im_start|> in the text")
p:flag("--bos", "add the beginning-of-sequence token")
p:flag("--eos", "add the end-of-sequence token")
p:option("--ids", "decode these ids instead (a list such as 1,2,3)")
p:flag("--skip-special", "with --ids: leave control tokens out of the text")

-- Shows a vocabulary string readably: control bytes escaped, quotes kept.
local function show(s)
   return '"' .. s:gsub('[%c"\\]', function(c)
      if c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
      elseif c == '"' or c == "\\" then return "\\" .. c end
      return string.format("\\x%02x", c:byte())
   end) .. '"'
end

local function decode(tok, o)
   local ids = {}
   for field in o.ids:gmatch("[^,%s]+") do
      local n = math.tointeger(tonumber(field))
      if not n then return cli.fail("tokenize", "bad id '" .. field .. "' in --ids", 2) end
      ids[#ids + 1] = n
   end
   local ok, text = pcall(tok.decode, tok, ids, { skip_special = o.skip_special })
   if not ok then return cli.fail("tokenize", cli.user_message(text) or text) end
   io.write(text, "\n")
   return 0
end

local function encode(tok, o)
   local ids = tok:encode(o.text, { bos = o.bos, eos = o.eos, special = o.special })
   for _, id in ipairs(ids) do
      print(string.format("%8d  %s", id, show(tok:text(id))))
   end
   print(string.format("%d tokens: %s", #ids, table.concat(ids, " ")))
   return 0
end

local o, code = cli.parse(p, arg)
if not o then return code end
if not o.text and not o.ids then
   return cli.fail("tokenize", "give the text to tokenize, or --ids\n" .. p:get_usage(), 2)
end
local path, rerr = mh.models.resolve(o.model)   -- a registry name or a path
if not path then return cli.fail("tokenize", rerr) end
local tok, err = mh.tokenizer.load(path)
if not tok then return cli.fail("tokenize", err) end
if o.ids then return decode(tok, o) end
return encode(tok, o)
