-- list, show and render prompt templates (built-in, user, Jinja, GGUF)
-- Layer: recipes (uses the public moonhub API only).
-- Usage: moonhub template list | show NAME | render SPEC MESSAGES.json
-- SPEC: a template name, --jinja FILE, or a MODEL (its chat template): a
-- path, a registry name or a Hub reference, found by mh.models.resolve.
local cli = require "moonhub.cli"
local mh = require "moonhub"

local USAGE = [[
usage: moonhub template list
       moonhub template show NAME
       moonhub template render (NAME | --jinja FILE | MODEL) MESSAGES.json [options]

MODEL: a .gguf file, a Hugging Face folder, a registry name (name[:tag],
an alias) or a pulled Hub reference; its own chat template is rendered.

render prints the exact prompt string. MESSAGES.json holds a list of
{"role", "content"} messages, or {"messages": [...], "tools": [...]}.
options:
  --no-generation-prompt   leave out the assistant header at the end
  --bos TEXT, --eos TEXT   bos_token / eos_token for the template
  --set KEY=VALUE          extra template variable (VALUE parsed as JSON
                           when it is valid JSON, else kept as a string)
  --detect                 with a MODEL or --jinja: use the matching
                           built-in instead of the Jinja source]]

-- die: the command line was wrong (a usage error, 2); fail: it was right
-- but the work could not be done (1)
local function die(msg)
   return cli.fail("template", msg, 2)
end
local function fail(msg)
   return cli.fail("template", msg)
end

local slurp = require("moonhub.fs").read   -- slurp(path) -> text | nil, msg

local function list()
   for _, t in ipairs(mh.template.list()) do
      print(string.format("%-18s %s%s", t.name, t.description, t.user and "  [" .. t.path .. "]" or ""))
   end
   return 0
end

local function show(name)
   if not name then return die("show needs a template NAME") end
   local spec, err = mh.template.get(name)
   if not spec then return die(err) end
   print("name:        " .. spec.name)
   print("description: " .. spec.description)
   print("file:        " .. spec.path)
   local stops = {}
   for i, s in ipairs(spec.stop) do stops[i] = string.format("%q", s) end
   print("stop:        " .. table.concat(stops, " "))
   print("")
   io.write(slurp(spec.path) or "")
   return 0
end

-- A model's own chat template: a GGUF's tokenizer.chat_template, a
-- Hugging Face folder's tokenizer_config.json chat_template (the "default"
-- one of a list) or chat_template.jinja. -> source | nil, msg
local function model_template(path, label)
   local st = require("moonhub.fs").stat(path)
   if st and st.type == "dir" then
      local cfg = mh.jinja.decode(slurp(path .. "/tokenizer_config.json") or "null")
      local t = type(cfg) == "table" and cfg.chat_template
      if type(t) == "table" then
         for _, e in ipairs(t) do if type(e) == "table" and e.name == "default" then t = e.template end end
      end
      if type(t) == "string" then return t end
      t = slurp(path .. "/chat_template.jinja")
      if t then return t end
      return nil, label .. " has no chat template (tokenizer_config.json, chat_template.jinja)"
   end
   local ok, g, gerr = pcall(mh.gguf.open, path)
   if not ok or not g then return nil, tostring(ok and gerr or g) end
   local src = g.metadata["tokenizer.chat_template"]
   g:close()
   if type(src) ~= "string" then return nil, label .. " has no tokenizer.chat_template" end
   return src
end

-- The template spec: a name, Jinja source from a file, or a model's own
-- template. A template name wins over a model of the same name; a MODEL is
-- whatever mh.models.resolve finds (the one resolution every verb uses).
local function resolve(spec_arg, jinja_file, detect)
   local src
   if jinja_file then
      local s, err = slurp(jinja_file)
      if not s then return nil, err end
      src = s
   elseif spec_arg and spec_arg:match("^[%w][%w_%-%.]*$") and not spec_arg:match("%.gguf$")
      and mh.template.get(spec_arg) then
      return spec_arg
   else
      local path, perr = mh.models.resolve(spec_arg)
      if not path then
         if spec_arg:match("^[%w][%w_%-%.]*$") and not spec_arg:match("%.gguf$") then
            return nil, "unknown template '" .. spec_arg .. "' (see 'moonhub template list'), "
               .. "and not a model either: " .. perr, true
         end
         return nil, perr
      end
      local s, err = model_template(path, spec_arg)
      if not s then return nil, err end
      src = s
   end
   if detect then
      local name = mh.template.detect(src)
      if not name then return nil, "no built-in template matches this chat template" end
      io.stderr:write("template: using built-in '" .. name .. "'\n")
      return name
   end
   return src
end

local function render(args)
   local opts = { add_generation_prompt = true }
   local pos, jinja_file, detect = {}, nil, false
   local i = 1
   while i <= #args do
      local a = args[i]
      if a == "--jinja" then jinja_file, i = args[i + 1], i + 1
      elseif a == "--no-generation-prompt" then opts.add_generation_prompt = false
      elseif a == "--bos" then opts.bos_token, i = args[i + 1], i + 1
      elseif a == "--eos" then opts.eos_token, i = args[i + 1], i + 1
      elseif a == "--detect" then detect = true
      elseif a == "--set" then
         local k, v = (args[i + 1] or ""):match("^([%w_]+)=(.*)$")
         if not k then return die("--set needs KEY=VALUE") end
         local parsed = mh.jinja.decode(v)
         if parsed == nil then parsed = v end
         opts[k], i = parsed, i + 1
      elseif a:match("^%-%-") then return die("unknown option " .. a)
      else pos[#pos + 1] = a end
      i = i + 1
   end
   local spec_arg, msg_file = pos[1], pos[2]
   if jinja_file then spec_arg, msg_file = nil, pos[1] end
   if not msg_file or (not spec_arg and not jinja_file) then return die("render needs a template and MESSAGES.json") end
   local spec, err, usage = resolve(spec_arg, jinja_file, detect)
   if not spec then return usage and die(err) or fail(err) end
   local text, rerr = slurp(msg_file)
   if not text then return fail(rerr) end
   local doc, derr = mh.jinja.decode(text)
   if doc == nil then return fail(msg_file .. ": " .. tostring(derr)) end
   local messages = doc
   if doc.messages ~= nil then
      messages = doc.messages
      if doc.tools ~= nil then opts.tools = doc.tools end
   end
   -- roles mapped as every chat prompt's are (developer, a recipe's roles, system folding)
   local ok, out = pcall(function() return mh.template.render(spec, mh.template.map_roles(spec, messages), opts) end)
   if not ok then return fail(cli.user_message(out) or tostring(out)) end
   io.write(out)
   return 0
end

local cmd = ...
local rest = { select(2, ...) }
if cmd == nil or cmd == "--help" or cmd == "-h" or cmd == "help" then
   print(USAGE)
   return cmd ~= nil and 0 or 2
elseif cmd == "list" then return list()
elseif cmd == "show" then return show(rest[1])
elseif cmd == "render" then return render(rest)
end
return die("unknown subcommand '" .. tostring(cmd) .. "' (see moonhub template --help)")
