-- tests/spec/tensor/construct_spec.lua: constructors, dtypes, conversion,
-- nested tables in and out, seeded random numbers (moonhub.tensor).
local T = require("moonhub").tensor

local function same(t, expected, tol)
   local got = t:totable()
   local function walk(a, b, path)
      if type(b) == "table" then
         assert.are.equal(#b, #a, "length at " .. path)
         for i = 1, #b do walk(a[i], b[i], path .. "[" .. i .. "]") end
      else
         assert.is_true(math.abs(a - b) <= (tol or 1e-6), ("%s: %s vs %s"):format(path, a, b))
      end
   end
   walk(got, expected, "")
end

describe("tensor construction #unit", function()
   it("zeros/ones/full/empty take a shape table or sizes", function()
      local z = T.zeros({2, 3})
      assert.are.same({2, 3}, z:shape())
      assert.are.equal("f32", z:dtype())
      same(z, {{0, 0, 0}, {0, 0, 0}})
      local o = T.ones(2, 3, {dtype = "i32"})
      assert.are.equal("i32", o:dtype())
      assert.are.same({{1, 1, 1}, {1, 1, 1}}, o:totable())
      same(T.full({2}, 7.5), {7.5, 7.5})
      assert.are.same({4, 1, 2}, T.empty(4, 1, 2):shape())
      local s = T.zeros({})
      assert.are.equal(0, s:dim())
      assert.are.equal(1, s:numel())
   end)

   it("arange stops before stop, linspace includes both ends", function()
      same(T.arange(5), {0, 1, 2, 3, 4})
      same(T.arange(2, 5), {2, 3, 4})
      same(T.arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75})
      same(T.arange(5, 0, -2), {5, 3, 1})
      same(T.linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1})
      assert.are.same({1, 2, 3}, T.arange(1, 4, {dtype = "i64"}):totable())
   end)

   it("eye builds square and rectangular identities", function()
      same(T.eye(3), {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}})
      same(T.eye(2, 3), {{1, 0, 0}, {0, 1, 0}})
   end)

   it("tensor() reads nested tables and totable() gives them back", function()
      local t = T.tensor({{1, 2, 3}, {4, 5, 6}})
      assert.are.same({2, 3}, t:shape())
      same(t, {{1, 2, 3}, {4, 5, 6}})
      assert.are.same({{1, 2}, {3, 4}}, T.from_table({{1, 2}, {3, 4}}, {dtype = "i64"}):totable())
      assert.are.equal(3.5, T.tensor(3.5):item())
      assert.are.same({0}, T.tensor({}):shape())
      local b = T.tensor({{{1}, {2}}, {{3}, {4}}})
      assert.are.same({2, 2, 1}, b:shape())
      assert.are.equal(4, b[{2, 2, 1}])
   end)

   it("integer dtypes give Lua integers", function()
      local t = T.tensor({1, 2, 3}, {dtype = "i64"})
      assert.are.equal("integer", math.type(t[2]))
      assert.are.equal("integer", math.type(t:sum()))
      assert.are.equal("float", math.type(T.tensor({1})[1]))
   end)

   it("converts between all plain dtypes", function()
      local src = T.tensor({-2.5, 0, 1, 100})
      for _, dt in ipairs({"f32", "f16", "bf16", "i32", "i64", "i8"}) do
         local c = src:to(dt)
         assert.are.equal(dt, c:dtype())
         assert.are.same({4}, c:shape())
         assert.are.equal(100, c[4])
         assert.are.equal(0, c[2])
      end
      assert.are.equal(-2.5, src:to("f16")[1])
      assert.are.equal(-2, src:to("i32")[1])           -- truncation, like a C cast
      assert.are.equal(255, T.tensor({300}):to("u8")[1]) -- saturates
      assert.are.equal("f32", src:to("i8"):to("f32"):dtype())
   end)

   it("f16 and bf16 round like their formats", function()
      assert.are.equal(1 + 2 ^ -10, T.tensor({1 + 2 ^ -10}, {dtype = "f16"})[1])
      assert.are.equal(1, T.tensor({1 + 2 ^ -10}, {dtype = "bf16"})[1])
      assert.are.equal(65504, T.tensor({65504}, {dtype = "f16"})[1])
   end)

   it("geometry queries", function()
      local t = T.zeros(2, 3, 4)
      assert.are.equal(3, t:dim())
      assert.are.equal(24, t:numel())
      assert.are.equal(2, #t)
      assert.are.equal(4, t:size(3))
      assert.are.equal(4, t:size(-1))
      assert.are.same({2, 3, 4}, t:size())
      assert.are.same({12, 4, 1}, t:stride())
      assert.is_true(t:is_contiguous())
      assert.is_true(T.is_tensor(t))
      assert.is_false(T.is_tensor({}))
      assert.is_false(T.is_tensor(3))
   end)

   it("rand and randn repeat for a seed and differ across seeds", function()
      local a = T.randn({4, 5}, {seed = 42})
      local b = T.randn(4, 5, {seed = 42})
      local c = T.randn({4, 5}, {seed = 43})
      assert.are.same(a:totable(), b:totable())
      assert.are_not.same(a:totable(), c:totable())
      local r = T.rand({1000}, {seed = 7})
      assert.is_true(r:min() >= 0 and r:max() < 1)
      assert.is_true(math.abs(r:mean() - 0.5) < 0.05)
      local n = T.randn({2000}, {seed = 9})
      assert.is_true(math.abs(n:mean()) < 0.1)
      assert.is_true(math.abs(n:var() - 1) < 0.15)
      local u = T.rand({100}, {seed = 1, lo = -2, hi = -1})
      assert.is_true(u:min() >= -2 and u:max() <= -1)
   end)

   it("randn numbers do not depend on the thread count", function()
      local sys = require("moonhub").sys
      local before = sys.threads()
      sys.threads(1)
      local one = T.randn({3000}, {seed = 5}):totable()
      sys.threads(2)
      local two = T.randn({3000}, {seed = 5}):totable()
      sys.threads(before)
      assert.are.same(one, two)
   end)

   it("manual_seed makes unseeded calls repeatable", function()
      T.manual_seed(11)
      local a = T.rand({8}):totable()
      T.manual_seed(11)
      assert.are.same(a, T.rand({8}):totable())
   end)

   it("close releases the tensor once and later use is an error", function()
      local t = T.ones(3)
      t:close()
      t:close()
      local ok, err = pcall(t.numel, t)
      assert.is_false(ok)
      assert.matches("tensor has been closed", err)
      do
         local s <close> = T.ones(2)
         assert.are.equal(2, s:numel())
      end
   end)
end)
