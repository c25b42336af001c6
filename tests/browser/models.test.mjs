// Browser tests of the Models page: the registry table, a model's details
// with a memory estimate that follows the chosen context, a Hub search
// (the project's fake Hub) with memory-fit verdicts, a pull whose progress
// bar reaches 100 % and whose model joins the table, a cut pull resumed,
// load/unload and delete. Layer: tests (node --test, lib.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { start, shot, skipReason, apiFetch, DATA, MODELS } from "./lib.mjs";

const why = skipReason(["smol", "stories"]);
let s;
before(async () => {
   if (why) return;
   const file = join(DATA, MODELS.stories);
   s = await start({ models: ["smol"],
      hub: { "mh/stories-GGUF": { files: { "stories260K-Q8_0.gguf": file } },
         "mh/cut-GGUF": { files: { "cut260K-Q8_0.gguf": file } } },
      hubOpts: { break_after: { "cut260K-Q8_0.gguf": 100000 } } });     // its first transfer is cut
});
after(async () => { if (s) await s.close(); });

test("the registry table, details and a memory estimate for a chosen context", { skip: why }, async () => {
   const { page } = s;
   await page.goto(s.url + "/#/models");
   const row = page.locator("#models-table tr[data-model='smol:Q8_0']");
   await row.waitFor();
   const cells = await row.locator("td").allTextContents();
   assert.equal(cells[0], "smol:Q8_0");
   assert.match(cells[1], /MiB/);
   assert.equal(cells[2], "Q8_0");
   assert.match(cells[3], /M$/);
   assert.equal(cells[4], "2048");
   await row.locator("a.model-link").click();
   await page.waitForFunction(() => /needs .* at ctx 2048/.test(document.querySelector("#memory-verdict")?.textContent || ""));
   const small = await page.locator("#memory-verdict").textContent();
   await page.fill("#memory-ctx", "32768");
   await page.dispatchEvent("#memory-ctx", "change");
   await page.waitForFunction(() => /at ctx 32768/.test(document.querySelector("#memory-verdict")?.textContent || ""));
   const big = await page.locator("#memory-verdict").textContent();
   const mib = (t) => Number(t.match(/needs ([\d.]+) MiB/)[1]);
   assert.ok(mib(big) > mib(small), `a longer context needs more memory: ${small} / ${big}`);
   assert.match(big, /fits/);
});

test("Hub search shows memory-fit verdicts; a pull's bar reaches 100 % and the model is listed", { skip: why }, async () => {
   const { page } = s;
   await page.fill("#search-q", "stories");
   await page.click("#search-button");
   const hit = page.locator(".hit[data-repo='mh/stories-GGUF']");
   await hit.waitFor();
   assert.match(await hit.locator(".fit").first().textContent(), /✓ needs .* at ctx 4096/);
   const seen = [];
   await page.exposeFunction("__progress", (v) => seen.push(Number(v)));
   await page.evaluate(() => {
      new MutationObserver((ms) => {
         for (const m of ms) if (m.attributeName === "aria-valuenow") window.__progress(m.target.getAttribute("aria-valuenow"));
      }).observe(document.querySelector("#pulls"), { subtree: true, attributes: true, attributeFilter: ["aria-valuenow"] });
   });
   await hit.locator("button[data-action=pull]").first().click();
   const box = page.locator(".pull.done");
   await box.waitFor({ timeout: 60000 });
   assert.equal(await box.locator("[role=progressbar]").getAttribute("aria-valuenow"), "100");
   assert.ok(seen.includes(100), `the bar reached 100: ${seen}`);
   const name = await box.locator(".pulled-name").textContent();
   const pulled = page.locator(`#models-table tr[data-model='${name}'] td.lineage`);
   await pulled.filter({ hasText: "pulled from the Hub" }).waitFor();
   await page.locator("#models-table tr[data-model='smol:Q8_0'] td.lineage", { hasText: "imported" }).waitFor();
   await shot(page, "models");
});

test("a pull cut mid-way says so, and pulling again resumes from the kept part", { skip: why }, async () => {
   const { page } = s;
   await page.fill("#pull-ref", "mh/cut-GGUF:Q8_0");
   await page.click("#pull-button");
   const failed = page.locator(".pull.failed[data-ref='mh/cut-GGUF:Q8_0']");
   await failed.waitFor({ timeout: 60000 });
   assert.match(await failed.textContent(), /pull again to resume/);
   await failed.locator("button[data-action=resume]").click();
   const done = page.locator(".pull.done[data-ref='mh/cut-GGUF:Q8_0']");
   await done.waitFor({ timeout: 60000 });
   assert.equal(await done.locator("[role=progressbar]").getAttribute("aria-valuenow"), "100");
   const log = readFileSync(join(s.home, "hub-log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
   const parts = log.filter((r) => r.path.endsWith("cut260K-Q8_0.gguf") && r.method === "GET" && r.status < 300);
   assert.deepEqual(parts.map((r) => r.from), [0, 100000], "the second transfer starts where the cut left off");
});

test("load, unload and delete from the table", { skip: why }, async () => {
   const { page } = s;
   const row = page.locator("#models-table tr[data-model='smol:Q8_0']");
   await page.fill("#models-keep-alive", "-1");
   await row.locator("button[data-action=load]").click();
   await page.locator("#models-table tr[data-model='smol:Q8_0'] button[data-action=unload]").waitFor();
   let ps = await (await apiFetch(s, "/api/moonhub/ps")).json();
   assert.equal(ps.models.length, 1);
   assert.equal(ps.models[0].forever, true, "keep-alive -1 keeps it loaded for good");
   await page.locator("#models-table tr[data-model='smol:Q8_0'] button[data-action=unload]").click();
   await page.locator("#models-table tr[data-model='smol:Q8_0'] button[data-action=load]").waitFor();
   ps = await (await apiFetch(s, "/api/moonhub/ps")).json();
   assert.equal(ps.models.length, 0);
   page.once("dialog", (d) => d.accept());
   await page.locator("#models-table tr[data-model='smol:Q8_0'] button[data-action=delete]").click();
   await page.locator("#models-table tr[data-model='smol:Q8_0']").waitFor({ state: "detached" });
   const list = await (await apiFetch(s, "/api/moonhub/models")).json();
   assert.ok(!list.models.some((m) => m.name === "smol"));
   assert.deepEqual(s.errors, []);
});
