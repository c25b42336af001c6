-- moonhub.server.eval_routes: POST /api/moonhub/eval — loss and perplexity
-- of a model (with LoRA adapters) on a dataset split, as `moonhub eval`.
-- Layer: lua/moonhub (uses moonhub.eval, .registry, .openai for errors).
-- Rows run one at a time, the loop served between them (moonhub.http.sleep).
local oa = require "moonhub.openai"

local M = {}

local JSON = { ["Content-Type"] = "application/json" }

-- body {"model": "NAME", "data": "NAME[@V][:SPLIT]", "lora": ["ADAPTER[:SCALE]"...] | "A",
-- "run_id": N, "limit": N} -> 200 {loss, perplexity, tokens, rows, skipped, dataset, run_id}
local function eval(_, req)
   local b = oa.decode(req.body)
   if type(b.model) ~= "string" or b.model == "" then oa.fail(400, "model is required (a registry name)", "model") end
   if type(b.data) ~= "string" or b.data == "" then oa.fail(400, "data is required (NAME[:SPLIT])", "data") end
   local lora = b.lora
   if type(lora) == "string" then lora = { lora } end
   if lora ~= nil and type(lora) ~= "table" then oa.fail(400, "lora must be a string or a list of strings", "lora") end
   for k, l in pairs(lora or {}) do
      if math.type(k) ~= "integer" or type(l) ~= "string" then
         oa.fail(400, "lora must be a string or a list of strings", "lora")
      end
   end
   for _, k in ipairs({ "run_id", "limit" }) do
      if b[k] ~= nil and (math.type(b[k]) ~= "integer" or b[k] < 1) then
         oa.fail(400, k .. " must be a positive integer", k)
      end
   end
   -- a client names registered models, not files on the server
   if b.model:match("^[/.~]") or b.model:match("%.gguf$") then
      oa.fail(400, "model must be a registry name", "model")
   end
   local reg, err = require("moonhub.registry").open()
   if not reg then oa.fail(500, err) end
   local http = require "moonhub.http"
   local ok, res, rerr = pcall(require("moonhub.eval").run, reg, b.model, b.data, { lora = lora,
      run_id = b.run_id, limit = b.limit, progress = false,
      on_row = function() if http.running() then http.sleep(0) end end })
   reg:close()
   if not ok then oa.fail(400, tostring(res)) end
   if not res then oa.fail(rerr:match("^no ") and 404 or 400, rerr) end
   return 200, JSON, oa.encode(res)
end

M.ROUTES = {
   { "POST", "/api/moonhub/eval", eval, json = true, max_body = 65536 },
}

return M
