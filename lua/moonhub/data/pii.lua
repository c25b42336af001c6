-- moonhub.data.pii: finds personal data and secrets in text — emails, phone
-- numbers, payment cards (Luhn), IBANs (mod 97), IPv4/IPv6, US SSNs, API
-- keys (AWS, GitHub, OpenAI-style) and high-entropy tokens — with LPeg
-- patterns and a checksum or range check per kind that rules out lookalikes
-- (docs/datasets.md). Layer: lua/moonhub (pure Lua over lua-lpeg).
local lpeg = require "lpeg"

local P, R, S, B, C, Cp, Cmt, Ct = lpeg.P, lpeg.R, lpeg.S, lpeg.B, lpeg.C, lpeg.Cp, lpeg.Cmt, lpeg.Ct

local M = {}

local digit, alpha, upper = R("09"), R("az", "AZ"), R("AZ")
local alnum = digit + alpha
local hex = R("09", "af", "AF")
local word = alnum + P("_")
local function rep(p, lo, hi)            -- p{lo,hi}
   local out = p ^ lo
   if hi and hi > lo then out = p ^ lo * p ^ -(hi - lo) end
   if lo == hi then out = p ^ lo - p ^ (lo + 1) end
   return out
end

-- ===== checks =====

local function digits_of(s) return (s:gsub("%D", "")) end

-- Luhn: double every second digit from the right
function M.luhn(num)
   local sum, alt = 0, false
   for i = #num, 1, -1 do
      local d = num:byte(i) - 48
      if alt then
         d = d * 2
         if d > 9 then d = d - 9 end
      end
      sum, alt = sum + d, not alt
   end
   return sum % 10 == 0
end

-- IBAN: move the first four characters to the end, letters as 10..35, mod 97 == 1
function M.iban_ok(s)
   s = s:gsub("%s", ""):upper()
   if #s < 15 or #s > 34 then return false end
   local moved = s:sub(5) .. s:sub(1, 4)
   local rem = 0
   for ch in moved:gmatch(".") do
      local v = ch:match("%d") and tonumber(ch) or (ch:byte() - 55)
      rem = (rem * (v >= 10 and 100 or 10) + v) % 97
   end
   return rem == 1
end

-- Shannon entropy in bits per character
function M.entropy(s)
   local counts = {}
   for ch in s:gmatch(".") do counts[ch] = (counts[ch] or 0) + 1 end
   local e = 0
   for _, n in pairs(counts) do
      local p = n / #s
      e = e - p * math.log(p, 2)
   end
   return e
end

local function email_ok(s)
   local tld = s:match("%.([^.]+)$")
   return tld ~= nil and #tld >= 2 and not tld:find("[^%a]")
end

