-- moonhub.cli: verb discovery, dispatch and help for `moonhub VERB [args]`
-- (a verb is recipes/VERB.lua, $MOONHUB_HOME/recipes first), and the argument
-- boilerplate recipes share (parser, parse, fail, converters). Layer:
-- lua/moonhub (uses moonhub.core.host, moonhub.fs, lua-argparse). See docs/cli.md.
local host = require "moonhub.core.host"
local fs = require "moonhub.fs"

local M = {}

local USAGE = [[
usage: moonhub                     start the REPL
       moonhub run FILE.lua [args] run a Lua script (arg and ... as in lua)
       moonhub run MODEL [PROMPT]  chat with a model, or answer PROMPT once
       moonhub -e CODE [args]      run a string of Lua
       moonhub - [args]            run a script read from stdin
       moonhub VERB [args]         run a recipe
       moonhub help [VERB]         list verbs, or show one verb's help
       moonhub --version]]

-- Verb names are plain words: no path tricks, no hidden files.
local function valid_name(verb)
   return type(verb) == "string" and verb:match("^[%w][%w_%-]*$") ~= nil
end

--- Folders searched for recipes, highest precedence first.
function M.dirs()
   return { host.user_recipes, host.recipes }
end

--- The installed moonhub tree (lua/, recipes/).
function M.root()
   return host.root
end

local function readable(path)
   local st = fs.stat(path)
   return st ~= nil and st.type == "file"
end

