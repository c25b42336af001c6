-- moonhub.data.encode: one normalized row -> token ids and a loss mask for a
-- loaded model: chat rows through the model's chat template
-- (moonhub.prompt), completion and text rows through its tokenizer.
-- Layer: lua/moonhub (uses moonhub.prompt and the model's tokenizer).
local prompt = require "moonhub.prompt"

local M = {}

-- how many leading ids a and b share
local function common(a, b)
   local n = math.min(#a, #b)
   for i = 1, n do if a[i] ~= b[i] then return i - 1 end end
   return n
end

-- mask[i] = 1 from the first id where full leaves prefix (the trained part
-- starts where the prompt's own tokens stop matching) to stop
local function mark(mask, full, prefix, stop)
   local from = common(full, prefix) + 1
   for i = from, stop do mask[i] = 1 end
end

-- A template that closes no assistant turn with an end-of-generation token
-- (a raw template, as stories260K's) would teach the model never to stop:
-- the final answer then learns the tokenizer's EOS, as completions do.
local function with_stop(tok, msgs, ids, mask)
   if #msgs == 0 or msgs[#msgs].role ~= "assistant" or not tok.eos then return ids, mask end
   local eog = {}
   for _, id in ipairs(tok:eog_ids()) do eog[id] = true end
   for i = #ids, 1, -1 do
      if mask[i] == 0 and i < #ids and mask[i + 1] == 1 then break end   -- start of the last answer
      if mask[i] == 1 and eog[ids[i]] then return ids, mask end
   end
   local n = #ids + 1
   ids[n], mask[n] = tok.eos, 1
   return ids, mask
end

local function chat(model, msgs, opts)
   local ids = prompt.encode(model, msgs, { template = opts.template, add_generation_prompt = false })
   local mask = {}
   for i = 1, #ids do mask[i] = 0 end
   for k, m in ipairs(msgs) do
      if m.role == "assistant" then
         local before = table.move(msgs, 1, k - 1, 1, {})
         local pre = prompt.encode(model, before, { template = opts.template, add_generation_prompt = true })
         local upto = k == #msgs and ids
            or prompt.encode(model, table.move(msgs, 1, k, 1, {}), { template = opts.template,
               add_generation_prompt = false })
         mark(mask, ids, pre, math.min(common(ids, upto), #ids))
      end
   end
   return with_stop(model.tokenizer, msgs, ids, mask)
end

local function plain(model, row)
   local tok = model.tokenizer
   if row.text then
      local ids = tok:encode(row.text, { bos = true, eos = true })
      local mask = {}
      for i = 1, #ids do mask[i] = 1 end
      if tok.bos and ids[1] == tok.bos then mask[1] = 0 end   -- nothing predicts the first token
      return ids, mask
   end
   local ids = tok:encode(row.prompt .. row.completion, { bos = true, eos = true })
   local pre = tok:encode(row.prompt, { bos = true, eos = false })
   local mask = {}
   for i = 1, #ids do mask[i] = 0 end
   mark(mask, ids, pre, #ids)
   return ids, mask
end

-- encode(model, row, {ctx =, template =}) -> ids, mask | nil, msg.
-- mask[i] = 1 where ids[i] is a token the model learns to predict: the
-- assistant's turns (with the template's end-of-turn marks), a completion
-- and its EOS, or all of a text after its BOS.
function M.encode(model, row, opts)
   opts = opts or {}
   if type(model) ~= "table" or type(model.tokenizer) ~= "table" then
      error("data.encode: model must be a loaded model (moonhub.load), got " .. type(model), 2)
   end
   if type(row) ~= "table" then error("data.encode: row must be a normalized row table, got " .. type(row), 2) end
   if opts.ctx ~= nil and (math.type(opts.ctx) ~= "integer" or opts.ctx < 1) then
      error("data.encode: ctx must be a positive integer, got " .. tostring(opts.ctx), 2)
   end
   local ids, mask
   if row.messages then
      ids, mask = chat(model, row.messages, opts)
   elseif (type(row.prompt) == "string" and type(row.completion) == "string") or type(row.text) == "string" then
      ids, mask = plain(model, row)
   else
      error("data.encode: row must have messages, prompt and completion, or text", 2)
   end
   if opts.ctx and #ids > opts.ctx then
      return nil, string.format("row is %d tokens, over the context of %d", #ids, opts.ctx)
   end
   return ids, mask
end

return M