local function card_ok(s)
   local seps = s:gsub("%d", "")
   if seps ~= "" and seps ~= seps:sub(1, 1):rep(#seps) then return false end   -- one kind of separator
   local d = digits_of(s)
   return #d >= 13 and #d <= 19 and not d:match("^0+$") and M.luhn(d)
end

local function ssn_ok(s)
   local a, g, n = s:match("^(%d%d%d)%-(%d%d)%-(%d%d%d%d)$")
   return a ~= "000" and a ~= "666" and a:sub(1, 1) ~= "9" and g ~= "00" and n ~= "0000"
end

local function ipv4_ok(s)
   for o in s:gmatch("%d+") do
      if #o > 1 and o:sub(1, 1) == "0" then return false end     -- 010: not how addresses are written
      if tonumber(o) > 255 then return false end
   end
   return true
end

local function ipv6_ok(s)
   if not s:find("%d") then return false end                    -- "dead:beef:..." words, C++ scopes
   local dbl = select(2, s:gsub("::", ""))
   if dbl > 1 or s:find(":::", 1, true) then return false end
   local groups = 0
   for g in s:gmatch("[^:]+") do
      if #g > 4 then return false end
      groups = groups + 1
   end
   if dbl == 0 then return groups == 8 and not s:match("^:") and not s:match(":$") end
   if s:match("^:[^:]") or s:match("[^:]:$") then return false end
   return groups >= 2 and groups <= 7
end

local function phone_ok(s)
   local d = digits_of(s)
   if s:sub(1, 1) == "+" then return #d >= 8 and #d <= 15 end
   return #d == 10 or (#d == 11 and d:sub(1, 1) == "1")
end

-- identifiers and paths made of words (CamelCase, snake_case, a/b/c) have
-- an entropy as high as a key's; a key's letters seldom form words
local function wordy(s)
   local covered = 0
   for w in s:gmatch("%u?%l+") do if #w >= 3 then covered = covered + #w end end
   return covered * 2 >= #s:gsub("%W", "")
end

local function secret_ok(s)
   return #s >= 32 and s:find("%d") and s:find("%l") and s:find("%u") and M.entropy(s) >= 4.2 and not wordy(s)
end

local function yes() return true end

-- ===== patterns =====

local wb = -B(word)                                  -- not inside a word
local we = -#word                                    -- and not running on into one
local nd = -#(digit + P(".") * digit)                -- numbers: no digits (or .digit) follow

local email_local = (alnum + S("._%+-")) ^ 1
local label = alnum * (alnum + P("-")) ^ 0
-- PEG repetition never gives back, so the domain takes every label and
-- email_ok checks the last one is a top-level domain (letters, 2 or more)
local email = email_local * P("@") * label * (P(".") * label) ^ 1 * -#(alnum + P("-"))
local d4 = rep(digit, 4, 4)
local sep = S(" -")
-- 13-19 digits in one run, in fours (4-4-4-4, 4-4-4-4-3) or as 4-6-5
local card = -B(P(".")) * (rep(digit, 13, 19) + d4 * sep * rep(digit, 6, 6) * sep * rep(digit, 5, 5)
   + d4 * sep * d4 * sep * d4 * sep * rep(digit, 1, 4) * (sep * rep(digit, 1, 3)) ^ -1) * nd
local ssn = rep(digit, 3, 3) * P("-") * rep(digit, 2, 2) * P("-") * rep(digit, 4, 4) * nd
local iban_char = P(" ") ^ -1 * (upper + digit)
local iban = upper * upper * digit * digit * iban_char ^ 11 * iban_char ^ -19 * we
local octet = rep(digit, 1, 3)
local ipv4 = -B(P(".")) * octet * (P(".") * octet) * (P(".") * octet) * (P(".") * octet) * nd * -#(P(".") * word)
local ipv6 = (hex + P(":")) ^ 3 * -#(hex + P(":") + P("."))
local usual = (P("(") * rep(digit, 3, 3) * P(")") * P(" ") ^ -1 + rep(digit, 3, 3) * S(" -.")) * rep(digit, 3, 3)
   * S(" -.") * rep(digit, 4, 4) * nd
local intl = P("+") * rep(digit, 1, 3) * (S(" -.") ^ -1 * (P("(") * digit ^ 1 * P(")") + digit ^ 1)) ^ 1 * nd
local phone = intl + usual
local aws = (P("AKIA") + P("ASIA")) * rep(upper + digit, 16, 16) * we
local github = (P("ghp_") + P("gho_") + P("ghu_") + P("ghs_") + P("ghr_")) * rep(alnum, 36, 36) * we
   + P("github_pat_") * rep(word, 22, 255) * we
local openai = P("sk-") * (P("proj-") + P("svcacct-")) ^ -1 * (alnum + S("_-")) ^ 20 * -#(alnum + S("_-"))
local token = (alnum + S("+/_-")) ^ 32 * P("=") ^ -2 * -#(alnum + S("+/_-="))

-- kinds in the order they are tried at a position: the specific before the
-- general (a key before a high-entropy token, an IBAN before a card)
M.KINDS = {
   { "aws_key", aws, yes }, { "github_token", github, yes }, { "openai_key", openai, yes },
   { "email", email, email_ok }, { "iban", iban, M.iban_ok }, { "ssn", ssn, ssn_ok },
   { "card", card, card_ok }, { "ipv6", ipv6, ipv6_ok }, { "ipv4", ipv4, ipv4_ok },
   { "phone", phone, phone_ok }, { "secret", token, secret_ok },
}
M.NAMES = {}
for i, k in ipairs(M.KINDS) do M.NAMES[i] = k[1] end

local function kind_patt(k, only)
   local name, patt, check = k[1], k[2], k[3]
   if only and not only[name] then return nil end
   return Cmt(Cp() * C(patt) * Cp(), function(_, pos, s, text, e)
      if check(text) then return pos, { kind = name, s = s, e = e - 1, text = text } end
      return false
   end)
end

local scanners = {}

local function scanner(only)
   local key = "all"
   if only then
      local ks = {}
      for k in pairs(only) do ks[#ks + 1] = k end
      table.sort(ks)
      key = table.concat(ks, ",")
   end
   if scanners[key] then return scanners[key] end
   local any
   for _, k in ipairs(M.KINDS) do
      local p = kind_patt(k, only)
      if p then any = any and (any + p) or p end
   end
   any = any or P(false)
   -- at a word start try every kind; else skip an IBAN-shaped run whose
   -- checksum failed (so its digit groups are not taken for a card), a
   -- word, or one other byte
   local g = Ct((wb * any + wb * iban + word ^ 1 + P(1)) ^ 0)
   scanners[key] = g
   return g
end

-- scan(text, kinds?) -> {{kind, s, e, text}...} in text order. kinds: a
-- set {email = true, ...} to look for only those.
function M.scan(text, kinds)
   if type(text) ~= "string" then return {} end
   if kinds then
      for k in pairs(kinds) do
         local known = false
         for _, n in ipairs(M.NAMES) do known = known or n == k end
         if not known then
            error("pii.scan: unknown kind '" .. tostring(k) .. "' (" .. table.concat(M.NAMES, ", ") .. ")", 2)
         end
      end
   end
   return scanner(kinds):match(text)
end

-- redact(text, hits) -> text with each hit replaced by [KIND]
function M.redact(text, hits)
   local out, pos = {}, 1
   for _, h in ipairs(hits) do
      out[#out + 1] = text:sub(pos, h.s - 1)
      out[#out + 1] = "[" .. h.kind:upper() .. "]"
      pos = h.e + 1
   end
   out[#out + 1] = text:sub(pos)
   return table.concat(out)
end

return M
