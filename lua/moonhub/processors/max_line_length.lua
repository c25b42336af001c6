-- moonhub.processors.max_line_length: a built-in logits processor that
-- keeps every line of the output at most args.length characters: a token that
-- would make the current line longer is not allowed (so the model breaks
-- the line or ends). Layer: lua/moonhub (a processor: see
-- moonhub.processors, docs/processors.md; moonhub.tensor for the mask).
local P = require "moonhub.processors"
local T = require "moonhub.tensor"

local M = { description = "keep every line at most length characters: args {length = 80}" }

-- n = args.length; first[id] = characters the token adds to the current line (whole text,
-- or up to its first newline); tokens whose later lines are too long
-- whatever comes before them, and textless control tokens that do not
-- end the generation, get n + 1 (never allowed).
local memo = setmetatable({}, { __mode = "k" })   -- tokenizer -> {length -> state}: one scan each

function M.setup(args, ctx)
   local n = args.length
   if type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > 1e6 then
      error("args.length must be an integer in 1..1000000, got " .. tostring(n), 0)
   end
   n = math.tointeger(n)
   local per = memo[ctx.tokenizer] or { count = 0 }
   memo[ctx.tokenizer] = per
   if per[n] then return per[n] end
   if per.count >= 16 then per = { count = 0 } memo[ctx.tokenizer] = per end   -- a bound on what clients keep
   per.count = per.count + 1
   local first, tok = {}, ctx.tokenizer
   for id0, p in ipairs(ctx.pieces()) do
      local nl = p:find("\n", 1, true)
      -- a control token other than an end (BOS...) is no way out of a full line
      if p == "" then first[id0] = tok:is_eog(id0 - 1) and 0 or n + 1
      elseif not nl then first[id0] = P.chars(p)
      else
         local worst = 0
         for line in p:sub(nl + 1):gmatch("[^\n]*") do worst = math.max(worst, P.chars(line)) end
         first[id0] = worst > n and n + 1 or P.chars(p:sub(1, nl - 1))
      end
   end
   per[n] = { n = n, first = T.tensor(first):view(1, #first) }
   return per[n]
end

function M.process(state, logits, tokens, ctx)
   local text = ctx.text(tokens)
   local line = text:match("[^\n]*$")
   local room = state.n - P.chars(line)
   local banned = state.first:gt(T.full({ 1, 1 }, room))
   logits:copy_(T.where(banned, T.full({ 1, 1 }, -math.huge), logits))
end

return M
