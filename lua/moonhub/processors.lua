-- moonhub.processors: named Lua logits processors that a request picks by
-- name ("processors": [{"name", "args"}]) and the one generation loop runs
-- before sampling each token. Built-ins live in lua/moonhub/processors/,
-- users' in $MOONHUB_HOME/processors/NAME.lua. Layer: lua/moonhub (uses
-- moonhub.fs, moonhub.tensor through the logits it is handed). docs/processors.md.
local fs = require "moonhub.fs"

local M = {}

M.BUILTIN = { "ban_words", "force_prefix", "max_line_length" }
M.MAX = 8                      -- processors per request
M.STEP_LIMIT = 1e7             -- VM instructions one call of a processor may run

-- dir() -> the folder users put their processors in
function M.dir() return require("moonhub").home() .. "/processors" end

local function valid_name(name)
   return type(name) == "string" and #name <= 64 and name:match("^[%a_][%w_%-]*$") ~= nil
end

local function is_builtin(name)
   for _, b in ipairs(M.BUILTIN) do if b == name then return true end end
   return false
end

-- A processor file's value as {setup =, process =, description =}: a
-- function(logits, tokens, args, ctx) is process with args as its state.
local function normalize(v, where)
   if type(v) == "function" then
      return { process = function(args, logits, tokens, ctx) return v(logits, tokens, args, ctx) end }
   end
   if type(v) ~= "table" or type(v.process) ~= "function" then
      return nil, where .. " must return a function(logits, tokens, args, ctx) or a table with process(state, "
         .. "logits, tokens, ctx)"
   end
   if v.setup ~= nil and type(v.setup) ~= "function" then return nil, where .. ": setup must be a function" end
   return v
end

local loaded = {}               -- path -> {mtime, size, proc}: a user file reloads when it changes
local registered = {}           -- name -> proc, from register() (this process only)

-- register(name, fn | {setup =, process =}) -> true | nil, msg: a processor
-- defined in Lua code (a script, the REPL) that requests of this process
-- may name; it comes before the folder and the built-ins. nil unregisters.
function M.register(name, v)
   if not valid_name(name) then
      return nil, string.format("processor names are letters, digits, '_' and '-', got %q", tostring(name))
   end
   if v == nil then registered[name] = nil return true end
   local proc, err = normalize(v, "processor '" .. name .. "'")
   if not proc then return nil, err end
   registered[name] = proc
   return true
end

-- find(name) -> processor | nil, msg. One registered in this process,
-- else $MOONHUB_HOME/processors/NAME.lua (a user's file may replace a
-- built-in), else a built-in.
function M.find(name)
   if not valid_name(name) then
      return nil, string.format("processor names are letters, digits, '_' and '-', got %q", tostring(name))
   end
   if registered[name] then return registered[name] end
   local path = M.dir() .. "/" .. name .. ".lua"
   local st = fs.stat(path)
   if st then
      local hit = loaded[path]
      if hit and hit.mtime == st.mtime and hit.size == st.size then return hit.proc end
      local chunk, err = loadfile(path, "t")
      if not chunk then return nil, string.format("processor '%s': %s", name, err) end
      local ok, v = pcall(chunk)
      if not ok then return nil, string.format("processor '%s': %s failed to load: %s", name, path, tostring(v)) end
      local proc, nerr = normalize(v, "processor '" .. name .. "': " .. path)
      if not proc then return nil, nerr end
      loaded[path] = { mtime = st.mtime, size = st.size, proc = proc }
      return proc
   end
   if is_builtin(name) then return normalize(require("moonhub.processors." .. name), name) end
   return nil, string.format("unknown processor '%s': the built-ins are %s; add your own as %s/%s.lua", name,
      table.concat(M.BUILTIN, ", "), M.dir(), name)
end

