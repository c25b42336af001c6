-- moonhub.template: the prompt-template registry. Built-ins live in
-- recipes/templates/NAME.lua, user templates in $MOONHUB_HOME/templates/
-- NAME.lua (a user file wins over a built-in of the same name). Each returns
-- { name, description, render(messages, opts) -> string, stop = {...},
--   detect(chat_template_string) -> bool }.
-- Layer: lua/moonhub (uses moonhub.core.host for paths, moonhub.jinja).
local fs = require "moonhub.fs"
local jinja = require "moonhub.jinja"

local M = {}

-- Detection order: the most specific markers first; chatml last because
-- many templates mention <|im_start|> in passing.
M.DETECT_ORDER = { "deepseek", "llama3", "gemma", "phi3", "llama2", "mistral-tekken",
                   "mistral-instruct", "zephyr", "chatml" }

local function host() return package.loaded["moonhub.core.host"] or require("moonhub.core.host") end

--- Folders searched, highest precedence first: { dir, user }.
function M.dirs()
   local h = host()
   local home = require("moonhub").home()
   local out = {}
   if home and home ~= "" then out[#out + 1] = { dir = home .. "/templates", user = true } end
   out[#out + 1] = { dir = h.recipes .. "/templates", user = false }
   return out
end

local function valid_name(name)
   return type(name) == "string" and name:match("^[%w][%w_%-%.]*$") ~= nil and not name:find("..", 1, true)
end

local function readable(path)
   local f = io.open(path, "r")
   if f then f:close() end
   return f ~= nil
end

local loaded = {}   -- path -> recipe table

local function load_recipe(path)
   if loaded[path] then return loaded[path] end
   local chunk, err = loadfile(path, "t")
   if not chunk then return nil, "template: cannot load " .. path .. ": " .. err end
   local ok, spec = pcall(chunk)
   if not ok then return nil, "template: " .. path .. " failed: " .. tostring(spec) end
   if type(spec) ~= "table" or type(spec.render) ~= "function" then
      return nil, "template: " .. path .. " must return a table with a render function"
   end
   spec.name = spec.name or path:match("([^/]+)%.lua$")
   spec.stop = spec.stop or {}
   spec.description = spec.description or ""
   spec.path = path
   loaded[path] = spec
   return spec
end

--- The recipe named name, or nil and a message.
function M.get(name)
   if not valid_name(name) then return nil, "template.get: bad template name " .. tostring(name) end
   for _, d in ipairs(M.dirs()) do
      local path = d.dir .. "/" .. name .. ".lua"
      if readable(path) then
         local spec, err = load_recipe(path)
         if spec then spec.user = d.user end
         return spec, err
      end
   end
   return nil, "template: unknown template '" .. name .. "'"
end

--- Every template, sorted: { name, description, path, user }.
function M.list()
   local seen, out = {}, {}
   for _, d in ipairs(M.dirs()) do
      for _, file in ipairs(host().listdir(d.dir) or {}) do
         local name = file:match("^(.+)%.lua$")
         if name and valid_name(name) and not seen[name] then
            seen[name] = true
            local spec, err = load_recipe(d.dir .. "/" .. file)
            out[#out + 1] = { name = name, path = d.dir .. "/" .. file, user = d.user,
                              description = spec and spec.description or ("(broken: " .. err .. ")") }
         end
      end
   end
   table.sort(out, function(a, b) return a.name < b.name end)
   return out
end

--- The template whose detect() accepts a model's Jinja chat template:
--- user templates first, then built-ins in DETECT_ORDER. nil if none.
function M.detect(chat_template)
   if type(chat_template) ~= "string" then
      error("template.detect: chat template must be a string, got " .. type(chat_template), 2)
   end
   local candidates, seen = {}, {}
   for _, t in ipairs(M.list()) do
      if t.user then candidates[#candidates + 1] = t.name; seen[t.name] = true end
   end
   for _, name in ipairs(M.DETECT_ORDER) do
      if not seen[name] then candidates[#candidates + 1] = name end
   end
   for _, name in ipairs(candidates) do
      local spec = M.get(name)
      if spec and spec.detect and spec.detect(chat_template) then return name end
   end
   return nil
end

local function looks_like_jinja(s)
   return s:find("{%", 1, true) ~= nil or s:find("{{", 1, true) ~= nil
end

-- Jinja context as HF's apply_chat_template builds it: the messages, tools,
-- add_generation_prompt, special tokens and any extra template kwargs.
local function jinja_context(messages, opts)
   local ctx = {}
   for k, v in pairs(opts) do ctx[k] = v end
   ctx.messages = messages
   ctx.add_generation_prompt = opts.add_generation_prompt and true or false
   return ctx
end

--- Renders messages with a recipe table, a template name, or a Jinja
--- source string. opts: add_generation_prompt, tools, bos_token,
--- eos_token and template kwargs (date_string, enable_thinking, ...).
function M.render(spec, messages, opts)
   opts = opts or {}
   if type(messages) ~= "table" then
      error("template.render: messages must be a list of tables, got " .. type(messages), 2)
   end
   if type(opts) ~= "table" then error("template.render: opts must be a table, got " .. type(opts), 2) end
   if type(spec) == "string" then
      if looks_like_jinja(spec) then return jinja.render(spec, jinja_context(messages, opts)) end
      local s, err = M.get(spec)
      if not s then error(err, 2) end
      spec = s
   end
   if type(spec) ~= "table" or type(spec.render) ~= "function" then
      error("template.render: expected a template name, recipe table or Jinja source, got " .. type(spec), 2)
   end
   return spec.render(messages, opts)
end

-- ===== helpers for template recipes =====

--- A message's text: strings as they are, a list of {type="text", text}
--- parts joined, nothing (nil/null) as "".
function M.text(content)
   if type(content) == "string" then return content end
   if type(content) == "table" and content ~= jinja.null then
      local parts = {}
      for _, p in ipairs(content) do
         if type(p) == "table" and p.type == "text" then parts[#parts + 1] = p.text or "" end
      end
      return table.concat(parts)
   end
   return ""
end

--- Python str.strip() of a message's text.
function M.trim(s) return (M.text(s):gsub("^%s+", ""):gsub("%s+$", "")) end

--- Option with a default (opts.bos_token and the like).
function M.opt(opts, key, default)
   local v = opts[key]
   if v == nil or v == jinja.null then return default end
   return v
end

--- Raises like a template's raise_exception.
function M.fail(msg) error(msg, 0) end

M.tojson = jinja.tojson
M.str = jinja.str     -- Python str() of a value
M.keys = jinja.keys   -- a dict's keys in order
M.null = jinja.null

-- ===== the template a model's chat prompts use =====
--
-- A choice is { name, how, label, spec, stop, jinja_src? }: how is
-- "explicit" (--template), "detected" (a recipe whose detect() accepts the
-- model's embedded template), "embedded" (that Jinja source rendered by
-- moonhub.jinja) or "raw" (no template). label is what `moonhub show`
-- prints. One function for generate, chat and serve so they all agree.

local Choice = {}
Choice.__index = Choice

--- Generation stop strings: extra (a list, or nil) then the template's own.
function Choice:stops(extra)
   local out, seen = {}, {}
   for _, list in ipairs({ extra or {}, self.stop }) do
      for _, s in ipairs(list) do
         if not seen[s] then seen[s] = true; out[#out + 1] = s end
      end
   end
   return out
end

local function new_choice(t) return setmetatable(t, Choice) end

-- A recipe table that renders Jinja source the way apply_chat_template does.
local function jinja_spec(name, src)
   return {
      name = name, description = "Jinja chat template", stop = {},
      render = function(messages, opts) return jinja.render(src, jinja_context(messages, opts)) end,
   }
end

-- The model's embedded chat template (GGUF tokenizer.chat_template or the
-- HF folder's tokenizer_config.json; the tokenizer reads both), or nil.
local function embedded_source(model)
   local src = model.tokenizer and model.tokenizer.chat_template
   if type(src) == "string" and src ~= "" then return src end
   return nil
end

local function explicit(name)
   if type(name) ~= "string" or name == "" then
      return nil, "template: the template name must be a non-empty string, got " .. tostring(name)
   end
   if name:match("%.jinja$") or name:find("/", 1, true) then
      local src = fs.read(name)
      if not src then return nil, "template: cannot read Jinja template file " .. name end
      local ok, err = pcall(jinja.compile, src)
      if not ok then return nil, "template: " .. name .. ": " .. tostring(err) end
      return new_choice({ name = name, how = "explicit", spec = jinja_spec(name, src), stop = {},
                          jinja_src = src, label = "Jinja file " .. name .. " (--template)" })
   end
   local spec, err = M.get(name)
   if not spec then
      local names = {}
      for _, t in ipairs(M.list()) do names[#names + 1] = t.name end
      return nil, (err or "template: unknown template '" .. name .. "'")
         .. " (known: " .. table.concat(names, ", ") .. "; or a path to a .jinja file)"
   end
   return new_choice({ name = spec.name, how = "explicit", spec = spec, stop = spec.stop,
      label = (spec.user and "user " or "built-in ") .. spec.name .. " (--template)" })
end

local auto = setmetatable({}, { __mode = "k" })   -- model -> its default choice

local function automatic(model)
   if auto[model] then return auto[model] end
   local src, choice = embedded_source(model), nil
   local name = src and M.detect(src)
   if name then
      local spec = assert(M.get(name))
      choice = { name = name, how = "detected", spec = spec, stop = spec.stop,
                 label = (spec.user and "user " or "built-in ") .. name .. " (detected)" }
   elseif src then
      local ok, err = pcall(jinja.compile, src)
      if ok then
         choice = { name = "embedded", how = "embedded", spec = jinja_spec("embedded", src),
                    stop = {}, jinja_src = src, label = "embedded Jinja" }
      else
         -- a template our Jinja subset cannot parse: raw, and say why
         choice = { note = "embedded Jinja does not compile: " .. tostring(err) }
      end
   end
   if not choice or not choice.spec then
      local spec = assert(M.get("raw"))
      choice = { name = "raw", how = "raw", spec = spec, stop = spec.stop,
                 label = "raw" .. (choice and choice.note and " (" .. choice.note .. ")" or "") }
   end
   auto[model] = new_choice(choice)
   return auto[model]
end

--- The template for model's chat prompts: name (a built-in or user
--- template, or a .jinja path) when given, else the model's own (see the
--- top of this section). Returns a choice or nil, msg.
function M.for_model(model, name)
   if type(model) ~= "table" or type(model.tokenizer) ~= "table" then
      error("template.for_model: model must be a loaded model, got " .. type(model), 2)
   end
   if getmetatable(name) == Choice then return name end
   if name ~= nil then return explicit(name) end
   return automatic(model)
end

--- The special-token texts a template needs, from the model's tokenizer.
function M.special_tokens(model)
   local tok = model.tokenizer
   local function piece(id) return id and tok:text(id) or "" end
   return { bos_token = piece(tok.bos), eos_token = piece(tok.eos) }
end

-- ===== role mapping (one place: every chat prompt passes here) =====
--
-- Before a template sees the messages, their roles are mapped: developer
-- (OpenAI's newer name) becomes system, a recipe's `roles` table renames
-- others (roles = {developer = "system", tool = "ipython"}, as mlx-lm's
-- role mapping), and opts.roles (the caller's) wins over both. A template
-- without a system role gets the system text folded into the next user
-- message (blank line between), instead of an exception or a dropped turn.

M.DEFAULT_ROLES = { developer = "system" }

-- A sample system text no real message holds: a template that never
-- writes it (or raises) has no system role.
local PROBE = "\u{E000}moonhub-system-probe\u{E001}"

--- Whether a choice's template has a system role: a recipe says so with
--- `system = false`; other templates (Jinja) are asked once, by rendering a
--- system message and looking for its text.
function M.has_system(choice)
   local spec = choice.spec or choice
   if spec.system ~= nil then return spec.system ~= false end
   if spec.system_ok == nil then
      local ok, out = pcall(M.render, spec, { { role = "system", content = PROBE }, { role = "user", content = "u" } },
         { add_generation_prompt = true, bos_token = "", eos_token = "" })
      spec.system_ok = ok and type(out) == "string" and out:find(PROBE, 1, true) ~= nil
   end
   return spec.system_ok
end

local function fold(messages)
   local out, pending = {}, {}
   for _, m in ipairs(messages) do
      if m.role == "system" then
         pending[#pending + 1] = M.text(m.content)
      elseif m.role == "user" and #pending > 0 then
         local copy = {}
         for k, v in pairs(m) do copy[k] = v end
         pending[#pending + 1] = M.text(m.content)
         copy.content = table.concat(pending, "\n\n")
         pending = {}
         out[#out + 1] = copy
      else
         out[#out + 1] = m
      end
   end
   if #pending > 0 then out[#out + 1] = { role = "user", content = table.concat(pending, "\n\n") } end
   return out
end

--- map_roles(choice, messages [, roles]) -> messages with their roles
--- mapped (DEFAULT_ROLES, then the recipe's `roles`, then roles) and, for
--- a template without a system role, system text folded into the next
--- user message. choice: a choice, a recipe table, a template name or
--- Jinja source. The input is not changed; unchanged messages are shared.
function M.map_roles(choice, messages, roles)
   if type(choice) == "string" then
      if looks_like_jinja(choice) then
         choice = jinja_spec("jinja", choice)
      else
         local s, err = M.get(choice)
         if not s then error(err, 2) end
         choice = s
      end
   end
   local spec = choice.spec or choice
   local map = {}
   for _, t in ipairs({ M.DEFAULT_ROLES, spec.roles or {}, roles or {} }) do
      for from, to in pairs(t) do
         if type(from) ~= "string" or (type(to) ~= "string" and to ~= false) then
            error(string.format("template: roles maps role names to role names (or false to keep a role), "
               .. "got %s = %s", tostring(from), tostring(to)), 0)
         end
         map[from] = to or nil
      end
   end
   local out, changed, system = {}, false, false
   for i, m in ipairs(messages) do
      local to = type(m) == "table" and map[m.role]
      if to and to ~= m.role then
         local copy = {}
         for k, v in pairs(m) do copy[k] = v end
         copy.role, changed = to, true
         out[i] = copy
      else
         out[i] = m
      end
      if type(out[i]) == "table" and out[i].role == "system" then system = true end
   end
   if system and not M.has_system(choice) then return fold(out) end
   return changed and out or messages
end

--- Renders messages for model. opts: template (name or choice),
--- add_generation_prompt (default true), tools, template_kwargs (extra
--- variables), roles (role renames over the template's, see map_roles).
--- Returns text, tokenizer encode options, choice. The text is
--- tokenized with special = true (see docs/chat.md); a BOS the template
--- wrote itself is not added a second time.
function M.render_for_model(model, messages, opts)
   opts = opts or {}
   local choice, err = M.for_model(model, opts.template)
   if not choice then error(err, 2) end
   local ropts = M.special_tokens(model)
   for k, v in pairs(opts.template_kwargs or {}) do ropts[k] = v end
   ropts.add_generation_prompt = opts.add_generation_prompt ~= false
   ropts.tools = opts.tools
   local text = M.render(choice.spec, M.map_roles(choice, messages, opts.roles), ropts)
   local enc = { special = true }
   local bos = ropts.bos_token
   if bos ~= "" and model.tokenizer.add_bos and text:sub(1, #bos) == bos then enc.bos = false end
   return text, enc, choice
end

return M
