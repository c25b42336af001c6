-- moonhub.processors.ban_words: a built-in logits processor that never lets
-- the generated text contain one of args.words (case-sensitive), even when
-- a word would be spelled over several tokens. Layer: lua/moonhub
-- (a processor: see moonhub.processors, docs/processors.md).
local P = require "moonhub.processors"

local M = { description = "never emit the given words: args {words = {\"...\", ...}}" }

-- The tables of recent word lists, per tokenizer: a scan of the vocabulary
-- (tens of ms for 50k tokens, on the server's loop) is done once per list.
local memo = setmetatable({}, { __mode = "k" })

-- For each word: the ids whose text holds it whole, and for each split
-- point k (the text so far ends with the word's first k bytes) the ids
-- whose text starts with the rest of it.
function M.setup(args, ctx)
   local words = args.words
   if type(words) ~= "table" or #words == 0 then error("args.words must be a non-empty list of strings", 0) end
   for i, w in ipairs(words) do
      if type(w) ~= "string" or w == "" then error(string.format("args.words[%d] must be a non-empty string", i), 0) end
      if #w > 200 then error(string.format("args.words[%d] is longer than 200 bytes", i), 0) end
   end
   local key = table.concat(words, "\0")
   local seen = memo[ctx.tokenizer] or { n = 0, states = {} }
   memo[ctx.tokenizer] = seen
   if seen.states[key] then return seen.states[key] end
   local pieces, list = ctx.pieces(), {}
   for _, w in ipairs(words) do
      local e = { word = w, whole = {}, rest = {} }
      for k = 1, #w - 1 do e.rest[k] = {} end
      for id0 = 0, #pieces - 1 do
         local p = pieces[id0 + 1]
         if p ~= "" then
            if p:find(w, 1, true) then e.whole[#e.whole + 1] = id0
            else
               for k = 1, #w - 1 do
                  local tail = w:sub(k + 1)
                  if p:sub(1, #tail) == tail then e.rest[k][#e.rest[k] + 1] = id0 end
               end
            end
         end
      end
      list[#list + 1] = e
   end
   if seen.n >= 32 then seen.n, seen.states = 0, {} end
   seen.states[key], seen.n = { words = list }, seen.n + 1
   return seen.states[key]
end

function M.process(state, logits, tokens, ctx)
   local text = ctx.text(tokens)
   for _, e in ipairs(state.words) do
      P.ban(logits, e.whole)
      local w = e.word
      for k = 1, #w - 1 do
         if #e.rest[k] > 0 and text:sub(-k) == w:sub(1, k) then P.ban(logits, e.rest[k]) end
      end
   end
end

return M
