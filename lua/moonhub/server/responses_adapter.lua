-- moonhub.server.responses_adapter: OpenAI's Responses API (POST
-- /v1/responses) over the neutral request: `input` items and `instructions`
-- in; a response object with output items, or its typed SSE events, out.
-- A sibling of openai_adapter.lua. Layer: lua/moonhub (uses moonhub.openai
-- for checks and errors, .http timers, .server.request).
local oa = require "moonhub.openai"
local http = require "moonhub.http"
local request = require "moonhub.server.request"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }
local SSE = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }
local is_null, is_array, is_object, wrong, fail = oa.is_null, oa.is_array, oa.is_object, oa.wrong, oa.fail

-- ===== input items -> chat messages =====

local ROLES = { user = "user", system = "system", developer = "system", assistant = "assistant" }
local UNSUPPORTED_PARTS = { input_image = true, input_file = true, input_audio = true }

-- A message item's content: a string, or input_text / output_text /
-- refusal parts joined.
local function content_text(c, where)
   if type(c) == "string" then return c end
   if not is_array(c) then wrong(where, "a string or an array of content parts", c, "input") end
   local out = {}
   for k, part in ipairs(c) do
      local w = string.format("%s[%d]", where, k - 1)
      local ty = is_object(part) and part.type
      if UNSUPPORTED_PARTS[ty] then
         fail(400, string.format("%s: %s parts are not supported (this server reads text only); send input_text",
            w, ty), "input")
      end
      if ty ~= "input_text" and ty ~= "output_text" and ty ~= "refusal" then
         fail(400, w .. ": expected a part of type input_text, output_text or refusal", "input")
      end
      local key = ty == "refusal" and "refusal" or "text"
      if type(part[key]) ~= "string" then wrong(w .. "." .. key, "a string", part[key], "input") end
      out[#out + 1] = part[key]
   end
   return table.concat(out)
end

local function need_string(item, key, w)
   local v = item[key]
   if type(v) ~= "string" or v == "" then wrong(w .. "." .. key, "a non-empty string", v, "input") end
   return v
end

-- One function_call item: joins the assistant message just before it (a
-- model turn is its text and then its calls), or starts one.
local function add_call(out, item, w)
   local call = { id = need_string(item, "call_id", w), type = "function",
      ["function"] = { name = need_string(item, "name", w), arguments = item.arguments } }
   if type(item.arguments) ~= "string" then wrong(w .. ".arguments", "a string of JSON", item.arguments, "input") end
   local prev = out[#out]
   if not (prev and prev.role == "assistant") then
      prev = { role = "assistant", content = "" }
      out[#out + 1] = prev
   end
   prev.tool_calls = prev.tool_calls or {}
   prev.tool_calls[#prev.tool_calls + 1] = call
end

-- messages(body) -> neutral chat messages: instructions as the system
-- message, then the input (a string is one user message).
function M.messages(body)
   local out = {}
   local ins = body.instructions
   if not is_null(ins) then
      if type(ins) ~= "string" then wrong("instructions", "a string", ins) end
      out[1] = { role = "system", content = ins }
   end
   local input = body.input
   if is_null(input) then fail(400, "'input' is required: a string or an array of input items", "input") end
   if type(input) == "string" then
      out[#out + 1] = { role = "user", content = input }
      return out
   end
   if not is_array(input) or #input == 0 then wrong("input", "a string or a non-empty array of input items", input) end
   for i, item in ipairs(input) do
      local w = string.format("input[%d]", i - 1)
      if not is_object(item) then wrong(w, "an object (an input item)", item, "input") end
      local ty = item.type
      if is_null(ty) and not is_null(item.role) then ty = "message" end     -- {role, content} is a message
      if ty == "message" then
         local role = ROLES[item.role]
         if not role then fail(400, w .. ".role must be one of user, system, developer, assistant", "input") end
         out[#out + 1] = { role = role, content = content_text(item.content, w .. ".content") }
      elseif ty == "function_call" then
         add_call(out, item, w)
      elseif ty == "function_call_output" then
         local o = item.output
         out[#out + 1] = { role = "tool", tool_call_id = need_string(item, "call_id", w),
            content = type(o) == "string" and o or content_text(o, w .. ".output") }
      elseif ty == "item_reference" then
         fail(400, w .. ": item_reference needs stored responses, which this server does not keep; "
            .. "send the items themselves", "input")
      else
         fail(400, string.format("%s.type %s is not supported; use message, function_call or function_call_output",
            w, type(ty) == "string" and string.format("%q", ty:sub(1, 40)) or "(missing)"), "input")
      end
   end
   return out
end

-- ===== tools and text format =====

-- Responses tools are flat {type: "function", name, description,
-- parameters, strict}; the neutral request takes chat's nested form, and
-- moonhub.openai's checks then apply as they do for chat.
function M.tools(body)
   local tools, choice = body.tools, body.tool_choice
   local chat_tools
   if not is_null(tools) then
      if not is_array(tools) then wrong("tools", "an array", tools) end
      chat_tools = {}
      for i, t in ipairs(tools) do
         local w = string.format("tools[%d]", i - 1)
         if not is_object(t) then wrong(w, "an object", t, "tools") end
         if t.type ~= "function" then
            fail(400, string.format("%s: only function tools are supported here, not %s (a tool hosted by OpenAI)",
               w, type(t.type) == "string" and string.format("%q", t.type:sub(1, 40)) or "this type"), "tools")
         end
         if type(t.name) ~= "string" or not t.name:match("^[%w_%-%.]+$") or #t.name > 64 then
            fail(400, w .. ".name must be letters, digits, _ - . (at most 64)", "tools")
         end
         if not is_null(t.description) and type(t.description) ~= "string" then
            wrong(w .. ".description", "a string", t.description, "tools")
         end
         if not is_null(t.parameters) and not is_object(t.parameters) then
            wrong(w .. ".parameters", "an object (a JSON schema)", t.parameters, "tools")
         end
         chat_tools[i] = { type = "function", ["function"] = { name = t.name, description = t.description,
            parameters = t.parameters, strict = t.strict } }
      end
   end
   local chat_choice = choice
   if is_object(choice) then
      if choice.type ~= "function" or type(choice.name) ~= "string" then
         fail(400, "'tool_choice' must be none, auto, required or {type: 'function', name}", "tool_choice")
      end
      chat_choice = { type = "function", ["function"] = { name = choice.name } }
   end
   return oa.tools({ tools = chat_tools, tool_choice = chat_choice })
end

-- text: {format: {type: "text" | "json_object" | "json_schema", name, schema, strict}}
function M.format(body)
   local t = body.text
   if is_null(t) then return nil end
   if not is_object(t) then wrong("text", "an object {format}", t) end
   local f = t.format
   if is_null(f) then return nil end
   if not is_object(f) then wrong("text.format", "an object", f, "text") end
   if f.type == "text" then return nil end
   if f.type == "json_object" then return { type = "json_object" } end
   if f.type == "json_schema" then
      if not is_object(f.schema) then wrong("text.format.schema", "an object (a JSON schema)", f.schema, "text") end
      return { type = "json_schema", schema = f.schema, strict = f.strict == true, name = f.name }
   end
   fail(400, "text.format.type must be text, json_object or json_schema", "text")
end

-- ===== body -> neutral request =====

-- Fields that need what this server does not keep (stored responses,
-- conversations, background jobs): refused rather than silently dropped.
local REFUSED = {
   previous_response_id = "this server does not store responses; send the whole conversation in 'input'",
   conversation = "this server does not keep conversations; send the whole conversation in 'input'",
   prompt = "stored prompt templates are not supported; send 'instructions' and 'input'",
}

function M.request(body)
   oa.common(body)
   for k, why in pairs(REFUSED) do
      if not is_null(body[k]) then fail(400, string.format("'%s' is not supported: %s", k, why), k) end
   end
   if oa.opt_bool(body, "background", false) then
      fail(400, "'background' is not supported: stream the response instead (stream: true)", "background")
   end
   local p = oa.sampling({ temperature = body.temperature, top_p = body.top_p, seed = body.seed,
      stream = body.stream })
   local r = { kind = "chat", model = oa.opt_string(body, "model"), n = 1, stream = p.stream,
      sampling = { temperature = p.temperature, top_p = p.top_p, top_k = p.top_k, min_p = p.min_p,
         presence_penalty = p.presence_penalty, frequency_penalty = p.frequency_penalty,
         repeat_penalty = p.repeat_penalty, seed = p.seed },
      max_tokens = oa.opt_int(body, "max_output_tokens", 1, nil, nil), stop = {},
      format = M.format(body), messages = M.messages(body),
      echo = require("moonhub.server.openai_adapter").echo_settings(body) }
   if not is_null(body.keep_alive) then
      local secs, err = request.keep_alive(body.keep_alive)
      if not secs then fail(400, err, "keep_alive") end
      r.keep_alive = secs
   end
   r.tools, r.tool_choice = M.tools(body)
   request.extensions(body, r)       -- moonhub's lora / processors (docs/lora.md, docs/processors.md)
   return r
end

-- ===== response objects =====

local function usage(u)
   return { input_tokens = u.prompt_tokens, input_tokens_details = { cached_tokens = u.cached_tokens or 0 },
      output_tokens = u.completion_tokens, output_tokens_details = { reasoning_tokens = 0 },
      total_tokens = u.prompt_tokens + u.completion_tokens }
end

-- The tool_choice as the response echoes it (OpenAI's default, auto, when
-- there are no tools).
local function choice_echo(tools, c)
   if not tools then return "auto" end
   if c == "none" or c == "auto" or c == "required" then return c end
   return { type = "function", name = c }
end

-- The response object in state st {id, created, model, r, body} with
-- status, output items and usage (nil while in progress).
function M.response(st, status, output, u)
   local body, r = st.body, st.r
   return { id = st.id, object = "response", created_at = st.created, status = status, error = oa.null,
      incomplete_details = status == "incomplete" and { reason = "max_output_tokens" } or oa.null,
      instructions = type(body.instructions) == "string" and body.instructions or oa.null,
      max_output_tokens = r.max_tokens or oa.null, model = st.model, output = oa.array(output),
      parallel_tool_calls = body.parallel_tool_calls ~= false, previous_response_id = oa.null,
      reasoning = { effort = oa.null, summary = oa.null }, store = false,
      temperature = r.sampling.temperature, top_p = r.sampling.top_p,
      text = { format = r.format and { type = r.format.type, name = r.format.name, schema = r.format.schema,
         strict = r.format.schema and r.format.strict or nil } or { type = "text" } },
      tool_choice = choice_echo(r.tools, r.tool_choice), tools = is_array(body.tools) and body.tools or oa.array(),
      truncation = "disabled", usage = u and usage(u) or oa.null,
      metadata = is_object(body.metadata) and body.metadata or oa.object(),
      moonhub = st.settings and { settings = oa.object(st.settings) } or nil }
end

local function text_part(text)
   return { type = "output_text", text = text, annotations = oa.array(), logprobs = oa.array() }
end

local function message_item(st, status, text)
   return { type = "message", id = "msg_" .. st.hex, status = status, role = "assistant",
      content = text and oa.array({ text_part(text) }) or oa.array() }
end

local function call_item(st, k, c, status, arguments)
   return { type = "function_call", id = string.format("fc_%s_%d", st.hex, k),
      call_id = c.id or string.format("call_%s_%d", st.hex, k), name = c.name,
      arguments = arguments or c.arguments, status = status }
end

-- Output items of a finished result: the text as a message, then one
-- function_call item per parsed call.
function M.output(st, res)
   local out = {}
   local status = res.reason == "length" and "incomplete" or "completed"
   if not res.calls or (res.content or "") ~= "" then
      out[1] = message_item(st, status, res.calls and res.content or res.text)
   end
   for k, c in ipairs(res.calls or {}) do out[#out + 1] = call_item(st, k, c, "completed") end
   return out, status
end

-- ===== streaming =====

-- The typed events of one result, as the Responses API orders them:
-- emit(type, fields) writes one. open_text/delta/close_text are the
-- message item's parts; calls follow the message.
local function streamer(st, emit)
   local s = { output = {} }
   function s.open_text()
      if s.msg then return end
      s.msg = message_item(st, "in_progress")
      s.index = #s.output
      emit("response.output_item.added", { output_index = s.index, item = s.msg })
      emit("response.content_part.added", { item_id = s.msg.id, output_index = s.index, content_index = 0,
         part = text_part("") })
   end
   function s.delta(text)
      if text == "" then return end
      s.open_text()
      emit("response.output_text.delta", { item_id = s.msg.id, output_index = s.index, content_index = 0,
         delta = text, logprobs = oa.array() })
   end
   function s.close_text(text, status)
      local id, index = s.msg.id, s.index
      emit("response.output_text.done", { item_id = id, output_index = index, content_index = 0, text = text,
         logprobs = oa.array() })
      emit("response.content_part.done", { item_id = id, output_index = index, content_index = 0,
         part = text_part(text) })
      local item = message_item(st, status, text)
      emit("response.output_item.done", { output_index = index, item = item })
      s.output[#s.output + 1] = item
   end
   function s.call(k, c)
      local index = #s.output
      local item = call_item(st, k, c, "in_progress", "")
      emit("response.output_item.added", { output_index = index, item = item })
      emit("response.function_call_arguments.delta", { item_id = item.id, output_index = index,
         delta = c.arguments })
      emit("response.function_call_arguments.done", { item_id = item.id, output_index = index,
         name = c.name, arguments = c.arguments })
      item = call_item(st, k, c, "completed")
      emit("response.output_item.done", { output_index = index, item = item })
      s.output[#s.output + 1] = item
   end
   return s
end

local function stream(view, req, r, job, st)
   local seq = -1
   local function emit(ty, ev)
      seq = seq + 1
      ev.type, ev.sequence_number = ty, seq
      req:write("event: " .. ty .. "\ndata: " .. oa.encode(ev) .. "\n\n")
   end
   req:start(200, SSE)
   local keep = http.timer(view.opts.keepalive or 5, function() req:write(": keep-alive\n\n") end)
   local total, timings, answer
   local ok, err = pcall(function()
      emit("response.created", { response = M.response(st, "in_progress", {}) })
      emit("response.in_progress", { response = M.response(st, "in_progress", {}) })
      local s, status = streamer(st, emit), "completed"
      total, timings = request.run(view, r, job, {
         begin = function() if not job.with_tools then s.open_text() end end,
         text = function(_, text) keep:cancel() s.delta(text) end,
         choice = function(_, res)
            keep:cancel()
            status = res.reason == "length" and "incomplete" or "completed"
            answer = res.calls and (res.content or "") or res.text
            st.settings = res.settings
            if not res.calls or (res.content or "") ~= "" then
               local text = res.calls and res.content or res.text
               if job.with_tools then s.delta(text) end     -- tools: the text was held back to be parsed
               s.open_text()
               s.close_text(text, status)
            end
            for k, c in ipairs(res.calls or {}) do s.call(k, c) end
         end,
      }, req)
      emit(status == "incomplete" and "response.incomplete" or "response.completed",
         { response = M.response(st, status, s.output, total) })
   end)
   keep:cancel()
   if not ok then
      local e = view:error_of(err, req)
      emit("error", { code = e.code or "server_error", message = e.message, param = e.param or oa.null })
   end
   req:finish()
   if total then view:record_chat(r, answer, total, timings) end
end

-- ===== route =====

-- POST /v1/responses
function M.create(app, req)
   local body = oa.decode(req.body)
   local r = M.request(body)
   return app:with_model(r, function(view)
      local job = request.prepare(r, view)
      local id = view:next_id("resp"):gsub("%-", "_", 1)
      local st = { id = id, hex = id:match("_(.*)$"), created = os.time(), model = view.name, r = r, body = body }
      if r.stream then return stream(view, req, r, job, st) end
      local output, status, answer
      local total, timings = request.run(view, r, job, { choice = function(_, res)
         output, status = M.output(st, res)
         answer = res.calls and (res.content or "") or res.text
         st.settings = res.settings
      end }, req)
      view:record_chat(r, answer, total, timings)
      return 200, JSON, oa.encode(M.response(st, status, output, total))
   end)
end

return M
