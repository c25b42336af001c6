// Browser tests of the Chat page on a real model (the shared smol Llama):
// streamed text with tok/s and time to first token, stop, edit, the
// conversation saved to and resumed from the history DB, the XSS probe
// (a real answer forced by a JSON schema to hold <img onerror> and <script>
// renders as text), and the first load's weight. Layer: tests (node --test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start, shot, skipReason, apiFetch } from "./lib.mjs";

const why = skipReason(["smol"]);
let s;
before(async () => { if (!why) s = await start({ models: ["smol"] }); });
after(async () => { if (s) await s.close(); });

// Opens the chat page with the model loaded and the given max tokens.
async function openChat(page, maxTokens = 40) {
   await page.goto(s.url + "/#/chat");
   await page.locator("#chat-model option").first().waitFor({ state: "attached" });
   await page.waitForFunction(() => document.querySelector("#chat-model-note").textContent.startsWith("loaded"));
   await page.fill("#chat-max-tokens", String(maxTokens));
   await page.fill("#chat-seed", "7");
}

async function ask(page, text) {
   const n = await page.locator(".msg.assistant .stats").count();
   await page.fill("#chat-input", text);
   await page.press("#chat-input", "Enter");
   await page.waitForFunction((k) => {
      const st = document.querySelectorAll(".msg.assistant .stats");
      return st.length > k && st[st.length - 1].textContent.includes("tok/s");
   }, n);
   return page.locator(".msg.assistant").last();
}

