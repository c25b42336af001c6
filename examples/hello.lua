-- hello.lua: the smallest moonhub script — arguments, the API, a tensor.
-- Layer: examples (public moonhub API only).
-- Run: ./moonhub run examples/hello.lua [name]
local mh = require "moonhub"
local T = mh.tensor

local name = ... or "world"
print(string.format("hello, %s, from moonhub %s (%s)", name, mh.version, arg[0]))

local a = T.tensor({ { 1, 2 }, { 3, 4 } })       -- (2, 2) f32
local b = T.randn({ 2, 2 }, { seed = 1 })          -- (2, 2) f32, reproducible
print(a)
print(a:matmul(b))                                 -- (2, 2)
print("sum of a:", a:sum())
