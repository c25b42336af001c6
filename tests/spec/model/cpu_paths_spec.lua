-- Spec: greedy generation gives the very same text on every CPU path
-- (MOONHUB_CPU=ref|avx2|avx512), for every quantized model in the shared
-- test data. Layer: tests, through the binary. It holds because the
-- integer-quant dots sum in one canonical order (docs/quantization.md).
local data = require "helpers.data"
local host = require "helpers.host"

local PATHS = {"ref", "avx2", "avx512"}
local RANK = { ref = 1, avx2 = 2, avx512 = 3 }
local best = select(2, require("moonhub.core.sys").cpu())   -- the best path this CPU has
local MODELS = {
   "stories260K-Q4_0.gguf", "stories260K-Q8_0.gguf",
   "mh-smol-llama-17m-Q4_0.gguf", "mh-smol-llama-17m-Q4_K_M.gguf",
   "mh-smol-llama-17m-Q8_0.gguf", "mh-tiny-qwen2-Q8_0.gguf",
}

-- stdout of `moonhub generate MODEL "Hello world" -n 48 --temp 0` on path
local function generate(home, model, path)
   local out = home .. "/.stdout"
   local cmd = string.format("MOONHUB_HOME=%s MOONHUB_CPU=%s %s generate %s %s -n 48 --temp 0 >%s 2>/dev/null",
                             host.q(home), path, host.q(host.exe), host.q(model),
                             host.q("Hello world"), host.q(out))
   local _, _, code = os.execute(cmd)
   return host.read(out), code
end

describe("greedy text across MOONHUB_CPU paths #integration", function()
   local home
   before_each(function() home = host.tmpdir() end)
   after_each(function() host.rmdir(home) end)

   for _, name in ipairs(MODELS) do
      it("is identical on every path for " .. name, function()
         local model = data.need("models/" .. name, pending)
         if not model then return end
         local want, code = generate(home, model, PATHS[1])
         assert.are.equal(0, code)
         assert.is_true(#want > 0, "no text from " .. name)
         for i = 2, RANK[best] do
            local got, c = generate(home, model, PATHS[i])
            assert.are.equal(0, c)
            assert.are.equal(want, got, name .. ": " .. PATHS[i] .. " differs from " .. PATHS[1])
         end
      end)
   end

   -- a path the CPU lacks is an error (engine/core/cpu.c), so it cannot be
   -- compared with itself; such a path is a counted skip here
   for i = 2, #PATHS do
      it("runs the " .. PATHS[i] .. " path on this CPU", function()
         if RANK[best] < i then return data.skip("this CPU lacks " .. PATHS[i], pending) end
         local model = data.need("models/stories260K-Q8_0.gguf", pending)
         if not model then return end
         local text, code = generate(home, model, PATHS[i])
         assert.are.equal(0, code)
         assert.is_true(#text > 0)
      end)
   end

   it("refuses an unknown path", function()
      local model = data.need("models/stories260K-Q8_0.gguf", pending)
      if not model then return end
      local _, code = generate(home, model, "avx9000")
      assert.are_not.equal(0, code)
   end)
end)