test("a message streams an answer with tok/s and TTFT under it, saved to history", { skip: why }, async () => {
   const { page } = s;
   await openChat(page);
   // every change of the answer's text while it streams
   await page.evaluate(() => {
      window.__lens = [];
      new MutationObserver(() => {
         const b = [...document.querySelectorAll(".msg.assistant .body")].at(-1);
         if (b) window.__lens.push(b.textContent.length);
      }).observe(document.querySelector("#chat-messages"), { childList: true, subtree: true, characterData: true });
   });
   const answer = await ask(page, "Tell me a story about a cat.");
   const text = await answer.locator(".body").textContent();
   assert.ok(text.trim().length > 0, "an answer");
   const lens = await page.evaluate(() => new Set(window.__lens.filter((n) => n > 1)).size);
   assert.ok(lens >= 2, `the text arrived in pieces (${lens} distinct lengths)`);
   const stats = await answer.locator(".stats").textContent();
   assert.match(stats, /\d+(\.\d+)? tok\/s/);
   assert.match(stats, /TTFT \d+ ms/);
   assert.match(stats, /\d+ tokens/);
   await page.waitForFunction(() => /^#\/chat\/\d+$/.test(location.hash));
   const id = (await page.evaluate(() => location.hash)).split("/")[2];
   const c = await (await apiFetch(s, "/api/moonhub/history/" + id)).json();
   assert.deepEqual(c.messages.map((m) => m.role), ["user", "assistant"]);
   assert.equal(c.messages[1].content, text);
   await shot(page, "chat");
   assert.deepEqual(s.errors, []);
});

test("a conversation resumes from #/chat/ID and goes on in the same record", { skip: why }, async () => {
   const { page } = s;
   const id = (await page.evaluate(() => location.hash)).split("/")[2];
   await page.goto(s.url + "/#/models");
   await page.goto(s.url + "/#/chat/" + id);
   await page.locator(".msg.user").first().waitFor();
   assert.equal(await page.locator(".msg").count(), 2);
   await page.waitForFunction(() => document.querySelector("#chat-model-note").textContent.startsWith("loaded"));
   await ask(page, "And then?");
   await page.waitForFunction(() => document.querySelector("#chat-conv").textContent.includes("saved"));
   const c = await (await apiFetch(s, "/api/moonhub/history/" + id)).json();
   assert.equal(c.messages.length, 4);
});

test("edit takes a message back into the box; retry answers again", { skip: why }, async () => {
   const { page } = s;
   const n = await page.locator(".msg").count();
   await page.locator(".msg.assistant").last().locator("[data-action=retry]").click();
   await page.waitForFunction((k) => document.querySelectorAll(".msg").length === k
      && !document.querySelector("#chat-send").disabled, n);
   const users = page.locator(".msg.user");
   const first = await users.first().locator(".body").textContent();
   await users.first().locator("[data-action=edit]").click();
   assert.equal(await page.inputValue("#chat-input"), first);
   assert.equal(await page.locator(".msg").count(), 0);
});

test("stop ends a long answer early", { skip: why }, async () => {
   const { page } = s;
   await openChat(page, 400);
   await page.fill("#chat-input", "Write a very long story.");
   await page.press("#chat-input", "Enter");
   await page.waitForFunction(() => {
      const b = [...document.querySelectorAll(".msg.assistant .body")].at(-1);
      return b && b.textContent.length > 3 && b.textContent !== "…";
   });
   await page.click("#chat-stop");
   await page.waitForFunction(() => [...document.querySelectorAll(".msg.assistant .stats")].at(-1)?.textContent
      .includes("stopped"));
   assert.equal(await page.locator("#chat-stop").isHidden(), true);
});

test("XSS probe: a model answer with <img onerror> and <script> shows as text", { skip: why }, async () => {
   const { page } = s;
   await openChat(page, 200);
   const probe = "<img src=x onerror=window.__xss=1> <script>window.__xss=2</script>";
   const schema = { type: "object", properties: { html: { const: probe } }, required: ["html"] };
   await page.locator("details.settings summary", { hasText: "JSON" }).click();
   await page.fill("#chat-schema", JSON.stringify(schema));
   const answer = await ask(page, "Say hello.");
   const text = await answer.locator(".body").textContent();
   assert.ok(text.includes("<img src=x onerror=window.__xss=1>"), `the model's text shows as is: ${text}`);
   assert.ok(text.includes("<script>"), text);
   assert.equal(await page.locator("#chat-messages img, #chat-messages script").count(), 0);
   assert.equal(await page.evaluate(() => window.__xss), undefined);
   await page.fill("#chat-schema", "");
   await shot(page, "chat-xss");
});

test("answers render as Markdown: code blocks, lists, safe links only", { skip: why }, async () => {
   const { page } = s;
   const answer = "# Title\n\nSome **bold** and `code`.\n\n```js\nconst a = '<b>x</b>';\n```\n\n"
      + "- one\n- two\n\n[ok](https://example.org/) [bad](javascript:window.__xss=3) ![img](https://example.org/i.png)";
   const r = await apiFetch(s, "/api/moonhub/history", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "smol", messages: [{ role: "user", content: "md" }, { role: "assistant", content: answer }] }) });
   const { id } = await r.json();
   await page.goto(s.url + "/#/models");
   await page.goto(s.url + "/#/chat/" + id);
   const body = page.locator(".msg.assistant .body");
   await body.locator("pre.code").waitFor();
   assert.equal(await body.locator("pre.code code").textContent(), "const a = '<b>x</b>';");
   assert.equal(await body.locator("pre.code code").getAttribute("data-lang"), "js");
   assert.equal(await body.locator("strong").textContent(), "bold");
   assert.equal(await body.locator("li").count(), 2);
   const hrefs = await body.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
   assert.deepEqual(hrefs, ["https://example.org/", "https://example.org/i.png"], "no javascript: link, the image a link");
   assert.equal(await body.locator("img, b").count(), 0);
   assert.match(await body.textContent(), /\[image: img\]/);
});

test("first load of the chat page: under 300 KB transferred, only from the server", { skip: why }, async () => {
   const ctx = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });
   await ctx.addInitScript((k) => localStorage.setItem("moonhub.key", k), s.key);
   const page = await ctx.newPage();
   const done = [];
   page.on("requestfinished", (r) => done.push(r));
   await page.goto(s.url + "/#/chat", { waitUntil: "networkidle" });
   await page.locator("#chat-model option").first().waitFor({ state: "attached" });
   let bytes = 0;
   const host = new URL(s.url).host;
   for (const r of done) {
      assert.equal(new URL(r.url()).host, host, `request to another host: ${r.url()}`);
      const z = await r.sizes();
      bytes += z.responseBodySize + z.responseHeadersSize;
   }
   const js = done.filter((r) => r.url().endsWith(".js"));
   assert.ok(js.length >= 4, "the scripts were counted");
   for (const r of js) assert.equal((await r.response()).headers()["content-encoding"], "gzip", r.url());
   assert.ok(bytes < 300 * 1024, `first load transferred ${bytes} bytes`);
   await ctx.close();
});
