// moonhub web UI: the Models page — the registry (name:tag, size, quant,
// params, context, lineage), one model's details with a memory estimate for
// a chosen context, load/unload with a keep-alive, delete, a Hub search with
// memory-fit verdicts, and pulls with a live progress bar.
// Layer: web (ES module; speaks /api/moonhub/models, /memory, /search,
// /pull, /ps and Ollama's /api/chat for load and unload).
export async function mount(root, { api, ui, params }) {
   const { el } = ui;
   ui.loadCss("/pages/models.css");
   let gone = false;

   const listBox = el("div", { id: "models-list" });
   const details = el("div", { id: "model-details", class: "panel" },
      el("p", { class: "muted" }, "Pick a model for its details."));
   const keepAlive = el("input", { id: "models-keep-alive", value: "5m", size: 6,
      title: "how long a loaded model stays after its last request: 30s, 5m, 1h; -1 = for good" });

   const pullRef = el("input", { id: "pull-ref", placeholder: "ORG/NAME[:QUANT] on the Hub", size: 40 });
   const pullBtn = el("button", { type: "submit", id: "pull-button" }, "Pull");
   const pulls = el("div", { id: "pulls" });
   const pullForm = el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); pull(pullRef.value.trim()); } },
      pullRef, pullBtn);

   const q = el("input", { id: "search-q", placeholder: "search the Hub (GGUF models)", size: 30 });
   const qctx = el("input", { id: "search-ctx", type: "number", value: 4096, min: 1, title: "context" });
   const results = el("div", { id: "search-results" });
   const searchForm = el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); search(); } },
      q, el("label", { class: "inline" }, "ctx ", qctx), el("button", { type: "submit", id: "search-button" }, "Search"));

   root.append(el("div", { class: "models" },
      el("section", {},
         el("div", { class: "row" }, el("h1", {}, "Models"), el("span", { class: "spacer" }),
            el("label", { class: "inline" }, "keep-alive ", keepAlive)),
         listBox, details),
      el("section", {},
         el("h2", {}, "Pull from the Hub"), pullForm, pulls,
         el("h2", {}, "Search the Hub"), searchForm, results)));

   // ===== registry =====
   const fmtCount = (n) => (typeof n !== "number" ? "–" : n >= 1e9 ? (n / 1e9).toFixed(2) + "B"
      : n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : (n / 1e3).toFixed(1) + "K");
   const bare = (n) => String(n || "").replace(/:latest$/, "");
   let selected = params.length ? params.join("/") : null;

   async function refresh() {
      let rows, ps;
      try {
         [rows, ps] = await Promise.all([api.get("/api/moonhub/models"), api.get("/api/moonhub/ps")]);
      } catch (err) {
         listBox.replaceChildren(el("p", { class: "error" }, err.message));
         return;
      }
      if (gone) return;
      const state = new Map();
      for (const m of ps.models || []) state.set(bare(m.name), m);
      const live = (r) => state.get(bare(`${r.name}:${r.tag}`)) || (r.latest ? state.get(r.name) : null);
      const t = ui.table([
         { label: "model", render: (r) => el("a", { href: `#/models/${r.name}:${r.tag}`, class: "model-link",
            onclick: (e) => { e.preventDefault(); select(`${r.name}:${r.tag}`); } }, `${r.name}:${r.tag}`) },
         { label: "size", class: "num", render: (r) => ui.fmtBytes(r.size) },
         { label: "quant", key: "quant" },
         { label: "params", class: "num", render: (r) => fmtCount(r.params) },
         { label: "context", class: "num", render: (r) => r.ctx ?? "–" },
         { label: "lineage", class: "lineage", render: () => "…" },
         { label: "state", render: (r) => { const m = live(r); return m ? m.state : "–"; } },
         { label: "", render: (r) => {
            const id = `${r.name}:${r.tag}`, m = live(r);
            return el("span", { class: "row" },
               m && m.state === "loaded"
                  ? el("button", { class: "ghost small", "data-action": "unload", onclick: () => unload(id) }, "unload")
                  : el("button", { class: "ghost small", "data-action": "load", onclick: () => load(id) }, "load"),
               el("button", { class: "ghost small", "data-action": "delete", onclick: () => remove(id) }, "delete"));
         } },
      ], rows.models || []);
      t.id = "models-table";
      for (const [i, tr] of [...t.tBodies[0].rows].entries()) {
         const r = (rows.models || [])[i];
         if (r) tr.dataset.model = `${r.name}:${r.tag}`;
         if (r && `${r.name}:${r.tag}` === selected) tr.classList.add("selected");
      }
      listBox.replaceChildren(t);
      lineage(t);
   }

   // The lineage cell of each row, from the model's record: its parent
   // version (a fine-tune's base), else where it came from.
   function lineage(t) {
      for (const tr of t.querySelectorAll("tr[data-model]")) {
         const cell = tr.querySelector("td.lineage");
         api.get(`/api/moonhub/models/${encodeURIComponent(tr.dataset.model)}`).then((d) => {
            const src = d.source_url || "";
            cell.textContent = d.parent ? `from ${d.parent}` : /^https?:/.test(src) ? "pulled from the Hub"
               : src.startsWith("file:") ? "imported" : "–";
            if (src) cell.title = src;
         }).catch(() => { cell.textContent = "–"; });
      }
   }

   async function load(id) {
      ui.toast(`loading ${id}…`);
      try {
         await api.post("/api/chat", { model: id, messages: [], keep_alive: keepAlive.value.trim() || undefined });
         ui.toast(`${id} loaded`, "ok");
      } catch (err) { ui.toast(`loading ${id}: ${err.message}`, "error"); }
      refresh();
   }

   async function unload(id) {
      try {
         await api.post("/api/chat", { model: id, messages: [], keep_alive: 0 });
         ui.toast(`${id} unloaded`, "ok");
      } catch (err) { ui.toast(`unloading ${id}: ${err.message}`, "error"); }
      refresh();
   }

   async function remove(id) {
      if (!confirm(`Delete ${id}? Files the registry owns are removed.`)) return;
      try {
         await api.del(`/api/moonhub/models/${encodeURIComponent(id)}`);
         ui.toast(`${id} deleted`, "ok");
         if (selected === id) { selected = null; details.replaceChildren(); }
      } catch (err) { ui.toast(`deleting ${id}: ${err.message}`, "error"); }
      refresh();
   }

   // ===== details and memory =====
   async function select(id) {
      selected = id;
      history.replaceState(null, "", `#/models/${id}`);
      for (const tr of listBox.querySelectorAll("tr[data-model]")) tr.classList.toggle("selected", tr.dataset.model === id);
      let d;
      try { d = await api.get(`/api/moonhub/models/${encodeURIComponent(id)}`); }
      catch (err) { details.replaceChildren(el("p", { class: "error" }, err.message)); return; }
      const ctx = el("input", { id: "memory-ctx", type: "number", min: 1, value: d.ctx || 4096 });
      const verdict = el("div", { id: "memory-verdict" }, "…");
      const estimate = async () => {
         try {
            const m = await api.get(`/api/moonhub/memory?model=${encodeURIComponent(id)}&ctx=${encodeURIComponent(ctx.value)}`);
            verdict.replaceChildren(
               el("strong", { class: m.fits ? "ok" : "error" }, m.fits ? "fits" : "does not fit"), " · ",
               m.verdict, el("div", { class: "muted small" }, `weights ${ui.fmtBytes(m.weights_bytes)}`
                  + (m.kv_bytes !== null ? ` + KV cache ${ui.fmtBytes(m.kv_bytes)}` : "") + ` (${m.method})`));
         } catch (err) { verdict.replaceChildren(el("span", { class: "error" }, err.message)); }
      };
      ctx.addEventListener("change", estimate);
      const facts = [["name", `${d.name}:${d.tag}`], ["version", d.version_id], ["tags", (d.tags || []).join(", ")],
         ["architecture", d.arch], ["format", d.format], ["quant", d.quant], ["parameters", fmtCount(d.params)],
         ["size", ui.fmtBytes(d.size)], ["trained context", d.ctx], ["parent", d.parent || "none"],
         ["source", d.source_url || "–"], ["sha256", d.sha256 || "–"], ["registered", ui.fmtTime(d.created_at)]];
      details.replaceChildren(el("h2", {}, `${d.name}:${d.tag}`),
         el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "–")])),
         el("div", { class: "row" }, el("label", { class: "inline" }, "memory at context ", ctx)), verdict,
         el("div", { class: "row" },
            el("a", { class: "button", href: "#/chat" , onclick: () => {
               try {
                  const s = JSON.parse(localStorage.getItem("moonhub.chat.settings") || "{}");
                  s.model = `${d.name}:${d.tag}`;
                  localStorage.setItem("moonhub.chat.settings", JSON.stringify(s));
               } catch { /* storage off */ }
            } }, "Chat with it")));
      estimate();
   }

   // ===== Hub: pull and search =====
   async function pull(ref) {
      if (!ref) return;
      const bar = ui.progressBar();
      const line = el("div", { class: "muted small" }, "starting…");
      const box = el("div", { class: "pull", "data-ref": ref }, el("strong", {}, ref), bar, line);
      pulls.prepend(box);
      let ok = false;
      try {
         await api.stream("/api/moonhub/pull", { model: ref }, (ev) => {
            if (ev.status === "downloading" && ev.total) {
               bar.set(ev.completed / ev.total, `${ui.fmtBytes(ev.completed)} of ${ui.fmtBytes(ev.total)}`);
               line.textContent = ev.file || "";
            } else if (ev.status === "success") {
               ok = true;
               bar.set(1, "done");
               line.replaceChildren("registered as ", el("strong", { class: "pulled-name" }, ev.model));
            } else if (ev.status) line.textContent = ev.status;
         });
         if (!ok) throw new Error("the pull ended without success");
         box.classList.add("done");
         ui.toast(`${ref} pulled`, "ok");
      } catch (err) {
         // a cut transfer keeps its .part file: pulling again resumes it
         box.classList.add("failed");
         line.replaceChildren(el("span", { class: "error" }, err.message), " ",
            el("button", { class: "small", "data-action": "resume", onclick: () => { box.remove(); pull(ref); } },
               "pull again (resumes)"));
      }
      if (!gone) refresh();
   }

   async function search() {
      const words = q.value.trim();
      if (!words) return;
      results.replaceChildren(el("p", { class: "muted" }, "searching…"));
      let r;
      try {
         r = await api.get(`/api/moonhub/search?q=${encodeURIComponent(words)}&ctx=${encodeURIComponent(qctx.value)}`);
      } catch (err) { results.replaceChildren(el("p", { class: "error" }, err.message)); return; }
      if (!r.results.length) { results.replaceChildren(el("p", { class: "muted" }, `no GGUF models match '${words}'`)); return; }
      results.replaceChildren(...r.results.map((m) => el("div", { class: "hit panel", "data-repo": m.id },
         el("div", { class: "row" }, el("strong", {}, m.id), el("span", { class: "muted small" }, `${m.downloads} downloads`)),
         m.error ? el("p", { class: "error" }, m.error) : ui.table([
            { label: "quant", key: "quant" },
            { label: "size", class: "num", render: (x) => ui.fmtBytes(x.size) },
            { label: "memory", render: (x) => el("span", { class: x.fits ? "ok fit" : "error fit" },
               (x.fits ? "✓ " : "✗ ") + x.fit) },
            { label: "", render: (x) => el("button", { class: "small", "data-action": "pull",
               onclick: () => pull(`${m.id}:${x.quant}`) }, x.default ? "pull (default)" : "pull") },
         ], m.quants))));
   }

   await refresh();
   if (selected) select(selected);
   return () => { gone = true; };
}
