-- moonhub.prompt: chat messages -> prompt token ids where message contents
-- stay plain text. The template's own markup is tokenized with special
-- tokens on; a special-token string typed (or stored) inside a message,
-- such as "<|im_start|>", becomes ordinary text tokens, never a control token.
-- Layer: lua/moonhub (uses moonhub.template and the model's tokenizer).
local template = require "moonhub.template"

local M = {}

-- The special-token strings that occur in text: encoded with special tokens
-- on, control tokens are the ids whose plain piece is empty.
local function specials_in(tok, text)
   local found, list = {}, {}
   if text == "" then return list end
   for _, id in ipairs(tok:encode(text, { special = true, bos = false, eos = false })) do
      local s = tok:piece(id)
      if s ~= "" and tok:piece(id, false) == "" and not found[s] then
         found[s] = true
         list[#list + 1] = s
      end
   end
   return list
end

-- Splits content at the special strings: {{text, plain = bool}, ...}
local function split_plain(content, strings)
   local out, pos = {}, 1
   while pos <= #content do
      local best, best_s
      for _, s in ipairs(strings) do
         local at = content:find(s, pos, true)
         if at and (not best or at < best or (at == best and #s > #best_s)) then best, best_s = at, s end
      end
      if not best then break end
      if best > pos then out[#out + 1] = { content:sub(pos, best - 1) } end
      out[#out + 1] = { best_s, plain = true }
      pos = best + #best_s
   end
   if pos <= #content then out[#out + 1] = { content:sub(pos) } end
   return out
end

-- A placeholder no message contains: private-use code points around a number.
local function placeholder(i, messages)
   local p = "\u{E000}mh" .. i .. "\u{E001}"
   for _, m in ipairs(messages) do
      if type(m.content) == "string" and m.content:find(p, 1, true) then
         return placeholder(i + 1000, messages)
      end
   end
   return p
end

-- encode(model, messages, opts) -> ids, stops, choice. opts as for
-- template.render_for_model (template, tools, template_kwargs,
-- add_generation_prompt). Without special strings in any content the ids
-- are exactly tokenizer:encode(rendered, {special = true}); with them the
-- rendering is split where those strings stand (where the special-token
-- pass would have split anyway) and only they are encoded as plain text.
function M.encode(model, messages, opts)
   if type(model) ~= "table" or not model.tokenizer then
      error("prompt.encode: model must be a loaded model, got " .. type(model), 2)
   end
   if type(messages) ~= "table" then
      error("prompt.encode: messages must be a list of {role =, content =}, got " .. type(messages), 2)
   end
   local tok = model.tokenizer
   local marked, holders = {}, {}
   for i, m in ipairs(messages) do
      local strings = type(m.content) == "string" and specials_in(tok, m.content) or {}
      if #strings > 0 then
         local p = placeholder(i, messages)
         holders[#holders + 1] = { p = p, parts = split_plain(m.content, strings) }
         local copy = {}
         for k, v in pairs(m) do copy[k] = v end
         copy.content = p
         marked[i] = copy
      else
         marked[i] = m
      end
   end
   local text, enc, choice = template.render_for_model(model, marked, opts)
   if #holders == 0 then return tok:encode(text, enc), choice:stops(), choice end
   -- segments of markup (special on) and plain strings, in order
   local segs, pos = {}, 1
   local function add(s, plain)
      local last = segs[#segs]
      if last and not last.plain and not plain then last[1] = last[1] .. s
      else segs[#segs + 1] = { s, plain = plain } end
   end
   while true do
      local best, h
      for _, c in ipairs(holders) do
         local at = text:find(c.p, pos, true)
         if at and (not best or at < best) then best, h = at, c end
      end
      if not best then break end
      add(text:sub(pos, best - 1), false)
      for _, part in ipairs(h.parts) do add(part[1], part.plain) end
      pos = best + #h.p
   end
   add(text:sub(pos), false)
   -- bos (as the template asked) before the first segment only, eos after the last
   local ids, first = {}, true
   for i, s in ipairs(segs) do
      if s[1] ~= "" then
         local o = { special = not s.plain, bos = false, eos = false }
         if first then o.bos = enc.bos end
         if i == #segs then o.eos = nil end
         first = false
         for _, id in ipairs(tok:encode(s[1], o)) do ids[#ids + 1] = id end
      end
   end
   return ids, choice:stops(), choice
end

return M
