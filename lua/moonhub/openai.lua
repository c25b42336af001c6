-- moonhub.openai: the OpenAI API's request checking and response shapes,
-- as pure functions (no I/O), so the server routes stay short and every
-- rule is testable on its own. Layer: lua/moonhub (uses dkjson only).
-- Errors are raised as tables {status =, message =, param =, code =} and
-- turned into {"error": {...}} bodies by M.error_body.
local json = require "dkjson"

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

local TYPES = { [400] = "invalid_request_error", [401] = "authentication_error",
                [404] = "not_found_error", [405] = "invalid_request_error", [413] = "invalid_request_error",
                [429] = "rate_limit_error", [503] = "server_error" }

function M.error_body(status, message, param, code)
   return json.encode({ error = { message = message, type = TYPES[status] or "server_error",
      param = param or json.null, code = code or json.null } })
end

-- Decodes a JSON request body into a table (arrays marked as arrays).
function M.decode(body)
   if body == nil or body == "" then fail(400, "the request body is empty; send a JSON object") end
   local v, _, err = json.decode(body, 1, json.null, OBJECT, ARRAY)
   if err or type(v) ~= "table" or getmetatable(v) == ARRAY then
      fail(400, "the request body is not a JSON object" .. (err and (": " .. err) or ""))
   end
   return v
end

-- ===== parameter checks =====

local function is_array(v) return type(v) == "table" and (getmetatable(v) == ARRAY or v[1] ~= nil) end

local function opt_number(req, name, lo, hi, default)
   local v = req[name]
   if v == nil or v == json.null then return default end
   if type(v) ~= "number" or v ~= v then fail(400, string.format("'%s' must be a number", name), name) end
   if (lo and v < lo) or (hi and v > hi) then
      fail(400, string.format("'%s' must be between %s and %s, got %s", name, tostring(lo), tostring(hi),
         tostring(v)), name)
   end
   return v
end

local function opt_int(req, name, lo, hi, default)
   local v = opt_number(req, name, lo, hi, default)
   if v ~= nil and math.tointeger(v) == nil then fail(400, string.format("'%s' must be an integer", name), name) end
   return v and math.tointeger(v)
end

local function opt_bool(req, name, default)
   local v = req[name]
   if v == nil or v == json.null then return default end
   if type(v) ~= "boolean" then fail(400, string.format("'%s' must be true or false", name), name) end
   return v
end

-- stop: a string or up to 4 strings
local function stops(req)
   local s = req.stop
   if s == nil or s == json.null then return {} end
   if type(s) == "string" then return { s } end
   if not is_array(s) or #s > 4 then fail(400, "'stop' must be a string or an array of up to 4 strings", "stop") end
   for _, x in ipairs(s) do
      if type(x) ~= "string" or x == "" then fail(400, "'stop' entries must be non-empty strings", "stop") end
   end
   return s
end

-- logit_bias: {"token id": bias in [-100, 100]}
local function logit_bias(req, n_vocab)
   local lb = req.logit_bias
   if lb == nil or lb == json.null then return nil end
   if type(lb) ~= "table" or is_array(lb) then fail(400, "'logit_bias' must be an object", "logit_bias") end
   local out = {}
   for k, v in pairs(lb) do
      local id = math.tointeger(tonumber(k))
      if not id or id < 0 or id >= n_vocab then
         fail(400, string.format("'logit_bias' key %q is not a token id of this model (0..%d)", tostring(k),
            n_vocab - 1), "logit_bias")
      end
      if type(v) ~= "number" or v < -100 or v > 100 then
         fail(400, "'logit_bias' values must be numbers in [-100, 100]", "logit_bias")
      end
      out[id] = v <= -100 and -math.huge or v
   end
   return out
end

