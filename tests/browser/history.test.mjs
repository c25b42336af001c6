// Browser tests of the History page: conversations stored by `serve
// --history` are listed, found by full-text search (hits marked), opened
// with their messages as text (an HTML probe stays text), exported as
// Markdown and JSON downloads, linked to the chat for resuming, and deleted.
// Layer: tests (node --test, lib.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { start, skipReason, shot, apiFetch } from "./lib.mjs";

const why = skipReason(["stories"]);
let s;

async function chat(content) {
   const r = await apiFetch(s, "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "stories", messages: [{ role: "user", content }], max_tokens: 2, temperature: 0 }) });
   assert.equal(r.status, 200, await r.text());
}

before(async () => {
   if (why) return;
   s = await start({ models: ["stories"], history: true });
   await chat("tell me about zebras in the savanna");
   await chat("what do owls eat? <img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>");
});
after(async () => { if (s) await s.close(); });

test("history is searched, opened as text, exported and deleted", { skip: why }, async () => {
   const p = s.page;
   await p.goto(s.url + "/#/history");
   await p.locator("#history-table tbody tr").nth(1).waitFor();
   assert.equal(await p.locator("#history-table tbody tr").count(), 2);
   // full-text search: one hit, the word marked
   await p.locator("#history-search input[name=q]").fill("zebras");
   await p.locator("#history-search button[type=submit]").click();
   const hits = p.locator("#history-results tbody tr");
   await p.locator("#history-results mark").first().waitFor();
   assert.equal(await hits.count(), 1);
   assert.equal(await p.locator("#history-results mark").first().textContent(), "zebras");
   // open the hit: its messages, a resume link, the search kept
   await hits.first().locator("a").click();
   const conv = p.locator("#history-conv");
   await conv.locator(".msg.user").waitFor();
   assert.match(await conv.locator(".msg.user .content").textContent(), /tell me about zebras/);
   const id = Number(new URL(p.url()).hash.match(/^#\/history\/(\d+)$/)[1]);
   assert.equal(await conv.locator("a[data-action=resume]").getAttribute("href"), `#/chat/${id}`);
   assert.equal(await p.locator("#history-search input[name=q]").inputValue(), "zebras");
   await shot(p, "history");
   // exports are downloads of the server's Markdown and JSON
   const [md] = await Promise.all([p.waitForEvent("download"), conv.locator("button[data-action=export-md]").click()]);
   assert.equal(md.suggestedFilename(), `conversation-${id}.md`);
   assert.match(readFileSync(await md.path(), "utf8"), /## user\n\ntell me about zebras in the savanna\n/);
   const [js] = await Promise.all([p.waitForEvent("download"), conv.locator("button[data-action=export-json]").click()]);
   const doc = JSON.parse(readFileSync(await js.path(), "utf8"));
   assert.equal(doc.id, id);
   assert.equal(doc.messages[0].content, "tell me about zebras in the savanna");
   // delete: gone from the list and from the server
   p.once("dialog", (d) => d.accept());
   await conv.locator("button[data-action=delete]").click();
   await p.locator("#history-conv").waitFor({ state: "hidden" });
   assert.equal((await apiFetch(s, `/api/moonhub/history/${id}`)).status, 404);
   assert.deepEqual(s.errors, []);
});

test("HTML in a stored message shows as text and never runs", { skip: why }, async () => {
   const p = s.page;
   await p.goto(s.url + "/#/history");
   await p.locator("#history-search input[name=q]").fill("owls");
   await p.locator("#history-search button[type=submit]").click();
   await p.locator("#history-results tbody tr a").first().click();
   const user = p.locator("#history-conv .msg.user .content");
   await user.waitFor();
   assert.match(await user.textContent(), /<img src=x onerror="window.__xss=1"><script>window.__xss=2<\/script>/);
   assert.equal(await p.locator("#history-conv img, #history-conv script").count(), 0);
   assert.equal(await p.evaluate(() => window.__xss), undefined);
   assert.deepEqual(s.errors, []);
});
