-- Specs for the naming rule import and pull share (docs/registry.md,
-- "Names"): NAME from a file, folder or repo base name, TAG the quant type.
-- Layer: tests (pure functions of moonhub.models; no files).
local models = require "moonhub.models"

describe("the naming rule #unit", function()
   local gguf = { format = "gguf", quant = { "Q4_K", "Q6_K" } }

   it("takes NAME from the base name without .gguf, quant suffix and -GGUF", function()
      local cases = {
         { "SmolLM2-135M-Instruct-Q8_0.gguf", "SmolLM2-135M-Instruct", "Q8_0" },
         { "dir/llama-2-7b.Q4_K_M.gguf", "llama-2-7b", "Q4_K_M" },
         { "smollm2-135m-instruct-q8_0.gguf", "smollm2-135m-instruct", "Q8_0" },
         { "mh-tiny-qwen2-BF16.gguf", "mh-tiny-qwen2", "BF16" },
         { "x_IQ4_XS.gguf", "x", "IQ4_XS" },
         { "Foo-GGUF-Q8_0.gguf", "Foo", "Q8_0" },
         -- no quant in the name: the file's main tensor type
         { "stories260K.gguf", "stories260K", "Q4_K" },
         -- a name that is only a quant keeps it as its name
         { "Q8_0.gguf", "Q8_0", "Q8_0" },
      }
      for _, c in ipairs(cases) do
         local name, tag = models.ref_for(c[1], gguf)
         assert.same({ c[2], c[3] }, { name, tag }, c[1])
      end
   end)

   it("names a folder or a safetensors repo by its last component, tagged by dtype", function()
      assert.same({ "smol-hf", "bf16" }, { models.ref_for("models/mh/smol-hf", { format = "safetensors",
         dtype = "bfloat16" }) })
      assert.same({ "Qwen2-0.5B", "f32" }, { models.ref_for("Qwen/Qwen2-0.5B/", { format = "safetensors" }) })
      assert.equal("SmolLM2-135M-Instruct", models.repo_name("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"))
   end)
end)
