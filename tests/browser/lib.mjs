// Browser test harness: starts `./moonhub serve` on a free loopback port in a
// scratch MOONHUB_HOME with an API key (models imported from the shared test
// data, optionally the fake Hub and a worker), and Debian's chromium headless
// through playwright-core (no browser download). Layer: tests (node).
// Usage: const s = await start({ models: ["smol"] }); ...; await s.close().
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DATA = resolve(ROOT, process.env.MOONHUB_TEST_DATA || "../shared");
export const CHROMIUM = process.env.MOONHUB_CHROMIUM || "/usr/bin/chromium";
const BUILD = resolve(ROOT, process.env.BUILD || "build");

// Short names for the shared models the tests use.
export const MODELS = {
   smol: "models/mh-smol-llama-17m-Q8_0.gguf",
   stories: "models/stories260K-Q8_0.gguf",
   qwen: "models/mh-tiny-qwen2-Q8_0.gguf",
};

function modelFile(m) { return join(DATA, MODELS[m] || m); }

// skipReason(models) -> a reason to skip (string) or false. Under
// MOONHUB_REQUIRE_TEST_DATA=1 an unmet need throws instead: CI must not skip.
export function skipReason(models = []) {
   let why = false;
   if (!existsSync(CHROMIUM)) why = `${CHROMIUM} is not installed (sh deps/install.sh)`;
   else if (!existsSync(join(ROOT, "moonhub"))) why = "./moonhub is not built (run make)";
   else for (const m of models) {
      if (!existsSync(modelFile(m))) { why = `test data not found: ${modelFile(m)} (set MOONHUB_TEST_DATA)`; break; }
   }
   if (why && process.env.MOONHUB_REQUIRE_TEST_DATA === "1") throw new Error("required: " + why);
   return why;
}

// Waits until `re` matches the text gathered so far in one of a child's streams.
function waitFor(child, stream, re, what, ms = 30000) {
   return new Promise((ok, fail) => {
      let text = "";
      const timer = setTimeout(() => fail(new Error(`${what}: no match for ${re} in ${ms} ms:\n${text}`)), ms);
      child[stream].on("data", (d) => {
         text += d;
         const m = text.match(re);
         if (m) { clearTimeout(timer); ok(m); }
      });
      child.on("exit", (code) => { clearTimeout(timer); fail(new Error(`${what} exited (${code}):\n${text}`)); });
   });
}

function stopChild(child) {
   return new Promise((ok) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return ok();
      const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
      child.once("exit", () => { clearTimeout(kill); ok(); });
      child.kill("SIGTERM");
   });
}

// startHub(repos) -> { url, close() }: tests/helpers/fake_hub.lua serving
// {"ORG/NAME": {"files": {"f.gguf": "/abs/source"}}}; opts as its config.
export async function startHub(home, repos, opts = {}) {
   const cfg = join(home, "hub.json");
   writeFileSync(cfg, JSON.stringify(Object.assign({ repos, lifetime: 280, log: join(home, "hub-log.jsonl") }, opts)));
   const child = spawn(join(ROOT, "moonhub"), ["run", "tests/helpers/fake_hub.lua", cfg],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
   const m = await waitFor(child, "stdout", /^(\d+)\s*$/m, "fake hub");
   return { url: `http://127.0.0.1:${m[1]}`, close: () => stopChild(child) };
}

// start({models, worker, history, hub, args, key, setKey}) -> {url, key, page,
// browser, context, home, requests, errors, log(), close()}. models: short
// names from MODELS (imported under that name) or {file, name}; hub: repos
// for the fake Hub (pulls go there), hubOpts: the rest of its config
// (break_after, throttle...); setKey false leaves localStorage empty.
export async function start(opts = {}) {
   const home = mkdtempSync(join(tmpdir(), "mh-browser-"));
   const key = opts.key ?? "browser-test-key";
   for (const m of opts.models || []) {
      const file = typeof m === "string" ? modelFile(m) : m.file;
      const name = typeof m === "string" ? m : m.name;
      execFileSync(join(ROOT, "moonhub"), ["import", file, "--name", name],
         { cwd: ROOT, env: Object.assign({}, process.env, { MOONHUB_HOME: home }), stdio: "pipe" });
   }
   const env = Object.assign({}, process.env, { MOONHUB_HOME: home, HF_HUB_CACHE: join(home, "hf-cache") });
   delete env.HF_TOKEN; delete env.HF_HOME;
   let hub = null;
   if (opts.hub) {
      hub = await startHub(home, opts.hub, opts.hubOpts);
      env.MOONHUB_HF_ENDPOINT = hub.url;
   }
   const args = ["serve", "--port", "0", "--ctx", "512", "--threads", "1", "--parallel", "2"];
   if (key) args.push("--api-key", key);
   if (opts.worker) args.push("--worker");
   if (opts.history) args.push("--history");
   args.push(...(opts.args || []));
   const server = spawn(join(ROOT, "moonhub"), args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
   let stderr = "";
   server.stderr.on("data", (d) => { stderr = (stderr + d).slice(-20000); });
   let url;
   try {
      url = (await waitFor(server, "stdout", /web UI at (http:\/\/\S+?)\/?\s/, "moonhub serve"))[1];
   } catch (err) {
      await stopChild(server);
      if (hub) await hub.close();
      throw new Error(err.message + "\n" + stderr);
   }
   const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
   const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
   if (key && opts.setKey !== false) {
      await context.addInitScript((k) => { localStorage.setItem("moonhub.key", k); }, key);
   }
   const page = await context.newPage();
   // waits end on their event; 60 s (not Playwright's 30) only bounds a hang
   // on a loaded CI host
   page.setDefaultTimeout(60000);
   const requests = [], errors = [];
   page.on("request", (r) => requests.push(r.url()));
   page.on("pageerror", (e) => errors.push(String(e)));
   page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
   return {
      url, key, page, browser, context, home, requests, errors, hub,
      log: () => stderr,
      async close() {
         await browser.close().catch(() => {});
         await stopChild(server);
         if (hub) await hub.close();
         rmSync(home, { recursive: true, force: true });
      },
   };
}

// shot(page, name): build/screenshots/<name>.png at 1280x800.
export async function shot(page, name) {
   const dir = join(BUILD, "screenshots");
   mkdirSync(dir, { recursive: true });
   await page.setViewportSize({ width: 1280, height: 800 });
   const file = join(dir, `${name}.png`);
   await page.screenshot({ path: file });
   return file;
}

// apiFetch(s, path, init) -> Response: a request from node with the key.
export function apiFetch(s, path, init = {}) {
   const headers = Object.assign({ Authorization: "Bearer " + s.key }, init.headers);
   return fetch(s.url + path, Object.assign({}, init, { headers }));
}

