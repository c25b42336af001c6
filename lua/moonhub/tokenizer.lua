-- moonhub.tokenizer: text <-> token ids for GGUF vocabularies and Hugging
-- Face tokenizer.json files. Layer: lua/moonhub (wraps moonhub.core.tokenizer).
-- Token ids are the file's own ids, 0-based (not shifted for Lua).
--
--   local tok = assert(mh.tokenizer.load("model.gguf"))   -- or tokenizer.json / its folder
--   local ids = tok:encode("Hello", {bos = true, special = false})
--   print(tok:decode(ids), tok.vocab_size, tok.bos, tok.eos, tok.eot)
--   local d = tok:decoder(); io.write(d:push(id)) ... io.write(d:flush())
--
-- encode options: bos / eos (nil: as the vocabulary says, true / false: force),
-- special (default false: text such as "<|im_start|>" stays plain text, so
-- user input cannot inject control tokens). decode options: skip_special,
-- keep_space (keep SentencePiece's leading dummy space).
local core = require "moonhub.core.tokenizer"

local M = {}

local Tok = {}
Tok.__index = Tok

-- load(path) -> tokenizer | nil, msg
function M.load(path)
   if type(path) ~= "string" or path == "" then
      error("tokenizer.load: path must be a non-empty string, got " .. type(path), 2)
   end
   local h, msg = require("moonhub.work").call(core, "load", path)   -- off the loop in a server
   if not h then return nil, msg end
   local self = h:info()       -- vocab_size, kind, pre, bos, eos, eot, eom, unk, pad, ...
   self._h = h
   self.path = path
   return setmetatable(self, Tok)
end

local function check_self(self, fname)
   if getmetatable(self) ~= Tok then
      error("tokenizer:" .. fname .. ": call it with ':' on a tokenizer", 3)
   end
end

function Tok:encode(text, opts)
   check_self(self, "encode")
   if type(text) ~= "string" then
      error("tokenizer:encode: text must be a string, got " .. type(text), 2)
   end
   return self._h:encode(text, opts)
end

function Tok:decode(ids, opts)
   check_self(self, "decode")
   if type(ids) ~= "table" then
      error("tokenizer:decode: ids must be a table of integers, got " .. type(ids), 2)
   end
   return self._h:decode(ids, opts)
end

-- piece(id, special?) -> the text of one token (control tokens too unless special == false)
function Tok:piece(id, special) check_self(self, "piece") return self._h:piece(id, special) end
-- text(id) -> the raw vocabulary string (e.g. "Ġthe", "▁the")
function Tok:text(id) check_self(self, "text") return self._h:text(id) end
-- id(piece) -> the id whose vocabulary string is exactly piece, or nil
function Tok:id(piece) check_self(self, "id") return self._h:id(piece) end
-- is_eog(id) -> true for ids that end generation (eos, eot, ...)
function Tok:is_eog(id) check_self(self, "is_eog") return self._h:is_eog(id) end
-- eog_ids() -> every id that ends generation, ascending (one pass in C)
function Tok:eog_ids() check_self(self, "eog_ids") return self._h:eog_ids() end

-- decoder(opts?) -> d; d:push(id) returns only complete UTF-8, d:flush() the rest.
-- opts.skip_special defaults to true here (a stream shows text, not markers).
function Tok:decoder(opts)
   check_self(self, "decoder")
   return self._h:decoder(opts)
end

function Tok:__tostring()
   return string.format("tokenizer(%s, %s, %d tokens)", self.kind, self.pre, self.vocab_size)
end

M.Tokenizer = Tok   -- the class, for help() and its docs (moonhub.docs_table)
return M
