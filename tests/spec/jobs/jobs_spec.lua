-- Specs for training jobs end to end through the CLI on stories260K: a
-- LoRA job that succeeds and registers its adapter with lineage, queue
-- order with one active job, cancel at the next step, kill -9 of the worker
-- then retry with the losses of an uninterrupted run, NaN loss failing the
-- run, bad input and a full disk refused in one line with nothing half done.
-- Layer: tests. PRAGMA integrity_check after every crash.
local H = require "helpers.host"
local data = require "helpers.data"
local C = require "spec.jobs.common"

local ARGS = "--model stories:base --data toy --lr 1e-2 --batch 4 --seed 3 --threads 1"

-- one line on stderr, exit code 1 or 2
local function one_line(err, code)
   assert.is_true(code == 1 or code == 2, "exit code " .. tostring(code))
   assert.equal(1, select(2, err:gsub("\n", "")), "one line: " .. err)
end

local function no_jobs(home)
   return C.with(home, function(reg) return #reg:runs() == 0 end)
end

describe("moonhub train and jobs #integration", function()
   local home
   before_each(function() home = C.setup(pending) end)
   after_each(function() H.rmdir(home) end)

   it("trains a LoRA job to success: metrics, eval, archive, adapter registered with lineage", function()
      if not home then return end
      local out, err, code = C.run(home, "train " .. ARGS .. " --steps 12 --eval-every 6 --checkpoint-every 6 "
         .. "--name stories-toy --tag t1")
      assert.equal(0, code, err)
      assert.matches("job 1 queued", out)
      assert.matches("job 1 succeeded", out)
      local j = C.job(home, 1)
      assert.equal("succeeded", j.status)
      assert.equal(12, j.step)
      assert.equal(home .. "/runs/archive/1", j.artifacts)
      assert.is_truthy(H.read(j.artifacts .. "/adapter.gguf"))
      assert.is_nil(H.read(home .. "/runs/active/1/log.txt"), "moved to the archive")
      local steps = C.losses(home, 1)
      assert.is_true(steps[12] < steps[1], "the loss falls")
      C.with(home, function(reg)
         local ev = reg:run_metrics(1)
         assert.equal("eval_loss", ev[1].key)
         assert.equal(6, ev[1].step)
         local repro = require("dkjson").decode(j.repro)
         assert.equal(3, repro.seed)
         assert.equal(1, repro.threads)
         assert.equal(64, #repro.dataset_sha256)
         assert.is_string(repro.cpu_path)
         local v = reg:resolve("stories-toy:t1")
         assert.equal(j.output_version_id, v.id)
         assert.equal(reg:resolve("stories:base").id, v.parent_id)
         local row = reg.db:first("SELECT run_id, dataset_version_id FROM versions WHERE id = ?", v.id)
         assert.equal(1, row.run_id)
         assert.equal(j.dataset_version_id, row.dataset_version_id)
      end)
      out = C.must(home, "jobs show 1")
      assert.matches("queued%s+enqueued", out)
      assert.matches("succeeded%s+finished at step 12", out)
      assert.matches("eval_loss", out)
      assert.matches("loss: 12 steps", out)
      out = C.must(home, "runs compare 1 1")
      assert.matches("final_loss", out)
      assert.matches("step 12/12 loss", C.must(home, "jobs logs 1"))
      out = C.must(home, "runs show 1 --steps")
      assert.matches("dataset_sha256%s+%x+", out)
      assert.matches("adapter.gguf", out)
      assert.matches("\n%s+12%s+%d", out)
   end)

   it("qlora quantizes an F32 base once into the run; early stop ends at the patience; eval is recorded",
      function()
      if not home then return end
      local _, err, code = C.run(home, "train " .. ARGS .. " --method qlora --steps 4 --name stories-q")
      assert.equal(0, code, err)
      local j = C.job(home, 1)
      assert.equal("succeeded", j.status)
      assert.is_truthy(H.read(j.artifacts .. "/base-Q8_0.gguf"), "the quantized base is kept with the run")
      assert.matches("qlora: quantizing the base to Q8_0", H.read(j.artifacts .. "/log.txt"))
      -- an absurd but finite learning rate: the eval loss rises, patience 1 stops the run
      _, err, code = C.run(home, "train --model stories:base --data toy --lr 0.5 --batch 4 --seed 3 --threads 1 "
         .. "--steps 60 --eval-every 2 --patience 1")
      assert.equal(0, code, err)
      local e = C.job(home, 2)
      assert.equal("succeeded", e.status)
      assert.is_true(e.step < 60, "stopped early at " .. e.step)
      assert.matches("early stop at step " .. e.step, H.read(e.artifacts .. "/log.txt"))
      local evals = C.with(home, function(reg) return reg:run_metrics(2) end)
      assert.is_true(#evals >= 4)
      -- moonhub eval on the trained adapter records on its run; runs show lists it
      C.must(home, "eval stories-q --data toy:test --run 1")
      assert.matches("eval_loss%[toy[^%]]*%]", C.must(home, "runs show 1"))
   end)

   it("runs jobs oldest first, one at a time; cancel stops a running job at its next step", function()
      if not home then return end
      local a = C.enqueue(home, ARGS .. " --steps 4")
      local b = C.enqueue(home, ARGS .. " --steps 400 --checkpoint-every 1000")
      local c = C.enqueue(home, ARGS .. " --steps 3")
      local pid = C.bg(home, "worker")
      C.wait(function() return C.job(home, b).step >= 5 end, "job b to train")
      local out = C.must(home, "jobs cancel " .. b)
      assert.matches("will stop at its next step", out)
      C.wait(function() return C.job(home, c).status == "succeeded" end, "job c to finish", 6000)
      os.execute("kill " .. pid)
      C.wait_exit(pid)
      local jb = C.job(home, b)
      assert.equal("cancelled", jb.status)
      assert.is_true(jb.step < 400)
      -- the checkpoint of the step it stopped at is kept (in the archive)
      local meta = H.read(home .. "/runs/archive/" .. b .. "/checkpoint/trainer.json")
      assert.is_truthy(meta, "checkpoint kept")
      -- order: each job starts after the one before it ended
      local seq = C.with(home, function(reg)
         return reg.db:query([[SELECT run_id, status FROM run_events WHERE status <> 'queued' ORDER BY id]])
      end)
      local got = {}
      for _, e in ipairs(seq) do got[#got + 1] = e.run_id .. e.status end
      assert.same({ a .. "running", a .. "succeeded", b .. "running", b .. "cancelled", c .. "running",
         c .. "succeeded" }, got)
      assert.equal("ok", C.integrity(home))
   end)

   it("kill -9 of the worker: the job is interrupted; retry resumes with the uninterrupted losses", function()
      if not home then return end
      local job_args = ARGS .. " --steps 300 --checkpoint-every 40"
      local ref = C.enqueue(home, job_args)
      C.must(home, "worker --drain --quiet")
      local want = C.losses(home, ref)
      assert.equal(300, #want)
      local id = C.enqueue(home, job_args)
      local pid = C.bg(home, "worker --quiet")
      C.wait(function() return C.job(home, id).step >= 90 end, "the job to pass step 90")
      os.execute("kill -9 " .. pid)
      C.wait_exit(pid)
      local killed_at = C.job(home, id).step
      assert.is_true(killed_at < 300, "killed before the end")
      assert.equal("ok", C.integrity(home))
      local out = C.must(home, "jobs list")
      assert.matches(id .. "%s+interrupted", out)
      assert.matches("interrupted%s+worker %d+ is gone %(at step %d+%)", C.must(home, "jobs show " .. id))
      C.must(home, "jobs retry " .. id)
      C.must(home, "worker --drain --quiet")
      local j = C.job(home, id)
      assert.equal("succeeded", j.status)
      local got = C.losses(home, id)
      for s = 1, 300 do
         assert.equal(string.format("%.17g", want[s]), string.format("%.17g", got[s]), "step " .. s)
      end
      assert.matches("resumed from the checkpoint at step 80", H.read(j.artifacts .. "/log.txt"))
      assert.equal("ok", C.integrity(home))
   end)

   it("a NaN loss fails the run with the reason and the step", function()
      if not home then return end
      local _, err, code = C.run(home, "train " .. ARGS .. " --lr 1e30 --steps 20")
      one_line(err, code)
      assert.matches("^moonhub train: job 1 failed: loss is [%-%a]+ at step %d+", err)
      local j = C.job(home, 1)
      assert.equal("failed", j.status)
      assert.matches("^loss is [%-%a]+ at step (%d+)", j.error)
      assert.is_nil(j.output_version_id)
      C.with(home, function(reg) assert.is_nil(reg:resolve("stories-lora")) end)
      assert.equal("ok", C.integrity(home))
   end)

   it("refuses an unknown model or dataset, unknown config keys, rows over the context, in one line", function()
      if not home then return end
      local _, err, code = C.run(home, "train --model nosuch --data toy --steps 2")
      one_line(err, code)
      assert.matches("no such file or registered model: 'nosuch'", err)
      _, err, code = C.run(home, "train --model stories:base --data nodata --steps 2")
      one_line(err, code)
      assert.matches("nodata", err)
      H.write(home .. "/cfg.lua", "return { model = 'stories:base', data = 'toy', learnin_rate = 1 }")
      _, err, code = C.run(home, "train --config " .. H.q(home .. "/cfg.lua"))
      one_line(err, code)
      assert.matches("unknown key 'learnin_rate'", err)
      H.write(home .. "/cfg.json", '{"model": "stories:base", "data": "toy", "steps": "x"}')
      _, err, code = C.run(home, "train --config " .. H.q(home .. "/cfg.json"))
      one_line(err, code)
      assert.matches("steps must be an integer", err)
      C.dataset(home, "nosplit", 4)
      C.with(home, function(reg) reg.db:exec("DELETE FROM dataset_versions WHERE split IS NOT NULL") end)
      _, err, code = C.run(home, "train --model stories:base --data nosplit --eval-every 2 --steps 2")
      one_line(err, code)
      assert.matches("%-%-eval%-every needs a validation set: .*moonhub data split nosplit", err)
      assert.is_true(no_jobs(home), "nothing enqueued")
      _, err, code = C.run(home, "train " .. ARGS .. " --seq 4 --steps 2")
      one_line(err, code)
      assert.matches("^moonhub train: job %d+ failed: dataset toy@1 row 1 is %d+ tokens, over the context of 4", err)
      C.with(home, function(reg) assert.is_nil(reg:resolve("stories-lora")) end)
   end)

   it("a full disk during the checkpoint write fails the job in one line; nothing registered", function()
      if not home then return end
      local id = C.enqueue(home, ARGS .. " --steps 6 --checkpoint-every 3")
      local tmpfs = os.execute("unshare -rm true 2>/dev/null")
      local out, code
      if tmpfs then      -- a real 64 KiB file system under runs/: the checkpoint does not fit
         os.execute("mkdir -p " .. H.q(home .. "/runs"))
         local f = home .. "/w.out"
         local _, _, c = os.execute(string.format("MOONHUB_HOME=%s unshare -rm sh -c %s >%s 2>&1", H.q(home),
            H.q(string.format("mount -t tmpfs -o size=64k tmpfs %s && exec %s worker --drain --quiet",
               H.q(home .. "/runs"), H.q(H.exe))), H.q(f)))
         out, code = H.read(f), c
         assert.equal(0, code, out)
      else               -- no user namespaces here: the runner's injected failure
         local _, _, c = os.execute(string.format("MOONHUB_JOBS_FAULT=checkpoint:3 MOONHUB_HOME=%s %s worker "
            .. "--drain --quiet >/dev/null 2>&1", H.q(home), H.q(H.exe)))
         assert.equal(0, c)
      end
      local j = C.job(home, id)
      assert.equal("failed", j.status)
      assert.matches("^checkpoint at step 3 failed: .*No space left on device", j.error)
      assert.is_nil(j.error:find("\n"), "one line")
      assert.is_nil(j.output_version_id)
      C.with(home, function(reg) assert.is_nil(reg:resolve("stories-lora")) end)
      assert.equal("ok", C.integrity(home))
   end)
end)

-- the model path itself, for the skip message when shared data is absent
assert(data.root())
