-- Specs for the REPL driven through a pipe (no terminal: no prompt, no
-- libedit), Ctrl-C through kill -INT, and moonhub.repl's formatting.
-- Layer: tests.
local H = require "helpers.host"
local q = H.q

describe("moonhub REPL through a pipe #integration", function()
   local home

   before_each(function() home = H.tmpdir() end)
   after_each(function() H.rmdir(home) end)

   local function repl(input)
      local out, err, code = H.run(home, "", input)
      assert.equal(0, code, err)
      return out, err
   end

   it("prints expression results without '='", function()
      local out, err = repl("1 + 1\n'a', 2, nil\nx = 5\nx * 2\n")
      assert.equal("2\na\t2\tnil\n10\n", out)
      assert.equal("", err)
   end)

   it("continues incomplete chunks over several lines", function()
      local out = repl("function twice(x)\n   local y = x * 2\n   return y\nend\ntwice(21)\n"
                       .. "t = {\n1,\n2}\n#t\n")
      assert.equal("42\n2\n", out)
   end)

   it("pretty-prints tables: nested, sorted, cycle-safe", function()
      local out = repl("t = {3, 2, b = {c = 1}, a = 'x', [10] = true}\nt\n"
                       .. "t.me = t\nt\n")
      assert.equal('{3, 2, [10] = true, a = "x", b = {c = 1}}\n'
                   .. '{3, 2, [10] = true, a = "x", b = {c = 1}, me = <cycle>}\n', out)
   end)

   it("prints values with __tostring through tostring", function()
      local out = repl("setmetatable({}, {__tostring = function() return 'T(2x3)' end})\n")
      assert.equal("T(2x3)\n", out)
   end)

   it("reports an error with a traceback and goes on", function()
      local out, err = repl("local function f() error('boom') end f()\nprint('still here')\n")
      assert.equal("still here\n", out)
      assert.truthy(err:find("stdin:1: boom", 1, true), err)
      assert.truthy(err:find("stack traceback:", 1, true), err)
   end)

   it("reports a syntax error and goes on", function()
      local out, err = repl("x = = 1\n1\n")
      assert.equal("1\n", out)
      assert.truthy(err:find("unexpected symbol", 1, true), err)
   end)

   it("reports an unfinished chunk at end of input", function()
      local out, err = repl("function g(\n")
      assert.equal("", out)
      assert.truthy(err:find("<eof>", 1, true), err)
   end)

   it("keeps the history file in MOONHUB_HOME", function()
      repl("1 + 1\nfunction h()\nreturn 1\nend\n")
      local hist = H.read(home .. "/history")
      assert.is_string(hist)
      -- libedit stores spaces as \040
      assert.truthy(hist:find("1\\040+\\0401", 1, true) or hist:find("1 + 1", 1, true), hist)
      assert.truthy(hist:find("function", 1, true), hist)
   end)

   it("Ctrl-C interrupts a running computation and returns to the prompt", function()
      local started = home .. "/started"
      -- A fifo keeps stdin open while the loop runs; kill -INT once the loop
      -- has begun (it creates `started`); all waits are bounded.
      local script = string.format([[
d=%s; mkfifo "$d/in" || exit 9
MOONHUB_HOME="$d" %s <"$d/in" >"$d/out" 2>"$d/err" &
pid=$!
exec 3>"$d/in"
echo "io.open('%s', 'w'):close(); n = 0; while true do n = n + 1 end" >&3
i=0; while [ ! -e %s ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.1
kill -INT $pid
echo 'print("after", n > 0)' >&3
exec 3>&-
i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
kill -KILL $pid 2>/dev/null
wait $pid
echo "rc=$?"
]], q(home), q(H.exe), started, q(started))
      local f = io.popen(script)
      local status = f:read("a")
      f:close()
      assert.equal("rc=0\n", status)
      assert.equal("after\ttrue\n", H.read(home .. "/out"))
      local err = H.read(home .. "/err")
      assert.truthy(err:find("interrupted!", 1, true), err)
      assert.truthy(err:find("stack traceback:", 1, true), err)
   end)

   it("Ctrl-C at the prompt just starts over", function()
      -- Wait until the first result is out (the REPL then sits in read),
      -- interrupt, and check that it still answers.
      local script = string.format([[
d=%s; mkfifo "$d/in" || exit 9
MOONHUB_HOME="$d" %s <"$d/in" >"$d/out" 2>"$d/err" &
pid=$!
exec 3>"$d/in"
echo '40 + 1' >&3
i=0; while [ ! -s "$d/out" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.1
kill -INT $pid
sleep 0.1
echo '40 + 2' >&3
exec 3>&-
i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
kill -KILL $pid 2>/dev/null
wait $pid
echo "rc=$?"
]], q(home), q(H.exe))
      local f = io.popen(script)
      local status = f:read("a")
      f:close()
      assert.equal("rc=0\n", status)
      assert.equal("41\n42\n", H.read(home .. "/out"))
      assert.equal("", H.read(home .. "/err"))
   end)
end)

describe("moonhub.repl.format #unit", function()
   local R = require "moonhub.repl"

   it("sorts keys: sequence first, then numbers, strings, booleans", function()
      assert.equal('{"a", "b", [1.5] = 2, [5] = 1, x = 3, ["y z"] = 4, [true] = 5}',
                   R.format({ "a", "b", [5] = 1, [1.5] = 2, x = 3, ["y z"] = 4, [true] = 5 }))
   end)

   it("quotes and escapes strings", function()
      assert.equal('{"a\\nb", "q\\"", "\\001"}', R.format({ "a\nb", 'q"', "\1" }))
   end)

   it("limits depth and entries", function()
      assert.equal("{{{{{...}}}}}", R.format({ { { { { { 1 } } } } } }))
      local big = {}
      for i = 1, 150 do big[i] = i end
      local s = R.format(big)
      assert.truthy(s:find("... (50 more)", 1, true))
      assert.falsy(s:find("101", 1, true))
   end)

   it("breaks long tables over lines with indentation", function()
      local t = { name = string.rep("n", 40), inner = { value = string.rep("v", 40) } }
      assert.equal('{\n   inner = {value = "' .. string.rep("v", 40) .. '"},\n   name = "'
                   .. string.rep("n", 40) .. '"\n}', R.format(t))
   end)

   it("survives a failing __tostring", function()
      local bad = setmetatable({}, { __tostring = function() error("nope") end })
      assert.truthy(R.format({ bad }):find("__tostring error", 1, true))
   end)

   it("marks shared references only when they form a cycle", function()
      local shared = { 1 }
      assert.equal("{{1}, {1}}", R.format({ shared, shared }))
      local a = {}
      a[1] = { a }
      assert.equal("{{<cycle>}}", R.format(a))
   end)
end)
