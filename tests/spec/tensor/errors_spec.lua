-- tests/spec/tensor/errors_spec.lua: every misuse of the tensor API raises a
-- clear Lua error naming the function and the shapes, index or argument.
local T = require("moonhub").tensor

-- Asserts that fn raises exactly msg (C errors carry no position prefix).
local function raises(msg, fn) assert.has_error(fn, msg) end
-- Asserts that fn raises an error matching a Lua pattern.
local function raises_like(pattern, fn) assert.error_matches(fn, pattern) end

describe("tensor errors #unit", function()
   it("view and reshape name both element counts", function()
      raises("tensor.view: shape (2,3) needs 6 elements, got 5", function() T.arange(5):view(2, 3) end)
      raises("tensor.reshape: shape (4,-1) cannot hold 6 elements", function() T.zeros(6):reshape(4, -1) end)
      raises("tensor.view: shape (-1,-1) has more than one -1", function() T.zeros(6):view(-1, -1) end)
      raises_like("^tensor%.view: .*", function() T.zeros(2, 3):t():view(6) end)  -- layout
   end)

   it("indexing names the index, the dim and its size", function()
      local v = T.zeros(3)
      raises("tensor index: index 7 out of range for dim 1 of size 3", function() return v[7] end)
      raises("tensor index: index 0 out of range for dim 1 of size 3", function() return v[0] end)
      raises("tensor index: index -4 out of range for dim 1 of size 3", function() return v[-4] end)
      local m = T.zeros(2, 3)
      raises("tensor index: index 4 out of range for dim 2 of size 3", function() return m[{1, 4}] end)
      raises("tensor index: index 4 out of range for dim 2 of size 3", function() m[{1, 4}] = 1 end)
      raises("tensor index: 3 indices for a 2-D tensor", function() return m[{1, 1, 1}] end)
      raises("tensor index: range 2..5 out of range for dim 2 of size 3", function() return m[{{}, {2, 5}}] end)
      raises("tensor index: index for dim 1 must be an integer, got a float", function() return v[1.5] end)
      raises("tensor index: expected an integer, a table of indices or a method name, got boolean",
         function() return v[true] end)
      raises("tensor index: cannot index a 0-D tensor (use :item())", function() return T.tensor(1)[1] end)
      raises("tensor index: can only assign a number or a tensor, got string", function() m[1] = "x" end)
      raises("tensor: cannot set field 'foo' (tensors have no fields)", function() m.foo = 1 end)
   end)

   it("broadcasting failures name both shapes", function()
      local a, b = T.zeros(2, 3), T.zeros(4)
      raises("tensor.add: shapes (2,3) and (4) cannot broadcast (dim 2: 3 vs 4)", function() return a + b end)
      raises("tensor.add: shapes (2,3) and (4) cannot broadcast (dim 2: 3 vs 4)", function() return a:add(b) end)
      raises("tensor.mul_: shapes (2,3) and (4) cannot broadcast (dim 2: 3 vs 4)", function() a:mul_(b) end)
      raises("tensor.sub_: in place, shape (3) cannot take the broadcast with (2,3)",
         function() T.zeros(3):sub_(a) end)
      raises("tensor.copy_: shapes (2,3) and (4) cannot broadcast (dim 2: 3 vs 4)", function() a:copy_(b) end)
      raises("tensor.where: shapes (2,3) and (4) cannot broadcast (dim 2: 3 vs 4)",
         function() T.where(a:gt(0), b, 0) end)
   end)

   it("matmul names the shapes", function()
      local a, b = T.zeros(2, 3), T.zeros(4, 5)
      raises("tensor.matmul: shapes (2,3) and (4,5) cannot be multiplied (3 vs 4)", function() a:matmul(b) end)
      raises("tensor.mm: needs two 2-D tensors, got (2,3) and (3)", function() a:mm(T.zeros(3)) end)
      raises("tensor.bmm: batch sizes differ in (2,3,4) and (3,4,5)",
         function() T.zeros(2, 3, 4):bmm(T.zeros(3, 4, 5)) end)
   end)

   it("dims are checked 1-based", function()
      local m = T.zeros(2, 3)
      raises("tensor.sum: dim 3 out of range for a 2-D tensor (dims are 1-based)", function() m:sum(3) end)
      raises("tensor.softmax: dim 0 out of range for a 2-D tensor (dims are 1-based)", function() m:softmax(0) end)
      raises("tensor.narrow: range 3..4 out of range for dim 2 of size 3", function() m:narrow(2, 3, 2) end)
      raises("tensor.select: index 3 out of range for dim 1 of size 2", function() m:select(1, 3) end)
      raises("tensor.permute: dim 1 repeated", function() m:permute(1, 1) end)
      raises("tensor.permute: 1 dims given for a tensor of shape (2,3)", function() m:permute(1) end)
      raises("tensor.unsqueeze: dim 4 out of range for a 2-D tensor (dims are 1-based)",
         function() m:unsqueeze(4) end)
      raises("tensor.t: needs at most 2 dims, got shape (1,2,3)", function() T.zeros(1, 2, 3):t() end)
      raises("tensor.__len: a 0-D tensor has no dim 1", function() return #T.tensor(1) end)
   end)

   it("constructors check shapes, dtypes and options", function()
      raises("tensor.zeros: size 2 of the shape is -1, must be >= 0", function() T.zeros(2, -1) end)
      raises("tensor.ones: size 1 of the shape must be an integer, got a float", function() T.ones({1.5}) end)
      raises("tensor.zeros: size 2 of the shape must be an integer, got string", function() T.zeros({1, "a"}) end)
      raises("tensor.zeros: unknown dtype 'f64' (expected f32, f16, bf16, i32, i64, u8 or i8)",
         function() T.zeros(2, {dtype = "f64"}) end)
      raises("tensor.to: unknown dtype 'double' (expected f32, f16, bf16, i32, i64, u8 or i8)",
         function() T.zeros(2):to("double") end)
      raises("tensor.zeros: shape has 9 dims, at most 8 allowed", function() T.zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}) end)
      raises("tensor.randn: option 'seed' must be an integer", function() T.randn(2, {seed = "x"}) end)
      raises("tensor.rand: option 'lo' must be a number, got string", function() T.rand(2, {lo = "x"}) end)
      raises("tensor.cat: the list is empty", function() T.cat({}) end)
      raises("tensor.cat: list entry 2 is number, expected a tensor", function() T.cat({T.zeros(1), 3}) end)
      raises("tensor.item: shape (2) has 2 elements, needs exactly 1", function() T.zeros(2):item() end)
      raises("tensor.clamp: lo 2.0 is greater than hi 1.0", function() T.zeros(2):clamp(2, 1) end)
      raises_like("tensor%.tensor: entry %[2%] has 1 elements, expected 2 %(ragged table%)",
         function() T.tensor({{1, 2}, {3}}) end)
      raises_like("tensor%.tensor: element %[1%]%[2%] is string, expected a number",
         function() T.tensor({{1, "x"}}) end)
      raises_like("tensor%.tensor: expected a number or a nested table, got string",
         function() T.tensor("abc") end)
   end)

   it("wrong argument types get argument errors", function()
      raises("bad argument #1 to 'zeros' (shape (table or sizes) expected, got string)", function() T.zeros("x") end)
      raises("bad argument #1 to 'full' (shape table expected, got number)", function() T.full(2, 3) end)
      raises_like("bad argument #1 to 'add' %(tensor or number expected, got string%)",
         function() T.zeros(2):add("x") end)
      raises_like("bad argument #1 to 'matmul' %(tensor expected, got number%)", function() T.matmul(3, T.zeros(2)) end)
      raises_like("bad argument #2 to '_*add' %(tensor or number expected, got string%)",
         function() return T.zeros(2) + "x" end)
   end)

   it("quantized tensors refuse element access without crashing", function()
      local ok, q = pcall(T.zeros, 32, {dtype = "q8_0"})
      if not ok then return end                 -- constructor may refuse quant types: fine
      assert.matches("q8_0", tostring(q))
      raises_like("q8_0", function() return q[1] end)
      raises_like("tensor%.totable: not supported on q8_0 tensors", function() q:totable() end)
   end)
end)
