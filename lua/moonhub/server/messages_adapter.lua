-- moonhub.server.messages_adapter: Anthropic's Messages API (POST
-- /v1/messages) over the neutral request: system, messages of content
-- blocks (text, tool_use, tool_result) in; a message, or its typed SSE
-- events, out; errors in Anthropic's {type: "error", error: {type, message}}.
-- Layer: lua/moonhub (uses moonhub.openai for checks, .http, .server.request).
local oa = require "moonhub.openai"
local http = require "moonhub.http"
local request = require "moonhub.server.request"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local SSE = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }
local is_null, is_array, is_object, wrong, fail = oa.is_null, oa.is_array, oa.is_object, oa.wrong, oa.fail

-- ===== errors =====

local TYPES = { [400] = "invalid_request_error", [401] = "authentication_error", [403] = "permission_error",
   [404] = "not_found_error", [413] = "request_too_large", [429] = "rate_limit_error", [500] = "api_error",
   [503] = "overloaded_error", [529] = "overloaded_error" }

-- The error type of an HTTP status (other 4xx are the request's fault).
function M.error_type(status)
   return TYPES[status] or (status >= 400 and status < 500 and "invalid_request_error" or "api_error")
end

-- error_body(err) -> Anthropic's error JSON; the route's error_body.
function M.error_body(err)
   return oa.encode({ type = "error", error = { type = M.error_type(err.status), message = err.message } })
end

-- ===== content blocks -> chat messages =====

local UNSUPPORTED = { image = true, document = true, search_result = true, container_upload = true }
local SKIPPED = { thinking = true, redacted_thinking = true }     -- clients echo them; we never make them

local function text_of(block, w)
   if type(block.text) ~= "string" then wrong(w .. ".text", "a string", block.text, "messages") end
   return block.text
end

-- tool_result content: a string or text blocks; is_error marks the text.
local function result_text(b, w)
   local c = b.content
   local text
   if is_null(c) then text = ""
   elseif type(c) == "string" then text = c
   elseif is_array(c) then
      local parts = {}
      for k, x in ipairs(c) do
         local wk = string.format("%s.content[%d]", w, k - 1)
         if not is_object(x) or x.type ~= "text" then
            fail(400, wk .. ": tool results take text blocks only", "messages")
         end
         parts[#parts + 1] = text_of(x, wk)
      end
      text = table.concat(parts)
   else
      wrong(w .. ".content", "a string or an array of text blocks", c, "messages")
   end
   if b.is_error == true then text = "error: " .. text end
   return text
end

local function tool_use(b, w)
   if type(b.id) ~= "string" or b.id == "" then wrong(w .. ".id", "a non-empty string", b.id, "messages") end
   if type(b.name) ~= "string" or b.name == "" then wrong(w .. ".name", "a non-empty string", b.name, "messages") end
   if not is_object(b.input) then wrong(w .. ".input", "an object", b.input, "messages") end
   return { id = b.id, type = "function", ["function"] = { name = b.name, arguments = oa.encode(b.input) } }
end

-- One Anthropic message -> neutral messages appended to out: a user turn's
-- tool_result blocks become tool messages (before its text), an assistant
-- turn's tool_use blocks its tool_calls.
local function add_message(out, m, i)
   local w = string.format("messages[%d]", i - 1)
   if not is_object(m) or (m.role ~= "user" and m.role ~= "assistant") then
      fail(400, w .. ".role must be user or assistant (the system prompt goes in 'system')", "messages")
   end
   local c = m.content
   if type(c) == "string" then
      out[#out + 1] = { role = m.role, content = c }
      return
   end
   if not is_array(c) then wrong(w .. ".content", "a string or an array of content blocks", c, "messages") end
   local texts, calls = {}, {}
   for k, b in ipairs(c) do
      local wb = string.format("%s.content[%d]", w, k - 1)
      local ty = is_object(b) and b.type
      if ty == "text" then texts[#texts + 1] = text_of(b, wb)
      elseif ty == "tool_use" and m.role == "assistant" then calls[#calls + 1] = tool_use(b, wb)
      elseif ty == "tool_result" and m.role == "user" then
         if type(b.tool_use_id) ~= "string" then wrong(wb .. ".tool_use_id", "a string", b.tool_use_id, "messages") end
         out[#out + 1] = { role = "tool", tool_call_id = b.tool_use_id, content = result_text(b, wb) }
      elseif UNSUPPORTED[ty] then
         fail(400, string.format("%s: %s blocks are not supported (this server reads text only)", wb, ty), "messages")
      elseif not (SKIPPED[ty] and m.role == "assistant") then
         fail(400, string.format("%s: a %s message takes blocks of type text%s", wb, m.role,
            m.role == "user" and " or tool_result" or " or tool_use"), "messages")
      end
   end
   if #texts > 0 or #calls > 0 or #c == 0 then
      out[#out + 1] = { role = m.role, content = table.concat(texts), tool_calls = #calls > 0 and calls or nil }
   end
end

-- messages(body) -> neutral chat messages: the system prompt, then each turn.
function M.messages(body)
   local out = {}
   local sys = body.system
   if type(sys) == "string" then
      out[1] = { role = "system", content = sys }
   elseif is_array(sys) then
      local parts = {}
      for k, b in ipairs(sys) do
         local w = string.format("system[%d]", k - 1)
         if not is_object(b) or b.type ~= "text" then
            fail(400, w .. ": the system prompt takes text blocks", "system")
         end
         if type(b.text) ~= "string" then wrong(w .. ".text", "a string", b.text, "system") end
         parts[k] = b.text
      end
      out[1] = { role = "system", content = table.concat(parts, "\n") }
   elseif not is_null(sys) then
      wrong("system", "a string or an array of text blocks", sys)
   end
   local ms = body.messages
   if not is_array(ms) or #ms == 0 then fail(400, "'messages' must be a non-empty array", "messages") end
   for i, m in ipairs(ms) do add_message(out, m, i) end
   if ms[#ms].role == "assistant" then
      fail(400, "the last message is the assistant's: continuing a prefilled answer is not supported; "
         .. "end with a user message", "messages")
   end
   return out
end

-- ===== tools =====

-- Anthropic tools {name, description, input_schema} -> chat's form, so
-- moonhub.openai's checks and the grammar of forced calls apply as for chat.
function M.tools(body)
   local tools, choice = body.tools, body.tool_choice
   local chat_tools, chat_choice
   if not is_null(tools) then
      if not is_array(tools) then wrong("tools", "an array", tools) end
      chat_tools = {}
      for i, t in ipairs(tools) do
         local w = string.format("tools[%d]", i - 1)
         if not is_object(t) then wrong(w, "an object", t, "tools") end
         if not is_null(t.type) and t.type ~= "custom" then
            fail(400, string.format("%s: only client tools {name, description, input_schema} are supported, not %s",
               w, type(t.type) == "string" and string.format("%q", t.type:sub(1, 40)) or "this type"), "tools")
         end
         if type(t.name) ~= "string" or not t.name:match("^[%w_%-]+$") or #t.name > 64 then
            fail(400, w .. ".name must be letters, digits, _ or - (at most 64)", "tools")
         end
         if not is_null(t.description) and type(t.description) ~= "string" then
            wrong(w .. ".description", "a string", t.description, "tools")
         end
         if not is_object(t.input_schema) then
            wrong(w .. ".input_schema", "an object (a JSON schema)", t.input_schema, "tools")
         end
         chat_tools[i] = { type = "function", ["function"] = { name = t.name, description = t.description,
            parameters = t.input_schema } }
      end
   end
   if not is_null(choice) then
      local ty = is_object(choice) and choice.type
      if ty == "auto" or ty == "none" then chat_choice = ty
      elseif ty == "any" then chat_choice = "required"
      elseif ty == "tool" and type(choice.name) == "string" then
         chat_choice = { type = "function", ["function"] = { name = choice.name } }
      else
         fail(400, "'tool_choice' must be {type: auto | any | none} or {type: 'tool', name}", "tool_choice")
      end
   end
   return oa.tools({ tools = chat_tools, tool_choice = chat_choice })
end

-- ===== body -> neutral request =====

local function stop_sequences(body)
   local s = body.stop_sequences
   if is_null(s) then return {} end
   if not is_array(s) or #s > 16 then wrong("stop_sequences", "an array of at most 16 strings", s) end
   for k, x in ipairs(s) do
      if type(x) ~= "string" or x == "" then
         wrong(string.format("stop_sequences[%d]", k - 1), "a non-empty string", x, "stop_sequences")
      end
   end
   return s
end

function M.request(body)
   if is_null(body.max_tokens) then
      fail(400, "'max_tokens' is required: the most tokens to generate", "max_tokens")
   end
   local th = body.thinking
   if not is_null(th) and not is_object(th) then wrong("thinking", "an object {type}", th) end
   if is_object(th) and th.type ~= "disabled" then
      fail(400, "'thinking' is not supported by this server; leave it out", "thinking")
   end
   if not is_null(body.mcp_servers) then fail(400, "'mcp_servers' is not supported by this server", "mcp_servers") end
   if not is_null(body.metadata) and not is_object(body.metadata) then wrong("metadata", "an object", body.metadata) end
   oa.opt_number(body, "temperature", 0, 1, nil)          -- Anthropic's range; oa.sampling allows up to 2
   local p = oa.sampling({ temperature = body.temperature, top_p = body.top_p, top_k = body.top_k,
      stream = body.stream })
   local r = { kind = "chat", model = oa.opt_string(body, "model"), n = 1, stream = p.stream,
      sampling = { temperature = p.temperature, top_p = p.top_p, top_k = p.top_k, min_p = p.min_p,
         presence_penalty = p.presence_penalty, frequency_penalty = p.frequency_penalty,
         repeat_penalty = p.repeat_penalty },
      max_tokens = oa.opt_int(body, "max_tokens", 1, nil, nil), stop = stop_sequences(body),
      messages = M.messages(body), echo = require("moonhub.server.openai_adapter").echo_settings(body) }
   r.tools, r.tool_choice = M.tools(body)
   request.extensions(body, r)       -- moonhub's lora / processors (docs/lora.md, docs/processors.md)
   return r
end

-- ===== results =====

-- stop_reason and stop_sequence of a finished result (used_calls: its
-- calls became tool_use blocks): a stop string counts only when the
-- client asked for it (templates add their own).
function M.stop_reason(r, res, used_calls)
   if used_calls then return "tool_use", oa.null end
   if res.reason == "length" then return "max_tokens", oa.null end
   for _, s in ipairs(r.stop) do
      if res.stop == s then return "stop_sequence", s end
   end
   return "end_turn", oa.null
end

-- The content blocks of a result: its text, then a tool_use block per
-- call. Calls whose arguments are not a JSON object stay text.
function M.content(st, res)
   local blocks = {}
   local uses = {}
   for k, c in ipairs(res.calls or {}) do
      local ok, input = pcall(oa.decode, c.arguments)
      if not ok then uses = nil break end
      uses[k] = { type = "tool_use", id = c.id or string.format("toolu_%s_%d", st.hex, k), name = c.name,
         input = input }
   end
   local text = (res.calls and uses) and (res.content or "") or res.text
   if text ~= "" or not (res.calls and uses) then blocks[1] = { type = "text", text = text } end
   for _, u in ipairs(uses or {}) do blocks[#blocks + 1] = u end
   return blocks, res.calls ~= nil and uses ~= nil
end

local function usage(u, n_prompt)
   return { input_tokens = u and u.prompt_tokens or n_prompt, output_tokens = u and u.completion_tokens or 0,
      cache_read_input_tokens = u and u.cached_tokens or 0, cache_creation_input_tokens = 0 }
end

-- settings: what the sampler ran with, under "moonhub" (echo_settings, docs/server.md)
local function echo(settings) return settings and { settings = oa.object(settings) } or nil end

local function message(st, content, reason, seq, u, settings)
   return { id = st.id, type = "message", role = "assistant", model = st.model, content = oa.array(content),
      stop_reason = reason or oa.null, stop_sequence = seq or oa.null, usage = usage(u, st.n_prompt),
      moonhub = echo(settings) }
end

-- ===== streaming =====

local function stream(view, req, r, job, st)
   local function emit(ty, ev)
      ev.type = ty
      req:write("event: " .. ty .. "\ndata: " .. oa.encode(ev) .. "\n\n")
   end
   req:start(200, SSE)
   local keep = http.timer(view.opts.keepalive or 5, function() emit("ping", {}) end)
   local total, timings, answer
   local ok, err = pcall(function()
      emit("message_start", { message = message(st, {}) })
      local open, index, reason, seq, settings = false, 0, nil, nil, nil
      local function start_text()
         if open then return end
         open = true
         emit("content_block_start", { index = index, content_block = { type = "text", text = "" } })
      end
      local function text(t)
         if t == "" then return end
         start_text()
         emit("content_block_delta", { index = index, delta = { type = "text_delta", text = t } })
      end
      total, timings = request.run(view, r, job, {
         begin = function() if not job.with_tools then start_text() end end,
         text = function(_, t) keep:cancel() text(t) end,
         choice = function(_, res)
            keep:cancel()
            local blocks, calls = M.content(st, res)
            reason, seq = M.stop_reason(r, res, calls)
            settings = res.settings
            answer = blocks[1].type == "text" and blocks[1].text or ""
            for _, b in ipairs(blocks) do
               if b.type == "text" then
                  if job.with_tools then text(b.text) end      -- tools: the text was held back to be parsed
                  start_text()
               else
                  emit("content_block_start", { index = index,
                     content_block = { type = "tool_use", id = b.id, name = b.name, input = oa.object() } })
                  emit("content_block_delta", { index = index,
                     delta = { type = "input_json_delta", partial_json = oa.encode(b.input) } })
               end
               emit("content_block_stop", { index = index })
               index, open = index + 1, false
            end
         end,
      }, req)
      emit("message_delta", { delta = { stop_reason = reason, stop_sequence = seq or oa.null },
         usage = { output_tokens = total.completion_tokens }, moonhub = echo(settings) })
      emit("message_stop", {})
   end)
   keep:cancel()
   if not ok then
      local e = view:error_of(err, req)
      emit("error", { error = { type = M.error_type(e.status), message = e.message } })
   end
   req:finish()
   if total then view:record_chat(r, answer, total, timings) end
end

-- ===== routes =====

-- The prompt ids of r on this model and the message's state {id, hex, model, n_prompt}.
local function prepare(view, r)
   local job = request.prepare(r, view)
   local id = view:next_id("msg"):gsub("%-", "_", 1)
   return job, { id = id, hex = id:match("_(.*)$"), model = view.name, n_prompt = #job.prompts[1] }
end

-- POST /v1/messages
function M.create(app, req)
   local body = oa.decode(req.body)
   local r = M.request(body)        -- checked before any model is touched
   return app:with_model(r, function(view)
      local job, st = prepare(view, r)
      if r.stream then return stream(view, req, r, job, st) end
      local msg, answer
      local total, timings = request.run(view, r, job, { choice = function(_, res)
         local blocks, calls = M.content(st, res)
         local reason, seq = M.stop_reason(r, res, calls)
         msg = message(st, blocks, reason, seq, nil, res.settings)
         answer = blocks[1].type == "text" and blocks[1].text or ""
      end }, req)
      msg.usage = usage(total)
      view:record_chat(r, answer, total, timings)
      return 200, JSON, oa.encode(msg)
   end)
end

-- POST /v1/messages/count_tokens: the prompt's tokens through the model's template.
function M.count_tokens(app, req)
   local body = oa.decode(req.body)
   if is_null(body.max_tokens) then body.max_tokens = 1 end     -- count_tokens takes no max_tokens
   local r = M.request(body)
   return app:with_model(r, function(view)
      local _, st = prepare(view, r)
      return 200, JSON, oa.encode({ input_tokens = st.n_prompt })
   end)
end

return M
