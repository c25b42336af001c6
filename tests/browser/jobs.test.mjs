// Browser tests of the Jobs and Runs pages: a fine-tune of stories260K
// started from the form trains in the server's worker while the loss chart
// gains points from the job's events; the job is cancelled from the page;
// a short job that evaluates on a validation split draws its eval loss,
// succeeds and its version is served (loaded into the server).
// Layer: tests (node --test, lib.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { start, skipReason, shot, apiFetch, DATA } from "./lib.mjs";

const MODEL = "models/stories260K.gguf";
const why = skipReason([MODEL]);
let s;

// 40 short prompt/completion rows a tiny model can learn
function rows(n) {
   const names = ["Lily", "Tom", "Ben", "Sue"], things = ["a red ball", "a big dog", "a small cat"];
   const out = [];
   for (let i = 0; i < n; i++) {
      out.push(JSON.stringify({ prompt: names[i % 4] + " saw", completion: " " + things[i % 3] + "." }));
   }
   return out.join("\n") + "\n";
}

before(async () => {
   if (why) return;
   s = await start({ models: [{ file: join(DATA, MODEL), name: "stories" }], worker: true });
   const r = await apiFetch(s, "/api/moonhub/datasets?name=toy", { method: "POST",
      headers: { "Content-Type": "application/jsonl" }, body: rows(40) });
   assert.equal(r.status, 201, await r.text());
   // a validation split for the job that evaluates
   const sp = await apiFetch(s, "/api/moonhub/datasets/toy/split", { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ train: 0.8, val: 0.2, test: 0 }) });
   assert.equal(sp.status, 200, await sp.text());
});
after(async () => { if (s) await s.close(); });

// the number of loss points the chart holds (the page keeps it on the canvas)
const points = () => s.page.evaluate(() => Number(document.querySelector("#loss-chart")?.dataset.points || 0));

// startJob(fields) -> the job id the page opened after submitting the form
async function startJob(fields, data = "toy") {
   const form = s.page.locator("#job-form form");
   await form.locator("select[name=model]").selectOption({ index: 0 });
   await form.locator("select[name=data]").selectOption(data);
   for (const [k, v] of Object.entries(fields)) await form.locator(`[name=${k}]`).fill(String(v));
   await form.locator("button[type=submit]").click();
   await s.page.waitForFunction(() => /#\/jobs\/\d+$/.test(location.hash) && document.querySelector("#loss-chart"));
   return Number(new URL(s.page.url()).hash.match(/(\d+)$/)[1]);
}

test("a fine-tune started from the form draws its loss live and is cancelled", { skip: why }, async () => {
   await s.page.goto(s.url + "/#/jobs");
   await s.page.locator("#job-form select[name=model] option").first().waitFor({ state: "attached" });
   await shot(s.page, "jobs-form");
   const id = await startJob({ steps: 5000, lr: "0.01", batch: 2, seq: 64, seed: 3 });
   // points arrive from the events stream while the job runs: a few, then more
   await s.page.waitForFunction(() => Number(document.querySelector("#loss-chart").dataset.points) >= 3,
      null, { timeout: 60000 });
   const first = await points();
   await s.page.waitForFunction((n) => Number(document.querySelector("#loss-chart").dataset.points) > n,
      first, { timeout: 60000 });
   assert.ok(await points() > first);
   assert.match(await s.page.locator("#job-detail .step").textContent(), /^\d+ \/ 5000$/);
   await shot(s.page, "jobs");
   // cancel from the job's panel: it stops at its next step, after a checkpoint
   await s.page.locator("#job-detail button[data-action=cancel]").click();
   await s.page.locator("#job-detail .badge.st-cancelled").first().waitFor({ timeout: 60000 });
   const job = await (await apiFetch(s, `/api/moonhub/jobs/${id}`)).json();
   assert.equal(job.run.status, "cancelled");
   assert.ok(job.run.step < 5000);
   // the queue shows it cancelled, with a retry button
   const row = s.page.locator("#jobs-table tr", { hasText: `#${id}` });
   await row.locator(".badge.st-cancelled").waitFor();
   await row.locator("button[data-action=retry]").waitFor();
   assert.deepEqual(s.errors, []);
});

test("a finished job's version is served", { skip: why }, async () => {
   await s.page.goto(s.url + "/#/jobs");
   await s.page.locator("#job-form select[name=model] option").first().waitFor({ state: "attached" });
   const id = await startJob({ steps: 4, lr: "0.01", batch: 2, seq: 64, seed: 1, eval_every: 2 }, "toy:train");
   await s.page.locator("#job-detail .badge.st-succeeded").first().waitFor({ timeout: 60000 });
   // four steps and two evaluations on toy:val, drawn from the events
   await s.page.waitForFunction(() => Number(document.querySelector("#loss-chart").dataset.points) === 4
      && document.querySelector("#loss-chart").dataset.evals === "2");
   const serve = s.page.locator("#job-detail button[data-action=serve]");
   await serve.waitFor({ timeout: 60000 });
   await serve.click();
   await s.page.locator("#job-detail .output a[href='#/chat']").waitFor({ timeout: 60000 });
   const out = (await (await apiFetch(s, `/api/moonhub/jobs/${id}`)).json()).lineage.output.ref;
   // an adapter version runs on its base's loaded entry (docs/lora.md): the base is
   // loaded, and a chat naming the version answers as it
   const ps = await (await apiFetch(s, "/api/moonhub/ps")).json();
   assert.ok(ps.models.length >= 1, JSON.stringify(ps.models));
   const r = await apiFetch(s, "/v1/chat/completions", { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: out, max_tokens: 2, messages: [{ role: "user", content: "hi" }] }) });
   const body = await r.json();
   assert.equal(r.status, 200, JSON.stringify(body));
   assert.equal(body.model.split(":")[0], out.split(":")[0], JSON.stringify(body));
   assert.deepEqual(s.errors, []);
});
