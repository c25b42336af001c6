-- moonhub.cli: verb discovery, dispatch and help for `moonhub VERB [args]`
-- (a verb is recipes/VERB.lua, $MOONHUB_HOME/recipes first), and the argument
-- boilerplate recipes share (parser, parse, fail, converters). Layer:
-- lua/moonhub (uses moonhub.core.host, moonhub.fs, lua-argparse). See docs/cli.md.
local host = require "moonhub.core.host"
local fs = require "moonhub.fs"

local M = {}

local USAGE = [[
usage: moonhub                    start the REPL
       moonhub run FILE [args]    run a Lua script (arg and ... as in lua)
       moonhub -e CODE [args]     run a string of Lua
       moonhub - [args]           run a script read from stdin
       moonhub VERB [args]        run a recipe
       moonhub help [VERB]        list verbs, or show one verb's help
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

--- Path of the recipe for verb, or nil.
function M.find(verb)
   if not valid_name(verb) then return nil end
   for _, dir in ipairs(M.dirs()) do
      local path = dir .. "/" .. verb .. ".lua"
      if readable(path) then return path end
   end
   return nil
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
   for _, v in ipairs(verbs) do width = math.max(width, #v.name) end
   local out = { USAGE, "", "verbs:" }
   for _, v in ipairs(verbs) do
      local note = v.user and "  [" .. v.path .. "]" or ""
      out[#out + 1] = string.format("  %-" .. width .. "s  %s%s", v.name, v.description, note)
   end
   out[#out + 1] = ""
   out[#out + 1] = "'moonhub help VERB' shows one verb's help."
   return table.concat(out, "\n")
end

local function unknown(verb)
   io.stderr:write(string.format("moonhub: unknown command '%s' (see 'moonhub help')\n",
                                 tostring(verb)))
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

--- Runs recipe `verb` with args as its `...`; returns the exit code.
-- The global `arg` is set by the host (arg[0] = verb); errors propagate.
function M.main(verb, ...)
   local path = M.find(verb)
   if not path then return unknown(verb) end
   local chunk, err = loadfile(path)
   if not chunk then error(err, 0) end
   return exit_code(chunk(...))
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

--- parse(p, args) -> the options | nil, 2. A usage error is printed as
-- "moonhub VERB: what was wrong" and the usage, on stderr; --help prints
-- the help and exits 0 (argparse's own behaviour).
function M.parse(p, args)
   local ok, a = p:pparse(args or {})
   if ok then return a end
   local verb = names[p]
   io.stderr:write(verb and ("moonhub " .. verb .. ": ") or "", tostring(a), "\n", p:get_usage(), "\n")
   return nil, 2
end

--- fail(verb, msg [, code = 1]) -> code, after "moonhub VERB: msg" on stderr.
-- The host's rule (docs/errors.md) applies: labels in msg that repeat the
-- verb ("VERB: ", "moonhub VERB: ") or name the Lua function the recipe
-- called ("moonhub.load: ") are dropped, so a message is prefixed once
-- whether the recipe prints it here or raises it with error(msg, 0).
-- Exit codes: 2 for usage (the parser's and the recipe's own argument
-- checks), 1 for everything else.
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
