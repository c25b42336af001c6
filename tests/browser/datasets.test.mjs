// Browser tests of the Datasets page: a CSV uploaded through the form with a
// column map (progress bar, then the preview of its rows), a bad JSONL file
// refused with its problems by row, PII report and redact (a new version),
// split, validate; dataset text stays text. Layer: tests (node --test, lib.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start, skipReason, shot, apiFetch } from "./lib.mjs";

const why = skipReason([]);
let s;
before(async () => { if (!why) s = await start({}); });
after(async () => { if (s) await s.close(); });

const CSV = "question,answer\n"
   + "\"Where, exactly?\",\"At home, mail me at bob@example.com\"\n"
   + "Who?,\"<img src=x onerror=\"\"window.__xss=1\"\">\"\n"
   + "What?,\"Two\nlines\"\n"
   + "When?,Tomorrow\n";

test("a CSV uploaded with a column map is stored and previewed", { skip: why }, async () => {
   const p = s.page;
   await p.goto(s.url + "/#/datasets");
   await p.locator("#ds-import input[type=file]").setInputFiles({ name: "Q&A pairs.csv", mimeType: "text/csv",
      buffer: Buffer.from(CSV) });
   // the name comes from the file, the map from the header
   assert.equal(await p.locator("#ds-import input[name=name]").inputValue(), "Q-A-pairs");
   await p.locator("#ds-import input[name=name]").fill("qa");
   await p.locator("#ds-import select[name=shape]").selectOption("completion");
   await p.locator("#ds-import select[name=map-prompt]").selectOption("question");
   await p.locator("#ds-import select[name=map-completion]").selectOption("answer");
   await p.locator("#ds-import button[type=submit]").click();
   await p.locator("#ds-import-result .ok").waitFor();
   assert.match(await p.locator("#ds-import-result").textContent(), /imported qa@1: 4 completion rows/);
   assert.equal(await p.locator("#ds-import [role=progressbar]").getAttribute("aria-valuenow"), "100");
   // the dataset opens with its preview: rows as the server stored them, as text
   const rows = p.locator("#ds-preview .row-preview pre");
   await rows.first().waitFor();
   assert.equal(await rows.count(), 4);
   assert.deepEqual(JSON.parse(await rows.nth(0).textContent()),
      { prompt: "Where, exactly?", completion: "At home, mail me at bob@example.com" });
   assert.deepEqual(JSON.parse(await rows.nth(2).textContent()), { prompt: "What?", completion: "Two\nlines" });
   assert.equal(await p.evaluate(() => window.__xss), undefined);
   assert.equal(await p.locator("#page img").count(), 0);
   assert.match(await p.locator("#ds-table").textContent(), /qa\s*@1\s*completion\s*4/);
   await shot(p, "datasets");
   assert.deepEqual(s.errors, []);
});

test("a bad file is refused with its problems by row; nothing is stored", { skip: why }, async () => {
   const p = s.page;
   await p.goto(s.url + "/#/datasets");
   await p.locator("#ds-import input[type=file]").setInputFiles({ name: "bad.jsonl", mimeType: "",
      buffer: Buffer.from('{"text": "fine"}\n{"text": \n{"prompt": "p"}\n') });
   await p.locator("#ds-import button[type=submit]").click();
   const problems = p.locator("#ds-import-result table tbody tr");
   await problems.first().waitFor();
   assert.equal(await problems.count(), 2);
   assert.match(await problems.nth(0).textContent(), /^2\s*bad JSON/);
   assert.match(await problems.nth(1).textContent(), /^3/);
   const list = await (await apiFetch(s, "/api/moonhub/datasets")).json();
   assert.deepEqual(list.datasets.map((d) => d.name), ["qa"]);
   // the browser logs the refused upload's 400; nothing else
   assert.deepEqual(s.errors.filter((e) => !/status of 400/.test(e)), []);
   s.errors.length = 0;
});

test("PII is reported and redacted into a new version; split and validate", { skip: why }, async () => {
   const p = s.page;
   await p.goto(s.url + "/#/datasets/qa");
   await p.locator("#ds-detail h2", { hasText: "qa@1" }).waitFor();
   await p.locator("button[data-action=pii-report]").click();
   await p.locator("#ds-op-result table").waitFor();
   assert.match(await p.locator("#ds-op-result").textContent(), /1 of 4 rows hold PII/);
   assert.match(await p.locator("#ds-op-result table").textContent(), /email\s*1/);
   p.once("dialog", (d) => d.accept());
   await p.locator("button[data-action=pii-redact]").click();
   await p.locator("#ds-detail h2", { hasText: "qa@2" }).waitFor();
   assert.equal(new URL(p.url()).hash, "#/datasets/qa%402");
   const first = JSON.parse(await p.locator("#ds-preview .row-preview pre").first().textContent());
   assert.equal(first.completion, "At home, mail me at [EMAIL]");
   // split 0.5 / 0.5 / 0 with a seed: two splits of two rows
   await p.locator("#ds-detail input[name=train]").fill("0.5");
   await p.locator("#ds-detail input[name=val]").fill("0.5");
   await p.locator("#ds-detail input[name=test]").fill("0");
   await p.locator("button[data-action=split]").click();
   await p.locator("#ds-op-result li").first().waitFor();
   assert.deepEqual(await p.locator("#ds-op-result li").allTextContents(), ["qa@2:train 2 rows", "qa@2:val 2 rows"]);
   await p.locator("button[data-action=validate]").click();
   await p.locator("#ds-op-result .ok", { hasText: "all 4 rows are good" }).waitFor();
   await p.evaluate(() => window.scrollTo(0, 0));
   await shot(p, "datasets-detail");
   assert.deepEqual(s.errors, []);
});
