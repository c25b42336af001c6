-- moonhub.openai: the OpenAI API's request schema checks and response
-- shapes, as pure functions (no I/O), so every rule is testable on its own.
-- Layer: lua/moonhub (uses dkjson + lpeg only). Errors are raised as tables
-- {status =, message =, param =, code =} and turned into {"error": {...}}
-- bodies by M.error_body; server/openai_adapter.lua maps both ways.
local json = require "dkjson"
local strict_json = json.use_lpeg()    -- the LPeg grammar: refuses 00, .5 and other non-JSON numbers

local M = {}

local ARRAY = { __jsontype = "array" }
local OBJECT = { __jsontype = "object" }

-- An empty or filled JSON array (dkjson writes [] for it, never {}).
function M.array(t) return setmetatable(t or {}, ARRAY) end
function M.object(t) return setmetatable(t or {}, OBJECT) end
M.null = json.null

-- ===== errors =====

-- headers: extra response headers (Retry-After for 429/503)
local function fail(status, message, param, code, headers)
   error({ status = status, message = message, param = param, headers = headers,
           code = code or (status == 400 and "invalid_request_error" or nil) }, 0)
end
M.fail = fail

local TYPES = { [400] = "invalid_request_error", [401] = "authentication_error", [403] = "permission_error",
                [404] = "not_found_error", [405] = "invalid_request_error", [409] = "invalid_request_error",
                [413] = "invalid_request_error", [415] = "invalid_request_error",
                [421] = "invalid_request_error", [429] = "rate_limit_error", [503] = "server_error" }

function M.error_body(status, message, param, code)
   return json.encode({ error = { message = message, type = TYPES[status] or "server_error",
      param = param or json.null, code = code or json.null } })
end

-- ===== decoding =====

M.MAX_DEPTH = 64

-- Whether the JSON text s nests arrays/objects at most `limit` deep (text in
-- strings skipped). Checked before decoding: the decoder recurses once per
-- level, and a body nested 100k deep would overflow its stack.
function M.within_depth(s, limit)
   local depth, pos = 0, 1
   while true do
      local i, _, c = s:find('([%[%]{}"])', pos)
      if not i then return true end
      pos = i + 1
      if c == '"' then
         repeat                                   -- to the closing quote, over escapes
            local k, _, d = s:find('(["\\])', pos)
            if not k then return true end         -- unterminated: the decoder says so
            pos = k + (d == "\\" and 2 or 1)
         until d == '"'
      elseif c == "]" or c == "}" then
         depth = depth - 1
      else
         depth = depth + 1
         if depth > limit then return false end
      end
   end
end

-- The path ("messages[0].content") of the first string or key in v that is
-- not valid UTF-8, or nil.
local function bad_utf8(v, path)
   for k, x in pairs(v) do
      local here = math.type(k) and string.format("%s[%d]", path, k - 1)
         or (path == "" and tostring(k) or path .. "." .. tostring(k))
      if type(k) == "string" and not utf8.len(k) then return path == "" and "a key" or path end
      if type(x) == "string" and not utf8.len(x) then return here end
      if type(x) == "table" and x ~= json.null then
         local bad = bad_utf8(x, here)
         if bad then return bad end
      end
   end
   return nil
end

-- Decodes a JSON request body into a table (arrays marked as arrays): a
-- strict JSON object, at most MAX_DEPTH deep, all strings valid UTF-8.
function M.decode(body)
   if body == nil or body == "" then fail(400, "the request body is empty; send a JSON object") end
   if not M.within_depth(body, M.MAX_DEPTH) then
      fail(400, string.format("the request body nests deeper than %d levels", M.MAX_DEPTH))
   end
   local v, pos, err = strict_json.decode(body, 1, json.null, OBJECT, ARRAY)
   if not err and not body:find("^%s*$", pos) then err = "unexpected text after the value at byte " .. pos end
   if err or type(v) ~= "table" or v == json.null or getmetatable(v) == ARRAY then
      fail(400, "the request body is not a JSON object" .. (err and (": " .. err) or ""))
   end
   local bad = bad_utf8(v, "")
   if bad then fail(400, "invalid UTF-8 in " .. bad, bad:match("^[%w_]+")) end
   return v
