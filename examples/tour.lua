-- examples/tour.lua: a short tour of moonhub's Lua tensor API — `make demo`
-- runs it (./moonhub run examples/tour.lua). Layer: examples (public API
-- only). Dims and indices are 1-based, as everywhere in Lua; negative ones
-- count from the end.
local mh = require "moonhub"
local T = mh.tensor

local function section(title)
   print(("\n== %s %s"):format(title, ("="):rep(60 - #title)))
end

local function show(label, v)
   print(label .. ":")
   print(tostring(v))
end

print(("moonhub %s — cpu path %s, %d threads"):format(mh.version, mh.sys.cpu(), mh.sys.threads()))

section("construction")
local a = T.tensor({ { 1, 2, 3 }, { 4, 5, 6 } })          -- from nested tables (f32)
show("a = T.tensor{{1,2,3},{4,5,6}}", a)
print("shape", table.concat(a:shape(), "x"), "dtype", a:dtype(), "numel", a:numel())
show("T.zeros({2, 2})", T.zeros({ 2, 2 }))
show("T.arange(0, 5)", T.arange(0, 5))
show("T.eye(3)", T.eye(3))
show("T.randn({2, 3}, {seed = 1})  -- same numbers on every run", T.randn({ 2, 3 }, { seed = 1 }))

section("views share memory")
local v = a:view({ 3, 2 })
show("a:view({3, 2})", v)
show("a:t()  -- transpose, no copy", a:t())
print("a:t():is_contiguous()", a:t():is_contiguous())
v[{ 1, 1 }] = 100                                       -- writes through to a
show("after v[{1,1}] = 100, a is", a)
a[{ 1, 1 }] = 1

section("indexing")
print("a[{2, 3}] (an element)  ", a[{ 2, 3 }])
show("a[2] (row 2, a view)", a[2])
show("a[{{}, {2, 3}}] (all rows, columns 2..3)", a[{ {}, { 2, 3 } }])
show("a:select(2, -1) (last column)", a:select(2, -1))

section("broadcasting arithmetic")
local row = T.tensor({ 10, 20, 30 })
show("a + row  -- (2,3) + (3)", a + row)
show("a * 2 - 1", a * 2 - 1)
show("a / a:sum(2, true)  -- rows sum to 1", a / a:sum(2, true))

section("reductions")
print("a:sum()", a:sum(), "a:mean()", a:mean(), "a:max()", a:max(), "-- plain numbers")
show("a:sum(1)  -- over dim 1 (down the columns)", a:sum(1))
show("a:argmax(2)  -- 1-based positions of each row's max", a:argmax(2))

section("matmul and softmax")
local w = T.randn({ 3, 4 }, { seed = 2 })
local y = a:matmul(w)
show("a:matmul(w)  -- (2,3) @ (3,4)", y)
local p = y:softmax(2)
show("y:softmax(2)", p)
show("each row sums to 1", p:sum(2))

section("dtypes")
local h = a:to("f16")
print("a:to('f16'):dtype()", h:dtype(), "back to f32 equal:", h:to("f32"):equal(a))
show("T.arange(0, 4):to('i32')", T.arange(0, 4):to("i32"))
show("a:gt(3)  -- comparisons give u8 masks", a:gt(3))

section("save and load (safetensors)")
local path = os.tmpname()
assert(T.save(path, { a = a, w = w }, { note = "from the tour" }))
local loaded, meta = T.load(path)
print("loaded tensors:", loaded.a:equal(a) and "a ok" or "a differs",
   loaded.w:equal(w) and "w ok" or "w differs", "metadata note =", meta.note)
assert(T.save(path, p))                                   -- one tensor: load gives it back
print("single tensor round trip equal:", T.load(path):equal(p))
os.remove(path)

section("printing big tensors")
print(T.arange(0, 10000):view({ 100, 100 }))
print("\ntour done")
