-- moonhub.cli_client: the client side of the verbs that talk to a running
-- server (run, ps, stop): which server (MOONHUB_HOST, else one this
-- machine runs), JSON requests and streamed chat answers over curl.
-- Layer: lua/moonhub (uses moonhub.admin's run-state files, moonhub.fs, dkjson, the curl program).
local fs = require "moonhub.fs"
local json = require "dkjson"

local M = {}

M.DEFAULT_PORT = 8080           -- moonhub serve's

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- base_url(spec) -> "http://host:port" | nil, msg. spec is MOONHUB_HOST's
-- form, as OLLAMA_HOST's: "host", "host:port", ":port", "http[s]://host[:port]";
-- without a port, serve's (MOONHUB_PORT, the config file's, 8080). `serve`
-- binds to the same variable, so one setting points both ends at each other.
function M.base_url(spec)
   if type(spec) ~= "string" or spec == "" then return nil, "expected host[:port], got an empty value" end
   local scheme, rest = spec:match("^(https?)://(.*)$")
   rest = (rest or spec):gsub("/+$", "")
   local host, port = rest:match("^(%[[^%]]+%]):?(%d*)$")   -- [::1]:8080
   if not host then host, port = rest:match("^([^:/]*):?(%d*)$") end
   if not host then return nil, string.format("expected host[:port], got '%s'", spec) end
   if host == "" or host == "0.0.0.0" then host = "127.0.0.1" end
   if port == "" and scheme then port = scheme == "https" and 443 or 80 end
   if port == "" then           -- serve's own port setting (MOONHUB_PORT, the config file), else 8080
      local p = require("moonhub.config").get("port")
      port = (math.tointeger(p) and p > 0) and p or M.DEFAULT_PORT
   end
   port = math.tointeger(tonumber(port))
   if not port or port < 1 or port > 65535 then return nil, string.format("port out of range in '%s'", spec) end
   return string.format("%s://%s:%d", scheme or "http", host, port)
end

--- servers() -> { {url =, port =, state =} }: MOONHUB_HOST's server alone
-- when it is set (nil, msg if malformed); else the servers this machine runs
-- (their $MOONHUB_HOME/run files), lowest port first.
function M.servers()
   local spec = os.getenv("MOONHUB_HOST")
   if spec and spec ~= "" then
      local url, err = M.base_url(spec)
      if not url then return nil, "MOONHUB_HOST: " .. err end
      return { { url = url, explicit = true } }
   end
   local out = {}
   for _, s in ipairs(require("moonhub.admin").servers()) do
      local host = (s.host == "0.0.0.0" or s.host == "::" or not s.host) and "127.0.0.1" or s.host
      if host:find(":", 1, true) then host = "[" .. host .. "]" end
      out[#out + 1] = { url = string.format("http://%s:%d", host, math.tointeger(s.port) or 0),
         port = s.port, state = s }
   end
   return out
end

local function auth_args()
   local key = os.getenv("MOONHUB_API_KEY")
   return (key and key ~= "") and (" -H " .. q("Authorization: Bearer " .. key)) or ""
end

-- body -> a temporary file curl reads (no shell quoting of user text)
local function body_file(body)
   local path = os.tmpname()
   fs.write(path, json.encode(body))
   return path
end

--- request(url, method, body?, timeout?) -> status, decoded body (or the raw
-- text) | nil, msg when the server cannot be reached.
function M.request(url, method, body, timeout)
   local tmp = body and body_file(body)
   local cmd = string.format("curl -sS -m %d -X %s%s%s -w '\\n%%{http_code}' %s 2>&1", timeout or 10, method,
      auth_args(), tmp and (" -H 'Content-Type: application/json' --data-binary @" .. q(tmp)) or "", q(url))
   local pipe = io.popen(cmd)
   local text = pipe:read("a")
   pipe:close()
   if tmp then os.remove(tmp) end
   local out, code = text:match("^(.*)\n(%d%d%d)$")
   code = math.tointeger(tonumber(code))
   if not code or code == 0 then
      return nil, string.format("cannot reach a server at %s: %s", url:match("^https?://[^/]+"),
         ((out or text):gsub("^curl: %(%d+%) ", ""):gsub("%s+$", "")))
   end
   local v = json.decode(out)
   return code, v == nil and out or v
end

--- error_text(decoded) -> the message an OpenAI- or Ollama-style error body carries
function M.error_text(v)
   if type(v) == "table" then
      if type(v.error) == "table" then return tostring(v.error.message) end
      if v.error then return tostring(v.error) end
   end
   return tostring(v)
end

--- chat(base, body, on_piece) -> true, usage | nil, msg: POST
-- /v1/chat/completions (the route moonhub and Ollama both answer) with
-- stream = true; on_piece(text) for each piece of the answer.
function M.chat(base, body, on_piece)
   body.stream = true
   local tmp = body_file(body)
   local cmd = string.format("curl -sS -N -m 3600%s -H 'Content-Type: application/json' --data-binary @%s "
      .. "-w '\\nHTTP %%{http_code}\\n' %s 2>&1", auth_args(), q(tmp), q(base .. "/v1/chat/completions"))
   local pipe = io.popen(cmd)
   local usage, other, status = nil, {}, nil
   for line in pipe:lines() do
      local data = line:match("^data: (.*)$")
      if data and data ~= "[DONE]" then
         local ev = json.decode(data)
         local ch = type(ev) == "table" and type(ev.choices) == "table" and ev.choices[1]
         local piece = ch and type(ch.delta) == "table" and ch.delta.content
         if type(piece) == "string" and piece ~= "" then on_piece(piece) end
         if type(ev) == "table" and ev.usage then usage = ev.usage end
         if type(ev) == "table" and ev.error then other[#other + 1] = M.error_text(ev) end
      elseif line:match("^HTTP %d+$") then
         status = math.tointeger(tonumber(line:match("%d+")))
      elseif not data and line ~= "" then
         other[#other + 1] = line
      end
   end
   pipe:close()
   os.remove(tmp)
   if status and status >= 200 and status < 300 and #other == 0 then return true, usage end
   local text = table.concat(other, " ")
   local v = json.decode(text)
   if not status or status == 0 then
      return nil, string.format("cannot reach a server at %s: %s", base, (text:gsub("^curl: %(%d+%) ", "")))
   end
   return nil, string.format("the server at %s answered HTTP %d: %s", base, status, v and M.error_text(v) or text)
end

return M
