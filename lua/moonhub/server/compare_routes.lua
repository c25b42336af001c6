-- moonhub.server.compare_routes: POST /api/moonhub/compare for the web UI —
-- the same prompts on several registered models, as `moonhub compare`.
-- It loads models of its own and may run for minutes, so it runs in a
-- child `moonhub compare --json` process; the request's coroutine sleeps
-- on the loop until the child is done (killed if the client goes away).
-- Layer: lua/moonhub (uses moonhub.openai, .http, .fs).
local oa = require "moonhub.openai"
local fs = require "moonhub.fs"
local json = require "dkjson"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function strings(b, key, most, required)
   local v = b[key]
   if oa.is_null(v) then
      if required then oa.fail(400, string.format("'%s' is required", key), key) end
      return {}
   end
   if type(v) == "string" then v = { v } end
   if type(v) ~= "table" or #v == 0 or #v > most then
      oa.fail(400, string.format("'%s' must be a string or a list of 1..%d strings", key, most), key)
   end
   for _, s in ipairs(v) do
      if type(s) ~= "string" or s == "" or #s > 4096 then
         oa.fail(400, string.format("'%s' must hold non-empty strings", key), key)
      end
   end
   return v
end

-- a client names registered models and adapters, not files on the server
local function registry_name(s, key)
   if s:match("^[/.~]") or s:match("%.gguf$") or s:match("%.safetensors$") or s:find("..", 1, true) then
      oa.fail(400, string.format("'%s' must name registered models, not files (%q)", key, s:sub(1, 64)), key)
   end
   return s
end

local seq = 0

-- running(pid): alive and not a zombie (an orphan's reaper may be slow, or absent in a container)
local function running(pid)
   if not fs.pid_alive(pid) then return false end
   local f = io.open("/proc/" .. pid .. "/stat", "r")
   local st = f and f:read("l")
   if f then f:close() end
   return not (st and st:match("^%d+ %b() (%a)") == "Z")
end

-- body {"models": ["A", "B"...], "prompt": "TEXT" | ["..."] | "data": "NAME[:SPLIT]", "n": 5,
-- "lora": ["ADAPTER[:SCALE]"], "max_tokens": 64, "temperature": 0, "seed": N}
-- -> 200 moonhub.compare's result (docs/compare.md)
local function compare(_, req)
   local b = oa.decode(req.body)
   local models, loras = strings(b, "models", 8, true), strings(b, "lora", 4)
   for _, m in ipairs(models) do registry_name(m, "models") end
   for _, l in ipairs(loras) do registry_name(l, "lora") end
   if #models + #loras < 2 then oa.fail(400, "give two models or more (or one and a lora)", "models") end
   local prompts = strings(b, "prompt", 16)
   local data = oa.opt_string(b, "data")
   if (#prompts > 0) == (data ~= nil) then oa.fail(400, "give 'prompt' or 'data' (one of them)", "prompt") end
   local n = oa.opt_int(b, "n", 1, 50, 5)
   local max_tokens = oa.opt_int(b, "max_tokens", 1, 512, 64)
   local seed = oa.opt_int(b, "seed", 0, nil, nil)
   local temp = b.temperature
   if not oa.is_null(temp) and (type(temp) ~= "number" or temp < 0 or temp > 2) then
      oa.wrong("temperature", "a number in 0..2", temp)
   end
   local exe = fs.readlink("/proc/self/exe")
   if not exe then oa.fail(500, "cannot find the moonhub executable") end
   local args = { "compare", "--json", "-q", "--max-tokens", tostring(max_tokens) }
   for _, m in ipairs(models) do args[#args + 1] = m end
   for _, p in ipairs(prompts) do args[#args + 1] = "--prompt=" .. p end
   if data then table.move({ "--data=" .. registry_name(data, "data"), "-n", tostring(n) }, 1, 3, #args + 1, args) end
   for _, l in ipairs(loras) do args[#args + 1] = "--lora=" .. l end
   if not oa.is_null(temp) then args[#args + 1] = "--temperature=" .. string.format("%.17g", temp) end
   if seed then args[#args + 1] = "--seed=" .. seed end
   seq = seq + 1
   local dir = require("moonhub").home() .. "/run"
   fs.mkdirs(dir)
   local out = string.format("%s/compare-%d-%d", dir, fs.pid(), seq)
   local quoted = {}
   for i, x in ipairs(args) do quoted[i] = q(x) end
   local p = io.popen(string.format("exec nice -n 5 %s %s >%s 2>%s </dev/null & echo $!", q(exe),
      table.concat(quoted, " "), q(out .. ".json"), q(out .. ".err")), "r")
   local pid = p and math.tointeger(tonumber(p:read("l") or ""))
   if p then p:close() end
   if not pid then oa.fail(500, "cannot start moonhub compare") end
   req:on_close(function() if running(pid) then os.execute("kill " .. pid .. " 2>/dev/null") end end)
   local http = require "moonhub.http"
   while running(pid) do http.sleep(0.1) end
   local text, err = fs.read(out .. ".json") or "", fs.read(out .. ".err") or ""
   os.remove(out .. ".json")
   os.remove(out .. ".err")
   local res = json.decode(text)
   if type(res) ~= "table" or not res.models then
      local msg = err:match("moonhub compare: ([^\n]+)") or "moonhub compare failed"
      local missing = msg:find("not found", 1, true) or msg:find("no such", 1, true) or msg:find("unknown", 1, true)
      local status = missing and 404 or 400
      oa.fail(status, msg)
   end
   return 200, JSON, text
end

M.ROUTES = {
   { "POST", "/api/moonhub/compare", compare, json = true, max_body = 65536 },
}

return M
