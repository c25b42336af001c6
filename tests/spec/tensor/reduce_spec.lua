-- tests/spec/tensor/reduce_spec.lua: reductions, matmul against a naive Lua
-- triple loop, softmax, rms_norm and layer_norm (moonhub.tensor).
local T = require("moonhub").tensor

local function close(a, b, tol)
   return math.abs(a - b) <= (tol or 1e-5) * math.max(1, math.abs(b))
end

-- C = A B for nested Lua tables
local function naive_mm(A, B)
   local C = {}
   for i = 1, #A do
      C[i] = {}
      for j = 1, #B[1] do
         local s = 0
         for k = 1, #B do s = s + A[i][k] * B[k][j] end
         C[i][j] = s
      end
   end
   return C
end

local function all_close(t, expected, tol)
   local got = t:totable()
   for i = 1, #expected do
      for j = 1, #expected[i] do
         assert.is_true(close(got[i][j], expected[i][j], tol),
            ("(%d,%d): %s vs %s"):format(i, j, got[i][j], expected[i][j]))
      end
   end
end

describe("tensor reductions #unit", function()
   local a = T.tensor({{1, 5, 3}, {4, 2, 6}})

   it("reduce everything to a Lua number", function()
      assert.are.equal(21, a:sum())
      assert.are.equal(3.5, a:mean())
      assert.are.equal(6, a:max())
      assert.are.equal(1, a:min())
      assert.are.equal(720, a:prod())
      assert.are.equal(6, a:argmax())              -- 1-based flat position
      assert.are.equal(1, a:argmin())
      assert.is_true(close(a:var(), 3.5))           -- unbiased: 17.5 / 5
      assert.is_true(close(a:var(nil, false, 0), 17.5 / 6))
      assert.is_true(close(a:norm(), math.sqrt(91)))
      assert.is_true(close(a:norm(1), 21))
   end)

   it("reduce one dim, with and without keepdim", function()
      assert.are.same({5, 7, 9}, a:sum(1):totable())
      assert.are.same({9, 12}, a:sum(2):totable())
      assert.are.same({{9}, {12}}, a:sum(2, true):totable())
      assert.are.same({3, 4}, a:mean(-1):totable())
      assert.are.same({5, 7, 9}, T.sum(a, 1):totable())
      local v = a:var(2):totable()
      assert.is_true(close(v[1], 4) and close(v[2], 4))
      local n = a:norm(2, 1):totable()
      assert.is_true(close(n[1], math.sqrt(17)) and close(n[3], math.sqrt(45)))
   end)

   it("max/min over a dim return values and 1-based indices", function()
      local vals, idx = a:max(2)
      assert.are.same({5, 6}, vals:totable())
      assert.are.same({2, 3}, idx:totable())
      assert.are.equal("i64", idx:dtype())
      vals, idx = a:min(1)
      assert.are.same({1, 2, 3}, vals:totable())
      assert.are.same({1, 2, 1}, idx:totable())
      assert.are.same({2, 3}, a:argmax(2):totable())
      assert.are.same({{1}, {2}}, a:argmin(2, true):totable())
   end)
end)

describe("tensor matmul #unit", function()
   it("mm/matmul agree with a naive triple loop", function()
      local A = T.randn({5, 7}, {seed = 1})
      local B = T.randn({7, 3}, {seed = 2})
      local want = naive_mm(A:totable(), B:totable())
      all_close(A:mm(B), want, 1e-4)
      all_close(T.matmul(A, B), want, 1e-4)
      all_close(A:t():contiguous():t():matmul(B), want, 1e-4)   -- strided input
   end)

   it("matrix-vector and batched forms", function()
      local A = T.tensor({{1, 2}, {3, 4}, {5, 6}})
      assert.are.same({5, 11, 17}, A:matmul(T.tensor({1, 2})):totable())
      local X = T.randn({2, 3, 4}, {seed = 3})
      local W = T.randn({2, 4, 2}, {seed = 4})
      local Y = X:bmm(W)
      assert.are.same({2, 3, 2}, Y:shape())
      for b = 1, 2 do
         all_close(Y[b], naive_mm(X[b]:totable(), W[b]:totable()), 1e-4)
      end
      local Z = X:matmul(W[1])                                  -- broadcast the batch
      all_close(Z[2], naive_mm(X[2]:totable(), W[1]:totable()), 1e-4)
   end)
end)

describe("tensor softmax and norms #unit", function()
   it("softmax rows sum to 1 and match exp/sum", function()
      local x = T.randn({4, 6}, {seed = 5}) * 3
      local s = x:softmax(2)
      local sums = s:sum(2):totable()
      for i = 1, 4 do assert.is_true(close(sums[i], 1, 1e-5)) end
      local row = x[1]:totable()
      local z = 0
      for j = 1, 6 do z = z + math.exp(row[j]) end
      assert.is_true(close(s[{1, 2}], math.exp(row[2]) / z, 1e-5))
      local cols = x:softmax(1):sum(1):totable()
      for j = 1, 6 do assert.is_true(close(cols[j], 1, 1e-5)) end
      assert.is_true(x:log_softmax():exp():allclose(s, 1e-4, 1e-6))
   end)

   it("rms_norm and layer_norm match their formulas", function()
      local x = T.tensor({{1, 2, 3, 4}, {-1, 0, 1, 2}})
      local w = T.tensor({1, 2, 1, 0.5})
      local r = x:rms_norm(w, 1e-6)
      local rms = math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-6)
      assert.is_true(close(r[{1, 2}], 2 / rms * 2, 1e-5))
      assert.is_true(close(x:rms_norm()[{1, 4}], 4 / rms, 1e-5))
      local l = x:layer_norm(nil, nil, 1e-5)
      local sd = math.sqrt(1.25 + 1e-5)                          -- var of {1,2,3,4}
      assert.is_true(close(l[{1, 1}], -1.5 / sd, 1e-4))
      local lb = x:layer_norm(w, T.tensor({0, 0, 1, 0}), 1e-5)
      assert.is_true(close(lb[{2, 3}], 0.5 / sd * 1 + 1, 1e-4))
   end)
end)
