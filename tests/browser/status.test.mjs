// Browser tests of the Status panel: after real generations it shows the
// loaded model, busy/total slots, the prefix-cache hit rate and a
// tokens/s chart (Chart.js from Debian's libjs-chart.js) with a point
// above zero — the same counters /metrics reports. Layer: tests (node --test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start, shot, skipReason, apiFetch } from "./lib.mjs";

const why = skipReason(["smol"]);
let s;
before(async () => { if (!why) s = await start({ models: ["smol"] }); });
after(async () => { if (s) await s.close(); });

async function chat(text) {
   const r = await apiFetch(s, "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "smol", messages: [{ role: "user", content: text }], max_tokens: 16, seed: 1 }) });
   assert.equal(r.status, 200);
   return r.json();
}

test("the panel shows the loaded model, slots, cache hit rate and a tokens/s chart", { skip: why }, async () => {
   const { page } = s;
   const long = "Once upon a time there was a little cat who liked to sit in the sun. ".repeat(4);
   await chat(long + "What next?");
   await chat(long + "What then?");            // shares the prefix: the cache serves part of its prompt
   await page.goto(s.url + "/#/status");
   await page.locator("#st-table td", { hasText: "smol" }).first().waitFor();
   assert.equal(await page.locator("#st-models").textContent(), "1");
   assert.equal(await page.locator("#st-slots").textContent(), "0 / 2");
   assert.equal(await page.locator("#st-queue").textContent(), "0");
   const hit = await page.locator("#st-hit").textContent();
   assert.match(hit, /^\d+\.\d %$/);
   assert.ok(parseFloat(hit) > 0, `the second prompt came partly from the cache: ${hit}`);
   // the figures are /metrics' counters
   const metrics = await (await fetch(s.url + "/metrics")).text();
   const m = (name) => Number(metrics.match(new RegExp("^" + name + " (\\d+)", "m"))[1]);
   const rate = m("moonhub_prompt_cached_tokens_total") / m("moonhub_prompt_tokens_total");
   assert.equal(hit, (rate * 100).toFixed(1) + " %");
   await page.waitForFunction(() => {
      const c = window.Chart && window.Chart.getChart(document.querySelector("#st-chart"));
      return c && c.data.datasets[0].data.some((p) => p.y > 0);
   });
   await shot(page, "status");
   assert.deepEqual(s.errors, []);
});
