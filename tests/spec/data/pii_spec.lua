-- Specs for moonhub.data.pii: each kind found where it is (true positives)
-- and left alone where it only looks alike (false positives: a checksum,
-- a range or the surrounding text rules it out). Layer: tests (pure).
local pii = require "moonhub.data.pii"

-- "kind:text" of each hit, in order
local function hits(text, kinds)
   local out = {}
   for _, h in ipairs(pii.scan(text, kinds)) do out[#out + 1] = h.kind .. ":" .. h.text end
   return out
end

local GHP = "ghp_" .. ("a1B2c3D4e5"):rep(3) .. "f6G7h8"
local PAT = "github_pat_11ABCDEFG0" .. ("x9Y8z7"):rep(10)

describe("moonhub.data.pii #unit", function()
   it("finds each kind", function()
      assert.same({ "email:jane.doe+ml@mail.example.co.uk" }, hits("write jane.doe+ml@mail.example.co.uk today"))
      assert.same({ "phone:(555) 123-4567", "phone:+44 20 7946 0958", "phone:555.123.4567" },
         hits("call (555) 123-4567, +44 20 7946 0958 or 555.123.4567."))
      assert.same({ "card:4111 1111 1111 1111", "card:5500-0000-0000-0004", "card:378282246310005" },
         hits("visa 4111 1111 1111 1111; mc 5500-0000-0000-0004; amex 378282246310005"))
      assert.same({ "iban:DE89 3704 0044 0532 0130 00", "iban:GB82WEST12345698765432" },
         hits("pay DE89 3704 0044 0532 0130 00 or GB82WEST12345698765432"))
      assert.same({ "ipv4:192.168.1.20", "ipv4:8.8.8.8" }, hits("hosts 192.168.1.20 and 8.8.8.8."))
      assert.same({ "ipv6:2001:db8::8a2e:370:7334", "ipv6:fe80::1", "ipv6:2001:0db8:0000:0000:0000:ff00:0042:8329" },
         hits("v6 2001:db8::8a2e:370:7334, fe80::1 and 2001:0db8:0000:0000:0000:ff00:0042:8329"))
      assert.same({ "ssn:123-45-6789" }, hits("SSN 123-45-6789."))
      assert.same({ "aws_key:AKIAIOSFODNN7EXAMPLE" }, hits("key=AKIAIOSFODNN7EXAMPLE"))
      assert.same({ "github_token:" .. GHP, "github_token:" .. PAT }, hits("tokens " .. GHP .. " " .. PAT))
      assert.same({ "openai_key:sk-proj-Ab3De5Gh7Jk9Mn1Pq3St5Vx" },
         hits("OPENAI_API_KEY=sk-proj-Ab3De5Gh7Jk9Mn1Pq3St5Vx"))
      assert.same({ "secret:Zx8Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lm0N" }, hits("token: Zx8Qw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lm0N"))
      assert.same({ "secret:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },      -- AWS's documented example secret
         hits("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
   end)

   it("leaves lookalikes alone", function()
      assert.same({}, hits("user@localhost, a@b.c and @handle"))                -- no dotted domain / TLD
      assert.same({}, hits("order 4111111111111112 and 4111 1111 1111 1112"))   -- 16 digits, Luhn fails
      assert.same({}, hits("0000 0000 0000 0000"))                                 -- all zeros pass Luhn, not a card
      assert.same({}, hits("4111 1111-1111 1111"))                                 -- mixed separators
      assert.same({}, hits("DE89 3704 0044 0532 0130 01"))                         -- IBAN checksum fails
      assert.same({}, hits("version 1.2.3.4.5, 999.1.1.1 and 10.010.1.1"))        -- not four octets in range
      assert.same({}, hits("at 12:30:45, std::vector and dead::beef"))             -- times, C++ scopes
      assert.same({}, hits("000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000"))   -- SSN ranges
      assert.same({}, hits("dates 2024-01-15, pi 3.14159265358979323, id 1234567890"))
      assert.same({}, hits("AKIA1234 sk-learn ghp_short task-sk-abc"))                        -- too short
      assert.same({}, hits("sha256 " .. ("0123456789abcdef"):rep(4)))                        -- hex: low entropy
      assert.same({}, hits("path /usr/lib/x86_64-linux-gnu/libopenblas.so.0.3.21"))
      assert.same({}, hits("uuid 550e8400-e29b-41d4-a716-446655440000"))
      -- words: entropy as high as a key's, but made of words
      assert.same({}, hits("see /path/to/Some-Page_With-Mixed-Case-And-1234 and The_Quick_Brown_Fox_Jumps_Over_42"))
      assert.same({}, hits("call CamelCaseFunctionNameForTesting123Things()"))
   end)

   it("checks Luhn and mod-97 as specified", function()
      assert.is_true(pii.luhn("79927398713"))
      assert.is_false(pii.luhn("79927398710"))
      assert.is_true(pii.iban_ok("GB82 WEST 1234 5698 7654 32"))
      assert.is_false(pii.iban_ok("GB82 WEST 1234 5698 7654 33"))
   end)

   it("scans only the kinds asked for and refuses unknown ones", function()
      assert.same({ "ssn:123-45-6789" }, hits("a@b.com 123-45-6789", { ssn = true }))
      assert.has_error(function() pii.scan("x", { mail = true }) end)
   end)

   it("redacts each hit as [KIND]", function()
      local text = "mail a.b@example.com or call +1 415 555 0100 from 10.0.0.1"
      assert.equal("mail [EMAIL] or call [PHONE] from [IPV4]", pii.redact(text, pii.scan(text)))
   end)
end)
