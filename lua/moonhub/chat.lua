-- moonhub.chat: one chat session over a model: the message history, one KV
-- cache kept across turns (so a turn only processes its new suffix, and an
-- edited message only what follows its first changed token), the slash
-- commands, /save and /load. Layer: lua/moonhub (uses moonhub.model,
-- moonhub.template, dkjson). No terminal here: lines go in through
-- session:input(line), text comes out through the write/warn functions, so
-- specs drive it directly; recipes/chat.lua is the terminal loop.
local template = require "moonhub.template"
local sys = require "moonhub.core.sys"
local json = require "dkjson"
local fs = require "moonhub.fs"

local M = {}
local Session = {}
Session.__index = Session

-- /set keys: kind and check; aliases map to these names.
M.SETTINGS = {
   temp = { "number", function(v) return v >= 0 end, ">= 0" },
   top_k = { "integer", function(v) return v >= 0 end, ">= 0 (0 = off)" },
   top_p = { "number", function(v) return v > 0 and v <= 1 end, "in (0, 1]" },
   min_p = { "number", function(v) return v >= 0 and v <= 1 end, "in [0, 1]" },
   seed = { "integer", function() return true end, "an integer" },
   max_tokens = { "integer", function(v) return v >= 1 end, ">= 1" },
   repeat_penalty = { "number", function(v) return v > 0 end, "> 0 (1 = off)" },
}
local ALIASES = { temperature = "temp" }
M.DEFAULTS = { temp = 0.8, top_k = 40, top_p = 0.95, min_p = 0.05, max_tokens = 512,
               repeat_penalty = 1.0 }

M.HELP = [[
commands:
  /system TEXT      set the system prompt (/system alone removes it)
  /reset            forget the conversation (the system prompt stays)
  /retry            forget the last answer and answer again
  /edit TEXT        replace your last message with TEXT and answer again
  /save FILE        write the conversation as JSON messages, and its KV cache as FILE.kvstate
  /load FILE        read a conversation saved by /save (or a JSON list of messages);
                    its KV cache comes back too, so the next answer starts warm
  /set KEY VALUE    temp, top_k, top_p, min_p, seed, max_tokens, repeat_penalty
                    (/set alone shows them; /set seed none goes back to random)
  /template NAME    switch the chat template (/template alone shows it)
  /help             this text
  /bye              leave (so does Ctrl-D)
A line with only """ starts a message of several lines; another """ ends it.
Ctrl-C stops an answer and keeps what it said so far.]]

--- new(model, opts) -> session | nil, msg. opts: template (name), system,
--- ctx (the session's KV cache size; default the model's), ignore_eos,
--- write(text) and warn(text) (default io.stdout / io.stderr),
--- on_turn(session, stats) (after each answer: the history store), and
--- any of the /set keys.
function M.new(model, opts)
   if type(model) ~= "table" or type(model.stream) ~= "function" then
      error("chat.new: model must be a loaded model, got " .. type(model), 2)
   end
   opts = opts or {}
   local choice, err = template.for_model(model, opts.template)
   if not choice then return nil, err end
   local ctx = opts.ctx or model.ctx
   if math.type(ctx) ~= "integer" or ctx < 1 then
      error("chat.new: ctx must be a positive integer, got " .. tostring(opts.ctx), 2)
   end
   local self = setmetatable({
      model = model, choice = choice, messages = {}, settings = {}, ignore_eos = opts.ignore_eos,
      on_turn = opts.on_turn,
      cache = model:new_cache(math.min(ctx, model.ctx)), turns = {},
      write = opts.write or function(s) io.stdout:write(s); io.stdout:flush() end,
      warn = opts.warn or function(s) io.stdout:flush(); io.stderr:write(s); io.stderr:flush() end,
   }, Session)
   for k, v in pairs(M.DEFAULTS) do self.settings[k] = v end
   for k in pairs(M.SETTINGS) do
      if opts[k] ~= nil then
         local ok, msg = self:set(k, opts[k])
         if not ok then return nil, msg end
      end
   end
   if opts.system and opts.system ~= "" then self:set_system(opts.system) end
   return self
end

-- ===== settings and history =====