--- Other names of verbs (Ollama's habits): a recipe of that name wins.
M.ALIASES = { ls = "list" }

--- Path of the recipe for verb (or for the verb it is an alias of), or nil.
function M.find(verb)
   if not valid_name(verb) then return nil end
   for _, dir in ipairs(M.dirs()) do
      local path = dir .. "/" .. verb .. ".lua"
      if readable(path) then return path end
   end
   local target = M.ALIASES[verb]
   return target and M.find(target) or nil
end

--- The one-line description: the recipe's first line `-- text`, or "".
function M.describe(path)
   local f = io.open(path, "r")
   if not f then return "" end
   local first = f:read("l") or ""
   f:close()
   return first:match("^%-%-+%s*(.-)%s*$") or ""
end

--- Every verb, sorted by name: { name, path, description, user }.
function M.verbs()
   local seen, list = {}, {}
   for i, dir in ipairs(M.dirs()) do
      for _, file in ipairs(host.listdir(dir) or {}) do
         local name = file:match("^(.+)%.lua$")
         if name and valid_name(name) and not seen[name] then
            seen[name] = true
            local path = dir .. "/" .. file
            list[#list + 1] = { name = name, path = path, user = (i == 1),
                                description = M.describe(path) }
         end
      end
   end
   table.sort(list, function(a, b) return a.name < b.name end)
   return list
end

--- The text `moonhub help` prints.
function M.help_text()
   local verbs = M.verbs()
   local width = 4
   local aka = {}                        -- verb -> " (ls)"
   for alias, target in pairs(M.ALIASES) do aka[target] = (aka[target] or "") .. ", " .. alias end
   for _, v in ipairs(verbs) do
      v.label = v.name .. (aka[v.name] and (" (" .. aka[v.name]:sub(3) .. ")") or "")
      width = math.max(width, #v.label)
   end
   local out = { USAGE, "", "verbs:" }
   for _, v in ipairs(verbs) do
      local note = v.user and "  [" .. v.path .. "]" or ""
      out[#out + 1] = string.format("  %-" .. width .. "s  %s%s", v.label, v.description, note)
   end
   out[#out + 1] = ""
   out[#out + 1] = "'moonhub help VERB' shows one verb's help."
   return table.concat(out, "\n")
end

-- ===== suggestions =====

local distance = require "moonhub.edit_distance"

--- closest(word, candidates) -> the candidate nearest word by edit
-- distance, or nil when none is near (at most 2 edits, and fewer than half
-- of word's letters): the "did you mean" of unknown verbs and options.
function M.closest(word, candidates)
   local best, bd = nil, math.huge
   for _, c in ipairs(candidates) do
      local d = distance(word, c)
      if d < bd or (d == bd and best and c < best) then best, bd = c, d end
   end
   local core = #word:gsub("^%-+", "")
   if best and bd <= 2 and bd * 2 < math.max(core, 2) + 1 then return best end
   return nil
end

local function unknown(verb)
   local names = {}
   for _, v in ipairs(M.verbs()) do names[#names + 1] = v.name end
   for alias in pairs(M.ALIASES) do names[#names + 1] = alias end
   local near = valid_name(verb) and M.closest(verb, names)
   io.stderr:write(string.format("moonhub: unknown command '%s' — %s\n", tostring(verb),
      near and ("did you mean '" .. near .. "'?") or "see 'moonhub help'"))
   return 2
end

-- A recipe takes --help itself when it says so or parses with argparse or
-- cli.parse (which answer --help on their own); otherwise its description is the help.
local function handles_help(path)
   local src = fs.read(path)
   if not src then return false end
   return src:find("--help", 1, true) ~= nil or src:find("argparse", 1, true) ~= nil
      or src:find("cli.parse", 1, true) ~= nil
end

-- Recipe return value -> exit code: nothing/true 0, false 1, integer itself.
local function exit_code(ret)
   if ret == false then return 1 end
   if math.type(ret) == "integer" then return ret end
   return 0
end

-- `--db URL|PATH` is every verb's: the database the home's registry,
-- datasets, runs, jobs and history use (moonhub.registry.location). Taken
-- out of the arguments (and of the global `arg`) before the recipe parses.
local function take_db_flag(args)
   local i = 1
   while i <= #args and args[i] ~= "--" do
      local s = args[i]
      local v = s:match("^%-%-db=(.*)$")
      if s == "--db" then v = args[i + 1] or "" end
      if v then
         if v == "" or v:match("^%-") then
            error("--db: expected a SQLite path or a postgresql:// URL", 0)
         end
         require("moonhub.registry").use_db(v)
         local n = s == "--db" and 2 or 1
         for _ = 1, n do
            table.remove(args, i)
            if type(arg) == "table" then table.remove(arg, i) end
         end
      else
         i = i + 1
      end
   end
   return args
end

--- Runs recipe `verb` with args as its `...`; returns the exit code.
-- The global `arg` is set by the host (arg[0] = verb); errors propagate.
function M.main(verb, ...)
   local path = M.find(verb)
   if not path then return unknown(verb) end
   local chunk, err = loadfile(path)
   if not chunk then error(err, 0) end
   local args = take_db_flag(table.pack(...))
   return exit_code(chunk(table.unpack(args, 1, #args)))
end

-- ===== recipe arguments =====
-- A recipe's whole argument handling:
--   local p = cli.parser("quantize", "Convert a GGUF model ...")
--   p:argument("input", "...")
--   local a, code = cli.parse(p, arg)
--   if not a then return code end
--   ...
--   if not st then return cli.fail("quantize", err) end

local names = setmetatable({}, { __mode = "k" })   -- parser -> verb, for messages

--- An argparse parser for `moonhub VERB` (verb may be "bench tokenize").
function M.parser(verb, description, epilog)
   if type(verb) ~= "string" or verb == "" then
      error("cli.parser: verb must be a non-empty string, got " .. type(verb), 2)
   end
   local p = require("argparse")("moonhub " .. verb, description, epilog)
   names[p] = verb
   return p
end

-- ===== what argparse does not do for us =====

local wrapped = setmetatable({}, { __mode = "k" })   -- element -> true once its converter names it
local current = {}                                     -- the arguments being parsed (for names)
local KNOWN = { [math.tointeger] = "an integer", [tonumber] = "a number" }

-- The name the user gave the option whose value is `value` ("-n" or
-- "--max-tokens"), for the message; the element's first name otherwise.
local function typed_name(el, value)
   for i, s in ipairs(current) do
      for _, al in ipairs(el._aliases or {}) do
         if (s == al and current[i + 1] == value) or s == al .. "=" .. value
               or (al:match("^%-[^-]$") and s == al .. value) then
            return al
         end
      end
   end
   return el._aliases and el._aliases[1] or el._name
end

-- A converter's failure names the option and what it expected:
-- "-n: expected an integer, got 'abc'" (argparse alone says "malformed argument 'abc'").
local function name_converter(el)
   local conv = el._convert
   if wrapped[el] or type(conv) ~= "function" then return end
   wrapped[el] = true
   el._convert = function(s)
      local v, err = conv(s)
      if v ~= nil then return v end
      err = err or string.format("expected %s, got '%s'", KNOWN[conv] or "another value", s)
      return nil, typed_name(el, s) .. ": " .. err
   end
end

-- The arguments argparse sees: llama.cpp's one-dash long names (-ngl, -np)
-- become their "--" name (argparse would read -ngl as -n gl), and a
-- negative number after an option that takes a value is glued to it
-- (--presence-penalty -0.5 -> --presence-penalty=-0.5; argparse reads "-0.5" as an option).
local function prepare(p, args)
   local opts = {}
   for _, el in ipairs(p._options) do
      name_converter(el)
      for _, al in ipairs(el._aliases) do opts[al] = el end
   end
   for _, el in ipairs(p._arguments) do name_converter(el) end
   local out, i = {}, 1
   while i <= #args do
      local s = args[i]
      if s == "--" then table.move(args, i, #args, #out + 1, out); break end
      local el = opts[s]
      if el and s:match("^%-[^-].") then
         for _, al in ipairs(el._aliases) do
            if al:match("^%-%-") then s = al; break end
         end
      end
      local nxt = args[i + 1]
      if el and el._maxargs > 0 and nxt and nxt:match("^%-%.?%d") and tonumber(nxt) and not opts[nxt] then
         out[#out + 1] = s:match("^%-%-") and (s .. "=" .. nxt) or (s .. nxt)
         i = i + 2
      else
         out[#out + 1] = s
         i = i + 1
      end
   end
   return out
end

--- parse(p, args) -> the options | nil, 2. A usage error is one line on
-- stderr, "moonhub VERB: what was wrong — what to do": the option it
-- concerns ("-n: expected an integer, got 'abc'"), and for an unknown
-- option the closest known one ("did you mean '--temp'?") or where the
-- options are listed. --help prints the help and exits 0 (argparse's own behaviour).
function M.parse(p, args)
   current = args or {}
   local ok, a = p:pparse(prepare(p, current))
   current = {}
   if ok then return a end
   local verb = names[p] or p._name
   local msg = tostring(a):match("^[^\n]*")              -- argparse's own tip goes: ours follows
   local hint
   local bad = msg:match("^unknown option '([^']+)'")
   if bad then
      local all = {}
      for _, el in ipairs(p._options) do
         for _, al in ipairs(el._aliases) do all[#all + 1] = al end
      end
      local near = M.closest(bad, all)
      hint = near and ("did you mean '" .. near .. "'?")
   end
   hint = hint or ("see 'moonhub " .. verb .. " --help'")
   io.stderr:write("moonhub ", verb, ": ", msg, " — ", hint, "\n")
   return nil, 2
end

--- fail(verb, msg [, code = 1]) -> code, after "moonhub VERB: msg" on stderr.
-- The host's rule (docs/errors.md) applies: labels in msg that repeat the
-- verb ("VERB: ", "moonhub VERB: ") or name the Lua function the recipe
-- called ("moonhub.load: ") are dropped, so a message is prefixed once
-- whether the recipe prints it here or raises it with error(msg, 0).
-- Exit codes: 2 for usage (the parser's and the recipe's own argument
-- checks), 1 for everything else.
-- type_counts({q8_0 = 15, f32 = 7}) -> {"q8_0 x15", "f32 x7"}: most used
-- first, then by name (the tensor-type line of quantize and convert)
function M.type_counts(types)
   local order = {}
   for t in pairs(types) do order[#order + 1] = t end
   table.sort(order, function(x, y)
      if types[x] ~= types[y] then return types[x] > types[y] end
      return x < y
   end)
   local parts = {}
   for _, t in ipairs(order) do parts[#parts + 1] = string.format("%s x%d", t, types[t]) end
   return parts
end

function M.fail(verb, msg, code)
   local head = verb:match("^%S+")                -- "bench tokenize" answers as bench
   io.stderr:write("moonhub ", verb, ": ", host.verb_message(head, tostring(msg)), "\n")
   return code or 1
end

--- user_message(err) -> err without its source position when it is a Lua
-- API's report of a refused argument ("file.lua:12: name: what", or
-- "bad argument #n to 'f' (...)"); nil for anything else (a bug).
function M.user_message(e)
   local rest = type(e) == "string" and e:match("^[^:\n]+:%d+: (.*)$")
   if rest and (rest:match("^[%w_.:]+: ") or rest:match("^bad argument #%d+ to ")) then return rest end
   return nil
end

--- try(fn, ...) -> fn(...)'s results. For calls a recipe makes with the
-- user's values (a model name, --ctx, --port): an argument the library
-- refuses is the user's error, raised again without a source position so
-- the host prints it as one line, "moonhub VERB: what was wrong". Any
-- other error (a bug) goes on as it was, position and all.
function M.try(fn, ...)
   local res = table.pack(pcall(fn, ...))
   if res[1] then return table.unpack(res, 2, res.n) end
   error(M.user_message(res[2]) or res[2], 0)
end

--- A :convert for a positive (or >= min) integer option: "3" -> 3.
function M.count(min)
   min = min or 1
   return function(s)
      local n = math.tointeger(tonumber(s))
      if not n or n < min then return nil, string.format("expected an integer >= %d, got '%s'", min, s) end
      return n
   end
end

--- A :convert for a comma list of integers >= 0 ("128,512" -> {128, 512});
-- zeros are dropped, so "0" turns a measurement off.
function M.int_list(s)
   local out = {}
   for f in s:gmatch("[^,]+") do
      local n = math.tointeger(tonumber(f))
      if not n or n < 0 then return nil, "expected a list of counts such as 128,512, got '" .. s .. "'" end
      if n > 0 then out[#out + 1] = n end
   end
   return out
end

--- `moonhub help [VERB]`; returns an exit code.
function M.help(verb)
   if verb == nil or verb == "--help" or verb == "-h" then
      print(M.help_text())
      return 0
   end
   local path = M.find(verb)
   if not path then return unknown(verb) end
   if handles_help(path) then
      _G.arg = { [0] = verb, "--help" }   -- as if run as `moonhub VERB --help`
      return M.main(verb, "--help")
   end
   local desc = M.describe(path)
   print(string.format("moonhub %s: %s", verb, desc ~= "" and desc or "(no description)"))
   print(string.format("recipe: %s", path))
   return 0
end

return M
