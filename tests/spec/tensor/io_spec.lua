-- tests/spec/tensor/io_spec.lua: T.save / T.load round trips through
-- .safetensors files (moonhub.tensor over moonhub.safetensors).
local T = require("moonhub").tensor

describe("tensor save/load #unit", function()
   local path
   before_each(function() path = os.tmpname() end)
   after_each(function() os.remove(path) end)

   it("a single tensor comes back as a tensor", function()
      local t = T.tensor({{1, 2, 3}, {4, 5, 6}}, {dtype = "f16"})
      assert.is_true(T.save(path, t))
      local back = T.load(path)
      assert.is_true(T.is_tensor(back))
      assert.are.equal("f16", back:dtype())
      assert.is_true(back:equal(t))
   end)

   it("named tensors and metadata come back as a table", function()
      local w, b = T.randn({3, 4}, {seed = 1}), T.arange(4, {dtype = "i64"})
      assert.is_true(T.save(path, {w = w, b = b}, {note = "hello"}))
      local tbl, meta = T.load(path)
      assert.are.equal("hello", meta.note)
      assert.is_true(tbl.w:equal(w))
      assert.are.same({0, 1, 2, 3}, tbl.b:totable())
   end)

   it("a missing file gives nil and a message", function()
      local t, msg = T.load(path .. ".missing")
      assert.is_nil(t)
      assert.is_string(msg)
   end)
end)
