-- moonhub.toolcall: finds tool calls in generated text, for the formats
-- models are trained on: Hermes/Qwen <tool_call>{json}</tool_call>,
-- Llama 3.1 {"name", "parameters"} JSON or <|python_tag|>, and Mistral
-- [TOOL_CALLS][{...}]. Layer: lua/moonhub (pure Lua; uses moonhub.jinja's
-- order-keeping JSON so arguments keep the model's key order).
local jinja = require "moonhub.jinja"

local M = {}

-- Which format each built-in template's models use.
M.FORMAT_OF = { chatml = "hermes", llama3 = "llama3", ["mistral-tekken"] = "mistral",
                ["mistral-instruct"] = "mistral" }

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function is_object(v)
   return type(v) == "table" and v ~= jinja.null and (v[1] == nil)
end

-- Arguments as a compact JSON string (a string stays as the model wrote it).
local function args_json(v)
   if v == nil or v == jinja.null then return "{}" end
   if type(v) == "string" then return v end
   return jinja.tojson(v, { separators = { ",", ":" } })
end

-- One call object -> { name, arguments, id? } or nil.
local function call_of(obj)
   if not is_object(obj) then return nil end
   local f = is_object(obj["function"]) and obj["function"] or obj
   if type(f.name) ~= "string" then return nil end
   local args = f.arguments
   if args == nil then args = f.parameters end
   local call = { name = f.name, arguments = args_json(args) }
   if type(obj.id) == "string" then call.id = obj.id end
   return call
end

-- Hermes / Qwen: any number of <tool_call>...</tool_call> blocks; a last
-- block may lack its closing tag when generation stopped on it.
function M.parse_hermes(text)
   local calls, rest, pos = {}, {}, 1
   while true do
      local a, b = text:find("<tool_call>", pos, true)
      if not a then rest[#rest + 1] = text:sub(pos); break end
      local c, d = text:find("</tool_call>", b + 1, true)
      local body = text:sub(b + 1, (c or #text + 1) - 1)
      local call = call_of((jinja.decode(trim(body))))
      if call then
         calls[#calls + 1] = call
         rest[#rest + 1] = text:sub(pos, a - 1)
      else
         rest[#rest + 1] = text:sub(pos, d or #text)
      end
      if not c then break end
      pos = d + 1
   end
   if #calls == 0 then return calls, text end
   return calls, trim(table.concat(rest))
end

-- `name.call(k="v", n=1)` as Llama 3.1 writes built-in tool calls.
local function python_call(s)
   local name, argstr = s:match("^([%w_]+)%.call%((.*)%)$")
   if not name then return nil end
   local args, order = {}, {}
   for k, v in argstr:gmatch('([%w_]+)%s*=%s*("[^"]*")') do
      args[k] = v:sub(2, -2); order[#order + 1] = k
   end
   return { name = name, arguments = args_json(jinja.dict(args, order)) }
end

-- Llama 3.1/3.2: the whole reply is a JSON call (several separated by ';'
-- are accepted), optionally after <|python_tag|>.
function M.parse_llama3(text)
   local body = trim(text)
   local content = ""
   local tag = body:find("<|python_tag|>", 1, true)
   if tag then
      content = trim(body:sub(1, tag - 1))
      body = trim(body:sub(tag + #"<|python_tag|>"))
      local call = python_call(body)
      if call then return { call }, content end
   end
   local calls, pos = {}, 1
   while pos <= #body do
      local v, nextpos = jinja.decode(body, pos)
      local call = v and call_of(v)
      if not call then return {}, text end
      calls[#calls + 1] = call
      pos = body:find("[^%s;]", nextpos) or #body + 1
   end
   if #calls == 0 then return {}, text end
   return calls, content
end

-- Mistral: text, then [TOOL_CALLS] and a JSON list of calls.
function M.parse_mistral(text)
   local a, b = text:find("[TOOL_CALLS]", 1, true)
   if not a then return {}, text end
   local v = jinja.decode(text, b + 1)
   if type(v) ~= "table" or v == jinja.null then return {}, text end
   local list = v[1] ~= nil and v or { v }
   local calls = {}
   for _, obj in ipairs(list) do
      local call = call_of(obj)
      if not call then return {}, text end
      calls[#calls + 1] = call
   end
   return calls, trim(text:sub(1, a - 1))
end

local PARSERS = { hermes = M.parse_hermes, llama3 = M.parse_llama3, mistral = M.parse_mistral }

--- Tool calls in text: returns calls ({ {name=, arguments=JSON string,
--- id=?}, ... }, empty when none) and the remaining content. format is
--- "hermes", "llama3", "mistral", a template name, or nil to try each.
function M.parse(text, format)
   if type(text) ~= "string" then error("toolcall.parse: text must be a string, got " .. type(text), 2) end
   if format ~= nil then
      local f = PARSERS[format] or PARSERS[M.FORMAT_OF[format] or ""]
      if not f then error("toolcall.parse: unknown format '" .. tostring(format) .. "'", 2) end
      return f(text)
   end
   for _, name in ipairs({ "hermes", "mistral", "llama3" }) do
      local calls, content = PARSERS[name](text)
      if #calls > 0 then return calls, content end
   end
   return {}, text
end

return M
