// moonhub web UI: DOM helpers shared by the pages — el(), formatting,
// tables, progress bars, toasts, the key prompt, charts (Chart.js, loaded on
// demand from /vendor/chart.umd.js) and Markdown. Layer: web (ES module).
// Server and model text always reaches the DOM as text nodes: nothing here
// assigns innerHTML.

// el("a", {href, class, onclick}, "text", node, [more]) -> element. Strings
// become text nodes; null/undefined/false children and attributes are skipped.
export function el(tag, attrs, ...children) {
   const node = document.createElement(tag);
   for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") node[k] = v;
      else node.setAttribute(k, v === true ? "" : String(v));
   }
   append(node, children);
   return node;
}

function append(node, children) {
   for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(node, c);
      else if (c instanceof Node) node.append(c);
      else node.append(document.createTextNode(String(c)));
   }
}

// 1536 -> "1.5 KiB"
export function fmtBytes(n) {
   if (typeof n !== "number" || !isFinite(n)) return "–";
   const units = ["B", "KiB", "MiB", "GiB", "TiB"];
   let i = 0;
   while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
   return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + " " + units[i];
}

// unix seconds (or ms, or an ISO string) -> "2026-12-06 07:21"
export function fmtTime(ts) {
   if (ts === null || ts === undefined || ts === "") return "–";
   let d;
   if (typeof ts === "number") d = new Date(ts < 1e12 ? ts * 1000 : ts);
   else d = new Date(ts);
   if (isNaN(d.getTime())) return String(ts);
   const p = (x) => String(x).padStart(2, "0");
   return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

// table(columns, rows): columns are strings (a row key, also the heading) or
// {label, key, render(row) -> node|string, class}; rows are objects.
export function table(columns, rows) {
   const cols = columns.map((c) => (typeof c === "string" ? { label: c, key: c } : c));
   const head = el("thead", {}, el("tr", {}, cols.map((c) => el("th", { class: c.class }, c.label))));
   const body = el("tbody", {}, rows.map((r) => el("tr", {}, cols.map((c) => {
      const v = c.render ? c.render(r) : r[c.key];
      return el("td", { class: c.class }, v === undefined || v === null ? "" : v);
   }))));
   if (!rows.length) body.append(el("tr", {}, el("td", { colspan: cols.length, class: "muted" }, "none")));
   return el("table", { class: "grid" }, head, body);
}

// progressBar() -> element with .set(fraction, label?): a role=progressbar
// whose aria-valuenow is the percentage shown.
export function progressBar() {
   const fill = el("div", { class: "fill" });
   const text = el("span", { class: "label" }, "0 %");
   const bar = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": "0" }, fill, text);
   bar.set = (fraction, label) => {
      const pct = Math.max(0, Math.min(100, Math.round((fraction || 0) * 100)));
      fill.style.width = pct + "%";
      bar.setAttribute("aria-valuenow", String(pct));
      text.textContent = label ? `${pct} % · ${label}` : `${pct} %`;
   };
   return bar;
}

// toast(msg, kind = "info" | "error" | "ok"): a note that fades after a while.
export function toast(msg, kind = "info") {
   const box = document.getElementById("toasts") || document.body;
   const t = el("div", { class: "toast " + kind, role: kind === "error" ? "alert" : "status" }, String(msg));
   box.append(t);
   setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
   return t;
}

// keyPrompt(reason, current) -> Promise<string|null>: a modal that asks for
// the API key once (null when cancelled).
export function keyPrompt(reason, current = "") {
   return new Promise((resolve) => {
      const input = el("input", { type: "password", name: "key", autocomplete: "off", value: current,
         placeholder: "the server's --api-key" });
      const dlg = el("dialog", { class: "key-dialog" },
         el("form", { method: "dialog" },
            el("h2", {}, "API key"),
            reason ? el("p", { class: "error" }, reason) : null,
            el("p", { class: "muted" }, "Kept in this browser (localStorage) and sent as 'Authorization: Bearer'."),
            input,
            el("div", { class: "row" },
               el("button", { value: "cancel", type: "submit", class: "ghost" }, "Cancel"),
               el("button", { value: "ok", type: "submit" }, "Save"))));
      dlg.addEventListener("close", () => {
         dlg.remove();
         resolve(dlg.returnValue === "ok" ? input.value : null);
      });
      document.body.append(dlg);
      dlg.showModal();
      input.focus();
   });
}

// loadScript(src) -> Promise: a classic script from our own origin, once.
const scripts = new Map();
export function loadScript(src) {
   if (!scripts.has(src)) {
      scripts.set(src, new Promise((resolve, reject) => {
         const s = el("script", { src });
         s.onload = resolve;
         s.onerror = () => reject(new Error(`${src} failed to load (is the server's vendor file installed?)`));
         document.head.append(s);
      }));
   }
   return scripts.get(src);
}

// loadCss(href): a page's own stylesheet (web/pages/<name>.css), linked once.
export function loadCss(href) {
   if (document.querySelector(`link[rel=stylesheet][href="${href}"]`)) return;
   document.head.append(el("link", { rel: "stylesheet", href }));
}

const PALETTE = ["#3b6ea8", "#c0504d", "#4f9a52", "#8064a2", "#d08a2c", "#2c9aa0"];

// lineChart(canvas, {datasets: [{label, data: [{x, y}]}], xLabel, yLabel})
// -> Promise<Chart>: Chart.js with linear axes; chart.update() after
// pushing points into chart.data.datasets[i].data.
export async function lineChart(canvas, { datasets = [], xLabel = "", yLabel = "", options = {} } = {}) {
   await loadScript("/vendor/chart.umd.js");
   const Chart = window.Chart;
   datasets.forEach((d, i) => {
      d.borderColor = d.borderColor || PALETTE[i % PALETTE.length];
      d.backgroundColor = d.backgroundColor || d.borderColor;
      d.pointRadius = d.pointRadius ?? 0;
      d.borderWidth = d.borderWidth ?? 2;
   });
   return new Chart(canvas, {
      type: "line",
      data: { datasets },
      options: Object.assign({
         animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
         scales: {
            x: { type: "linear", title: { display: !!xLabel, text: xLabel } },
            y: { title: { display: !!yLabel, text: yLabel } },
         },
         plugins: { legend: { display: datasets.length > 1 } },
      }, options),
   });
}

// ===== Markdown =====
// marked (Debian's libjs-marked, served at /vendor/marked.js and loaded by
// index.html) only lexes; the DOM is built here from its tokens with text
// nodes, so HTML in model text shows as text and never runs. Raw HTML tokens
// become text; links keep http(s)/mailto targets only; images become links
// (no request to other hosts).

const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": "\"", "&#39;": "'" };
// marked's lexer HTML-escapes text and codespan tokens for its own renderer;
// text nodes need the characters back.
function unescapeHtml(s) { return String(s).replace(/&(amp|lt|gt|quot|#39);/g, (m) => ENTITIES[m]); }

function safeHref(href) {
   try {
      const u = new URL(href, location.href);
      return ["http:", "https:", "mailto:"].includes(u.protocol) ? u.href : null;
   } catch { return null; }
}

function inline(tokens) {
   return (tokens || []).map((t) => {
      switch (t.type) {
      case "strong": return el("strong", {}, inline(t.tokens));
      case "em": return el("em", {}, inline(t.tokens));
      case "del": return el("del", {}, inline(t.tokens));
      case "codespan": return el("code", {}, unescapeHtml(t.text));
      case "br": return el("br");
      case "link": {
         const href = safeHref(t.href);
         return href ? el("a", { href, rel: "noopener noreferrer nofollow", target: "_blank" }, inline(t.tokens))
            : el("span", {}, inline(t.tokens));
      }
      case "image": {
         const href = safeHref(t.href);
         return href ? el("a", { href, rel: "noopener noreferrer nofollow", target: "_blank" }, `[image: ${t.text}]`)
            : `[image: ${t.text}]`;
      }
      case "text": return t.tokens ? inline(t.tokens) : unescapeHtml(t.text);
      case "escape": return unescapeHtml(t.text);
      case "html": return t.raw;
      default: return t.raw || "";
      }
   });
}

function block(tokens) {
   return (tokens || []).map((t) => {
      switch (t.type) {
      case "space": return null;
      case "heading": return el("h" + Math.min(6, Math.max(3, t.depth + 2)), {}, inline(t.tokens));
      case "paragraph": return el("p", {}, inline(t.tokens));
      case "text": return el("p", {}, t.tokens ? inline(t.tokens) : t.text);
      case "code": {
         const lang = (t.lang || "").split(/\s/)[0];
         return el("pre", { class: "code" }, el("code", { "data-lang": lang || null }, t.text));
      }
      case "blockquote": return el("blockquote", {}, block(t.tokens));
      case "hr": return el("hr");
      case "list": return el(t.ordered ? "ol" : "ul", { start: t.ordered && t.start !== 1 ? t.start : null },
         t.items.map((item) => el("li", {}, item.task ? el("input", { type: "checkbox", checked: item.checked,
            disabled: true }) : null, block(item.tokens))));
      case "table": return el("table", { class: "md" },
         el("thead", {}, el("tr", {}, t.header.map((c) => el("th", {}, inline(c.tokens))))),
         el("tbody", {}, t.rows.map((row) => el("tr", {}, row.map((c) => el("td", {}, inline(c.tokens)))))));
      case "html": return el("p", {}, t.raw);
      default: return t.raw ? el("p", {}, t.raw) : null;
      }
   });
}

// markdown(text) -> DocumentFragment. Without marked (vendor file missing)
// the text shows as is, still as text.
export function markdown(text) {
   const frag = document.createDocumentFragment();
   const marked = window.marked;
   if (!marked || typeof marked.lexer !== "function") {
      frag.append(el("p", { class: "pre" }, String(text)));
      return frag;
   }
   let tokens;
   try { tokens = marked.lexer(String(text), { gfm: true, mangle: false, headerIds: false }); }
   catch { frag.append(el("p", { class: "pre" }, String(text))); return frag; }
   append(frag, block(tokens));
   return frag;
}
