-- tests/spec/tensor/print_spec.lua: tostring of tensors (dtype, shape,
-- elision of big tensors) and moonhub.pretty.format for Lua values.
local T = require("moonhub").tensor
local pretty = require "moonhub.pretty"

describe("tensor printing #unit", function()
   it("shows values, dtype and shape", function()
      local s = tostring(T.tensor({{1, 2, 3}, {4, 5, 6}}))
      assert.are.equal("tensor([[1., 2., 3.],\n        [4., 5., 6.]], dtype=f32, shape=(2,3))", s)
      local i = tostring(T.tensor({-1, 20}, {dtype = "i32"}))
      assert.are.equal("tensor([-1, 20], dtype=i32, shape=(2))", i)
      assert.are.equal("tensor(2.5000, dtype=f32, shape=())", tostring(T.tensor(2.5)))
      assert.are.equal("tensor([], dtype=f32, shape=(0,3))", tostring(T.zeros(0, 3)))
   end)

   it("aligns columns and picks fixed or scientific notation", function()
      local s = tostring(T.tensor({0.5, -12.25}))
      assert.matches("%[ %s*0%.5000, %-12%.2500%]", s)
      assert.matches("1%.0000e%+09", tostring(T.tensor({1e9, 0.5})))
      assert.matches("nan", tostring(T.tensor({0}) / 0))
      assert.matches("inf", tostring(T.tensor({1}) / 0))
   end)

   it("separates 3-D blocks with a blank line", function()
      local s = tostring(T.arange(8, {dtype = "i64"}):view(2, 2, 2))
      assert.are.equal("tensor([[[0, 1],\n         [2, 3]],\n\n        [[4, 5],\n         [6, 7]]], "
         .. "dtype=i64, shape=(2,2,2))", s)
   end)

   it("elides big tensors with ... and keeps the edges", function()
      local s = tostring(T.arange(10000, {dtype = "i32"}):view(100, 100))
      assert.matches("%.%.%.", s)
      assert.matches("shape=%(100,100%)", s)
      assert.matches("dtype=i32", s)
      assert.matches("%[%[%s*0,%s*1,%s*2,%s*%.%.%.,%s*97,%s*98,%s*99%],\n", s)
      assert.matches("9999%]%]", s)
      assert.is_true(#s < 1000)
      local lines = select(2, s:gsub("\n", "\n")) + 1
      assert.are.equal(7, lines)                     -- 3 rows, "...", 3 rows
   end)

   it("wraps long rows at the line width", function()
      local s = tostring(T.arange(40))
      local body = s:gsub(", dtype=.*$", "")
      for line in body:gmatch("[^\n]+") do assert.is_true(#line <= 80, line) end
      assert.is_true(select(2, body:gsub("\n", "")) >= 2)
      assert.matches("39%.%]", s)
   end)
end)

describe("pretty.format #unit", function()
   it("formats Lua values", function()
      assert.are.equal('"hi"', pretty.format("hi"))
      assert.are.equal("{ 1, 2, x = true }", pretty.format({1, 2, x = true}))
      assert.are.equal('{ ["a b"] = 1.0 }', pretty.format({["a b"] = 1.0}))
      assert.are.equal("{}", pretty.format({}))
      local t = {}
      t.self = t
      assert.are.equal("{ self = <cycle> }", pretty.format(t))
      assert.are.equal("{ w = tensor<f32 (2,3)> }", pretty.format({w = T.zeros(2, 3)}))
   end)

   it("breaks long tables over lines", function()
      local big = {}
      for i = 1, 30 do big[i] = "item" .. i end
      local s = pretty.format(big)
      assert.matches('^{\n   "item1",\n', s)
      assert.matches('"item30",\n}$', s)
   end)
end)