-- list() -> sorted names: the built-ins, the user folder's, the registered
function M.list()
   local seen, out = {}, {}
   for _, n in ipairs(M.BUILTIN) do seen[n] = true end
   for n in pairs(registered) do seen[n] = true end
   for _, f in ipairs(fs.list(M.dir()) or {}) do
      local n = f:match("^(.+)%.lua$")
      if n and valid_name(n) then seen[n] = true end
   end
   for n in pairs(seen) do out[#out + 1] = n end
   table.sort(out)
   return out
end

-- ===== what processors are handed =====

-- Each token's text (pieces[id + 1]), once per tokenizer: control tokens
-- are "" (they are not text a line or a word is made of).
local pieces_memo = setmetatable({}, { __mode = "k" })
local function pieces_of(tok)
   local p = pieces_memo[tok]
   if p then return p end
   p = {}
   for id = 0, tok.vocab_size - 1 do p[id + 1] = tok:piece(id, false) or "" end
   pieces_memo[tok] = p
   return p
end
M.pieces = pieces_of

-- The per-request context: the tokenizer, the vocabulary size, every
-- token's text, and text(tokens) -> the generated text so far (grown
-- incrementally: a request's tokens only ever grow).
local function context(model)
   local tok = model.tokenizer
   local ctx = { tokenizer = tok, n_vocab = model.info.n_vocab, model = model }
   local parts, n = {}, 0
   function ctx.pieces() return pieces_of(tok) end
   function ctx.text(tokens)
      local p = pieces_of(tok)
      if #tokens < n then parts, n = {}, 0 end
      for i = n + 1, #tokens do parts[i] = p[tokens[i] + 1] or "" end
      n = #tokens
      return table.concat(parts)
   end
   return ctx
end

-- ===== a request's chain =====

local Chain = {}
Chain.__index = Chain

-- fn(...) with at most M.STEP_LIMIT VM instructions (a processor that
-- loops forever fails its request instead of hanging the server's loop).
local function limited(name, fn, ...)
   local co = coroutine.create(fn)
   debug.sethook(co, function() error("ran over " .. string.format("%d", M.STEP_LIMIT) .. " instructions", 0) end,
      "", M.STEP_LIMIT)
   local ok, err = coroutine.resume(co, ...)
   if ok and coroutine.status(co) ~= "dead" then ok, err = false, "yielded (a processor may not wait)" end
   if not ok then error(string.format("processor '%s' failed: %s", name, tostring(err)), 0) end
end

-- chain:run(logits (1, n_vocab) tensor, tokens {ids so far}): each
-- processor in order; raises "processor 'NAME' failed: ..." on an error.
function Chain:run(logits, tokens)
   for _, p in ipairs(self.list) do limited(p.name, p.proc.process, p.state, logits, tokens, self.ctx) end
end

-- prepare(specs, model) -> chain | nil, msg, "unknown" | "args".
-- specs: {{name =, args = {...}}, ...} (or "name" strings); each
-- processor's setup(args, ctx) checks its args (an error there is the
-- caller's: a 400) and makes its state for this request.
function M.prepare(specs, model)
   if specs == nil then return nil end
   if type(specs) ~= "table" then return nil, "processors must be a list of {name =, args =}", "args" end
   if #specs > M.MAX then
      return nil, string.format("at most %d processors per request, got %d", M.MAX, #specs), "args"
   end
   local chain = setmetatable({ list = {}, ctx = context(model) }, Chain)
   for i, spec in ipairs(specs) do
      if type(spec) == "string" then spec = { name = spec } end
      if type(spec) ~= "table" then return nil, string.format("processors[%d] must be {name =, args =}", i), "args" end
      local proc, err = M.find(spec.name)
      if not proc then return nil, err, "unknown" end
      local args = spec.args == nil and {} or spec.args
      if type(args) ~= "table" then
         return nil, string.format("processor '%s': args must be an object, got %s", spec.name, type(args)), "args"
      end
      local state = args
      if proc.setup then
         local ok, s = pcall(proc.setup, args, chain.ctx)
         if not ok then
            return nil, string.format("processor '%s': %s", spec.name, tostring(s):gsub("^[^\n]-%.lua:%d+: ", "")),
               "args"
         end
         state = s
      end
      chain.list[#chain.list + 1] = { name = spec.name, proc = proc, state = state }
   end
   if #chain.list == 0 then return nil end
   chain.names = {}
   for i, p in ipairs(chain.list) do chain.names[i] = p.name end
   return chain
end

-- parse_cli("NAME[:json-args]") -> {name =, args =} | nil, msg (the CLI's --processor)
function M.parse_cli(s)
   if type(s) ~= "string" or s == "" then return nil, "--processor needs NAME[:JSON-ARGS]" end
   local name, json = s:match("^([^:]+):(.*)$")
   name = name or s
   local args = {}
   if json and json ~= "" then
      local v, _, err = require("dkjson").decode(json, 1, nil)
      if type(v) ~= "table" then
         return nil, string.format("--processor %s: the args must be a JSON object, e.g. %s:{\"words\":[\"x\"]} (%s)",
            name, name, err or "not an object")
      end
      args = v
   end
   return { name = name, args = args }
end

-- ===== helpers for processors (the built-ins use them) =====

-- ban(logits, ids): sets the logits of ids (0-based, a list) to -inf.
function M.ban(logits, ids)
   for _, id in ipairs(ids) do logits[{ 1, id + 1 }] = -math.huge end
end

-- only(logits, ids): every logit but those of ids to -inf.
function M.only(logits, ids)
   local keep = {}
   for i, id in ipairs(ids) do keep[i] = logits[{ 1, id + 1 }] end
   logits:fill_(-math.huge)
   for i, id in ipairs(ids) do logits[{ 1, id + 1 }] = keep[i] end
end

-- chars(s) -> characters of s: UTF-8 code points, or bytes when s is not
-- valid UTF-8 (a token holding part of a character counts each byte: a
-- length limit errs on the short side).
function M.chars(s)
   return utf8.len(s) or #s
end

return M
