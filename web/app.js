// moonhub web UI: the hash router and nav bar. Layer: web (ES module, no
// build step). Uses api.js (HTTP) and ui.js (DOM helpers); each page is
// web/pages/<name>.js exporting mount(root, ctx) -> optional unmount().
import { api } from "./api.js";
import * as ui from "./ui.js";

export const PAGES = [
   ["chat", "Chat"], ["models", "Models"], ["datasets", "Datasets"], ["jobs", "Jobs"],
   ["runs", "Runs"], ["history", "History"], ["status", "Status"],
];
const DEFAULT = "chat";

let current = null;       // { name, unmount }
let generation = 0;       // a route change while a page loads drops the stale one

// "#/jobs/12/x" -> { name: "jobs", params: ["12", "x"] }
export function parseHash(hash) {
   const parts = (hash || "").replace(/^#\/?/, "").split("/").filter((s) => s !== "")
      .map((s) => { try { return decodeURIComponent(s); } catch { return s; } });
   const name = parts.shift() || DEFAULT;
   return { name, params: parts };
}

function renderNav(active) {
   const nav = document.getElementById("nav");
   nav.replaceChildren(...PAGES.map(([name, label]) =>
      ui.el("a", { href: "#/" + name, class: name === active ? "active" : "",
         "aria-current": name === active ? "page" : null }, label)));
}

// A page module that is not there yet (404) shows "not yet"; one that is
// there but fails to load shows its error, so a bug is not hidden.
async function loadPage(name) {
   if (!PAGES.some(([n]) => n === name)) return null;
   try {
      return await import(`./pages/${name}.js`);
   } catch (err) {
      const r = await fetch(`/pages/${name}.js`, { method: "HEAD" }).catch(() => null);
      if (r && r.status === 404) return null;
      throw err;
   }
}

async function route() {
   const { name, params } = parseHash(location.hash);
   const my = ++generation;
   if (current && current.unmount) {
      try { current.unmount(); } catch (err) { console.error(err); }
   }
   current = null;
   renderNav(name);
   const root = document.getElementById("page");
   root.replaceChildren(ui.el("p", { class: "muted" }, "loading…"));
   root.dataset.page = name;
   let mod;
   try {
      mod = await loadPage(name);
   } catch (err) {
      if (my !== generation) return;
      root.replaceChildren(ui.el("p", { class: "error" }, `page ${name} failed to load: ${err.message}`));
      return;
   }
   if (my !== generation) return;
   if (!mod || typeof mod.mount !== "function") {
      root.replaceChildren(ui.el("section", { class: "not-yet" },
         ui.el("h1", {}, name), ui.el("p", {}, "not yet: this page is still to come.")));
      return;
   }
   root.replaceChildren();
   document.title = `moonhub · ${name}`;
   try {
      const unmount = await mod.mount(root, { api, ui, params });
      if (my !== generation) { if (typeof unmount === "function") unmount(); return; }
      current = { name, unmount: typeof unmount === "function" ? unmount : null };
   } catch (err) {
      if (my === generation) root.append(ui.el("p", { class: "error" }, `page ${name}: ${err.message}`));
   }
}

function start() {
   document.getElementById("key-button").addEventListener("click", () => api.promptKey("", false));
   window.addEventListener("hashchange", route);
   if (!location.hash) history.replaceState(null, "", "#/" + DEFAULT);
   route();
}

start();
