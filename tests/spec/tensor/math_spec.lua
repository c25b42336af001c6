-- tests/spec/tensor/math_spec.lua: elementwise math with broadcasting and
-- numbers, in-place forms, comparisons, where, cat/stack (moonhub.tensor).
local T = require("moonhub").tensor

local function close(a, b, tol)
   return math.abs(a - b) <= (tol or 1e-5) * math.max(1, math.abs(b))
end

local function tanh(z) local e = math.exp(2 * z); return (e - 1) / (e + 1) end

-- Checks t elementwise against f(i, j) for a 2-D tensor.
local function check2(t, rows, cols, f, tol)
   assert.are.same({rows, cols}, t:shape())
   for i = 1, rows do
      for j = 1, cols do
         local want = f(i, j)
         assert.is_true(close(t[{i, j}], want, tol), ("(%d,%d): %s vs %s"):format(i, j, t[{i, j}], want))
      end
   end
end

describe("tensor arithmetic #unit", function()
   local a = T.tensor({{1, 2, 3}, {4, 5, 6}})          -- a[i][j] = 3(i-1) + j
   local row = T.tensor({10, 20, 30})
   local col = T.tensor({{100}, {200}})
   local A = function(i, j) return 3 * (i - 1) + j end

   it("operators broadcast tensors and numbers", function()
      check2(a + row, 2, 3, function(i, j) return A(i, j) + 10 * j end)
      check2(a - col, 2, 3, function(i, j) return A(i, j) - 100 * i end)
      check2(row * col, 2, 3, function(i, j) return 10 * j * 100 * i end)
      check2(a / 2, 2, 3, function(i, j) return A(i, j) / 2 end)
      check2(12 / a, 2, 3, function(i, j) return 12 / A(i, j) end)
      check2(1 - a, 2, 3, function(i, j) return 1 - A(i, j) end)
      check2(2 * a + 1, 2, 3, function(i, j) return 2 * A(i, j) + 1 end)
      check2(-a, 2, 3, function(i, j) return -A(i, j) end)
      check2(a ^ 2, 2, 3, function(i, j) return A(i, j) ^ 2 end)
      check2(2 ^ a, 2, 3, function(i, j) return 2 ^ A(i, j) end)
      check2(a ^ T.tensor({{1}, {0.5}}), 2, 3, function(i, j) return A(i, j) ^ (i == 1 and 1 or 0.5) end)
   end)

   it("methods and module functions match the operators", function()
      check2(a:add(row), 2, 3, function(i, j) return A(i, j) + 10 * j end)
      check2(T.sub(a, 1), 2, 3, function(i, j) return A(i, j) - 1 end)
      check2(a:mul(col), 2, 3, function(i, j) return A(i, j) * 100 * i end)
      check2(a:div(row), 2, 3, function(i, j) return A(i, j) / (10 * j) end)
      check2(a:pow(3), 2, 3, function(i, j) return A(i, j) ^ 3 end)
      check2(a:neg(), 2, 3, function(i, j) return -A(i, j) end)
      check2(a:maximum(T.tensor({3, 3, 3})), 2, 3, function(i, j) return math.max(A(i, j), 3) end)
      check2(a:minimum(T.tensor({3, 3, 3})), 2, 3, function(i, j) return math.min(A(i, j), 3) end)
   end)

   it("unary functions", function()
      local x = T.tensor({{-2, -0.5, 0}, {0.5, 1, 3}})
      local v = {{-2, -0.5, 0}, {0.5, 1, 3}}
      local X = function(i, j) return v[i][j] end
      check2(x:abs(), 2, 3, function(i, j) return math.abs(X(i, j)) end)
      check2(x:exp(), 2, 3, function(i, j) return math.exp(X(i, j)) end)
      check2(x:tanh(), 2, 3, function(i, j) return tanh(X(i, j)) end)
      check2(x:sigmoid(), 2, 3, function(i, j) return 1 / (1 + math.exp(-X(i, j))) end)
      check2(x:silu(), 2, 3, function(i, j) return X(i, j) / (1 + math.exp(-X(i, j))) end)
      check2(x:clamp(-1, 1), 2, 3, function(i, j) return math.min(1, math.max(-1, X(i, j))) end)
      check2(x:clamp(0), 2, 3, function(i, j) return math.max(0, X(i, j)) end)
      -- gelu, tanh approximation or erf form: both agree to ~1e-3 here
      check2(x:gelu(), 2, 3, function(i, j)
         local z = X(i, j)
         return 0.5 * z * (1 + tanh(0.7978845608 * (z + 0.044715 * z ^ 3)))
      end, 2e-3)
      local p = T.tensor({1, 4, 9})
      assert.are.same({1, 2, 3}, p:sqrt():totable())
      assert.is_true(close(p:rsqrt()[2], 0.5))
      assert.is_true(close(p:log()[3], math.log(9)))
   end)

   it("in-place forms change the tensor and return it", function()
      local t = T.tensor({1, 2, 3})
      local r = t:add_(T.tensor({1, 1, 1}))
      assert.are.equal(t, r)
      t:mul_(2):sub_(1):div_(T.tensor({1, 3, 7}))
      assert.is_true(t:allclose(T.tensor({3, 5 / 3, 1})))
      t:fill_(-4):abs_():sqrt_()
      assert.are.same({2, 2, 2}, t:totable())
      t:pow_(3):clamp_(0, 5)
      assert.are.same({5, 5, 5}, t:totable())
      t:zero_()
      assert.are.same({0, 0, 0}, t:totable())
      local v = T.zeros(2, 3)
      v:add_(row)
      assert.are.same({{10, 20, 30}, {10, 20, 30}}, v:totable())
   end)

   it("comparisons give u8 masks and where picks by them", function()
      local m = a:gt(3)
      assert.are.equal("u8", m:dtype())
      assert.are.same({{0, 0, 0}, {1, 1, 1}}, m:totable())
      assert.are.same({{1, 1, 1}, {0, 0, 0}}, a:eq(T.tensor({1, 2, 3}) + T.tensor({{1}, {3}}) - 1):totable())
      assert.are.same({{1, 0, 1}, {1, 0, 1}}, a:ne(T.tensor({{2}, {5}}):expand(2, 3)):totable())
      assert.are.same({{1, 1, 0}, {0, 0, 0}}, a:lt(3):totable())
      assert.are.same({{1, 1, 1}, {0, 0, 0}}, a:le(3):totable())
      assert.are.same({{0, 0, 1}, {1, 1, 1}}, a:ge(3):totable())
      assert.are.same({{0, 0, 0}, {4, 5, 6}}, T.where(m, a, 0):totable())
      assert.are.same({{-1, -1, -1}, {4, 5, 6}}, T.where(a:gt(3), a, T.full({}, -1)):totable())
   end)

   it("cat and stack join along a dim", function()
      local x, y = T.tensor({{1, 2}}), T.tensor({{3, 4}, {5, 6}})
      assert.are.same({{1, 2}, {3, 4}, {5, 6}}, T.cat({x, y}):totable())
      assert.are.same({{1, 2, 1, 2}}, T.cat({x, x}, 2):totable())
      local s = T.stack({T.tensor({1, 2}), T.tensor({3, 4})})
      assert.are.same({{1, 2}, {3, 4}}, s:totable())
      assert.are.same({{1, 3}, {2, 4}}, T.stack({T.tensor({1, 2}), T.tensor({3, 4})}, 2):totable())
   end)

   it("mixes dtypes: float with int gives the float type", function()
      local i = T.tensor({1, 2}, {dtype = "i32"})
      local f = T.tensor({0.5, 0.5})
      assert.are.equal("f32", (i + f):dtype())
      assert.are.same({1.5, 2.5}, (i + f):totable())
      assert.are.equal("i32", (i + i):dtype())
   end)
end)
