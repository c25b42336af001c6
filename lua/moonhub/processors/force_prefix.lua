-- moonhub.processors.force_prefix: a built-in logits processor that makes
-- the output start with args.prefix: until it is written, only tokens that
-- continue it are allowed (the model still picks how to spell it).
-- Layer: lua/moonhub (a processor: see moonhub.processors, docs/processors.md).
local P = require "moonhub.processors"

local M = { description = "make the output start with a text: args {prefix = \"...\"}" }

function M.setup(args)
   if type(args.prefix) ~= "string" or args.prefix == "" then error("args.prefix must be a non-empty string", 0) end
   if #args.prefix > 4096 then error("args.prefix is longer than 4096 bytes", 0) end
   return { prefix = args.prefix }
end

function M.process(state, logits, tokens, ctx)
   local text = ctx.text(tokens)
   if #text >= #state.prefix then return end
   local left = state.prefix:sub(#text + 1)
   local ok = {}
   for id0, p in ipairs(ctx.pieces()) do
      -- a piece that is the next part of what is left, or finishes it and goes on
      if p ~= "" and (left:sub(1, #p) == p or p:sub(1, #left) == left) then ok[#ok + 1] = id0 - 1 end
   end
   if #ok == 0 then error("no token continues the prefix at " .. string.format("%q", left), 0) end
   P.only(logits, ok)
end

return M
