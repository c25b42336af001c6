-- fine-tune a model on a dataset (LoRA, QLoRA or full) as a queued job, and follow it
-- Layer: recipes (uses the public moonhub API only: moonhub.jobs).
-- Usage: moonhub train --model BASE --data NAME [--method lora|qlora|full] [--steps N | --epochs N]
--        [--lr X] [--seed N] [--batch N] [--seq N] [--config FILE.lua|.json] [--detach]
local cli = require "moonhub.cli"
local mh = require "moonhub"
local jobs = require "moonhub.jobs"

local p = cli.parser("train", "Enqueue a training job and, unless --detach, run it here with a live "
   .. "progress line and loss sparkline (a job ahead in the queue runs first). Options override the "
   .. "config file's keys; see docs/jobs.md for every key.")
p:option("-m --model", "base model: a registry name or a GGUF file")
p:option("-d --data", "dataset: NAME, NAME@VERSION or NAME:SPLIT (see 'moonhub data')")
p:option("--method", "lora (default), qlora (LoRA over a quantized base) or full"):choices({ "lora", "qlora", "full" })
p:option("--steps", "optimizer steps (default: one epoch)"):convert(cli.count(1))
p:option("--epochs", "passes over the dataset"):convert(cli.count(1))
p:option("--lr", "peak learning rate (default 2e-4)"):convert(tonumber)
p:option("--seed", "seed of LoRA init, dropout and the batch order (default 1)"):convert(cli.count(0))
p:option("--batch", "rows per step (default 4)"):convert(cli.count(1))
p:option("--seq", "longest row in tokens; longer rows are an error (default 256)"):convert(cli.count(2))
p:option("--rank", "LoRA rank (default 8)"):convert(cli.count(1))
p:option("--alpha", "LoRA alpha (default 16)"):convert(tonumber)
p:option("--val", "validation dataset (default NAME:val when --eval-every is set)")
p:option("--eval-every", "evaluate on the validation split every N steps"):convert(cli.count(0))
p:option("--patience", "stop when eval loss has not improved for N evaluations"):convert(cli.count(0))
p:option("--checkpoint-every", "steps between checkpoints (default 50)"):convert(cli.count(1))
p:option("--threads", "compute threads (record it: the same seed and threads repeat the losses)")
   :convert(cli.count(1))
p:option("--name", "name of the trained model version (default: the base's model)")
p:option("--tag", "tag of the trained version")
p:option("-c --config", "a FILE.lua returning a table, or FILE.json, of the same keys")
p:flag("--detach", "only enqueue; print the job id ('moonhub worker' runs it)")
p:flag("--json", "with --detach: print {\"id\": N}")

local a, code = cli.parse(p, arg)
if not a then return code end

local t = {}
if a.config then
   local ft, ferr = jobs.config_file(a.config)
   if not ft then return cli.fail("train", ferr, 2) end
   t = ft
end
for _, k in ipairs({ "model", "data", "method", "steps", "epochs", "lr", "seed", "batch", "seq", "rank",
   "alpha", "val", "eval_every", "patience", "checkpoint_every", "threads", "name", "tag" }) do
   if a[k] ~= nil then t[k] = a[k] end
end
if a.steps and t.epochs and not a.epochs then t.epochs = nil end   -- the flag wins over the file
if a.epochs and t.steps and not a.steps then t.steps = nil end
local cfg, cerr = jobs.config(t)
if not cfg then
   return cli.fail("train", cerr:gsub("^config: (%l+) is required", "--%1 is required (or the config file's %1)"), 2)
end

local reg, err = mh.models.open()
if not reg then return cli.fail("train", err) end
local id
id, err = jobs.enqueue(reg, cfg)
if not id then reg:close(); return cli.fail("train", err) end

if a.detach then
   io.write(a.json and string.format('{"id": %d}\n', id) or string.format("job %d queued\n", id))
   reg:close()
   return 0
end
io.write(string.format("job %d queued: %s on %s (%s)\n", id, cfg.model, cfg.data, cfg.method))
io.stdout:flush()
local r = require("moonhub.jobs.follow").follow(reg, id)
local events = reg:run_events(id)
reg:close()
if r.status == "succeeded" then
   io.write(string.format("job %d succeeded: %s\n", id, r.artifacts or ""))
   return 0
end
local last = events[#events]
return cli.fail("train", string.format("job %d %s: %s", id, r.status, r.error or (last and last.reason)
   or ("see 'moonhub jobs show " .. id .. "'")))