end

-- ===== field checks =====

local function is_null(v) return v == nil or v == json.null end
M.is_null = is_null

-- Decoded arrays and objects carry their metatables; a table built in Lua
-- is an array when it has [1] or nothing at all.
local function is_array(v)
   if type(v) ~= "table" or v == json.null then return false end
   local mt = getmetatable(v)
   if mt == ARRAY or mt == OBJECT then return mt == ARRAY end
   return v[1] ~= nil or next(v) == nil
end
local function is_object(v) return type(v) == "table" and v ~= json.null and not is_array(v) end
M.is_array, M.is_object = is_array, is_object

-- "a string", "an array", ... for messages
local function kind(v)
   if v == json.null then return "null" end
   if math.type(v) == "integer" then return "an integer" end
   if type(v) == "number" then return "a number" end
   if type(v) == "table" then return is_array(v) and "an array" or "an object" end
   return type(v) == "string" and "a string" or type(v) == "boolean" and "a boolean" or type(v)
end

-- The error for a field of the wrong type: param is its top-level name.
local function wrong(name, what, v, param)
   fail(400, string.format("'%s' must be %s, got %s", name, what, kind(v)), param or name:match("^[%w_]+"))
end
M.wrong = wrong

local function opt_number(req, name, lo, hi, default)
   local v = req[name]
   if is_null(v) then return default end
   if type(v) ~= "number" or v ~= v then wrong(name, "a number", v) end
   if (lo and v < lo) or (hi and v > hi) then
      fail(400, string.format("'%s' must be between %s and %s, got %s", name, tostring(lo), tostring(hi),
         tostring(v)), name)
   end
   return v
end

local function opt_int(req, name, lo, hi, default)
   local v = req[name]
   if is_null(v) then return default end
   if math.type(v) ~= "integer" and not (type(v) == "number" and math.tointeger(v)) then
      wrong(name, "an integer", v)
   end
   v = math.tointeger(v)
   if (lo and v < lo) or (hi and v > hi) then
      fail(400, string.format("'%s' must be an integer from %s to %s, got %d", name, tostring(lo or "-inf"),
         tostring(hi or "inf"), v), name)
   end
   return v
end

local function opt_bool(req, name, default)
   local v = req[name]
   if is_null(v) then return default end
   if type(v) ~= "boolean" then wrong(name, "true or false", v) end
   return v
end

local function opt_string(req, name, default)
   local v = req[name]
   if is_null(v) then return default end
   if type(v) ~= "string" then wrong(name, "a string", v) end
   return v
end
M.opt_number, M.opt_int, M.opt_bool, M.opt_string = opt_number, opt_int, opt_bool, opt_string

-- stop: a non-empty string or up to 4 of them
local function stops(req)
   local s = req.stop
   if is_null(s) then return {} end
   if type(s) == "string" then
      if s == "" then fail(400, "'stop' must not be an empty string", "stop") end
      return { s }
   end
   if not is_array(s) or #s > 4 then
      fail(400, "'stop' must be a string or an array of up to 4 strings", "stop")
   end
   for _, x in ipairs(s) do
      if type(x) ~= "string" or x == "" then fail(400, "'stop' entries must be non-empty strings", "stop") end
   end
   return s
end

-- logit_bias: {"token id": bias in [-100, 100]}; ids checked against
-- n_vocab when it is given (the model is known).
local function logit_bias(req, n_vocab)
   local lb = req.logit_bias
   if is_null(lb) then return nil end
   if not is_object(lb) then wrong("logit_bias", "an object of token id -> bias", lb) end
   local out = {}
   for k, v in pairs(lb) do
      local id = type(k) == "string" and k:match("^%d+$") and math.tointeger(tonumber(k))
      if not id or (n_vocab and id >= n_vocab) then
         fail(400, string.format("'logit_bias' key %q is not a token id of this model (0..%s)", tostring(k),
            n_vocab and tostring(n_vocab - 1) or "vocabulary size - 1"), "logit_bias")
      end
      if type(v) ~= "number" or v ~= v or v < -100 or v > 100 then
         fail(400, "'logit_bias' values must be numbers in [-100, 100]", "logit_bias")
      end
      out[id] = v <= -100 and -math.huge or v
   end
   return out
