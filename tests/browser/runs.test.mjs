// Browser tests of the Runs page: two short fine-tunes of stories260K (made
// over the API, trained by the server's worker) are compared on one loss
// chart with the parameter that differs; one run shows its lineage (base
// model, dataset version, trained version) and artifacts. Layer: tests
// (node --test, lib.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { start, skipReason, shot, apiFetch, DATA } from "./lib.mjs";

const MODEL = "models/stories260K.gguf";
const why = skipReason([MODEL]);
let s, base;
const ids = [];

async function post(path, body, type = "application/json") {
   const r = await apiFetch(s, path, { method: "POST", headers: { "Content-Type": type },
      body: typeof body === "string" ? body : JSON.stringify(body) });
   const text = await r.text();
   assert.ok(r.status < 300, `${path}: ${r.status} ${text}`);
   return JSON.parse(text);
}

before(async () => {
   if (why) return;
   s = await start({ models: [{ file: join(DATA, MODEL), name: "stories" }], worker: true });
   const rows = [];
   for (let i = 0; i < 16; i++) rows.push(JSON.stringify({ text: `Tom saw ${i % 4} red balls.` }));
   await post("/api/moonhub/datasets?name=balls", rows.join("\n") + "\n", "application/jsonl");
   base = (await (await apiFetch(s, "/api/moonhub/models")).json()).models[0];
   base = `${base.name}:${base.tag}`;
   for (const lr of [0.01, 0.001]) {
      ids.push((await post("/api/moonhub/jobs", { model: base, data: "balls", steps: 5, lr, batch: 2, seq: 32 })).id);
   }
   // the worker takes them one after the other (bounded: 60 s)
   for (let i = 0; i < 600; i++) {
      const jobs = (await (await apiFetch(s, "/api/moonhub/jobs")).json()).jobs;
      if (jobs.every((j) => ["succeeded", "failed", "cancelled", "interrupted"].includes(j.status))) break;
      await sleep(100);
   }
});
after(async () => { if (s) await s.close(); });

test("runs are compared on one chart with the parameters that differ", { skip: why }, async () => {
   const p = s.page;
   await p.goto(s.url + "/#/runs");
   await p.locator("#runs-table").waitFor();
   assert.equal(await p.locator("#runs-table .badge.st-succeeded").count(), 2);
   for (const id of ids) await p.locator(`#runs-table input[value="${id}"]`).check();
   await p.locator("button[data-action=compare]").click();
   await p.waitForFunction(() => document.querySelector("#runs-chart")?.dataset.lines === "2");
   assert.equal(new URL(p.url()).hash, `#/runs/${ids.join(",")}`);
   const fig = p.locator("#runs-figures");
   assert.match(await fig.locator("tr", { hasText: "steps" }).textContent(), /steps\s*5\s*5/);
   assert.match(await fig.locator("tr", { hasText: /^lr/ }).textContent(), /^lr\s*0\.01\s*0\.001$/);
   assert.equal(await fig.locator("tr", { hasText: /^seed/ }).count(), 0, "equal parameters are not listed");
   assert.match(await fig.locator("tr", { hasText: "final loss" }).textContent(), /final loss\s*\d+\.\d{4}\s*\d+\.\d{4}/);
   await shot(p, "runs");
   assert.deepEqual(s.errors, []);
});

test("one run shows its lineage and artifacts", { skip: why }, async () => {
   const p = s.page;
   await p.goto(s.url + `/#/runs/${ids[0]}`);
   const lin = p.locator("#run-lineage");
   await lin.waitFor();
   const job = await (await apiFetch(s, `/api/moonhub/jobs/${ids[0]}`)).json();
   const text = await lin.textContent();
   assert.ok(text.includes("base model: " + base), text);
   assert.ok(text.includes("dataset: balls@1"), text);
   assert.ok(text.includes("produced: " + job.lineage.output.ref), text);
   await p.locator("#run-detail summary", { hasText: "artifacts" }).click();
   assert.match(await p.locator("#run-detail ul.files").textContent(), /adapter\.gguf/);
   assert.deepEqual(s.errors, []);
});
