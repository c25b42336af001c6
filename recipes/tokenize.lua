-- tokenize text with a model's tokenizer, or decode ids back to text
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub tokenize MODEL_OR_VOCAB "text" [--special] [--bos] [--eos]
--        moonhub tokenize MODEL_OR_VOCAB --ids 1,2,3 [--skip-special]
-- MODEL_OR_VOCAB: a .gguf, a tokenizer.json or a folder holding one.
-- Ids are the vocabulary's own 0-based ids. Without --bos/--eos nothing is
-- added; --special lets control tokens such as <|im_start|> be matched.
local mh = require "moonhub"

local usage = [==[usage: moonhub tokenize MODEL_OR_VOCAB "text" [--special] [--bos] [--eos]
       moonhub tokenize MODEL_OR_VOCAB --ids 1,2,3 [--skip-special]]==]

-- Usage errors travel as a table so main can tell them from bugs.
local function fail(msg) error({ usage = msg }, 0) end

local function parse(args)
   local o = { special = false, bos = false, eos = false, skip_special = false }
   local i = 1
   while i <= #args do
      local a = args[i]
      if a == "--special" then o.special = true
      elseif a == "--bos" then o.bos = true
      elseif a == "--eos" then o.eos = true
      elseif a == "--skip-special" then o.skip_special = true
      elseif a == "--ids" then i = i + 1; o.ids = args[i] or fail("--ids needs a list such as 1,2,3")
      elseif a == "-h" or a == "--help" then o.help = true
      elseif a:sub(1, 2) == "--" then fail("unknown option " .. a)
      elseif not o.model then o.model = a
      elseif not o.text then o.text = a
      else fail("unexpected argument " .. a) end
      i = i + 1
   end
   if o.help then return o end
   if not o.model then fail("missing MODEL_OR_VOCAB") end
   if not o.text and not o.ids then fail("give the text to tokenize, or --ids") end
   return o
end

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
      if not n then fail("bad id '" .. field .. "' in --ids") end
      ids[#ids + 1] = n
   end
   local ok, text = pcall(tok.decode, tok, ids, { skip_special = o.skip_special })
   if not ok then
      io.stderr:write("tokenize: ", tostring(text), "\n")
      return 1
   end
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

local function main(...)
   local o = parse({ ... })
   if o.help then print(usage) return 0 end
   local path, rerr = mh.models.resolve(o.model)   -- a registry name or a path
   if not path then
      io.stderr:write("tokenize: ", rerr, "\n")
      return 1
   end
   local tok, err = mh.tokenizer.load(path)
   if not tok then
      io.stderr:write("tokenize: ", err, "\n")
      return 1
   end
   if o.ids then return decode(tok, o) end
   return encode(tok, o)
end

local ok, code = pcall(main, ...)
if ok then return code end
if type(code) == "table" and code.usage then
   io.stderr:write("tokenize: ", code.usage, "\n", usage, "\n")
   return 2
end
error(code, 0)