end
M.logit_bias = logit_bias

local INT32_MAX = 2147483647

-- Omitted sampling fields take the engine's defaults, the ones Lua and the
-- CLI get (as llama-server does), not OpenAI's temperature 1 / top_p 1.
local D = require("moonhub.core.sched").defaults()

-- The sampling and length options shared by chat and completions
-- (n_vocab, max_ctx: optional, for checks that need the model).
function M.sampling(req, n_vocab, max_ctx)
   local p = {
      temperature = opt_number(req, "temperature", 0, 2, D.temperature),
      top_p = opt_number(req, "top_p", 0, 1, D.top_p),
      top_k = opt_int(req, "top_k", 0, INT32_MAX, D.top_k),
      min_p = opt_number(req, "min_p", 0, 1, D.min_p),
      presence_penalty = opt_number(req, "presence_penalty", -2, 2, 0),
      frequency_penalty = opt_number(req, "frequency_penalty", -2, 2, 0),
      repeat_penalty = opt_number(req, "repetition_penalty", 0, 10, 1.0),
      seed = opt_int(req, "seed", nil, nil, nil),
      logit_bias = logit_bias(req, n_vocab),
      stop = stops(req),
      n = opt_int(req, "n", 1, 8, 1),
      stream = opt_bool(req, "stream", false),
   }
   if p.top_p == 0 then p.top_p = 1e-6 end
   local mt = opt_int(req, "max_completion_tokens", 1, nil, nil)
   local mt2 = opt_int(req, "max_tokens", 1, nil, nil)
   p.max_tokens = mt or mt2 or max_ctx
   local so = req.stream_options
   if not is_null(so) then
      if not is_object(so) then wrong("stream_options", "an object", so) end
      if not is_null(so.include_usage) and type(so.include_usage) ~= "boolean" then
         wrong("stream_options.include_usage", "true or false", so.include_usage)
      end
   end
   p.include_usage = type(so) == "table" and so.include_usage == true
   return p
end

-- Fields every generation request may carry: their types only.
function M.common(req)
   opt_string(req, "model")
   opt_string(req, "user")
   opt_bool(req, "store")
   opt_bool(req, "parallel_tool_calls")
   opt_string(req, "service_tier")
   local md = req.metadata
   if not is_null(md) then
      if not is_object(md) then wrong("metadata", "an object of strings", md) end
      for _, v in pairs(md) do
         if type(v) ~= "string" then fail(400, "'metadata' values must be strings", "metadata") end
      end
   end
   local ka = req.keep_alive
   if not is_null(ka) and type(ka) ~= "number" and type(ka) ~= "string" then
      wrong("keep_alive", "a number of seconds or a duration such as \"5m\"", ka)
   end
end

-- ===== chat messages =====

local ROLES = { system = true, developer = true, user = true, assistant = true, tool = true }
local PARTS = { system = { text = true }, developer = { text = true }, user = { text = true },
                assistant = { text = true, refusal = true }, tool = { text = true } }