--- set(key, value) -> true | nil, msg. value may be a string ("0.7").
function Session:set(key, value)
   key = ALIASES[key] or (type(key) == "string" and key:gsub("-", "_")) or key
   local rule = M.SETTINGS[key]
   if not rule then
      local keys = {}
      for k in pairs(M.SETTINGS) do keys[#keys + 1] = k end
      table.sort(keys)
      return nil, "unknown setting '" .. tostring(key) .. "' (one of " .. table.concat(keys, ", ") .. ")"
   end
   if key == "seed" and (value == "none" or value == "random") then
      self.settings.seed = nil
      return true
   end
   local v = tonumber(value)
   if v and rule[1] == "integer" then v = math.tointeger(v) end
   if v == nil or not rule[2](v) then
      return nil, string.format("%s must be %s%s, got %s", key, rule[1] == "integer" and "an integer " or "",
         rule[3], tostring(value))
   end
   self.settings[key] = v
   return true
end

--- Sets (or with nil / "" removes) the system message at the head of the history.
function Session:set_system(text)
   local has = self.messages[1] and self.messages[1].role == "system"
   if text == nil or text == "" then
      if has then table.remove(self.messages, 1) end
   elseif has then
      self.messages[1].content = text
   else
      table.insert(self.messages, 1, { role = "system", content = text })
   end
end

--- Forgets the conversation but keeps the system message. The KV cache
--- stays: its system-prompt prefix is reused by the next turn.
function Session:reset()
   local sys_msg = self.messages[1] and self.messages[1].role == "system" and self.messages[1]
   self.messages = { sys_msg or nil }
end

--- Switches the chat template (name as for --template).
function Session:use_template(name)
   local choice, err = template.for_model(self.model, name)
   if not choice then return nil, err end
   self.choice = choice
   return true
end

--- Writes { model, template, messages } as JSON to path, and the KV cache
--- (its rows and ids) beside it as path .. ".kvstate" (docs/kv-state.md), so
--- load brings the conversation back warm. -> true, n_cached | nil, msg
function Session:save(path)
   local doc = { model = self.model.path, template = self.choice.name, messages = self.messages }
   local text = json.encode(doc, { indent = true, keyorder = { "model", "template", "messages", "role", "content" } })
   local ok, err = fs.write(path, text .. "\n")      -- all or nothing, even on a full disk
   if not ok then return nil, err end
   local state = path .. M.STATE_SUFFIX
   local ids = self.model:cache_tokens(self.cache)
   if #ids == 0 then
      os.remove(state)          -- an older conversation's cache would not match these messages
      return true, 0
   end
   local bytes, serr = self.model:save_state(state, self.cache, ids)
   if not bytes then return nil, serr end
   return true, #ids
end
M.STATE_SUFFIX = ".kvstate"

--- Reads a conversation written by save (or a JSON list of messages), and
--- its KV cache when save wrote one for this model. -> true, n_cached,
--- note (why the cache was not restored) | nil, msg
function Session:load(path)
   local text, err = fs.read(path)
   if not text then return nil, err end
   local doc, _, derr = json.decode(text)
   if type(doc) ~= "table" then return nil, path .. ": not JSON: " .. tostring(derr) end
   local list = doc.messages or doc
   local out = {}
   for i, m in ipairs(list) do
      if type(m) ~= "table" or type(m.role) ~= "string" or type(m.content) ~= "string" then
         return nil, string.format("%s: message %d needs string 'role' and 'content'", path, i)
      end
      out[i] = { role = m.role, content = m.content }
   end
   if #out == 0 and next(list) ~= nil then return nil, path .. ": no messages list" end
   self.messages = out
   local state = path .. M.STATE_SUFFIX
   if not fs.exists(state) then return true, 0 end
   local cache, ids = self.model:load_state(state, self.cache)
   if not cache then return true, 0, (tostring(ids):gsub("^load_state: ", "")) end
   return true, #ids
end

-- ===== one turn =====

local function is_interrupt(err)
   return type(err) == "string" and err:find("interrupted!$") ~= nil
end
M.is_interrupt = is_interrupt

--- After catching "interrupted!": catch the next Ctrl-C too (host only).
function M.rearm()
   local host = package.loaded["moonhub.core.host"]
   if host and host.rearm_interrupt then host.rearm_interrupt() end
end

-- The prompt ids of the history; drops the oldest turns (never the system
-- message or the last user message) until the prompt leaves room to answer.
function Session:prompt_ids()
   local first = (self.messages[1] and self.messages[1].role == "system") and 2 or 1
   local room = math.min(self.settings.max_tokens, self.cache:n_ctx() // 4)
   local dropped = 0
   while true do
      -- contents stay plain text (moonhub.prompt): a stored or typed "<|im_start|>" is no control token
      local ids = require("moonhub.prompt").encode(self.model, self.messages, { template = self.choice })
      if #ids + room <= self.cache:n_ctx() then return ids, dropped end
      if #self.messages - first < 1 then
         return nil, string.format("the message needs %d tokens, more than the context of %d leaves",
            #ids, self.cache:n_ctx())
      end
      -- a user message and the answer after it go together
      table.remove(self.messages, first)
      dropped = dropped + 1
      if self.messages[first] and self.messages[first].role == "assistant" and first < #self.messages then
         table.remove(self.messages, first)
         dropped = dropped + 1
      end
   end
end

local function stats_line(t)
   return string.format("[%d tokens, %.1f tok/s, prompt processed %d of %d tokens%s]\n",
      t.generated, t.tps, t.prompt_processed, t.prompt_tokens, t.interrupted and ", interrupted" or "")
end

-- Streams the answer to ids -> answer, stats | nil, msg. Ctrl-C inside
-- ("interrupted!") ends it early and keeps what was said.
function Session:stream_answer(ids)
   local s, pieces, st, t1 = self.settings, {}, nil, nil
   local ok, err = pcall(function()
      local step
      step, st = self.model:stream(ids, {
         cache = self.cache, stop = self.choice:stops(), ignore_eos = self.ignore_eos,
         temperature = s.temp, top_k = s.top_k, top_p = s.top_p, min_p = s.min_p, seed = s.seed,
         repeat_penalty = s.repeat_penalty, max_tokens = s.max_tokens,
      })
      t1 = sys.now()
      for piece in step do
         pieces[#pieces + 1] = piece
         self.write(piece)
      end
   end)
   if not ok and not is_interrupt(err) then return nil, tostring(err) end
   if not ok then M.rearm() end
   local gen_s = t1 and sys.now() - t1 or 0
   local generated = st and st.generated or 0
   return table.concat(pieces), {
      generated = generated, tps = generated / math.max(gen_s, 1e-9),
      prompt_tokens = #ids, prompt_processed = st and st.prompt_processed or 0,
      interrupted = not ok, finish_reason = st and st.finish_reason,
   }
end

-- Streams an answer to the history as it stands and appends it. pop: the
-- last message was just added by send, and goes again when nothing comes
-- of it (an error, or Ctrl-C before the first word).
local function respond(self, pop)
   local function undo() if pop then table.remove(self.messages) end end
   local ok, ids, dropped = pcall(self.prompt_ids, self)
   if not ok or not ids then
      undo()
      return nil, tostring(dropped or ids)
   end
   if dropped > 0 then
      self.warn(string.format("[dropped the %d oldest messages to fit the context of %d tokens]\n",
         dropped, self.cache:n_ctx()))
   end
   local text, st = self:stream_answer(ids)
   if not text then
      undo()
      self.write("\n")
      return nil, st
   end
   if st.interrupted and text == "" then
      undo()    -- nothing said yet: as if never asked
   else
      -- the answer as streamed is what the template renders next turn, so
      -- the cache's tokens stay a prefix of the next prompt
      self.messages[#self.messages + 1] = { role = "assistant", content = text }
   end
   self.write("\n" .. stats_line(st))
   self.turns[#self.turns + 1] = st
   if self.on_turn then self.on_turn(self, st) end
   return text, st
end

--- Sends a user message and streams the answer; returns answer, stats
--- (generated, tps, prompt_tokens, prompt_processed, interrupted) or nil, msg.
function Session:send(text)
   if type(text) ~= "string" then
      error("chat session:send: text must be a string, got " .. type(text), 2)
   end
   self.messages[#self.messages + 1] = { role = "user", content = text }
   return respond(self, true)
end

--- Answers the history as it stands (after edit or truncate): it must end
--- with a user or tool message. Returns answer, stats or nil, msg.
function Session:reply()
   local last = self.messages[#self.messages]
   if not last or (last.role ~= "user" and last.role ~= "tool") then
      return nil, "nothing to answer: the conversation must end with a user message"
   end
   return respond(self, false)
end

-- ===== editing the history =====
-- The KV cache is not touched here: the next answer feeds the new prompt
-- through model:stream, which keeps the longest common token prefix of
-- what the cache holds and processes only from the first changed token.

local function check_index(fname, i, lo, hi)
   if math.type(i) ~= "integer" then
      error(string.format("chat session:%s: index must be an integer, got %s", fname, tostring(i)), 3)
   end
   if i < lo or i > hi then
      return nil, string.format("%s: no message %d (the conversation has %d)", fname, i, hi)
   end
   return true
end

--- Keeps the first n messages and forgets the rest -> true | nil, msg.
function Session:truncate(n)
   local ok, err = check_index("truncate", n, 0, #self.messages)
   if not ok then return nil, err end
   for i = #self.messages, n + 1, -1 do self.messages[i] = nil end
   return true
end

--- Replaces the text of message index and forgets the messages after it
--- (they answered the old text) -> true | nil, msg. reply() then answers
--- an edited user message.
function Session:edit(index, content)
   if type(content) ~= "string" then
      error("chat session:edit: content must be a string, got " .. type(content), 2)
   end
   local ok, err = check_index("edit", index, 1, #self.messages)
   if not ok then return nil, err end
   self:truncate(index)
   self.messages[index] = { role = self.messages[index].role, content = content }
   return true
end

-- The index of the last user message, or nil.
function Session:last_user()
   for i = #self.messages, 1, -1 do
      if self.messages[i].role == "user" then return i end
   end
   return nil
end

-- ===== input lines =====

local function setting_list(s)
   local keys, out = {}, {}
   for k in pairs(M.SETTINGS) do keys[#keys + 1] = k end
   table.sort(keys)
   for _, k in ipairs(keys) do out[#out + 1] = k .. " " .. tostring(s[k] == nil and "random" or s[k]) end
   return table.concat(out, ", ")
end

local COMMANDS = {}

function COMMANDS.system(self, rest)
   self:set_system(rest)
   self.write(rest == "" and "[system prompt removed]\n" or "[system prompt set]\n")
end

function COMMANDS.reset(self)
   self:reset()
   self.write("[conversation cleared]\n")
end

function COMMANDS.save(self, rest)
   if rest == "" then return self.warn("/save needs a FILE\n") end
   local ok, n = self:save(rest)
   if not ok then return self.warn("/save: " .. tostring(n) .. "\n") end
   self.write(string.format("[saved %d messages to %s%s]\n", #self.messages, rest,
      n > 0 and string.format(", with the KV cache of %d tokens", n) or ""))
end

COMMANDS.load = function(self, rest)
   if rest == "" then return self.warn("/load needs a FILE\n") end
   local ok, n, note = self:load(rest)
   if not ok then return self.warn("/load: " .. tostring(n) .. "\n") end
   if note then self.warn("/load: the KV cache was not restored: " .. note .. "\n") end
   self.write(string.format("[loaded %d messages from %s%s]\n", #self.messages, rest,
      n > 0 and string.format(", with the KV cache of %d tokens", n) or ""))
end

COMMANDS.set = function(self, rest)
   if rest == "" then return self.write("[" .. setting_list(self.settings) .. "]\n") end
   local key, value = rest:match("^(%S+)%s+(%S+)$")
   if not key then return self.warn("/set needs KEY VALUE, e.g. /set temp 0.7\n") end
   local ok, err = self:set(key, value)
   if not ok then return self.warn("/set: " .. err .. "\n") end
   self.write(string.format("[%s = %s]\n", ALIASES[key] or key:gsub("-", "_"), value))
end

COMMANDS.template = function(self, rest)
   if rest ~= "" then
      local ok, err = self:use_template(rest)
      if not ok then return self.warn("/template: " .. err .. "\n") end
   end
   self.write("[template: " .. self.choice.label .. "]\n")
end

-- /retry and /edit answer again from the last user message; only the
-- tokens after the first change are processed again.
local function again(self, text)
   local i = self:last_user()
   if not i then return self.warn("nothing to answer yet\n") end
   self:edit(i, text or self.messages[i].content)
   local ok, err = self:reply()
   if ok == nil then self.warn("error: " .. err .. "\n") end
end

COMMANDS.retry = function(self) again(self) end

COMMANDS.edit = function(self, rest)
   if rest == "" then return self.warn("/edit needs the new TEXT of your last message\n") end
   again(self, rest)
end

COMMANDS.help = function(self) self.write(M.HELP .. "\n") end
COMMANDS.bye = function() return "quit" end
COMMANDS.exit, COMMANDS.quit = COMMANDS.bye, COMMANDS.bye
COMMANDS["?"] = COMMANDS.help

--- Handles one input line (without its newline): a /command, part of a
--- """ block, or a message. Returns "quit" when the session should end.
function Session:input(line)
   if type(line) ~= "string" then
      error("chat session:input: line must be a string, got " .. type(line), 2)
   end
   if self.block then
      if line:match('^%s*"""%s*$') then
         local text = table.concat(self.block, "\n")
         self.block = nil
         if text ~= "" then return self:message(text) end
      else
         self.block[#self.block + 1] = line
      end
      return nil
   end
   if line:match('^%s*"""%s*$') then self.block = {} return nil end
   local cmd, rest = line:match("^/(%S+)%s*(.-)%s*$")
   if cmd then
      local f = COMMANDS[cmd]
      if not f then
         self.warn("unknown command /" .. cmd .. " (/help lists them)\n")
         return nil
      end
      return f(self, rest)
   end
   if line:match("^%s*$") then return nil end
   return self:message(line)
end

function Session:message(text)
   local answer, err = self:send(text)
   if answer == nil then self.warn("error: " .. err .. "\n") end
   return nil
end

--- Whether a multi-line block is open (the terminal shows "... ").
function Session:continuing() return self.block ~= nil end

return M