-- The sampling and length options shared by both endpoints.
function M.sampling(req, n_vocab, max_ctx)
   local p = {
      temperature = opt_number(req, "temperature", 0, 2, 1.0),
      top_p = opt_number(req, "top_p", 0, 1, 1.0),
      top_k = opt_int(req, "top_k", 0, nil, 0),
      min_p = opt_number(req, "min_p", 0, 1, 0),
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
   local mt = req.max_completion_tokens
   local name = "max_completion_tokens"
   if mt == nil or mt == json.null then mt, name = req.max_tokens, "max_tokens" end
   if mt ~= nil and mt ~= json.null then
      if math.type(mt) ~= "integer" and not (type(mt) == "number" and math.tointeger(mt)) then
         fail(400, string.format("'%s' must be an integer", name), name)
      end
      mt = math.tointeger(mt)
      if mt < 1 then fail(400, string.format("'%s' must be at least 1", name), name) end
   end
   p.max_tokens = mt or max_ctx
   local so = req.stream_options
   p.include_usage = type(so) == "table" and so.include_usage == true
   return p
end

-- ===== chat messages =====

local ROLES = { system = true, developer = true, user = true, assistant = true, tool = true }

-- Text of a message's content: a string, or an array of {type = "text"} parts.
local function content_text(c, i)
   if c == nil or c == json.null then return "" end
   if type(c) == "string" then return c end
   if not is_array(c) then
      fail(400, string.format("messages[%d].content must be a string or an array of parts", i - 1), "messages")
   end
   local parts = {}
   for _, part in ipairs(c) do
      if type(part) ~= "table" or part.type ~= "text" or type(part.text) ~= "string" then
         fail(400, string.format("messages[%d].content: only parts of type 'text' are supported", i - 1),
            "messages")
      end
      parts[#parts + 1] = part.text
   end
   return table.concat(parts)
end

-- Checks messages and returns plain tables for the template renderer
-- ("developer" is rendered as "system", as OpenAI defines it).
function M.messages(req)
   local ms = req.messages
   if not is_array(ms) or #ms == 0 then fail(400, "'messages' must be a non-empty array", "messages") end
   local out = {}
   for i, m in ipairs(ms) do
      if type(m) ~= "table" or not ROLES[m.role] then
         fail(400, string.format("messages[%d].role must be one of system, developer, user, assistant, tool",
            i - 1), "messages")
      end
      local msg = { role = m.role == "developer" and "system" or m.role, content = content_text(m.content, i) }
      if m.role == "tool" then msg.tool_call_id = m.tool_call_id end
      if m.role == "assistant" and is_array(m.tool_calls) then msg.tool_calls = m.tool_calls end
      if m.name ~= nil then msg.name = m.name end
      out[#out + 1] = msg
   end
   return out
end

-- tools + tool_choice -> tools (or nil), choice ("none"|"auto"|"required"|name)
function M.tools(req)
   local tools = req.tools
   if tools == nil or tools == json.null then return nil, "none" end
   if not is_array(tools) then fail(400, "'tools' must be an array", "tools") end
   local names = {}
   for i, t in ipairs(tools) do
      if type(t) ~= "table" or t.type ~= "function" or type(t["function"]) ~= "table"
         or type(t["function"].name) ~= "string" then
         fail(400, string.format("tools[%d] must be {type: 'function', function: {name, parameters}}", i - 1),
            "tools")
      end
      names[t["function"].name] = true
   end
   local choice = req.tool_choice
   if choice == nil or choice == json.null then return tools, "auto" end
   if choice == "none" or choice == "auto" or choice == "required" then return tools, choice end
   if type(choice) == "table" and type(choice["function"]) == "table" then
      local name = choice["function"].name
      if not names[name] then fail(400, "tool_choice names a function that is not in 'tools'", "tool_choice") end
      return tools, name
   end
   fail(400, "'tool_choice' must be none, auto, required or {type: 'function', function: {name}}", "tool_choice")
end

-- response_format -> nil | {type = "json_object"} | {type = "json_schema", schema = tbl, strict = bool}
function M.response_format(req)
   local rf = req.response_format
   if rf == nil or rf == json.null then return nil end
   if type(rf) ~= "table" then fail(400, "'response_format' must be an object", "response_format") end
   if rf.type == "text" then return nil end
   if rf.type == "json_object" then return { type = "json_object" } end
   if rf.type == "json_schema" then
      local js = rf.json_schema
      if type(js) ~= "table" or type(js.schema) ~= "table" then
         fail(400, "response_format.json_schema.schema must be an object", "response_format")
      end
      return { type = "json_schema", schema = js.schema, strict = js.strict == true, name = js.name }
   end
   fail(400, "response_format.type must be text, json_object or json_schema", "response_format")
end

-- ===== responses =====

local function usage(u)
   return { prompt_tokens = u.prompt_tokens, completion_tokens = u.completion_tokens,
            total_tokens = u.prompt_tokens + u.completion_tokens,
            prompt_tokens_details = { cached_tokens = u.cached_tokens or 0 } }
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
function M.chat_logprob(piece, lp, top)
   local bytes = M.array({ piece:byte(1, -1) })
   local alts = M.array()
   for _, t in ipairs(top or {}) do
      alts[#alts + 1] = { token = t.piece, logprob = t.logprob, bytes = M.array({ t.piece:byte(1, -1) }) }
   end
   return { token = piece, logprob = lp, bytes = bytes, top_logprobs = alts }
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
