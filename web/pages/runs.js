// moonhub web UI, Runs page: tracked runs, several compared on one loss
// chart (with the parameters that differ and their final figures), and one
// run's parameters, lineage (base model, dataset version, output), metrics
// and artifacts. Layer: web (ES module; speaks only /api/moonhub/runs).
// Run text (names, errors, paths) reaches the DOM as text.

const P = "/api/moonhub/runs";

// put(node, ...children): replaceChildren without the null/false slots of
// optional parts (the DOM would write them as the text "null")
function put(node, ...kids) {
   node.replaceChildren(...kids.filter((k) => k !== null && k !== undefined && k !== false));
}

function loadCss() {
   if (!document.querySelector('link[href="/pages/runs.css"]')) {
      document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet",
         href: "/pages/runs.css" }));
   }
}

// compare(summaries) -> {differ: [{key, values}], rows: [{id, status, steps,
// final, best_eval, tps}]}: the parameters whose values are not all equal
export function compare(list) {
   const keys = new Set();
   for (const s of list) for (const k of Object.keys(s.params || {})) keys.add(k);
   const differ = [];
   for (const k of [...keys].sort()) {
      const values = list.map((s) => (s.params && s.params[k] !== undefined ? String(s.params[k]) : "–"));
      if (values.some((v) => v !== values[0])) differ.push({ key: k, values });
   }
   const rows = list.map((s) => {
      const steps = s.steps || [];
      const evals = (s.metrics || []).filter((m) => m.key === "eval_loss").map((m) => m.value);
      const tps = steps.filter((x) => typeof x.tokens_per_s === "number").map((x) => x.tokens_per_s);
      return { id: s.id, status: s.status, steps: steps.length,
         final: steps.length && typeof steps[steps.length - 1].loss === "number" ? steps[steps.length - 1].loss.toFixed(4) : "–",
         best_eval: evals.length ? Math.min(...evals).toFixed(4) : "–",
         tps: tps.length ? (tps.reduce((a, b) => a + b, 0) / tps.length).toFixed(0) : "–" };
   });
   return { differ, rows };
}

