// Browser tests of the UI shell: the page loads under its CSP with no
// script error, the nav reaches all seven pages, a page not written yet
// says "not yet", the API key is asked once (however many requests got a
// 401) and sent as a Bearer header.
// Layer: tests (node --test, lib.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start, skipReason } from "./lib.mjs";

const why = skipReason([]);
let s;
before(async () => { if (!why) s = await start(); });
after(async () => { if (s) await s.close(); });

test("the shell loads with its nav and CSP, and only from the server", { skip: why }, async () => {
   const res = await s.page.goto(s.url + "/");
   assert.equal(res.status(), 200);
   assert.match(res.headers()["content-security-policy"], /script-src 'self'/);
   const links = await s.page.locator("#nav a").allTextContents();
   assert.deepEqual(links, ["Chat", "Models", "Datasets", "Jobs", "Runs", "History", "Status"]);
   assert.equal(new URL(s.page.url()).hash, "#/chat");
   const host = new URL(s.url).host;
   for (const u of s.requests) assert.equal(new URL(u).host, host, `request to another host: ${u}`);
   assert.deepEqual(s.errors, []);
});

test("a page that does not exist yet says so, without an error", { skip: why }, async () => {
   await s.page.goto(s.url + "/#/nosuchpage");
   await s.page.locator("#page .not-yet").waitFor();
   assert.match(await s.page.locator("#page").textContent(), /not yet/);
   await s.page.goto(s.url + "/#/models");        // the router moves on from there
   await s.page.locator("#page .not-yet").waitFor({ state: "detached" });
});

test("a 401 asks for the key once; it then travels as a Bearer header", { skip: why }, async () => {
   const ctx = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });   // no key stored
   const page = await ctx.newPage();
   await page.goto(s.url + "/#/models");        // two API requests at once: both 401, one prompt
   const dlg = page.locator("dialog.key-dialog");
   await dlg.waitFor();
   const sent = page.waitForRequest((r) => r.url().includes("/api/moonhub/") && !!r.headers().authorization);
   await dlg.locator("input").fill(s.key);
   await dlg.locator("button[value=ok]").click();
   const req = await sent;
   assert.equal(req.headers().authorization, "Bearer " + s.key);
   assert.ok(!req.url().includes(s.key), "the key must never be in a URL");
   await page.locator("#models-table").waitFor();
   assert.equal(await page.locator("dialog.key-dialog").count(), 0);
   assert.equal(await page.evaluate(() => localStorage.getItem("moonhub.key")), s.key);
   await ctx.close();
});