-- Text of a message's content: a string, or an array of text parts.
local function content_text(m, i)
   local c, where = m.content, string.format("messages[%d].content", i - 1)
   if is_null(c) then
      if m.role == "assistant" and (is_array(m.tool_calls) or not is_null(m.refusal)) then return "" end
      fail(400, string.format("%s is required for a %s message", where, m.role), "messages")
   end
   if type(c) == "string" then return c end
   if not is_array(c) then wrong(where, "a string or an array of content parts", c, "messages") end
   local parts = {}
   for k, part in ipairs(c) do
      local ty = type(part) == "table" and part.type
      if not is_object(part) or not PARTS[m.role][ty] then
         fail(400, string.format("%s[%d]: only parts of type 'text' are supported", where, k - 1), "messages")
      end
      local text = part[ty]
      if type(text) ~= "string" then
         wrong(string.format("%s[%d].%s", where, k - 1, ty), "a string", text, "messages")
      end
      parts[#parts + 1] = text
   end
   return table.concat(parts)
end

-- An assistant message's tool_calls: [{id, type: "function", function: {name, arguments}}]
local function tool_calls(m, i)
   local tc = m.tool_calls
   if is_null(tc) then return nil end
   local where = string.format("messages[%d].tool_calls", i - 1)
   if m.role ~= "assistant" then fail(400, where .. " is only allowed on assistant messages", "messages") end
   if not is_array(tc) then wrong(where, "an array", tc, "messages") end
   for k, c in ipairs(tc) do
      local w = string.format("%s[%d]", where, k - 1)
      if not is_object(c) then wrong(w, "an object", c, "messages") end
      if not is_null(c.id) and type(c.id) ~= "string" then wrong(w .. ".id", "a string", c.id, "messages") end
      if not is_null(c.type) and c.type ~= "function" then
         fail(400, w .. ".type must be 'function'", "messages")
      end
      local f = c["function"]
      if not is_object(f) then wrong(w .. ".function", "an object {name, arguments}", f, "messages") end
      if type(f.name) ~= "string" or f.name == "" then
         wrong(w .. ".function.name", "a non-empty string", f.name, "messages")
      end
      if type(f.arguments) ~= "string" then
         wrong(w .. ".function.arguments", "a string of JSON", f.arguments, "messages")
      end
   end
   return tc
end

-- Checks messages and returns plain tables for the template renderer
-- ("developer" is rendered as "system", as OpenAI defines it).
function M.messages(req)
   local ms = req.messages
   if not is_array(ms) then fail(400, "'messages' must be a non-empty array", "messages") end
   local out = {}
   for i, m in ipairs(ms) do
      if not is_object(m) or not ROLES[m.role] then
         fail(400, string.format("messages[%d].role must be one of system, developer, user, assistant, tool",
            i - 1), "messages")
      end
      local msg = { role = m.role == "developer" and "system" or m.role, content = content_text(m, i) }
      msg.tool_calls = tool_calls(m, i)
      if m.role == "tool" then
         if type(m.tool_call_id) ~= "string" then
            wrong(string.format("messages[%d].tool_call_id", i - 1), "a string", m.tool_call_id, "messages")
         end
         msg.tool_call_id = m.tool_call_id
      end
      if not is_null(m.name) then
         if type(m.name) ~= "string" then
            wrong(string.format("messages[%d].name", i - 1), "a string", m.name, "messages")
         end
         msg.name = m.name
      end
      out[#out + 1] = msg
   end
   if #out == 0 then fail(400, "'messages' must be a non-empty array", "messages") end
   return out
end

-- tools + tool_choice -> tools (or nil), choice ("none"|"auto"|"required"|name)
function M.tools(req)
   local tools, choice = req.tools, req.tool_choice
   local named
   if not is_null(choice) then
      if type(choice) == "string" then
         if choice ~= "none" and choice ~= "auto" and choice ~= "required" then
            fail(400, "'tool_choice' must be none, auto, required or {type: 'function', function: {name}}",
               "tool_choice")
         end
      elseif is_object(choice) and is_object(choice["function"]) and type(choice["function"].name) == "string"
         and (is_null(choice.type) or choice.type == "function") then
         named = choice["function"].name
      else
         fail(400, "'tool_choice' must be none, auto, required or {type: 'function', function: {name}}",
            "tool_choice")
      end
   end
   if is_null(tools) then
      if named or choice == "required" then fail(400, "'tool_choice' needs 'tools'", "tool_choice") end
      return nil, "none"
   end
   if not is_array(tools) then wrong("tools", "an array", tools) end
   local names = {}
   for i, t in ipairs(tools) do
      local f = is_object(t) and t["function"]
      if not is_object(t) or t.type ~= "function" or not is_object(f) or type(f.name) ~= "string"
         or not f.name:match("^[%w_%-%.]+$") or #f.name > 64 then
         fail(400, string.format("tools[%d] must be {type: 'function', function: {name, parameters}} "
            .. "with a name of letters, digits, _ - . (at most 64)", i - 1), "tools")
      end
      if not is_null(f.description) and type(f.description) ~= "string" then
         wrong(string.format("tools[%d].function.description", i - 1), "a string", f.description, "tools")
      end
      if not is_null(f.parameters) and not is_object(f.parameters) then
         wrong(string.format("tools[%d].function.parameters", i - 1), "an object (a JSON schema)", f.parameters,
            "tools")
      end
      if not is_null(f.strict) and type(f.strict) ~= "boolean" then
         wrong(string.format("tools[%d].function.strict", i - 1), "true or false", f.strict, "tools")
      end
      names[f.name] = true
   end
   if named then
      if not names[named] then fail(400, "tool_choice names a function that is not in 'tools'", "tool_choice") end
      return tools, named
   end
   if #tools == 0 then                          -- no tools at all: as if none were sent
      if choice == "required" then fail(400, "'tool_choice' needs 'tools'", "tool_choice") end
      return nil, "none"
   end
   return tools, is_null(choice) and "auto" or choice
end

-- response_format -> nil | {type = "json_object"} | {type = "json_schema", schema = tbl, strict = bool}
function M.response_format(req)
   local rf = req.response_format
   if is_null(rf) then return nil end
   if not is_object(rf) then wrong("response_format", "an object", rf) end
   if rf.type == "text" then return nil end
   if rf.type == "json_object" then return { type = "json_object" } end
   if rf.type == "json_schema" then
      local js = rf.json_schema
      if not is_object(js) or not is_object(js.schema) then
         fail(400, "response_format.json_schema.schema must be an object", "response_format")
      end
      if not is_null(js.strict) and type(js.strict) ~= "boolean" then
         wrong("response_format.json_schema.strict", "true or false", js.strict, "response_format")
      end
      if not is_null(js.name) and type(js.name) ~= "string" then
         wrong("response_format.json_schema.name", "a string", js.name, "response_format")
      end
      return { type = "json_schema", schema = js.schema, strict = js.strict == true, name = js.name }
   end
   fail(400, "response_format.type must be text, json_object or json_schema", "response_format")
end

-- Token ids: a non-empty array of integers >= 0 (and < n_vocab when given).
function M.token_ids(ids, where, param, n_vocab)
   if #ids == 0 then fail(400, where .. " is an empty list of token ids", param) end
   for k, t in ipairs(ids) do
      if math.type(t) ~= "integer" or t < 0 or (n_vocab and t >= n_vocab) then
         fail(400, string.format("%s[%d] is not a token id of this model (integers 0..%s)", where, k - 1,
            n_vocab and tostring(n_vocab - 1) or "vocabulary size - 1"), param)
      end
   end
   return ids
end

-- prompt / input: a string, an array of strings, an array of token ids or
-- an array of id arrays -> list of (string | ids)
function M.prompts(v, param)
   if type(v) == "string" then return { v } end
   if not is_array(v) then
      wrong(param, "a string, an array of strings or an array of token ids", v)
   end
   if #v == 0 then fail(400, string.format("'%s' must not be an empty array", param), param) end
   if type(v[1]) == "number" then return { M.token_ids(v, param, param) } end
   local out = {}
   for i, x in ipairs(v) do
      local where = string.format("%s[%d]", param, i - 1)
      if type(x) == "string" then out[i] = x
      elseif is_array(x) then
         out[i] = M.token_ids(x, where, param)
      else
         wrong(where, "a string or an array of token ids", x, param)
      end
   end
   return out
end

-- ===== responses =====

local function usage(u)
   local out = { prompt_tokens = u.prompt_tokens, completion_tokens = u.completion_tokens,
            total_tokens = u.prompt_tokens + u.completion_tokens,
            prompt_tokens_details = { cached_tokens = u.cached_tokens or 0 } }
   if u.draft_tokens then   -- speculative decoding: OpenAI's prediction fields, and ours
      out.completion_tokens_details = { accepted_prediction_tokens = u.accepted_tokens,
         rejected_prediction_tokens = u.draft_tokens - u.accepted_tokens }
      out.speculative = { draft_tokens = u.draft_tokens, accepted_tokens = u.accepted_tokens,
         acceptance_rate = u.draft_tokens > 0 and u.accepted_tokens / u.draft_tokens or 0,
         target_steps = u.target_steps,
         tokens_per_step = u.target_steps > 0 and u.completion_tokens / u.target_steps or 0 }
   end
   return out
end
M.usage = usage

function M.chat_response(id, created, model, choices, u)
   return json.encode({ id = id, object = "chat.completion", created = created, model = model,
      choices = M.array(choices), usage = usage(u) })
end

function M.completion_response(id, created, model, choices, u)
   return json.encode({ id = id, object = "text_completion", created = created, model = model,
      choices = M.array(choices), usage = usage(u) })
end

-- One SSE event carrying obj (or the literal [DONE]).
function M.sse(obj)
   if obj == "[DONE]" then return "data: [DONE]\n\n" end
   return "data: " .. json.encode(obj) .. "\n\n"
end

function M.chat_chunk(id, created, model, index, delta, finish_reason, logprobs)
   return { id = id, object = "chat.completion.chunk", created = created, model = model,
      choices = M.array({ { index = index, delta = M.object(delta), logprobs = logprobs or json.null,
                             finish_reason = finish_reason or json.null } }) }
end

function M.completion_chunk(id, created, model, index, text, finish_reason, logprobs)
   return { id = id, object = "text_completion", created = created, model = model,
      choices = M.array({ { index = index, text = text, logprobs = logprobs or json.null,
                             finish_reason = finish_reason or json.null } }) }
end

-- The usage chunk of stream_options.include_usage: choices is [].
function M.usage_chunk(id, created, model, object, u)
   return { id = id, object = object, created = created, model = model, choices = M.array(),
            usage = usage(u) }
end

-- Chat logprobs entry for one token: {token, logprob, bytes, top_logprobs}
-- s with every byte that is not part of a valid UTF-8 sequence replaced by
-- U+FFFD: a token's piece can be one byte of a character, and JSON must stay
-- valid UTF-8 (the raw bytes travel in `bytes`, as OpenAI sends them).
function M.valid_utf8(s)
   if utf8.len(s) then return s end
   local out, i = {}, 1
   while i <= #s do
      local n, bad = utf8.len(s, i)
      if n then
         out[#out + 1] = s:sub(i)
         break
      end
      out[#out + 1] = s:sub(i, bad - 1) .. "\u{FFFD}"
      i = bad + 1
   end
   return table.concat(out)
end

function M.chat_logprob(piece, lp, top)
   local bytes = M.array({ piece:byte(1, -1) })
   local alts = M.array()
   for _, t in ipairs(top or {}) do
      alts[#alts + 1] = { token = M.valid_utf8(t.piece), logprob = t.logprob, bytes = M.array({ t.piece:byte(1, -1) }) }
   end
   return { token = M.valid_utf8(piece), logprob = lp, bytes = bytes, top_logprobs = alts }
end

M.encode = json.encode

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Standard base64 (for encoding_format = "base64" embeddings).
function M.base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local chars = {}
      for k = 3, 0, -1 do
         local idx = (n >> (6 * k)) & 63
         chars[#chars + 1] = B64:sub(idx + 1, idx + 1)
      end
      if not b then chars[3], chars[4] = "=", "="
      elseif not c then chars[4] = "=" end
      out[#out + 1] = table.concat(chars)
   end
   return table.concat(out)
end

return M