export async function mount(root, { api, ui, params }) {
   loadCss();
   const { el } = ui;
   let closed = false;
   let chart = null;
   const listBox = el("section", { class: "card", id: "runs-list" });
   const cmpBox = el("section", { class: "card", id: "runs-compare", hidden: true });
   const oneBox = el("section", { class: "card", id: "run-detail", hidden: true });
   root.append(el("h1", {}, "Runs"), listBox, cmpBox, oneBox);
   const chosen = new Set();
   let showing = 0;        // the latest showCompare/showOne call; an older one that resolves late gives way

   const setAddress = (ids) => history.replaceState(null, "", "#/runs/" + ids.join(","));

   async function refresh() {
      let runs;
      try { runs = (await api.get(P)).runs || []; }
      catch (err) { put(listBox, el("p", { class: "error" }, err.message)); return; }
      if (closed) return;
      const cmpBtn = el("button", { type: "button", "data-action": "compare", disabled: chosen.size < 1,
         onclick: () => { setAddress([...chosen]); showCompare([...chosen]); } }, "Compare selected");
      const t = ui.table([
         { label: "", render: (r) => el("input", { type: "checkbox", name: "run", value: String(r.id),
            checked: chosen.has(r.id), "aria-label": "compare run " + r.id,
            onchange: (ev) => {
               if (ev.target.checked) chosen.add(r.id); else chosen.delete(r.id);
               cmpBtn.disabled = chosen.size < 1;
            } }) },
         { label: "run", render: (r) => el("a", { href: "#/runs/" + r.id, onclick: (ev) => {
            ev.preventDefault(); setAddress([r.id]); showOne(r.id);
         } }, "#" + r.id) },
         { label: "kind", key: "kind" },
         { label: "status", render: (r) => el("span", { class: "badge st-" + r.status }, r.status) },
         { label: "model", key: "model" },
         { label: "dataset", key: "dataset" },
         { label: "steps", render: (r) => r.total_steps ? `${r.step} / ${r.total_steps}` : String(r.step ?? ""), class: "num" },
         { label: "loss", render: (r) => typeof r.loss === "number" ? r.loss.toFixed(4) : "–", class: "num" },
         { label: "eval loss", render: (r) => typeof r.eval_loss === "number" ? r.eval_loss.toFixed(4) : "–", class: "num" },
         { label: "created", render: (r) => ui.fmtTime(r.created_at) },
      ], runs);
      t.id = "runs-table";
      put(listBox, el("div", { class: "row spread" }, el("h2", {}, "Runs"), cmpBtn), t);
   }

   async function summaries(ids) {
      return Promise.all(ids.map((id) => api.get(`${P}/${id}`)));
   }

   async function showCompare(ids) {
      oneBox.hidden = true;
      cmpBox.hidden = false;
      put(cmpBox, el("p", { class: "muted" }, "loading…"));
      const mine = ++showing;
      let list;
      try { list = await summaries(ids); }
      catch (err) { if (mine === showing) put(cmpBox, el("p", { class: "error" }, err.message)); return; }
      if (closed || mine !== showing) return;
      const c = compare(list);
      const canvas = el("canvas", { id: "runs-chart", "aria-label": "loss by step, one line per run" });
      const head = ["", ...list.map((s) => "#" + s.id)];
      const row = (label, vals) => el("tr", {}, el("th", {}, label), vals.map((v) => el("td", {}, String(v))));
      const figures = el("table", { class: "grid", id: "runs-figures" },
         el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
         el("tbody", {},
            row("status", c.rows.map((r) => r.status)), row("steps", c.rows.map((r) => r.steps)),
            row("final loss", c.rows.map((r) => r.final)), row("best eval loss", c.rows.map((r) => r.best_eval)),
            row("tokens/s", c.rows.map((r) => r.tps)),
            c.differ.map((d) => row(d.key, d.values))));
      put(cmpBox, el("h2", {}, "Compare " + list.map((s) => "#" + s.id).join(", ")),
         el("div", { class: "chart-box" }, canvas), figures,
         c.differ.length ? null : el("p", { class: "muted" }, "The runs have the same parameters."));
      if (chart) { chart.destroy(); chart = null; }
      const datasets = list.map((s) => ({ label: `#${s.id} ${s.model || ""}`,
         data: (s.steps || []).filter((x) => typeof x.loss === "number").map((x) => ({ x: x.step, y: x.loss })) }));
      try {
         const c = await ui.lineChart(canvas, { datasets, xLabel: "step", yLabel: "loss",
            options: { plugins: { legend: { display: true } } } });
         if (mine !== showing || closed) { c.destroy(); return; }
         chart = c;
         canvas.dataset.lines = String(datasets.length);
      } catch (err) { canvas.replaceWith(el("p", { class: "error" }, "chart: " + err.message)); }
   }

   async function showOne(id) {
      cmpBox.hidden = true;
      oneBox.hidden = false;
      put(oneBox, el("p", { class: "muted" }, "loading…"));
      const mine = ++showing;
      let s;
      try { s = await api.get(`${P}/${id}`); }
      catch (err) { if (mine === showing) put(oneBox, el("p", { class: "error" }, err.message)); return; }
      if (closed || mine !== showing) return;
      const lin = s.lineage || {};
      const paramRows = (s.param_keys || Object.keys(s.params || {}).sort())
         .map((k) => ({ key: k, value: s.params[k] }));
      const repro = Object.entries(s.repro || {}).filter(([k]) => k !== "config")
         .map(([k, v]) => ({ key: k, value: typeof v === "object" ? JSON.stringify(v) : String(v) }));
      const canvas = el("canvas", { id: "run-chart", "aria-label": "loss by step" });
      put(oneBox,
         el("div", { class: "row spread" }, el("h2", {}, `Run #${s.id}`),
            s.kind === "train" ? el("a", { href: "#/jobs/" + s.id }, "open job") : null),
         el("p", {}, el("span", { class: "badge st-" + s.status }, s.status), ` ${s.kind} · ${(s.steps || []).length} steps`),
         s.error ? el("p", { class: "error" }, s.error) : null,
         el("h3", {}, "Lineage"),
         el("ul", { class: "lineage", id: "run-lineage" },
            el("li", {}, "base model: ", el("code", {}, lin.base && lin.base.ref ? lin.base.ref : (s.model || "?"))),
            el("li", {}, "dataset: ", el("code", {}, lin.dataset || s.dataset || "?"),
               s.repro && s.repro.dataset_sha256 ? el("span", { class: "muted" },
                  " sha256 " + String(s.repro.dataset_sha256).slice(0, 12)) : null),
            el("li", {}, "produced: ", lin.output && lin.output.ref ? el("code", {}, lin.output.ref) : "nothing registered",
               lin.output && lin.output.adapter ? " (LoRA adapter)" : "")),
         el("div", { class: "chart-box" }, canvas),
         el("details", { open: true }, el("summary", {}, "parameters"), ui.table(["key", "value"], paramRows)),
         el("details", {}, el("summary", {}, "metrics"), ui.table([{ label: "key", key: "key" },
            { label: "value", render: (m) => typeof m.value === "number" ? m.value.toFixed(4) : String(m.value) },
            { label: "at", render: (m) => ui.fmtTime(m.at) }], s.metrics || [])),
         el("details", {}, el("summary", {}, `artifacts (${(s.files || []).length})`),
            el("ul", { class: "files" }, (s.files || []).map((f) => el("li", {}, el("code", {}, f)))),
            s.artifacts ? el("p", { class: "muted" }, "folder: ", el("code", {}, s.artifacts)) : null),
         el("details", {}, el("summary", {}, "reproducibility"), ui.table(["key", "value"], repro)));
      if (chart) { chart.destroy(); chart = null; }
      try {
         const c = await ui.lineChart(canvas, { xLabel: "step", yLabel: "loss", datasets: [{ label: "loss",
            data: (s.steps || []).filter((x) => typeof x.loss === "number").map((x) => ({ x: x.step, y: x.loss })) }] });
         if (mine !== showing || closed) { c.destroy(); return; }
         chart = c;
      } catch (err) { canvas.replaceWith(el("p", { class: "error" }, "chart: " + err.message)); }
   }

   await refresh();
   const ids = (params && params[0] ? params[0] : "").split(",").filter((x) => /^\d+$/.test(x)).map(Number);
   if (ids.length === 1) showOne(ids[0]);
   else if (ids.length > 1) { ids.forEach((i) => chosen.add(i)); await refresh(); showCompare(ids); }
   return () => { closed = true; if (chart) chart.destroy(); };
}
