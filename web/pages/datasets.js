// moonhub web UI, Datasets page: the list; import by upload (JSONL or CSV
// with a column map) with a progress bar; one dataset's versions, preview,
// validate report by row, PII report/redact/drop, split, delete. Layer: web
// (ES module; speaks only /api/moonhub/datasets and /api/moonhub/models).
// Dataset text reaches the DOM as text (ui.el), never as HTML.

const P = "/api/moonhub/datasets";
const SHAPES = {
   "": { label: "columns as they are", fields: [] },
   completion: { label: "prompt / completion", fields: ["prompt", "completion"] },
   text: { label: "text", fields: ["text"] },
   chat: { label: "chat (user / assistant [/ system])", fields: ["user", "assistant", "system"] },
};
const OPTIONAL = new Set(["system"]);
const PII_KINDS = ["email", "phone", "card", "iban", "ipv4", "ipv6", "ssn", "aws_key", "github_token",
   "openai_key", "secret"];

// put(node, ...children): replaceChildren without the null/false slots of
// optional parts (the DOM would write them as the text "null")
function put(node, ...kids) {
   node.replaceChildren(...kids.filter((k) => k !== null && k !== undefined && k !== false));
}

function loadCss() {
   if (!document.querySelector('link[href="/pages/datasets.css"]')) {
      document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet",
         href: "/pages/datasets.css" }));
   }
}

// "My data (2).csv" -> "My-data-2": a name the server takes (letters, digits, . _ -)
export function nameOf(file) {
   const base = String(file).replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "-")
      .replace(/^[^A-Za-z0-9]+/, "").replace(/-+$/, "");
   return base.slice(0, 100) || "dataset";
}

// The CSV header's column names (the first record only, RFC 4180 quoting),
// to offer in the column map; the server parses the whole file itself.
export function csvHeader(text) {
   const out = [];
   let i = 0, field = "", quoted = false;
   if (text.charCodeAt(0) === 0xfeff) i = 1;
   for (; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
         if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
         else if (c === '"') quoted = false;
         else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { out.push(field); field = ""; }
      else if (c === "\n" || c === "\r") break;
      else field += c;
   }
   out.push(field);
   return out.filter((f) => f !== "");
}

export async function mount(root, { api, ui, params }) {
   loadCss();
   const { el } = ui;
   let closed = false;
   const importBox = el("section", { class: "card", id: "ds-import" });
   const listBox = el("section", { class: "card", id: "ds-list" });
   const detailBox = el("section", { class: "card", id: "ds-detail", hidden: true });
   root.append(el("h1", {}, "Datasets"), el("div", { class: "ds-grid" }, el("div", {}, importBox, listBox), detailBox));

   const problemsTable = (problems) => ui.table([
      { label: "row", key: "row", class: "num" }, { label: "problem", key: "msg" }], problems || []);

   // ===== import =====
   function renderImport() {
      const fileIn = el("input", { type: "file", name: "file", accept: ".jsonl,.ndjson,.json,.csv" });
      const nameIn = el("input", { type: "text", name: "name", required: true, placeholder: "name",
         pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", maxlength: 200 });
      const shapeSel = el("select", { name: "shape" },
         Object.entries(SHAPES).map(([k, s]) => el("option", { value: k }, s.label)));
      const mapBox = el("div", { class: "map" });
      const mapWrap = el("fieldset", { class: "colmap", hidden: true }, el("legend", {}, "CSV column map"),
         el("label", {}, "rows are ", shapeSel), mapBox);
      const skip = el("input", { type: "checkbox", name: "skip_invalid" });
      const bar = ui.progressBar();
      bar.hidden = true;
      const result = el("div", { class: "result", id: "ds-import-result" });
      const submit = el("button", { type: "submit" }, "Upload");
      let columns = [];

      const renderMap = () => {
         const shape = SHAPES[shapeSel.value];
         put(mapBox, ...shape.fields.map((f) => {
            const guess = columns.find((c) => c.toLowerCase() === f) || "";
            return el("label", {}, f, el("select", { name: "map-" + f },
               el("option", { value: "" }, OPTIONAL.has(f) ? "(none)" : "choose a column"),
               columns.map((c) => el("option", { value: c, selected: c === guess }, c))));
         }));
      };
      shapeSel.addEventListener("change", renderMap);
      fileIn.addEventListener("change", async () => {
         const f = fileIn.files[0];
         put(result);
         if (!f) return;
         if (!nameIn.value) nameIn.value = nameOf(f.name);
         const isCsv = /\.csv$/i.test(f.name);
         mapWrap.hidden = !isCsv;
         columns = isCsv ? csvHeader(await f.slice(0, 65536).text()) : [];
         if (isCsv) {
            // a header that already names the fields needs no map
            const lower = columns.map((c) => c.toLowerCase());
            shapeSel.value = lower.includes("prompt") && lower.includes("completion") ? ""
               : lower.includes("text") ? "" : (columns.length >= 2 ? "completion" : "text");
            renderMap();
         }
      });

      const form = el("form", { class: "ds-import" },
         el("label", {}, "file (JSONL or CSV)", fileIn), el("label", {}, "name", nameIn), mapWrap,
         el("label", { class: "check" }, skip, " store the good rows, skip the bad ones"),
         el("div", { class: "row" }, submit), bar, result);
      form.addEventListener("submit", async (ev) => {
         ev.preventDefault();
         const f = fileIn.files[0];
         if (!f) { ui.toast("choose a file first", "error"); return; }
         const isCsv = /\.csv$/i.test(f.name);
         const q = new URLSearchParams({ name: nameIn.value.trim() });
         if (isCsv && shapeSel.value) {
            const pairs = [];
            for (const fld of SHAPES[shapeSel.value].fields) {
               const col = form.elements["map-" + fld].value;
               if (!col && !OPTIONAL.has(fld)) { ui.toast(`choose the column for ${fld}`, "error"); return; }
               if (col) pairs.push(`${fld}=${col}`);
            }
            q.set("map", pairs.join(","));
         }
         if (skip.checked) q.set("skip_invalid", "1");
         // the body is the file itself, typed so the server knows how to read it
         const blob = new Blob([f], { type: isCsv ? "text/csv" : "application/jsonl" });
         submit.disabled = true;
         bar.hidden = false;
         bar.set(0, "uploading");
         put(result);
         try {
            const ds = await api.upload(`${P}?${q}`, blob, (frac) => bar.set(frac, frac < 1 ? "uploading" : "checking rows"));
            bar.set(1, "done");
            put(result, el("p", { class: "ok" }, ds.existing ? `unchanged: ${ds.ref} holds the same rows`
               : `imported ${ds.ref}: ${ds.rows} ${ds.kind} rows` + (ds.skipped ? `, ${ds.skipped} skipped` : "")));
            await refreshList();
            select(ds.name);
         } catch (err) {
            bar.hidden = true;
            const body = err.body && typeof err.body === "object" ? err.body : null;
            put(result, el("p", { class: "error" }, err.message),
               body && body.problems && body.problems.length ? problemsTable(body.problems) : null);
         } finally { submit.disabled = false; }
      });
      put(importBox, el("h2", {}, "Import"), form);
   }

   // select(ref): shows a dataset and puts it in the address without mounting
   // the page again (replaceState fires no hashchange)
   function select(ref) {
      history.replaceState(null, "", "#/datasets/" + encodeURIComponent(ref));
      openDetail(ref);
   }
   const link = (ref, label) => el("a", { href: "#/datasets/" + encodeURIComponent(ref),
      onclick: (ev) => { ev.preventDefault(); select(ref); } }, label);

   // ===== list =====
   async function refreshList() {
      let list;
      try { list = (await api.get(P)).datasets || []; }
      catch (err) { put(listBox, el("h2", {}, "Datasets"), el("p", { class: "error" }, err.message)); return; }
      if (closed) return;
      const t = ui.table([
         { label: "name", render: (d) => link(d.name, d.name) },
         { label: "version", render: (d) => d.version ? "@" + d.version : "–" },
         { label: "kind", key: "kind" },
         { label: "rows", key: "rows", class: "num" },
         { label: "size", render: (d) => ui.fmtBytes(d.size), class: "num" },
         { label: "splits", render: (d) => (d.splits || []).join(", ") },
         { label: "created", render: (d) => ui.fmtTime(d.created_at) },
      ], list);
      t.id = "ds-table";
      put(listBox, el("h2", {}, "Datasets"), t);
   }

   // ===== one dataset =====
   async function openDetail(ref) {
      detailBox.hidden = false;
      put(detailBox, el("p", { class: "muted" }, "loading " + ref + "…"));
      let ds;
      try { ds = await api.get(`${P}/${encodeURIComponent(ref)}`); }
      catch (err) { put(detailBox, el("p", { class: "error" }, err.message)); return; }
      if (closed) return;
      const out = el("div", { class: "op-result", id: "ds-op-result" });
      const show = (...nodes) => put(out, ...nodes);
      const fail = (what) => (err) => show(el("p", { class: "error" }, `${what}: ${err.message}`));
      const refEnc = encodeURIComponent(ds.ref);

      const previewBox = el("div", { class: "preview", id: "ds-preview" });
      const nIn = el("input", { type: "number", min: 1, max: 100, value: 5, name: "n" });
      async function preview() {
         try {
            const r = await api.get(`${P}/${refEnc}/preview?n=${Number(nIn.value) || 5}`);
            put(previewBox, ...(r.rows || []).map((row, i) =>
               el("div", { class: "row-preview" }, el("span", { class: "muted" }, `row ${i + 1}`),
                  el("pre", {}, JSON.stringify(row, null, 2)))));
            if (!(r.rows || []).length) put(previewBox, el("p", { class: "muted" }, "no rows"));
         } catch (err) { put(previewBox, el("p", { class: "error" }, err.message)); }
      }

      // validate (optionally against a model's context)
      const modelSel = el("select", { name: "model" }, el("option", { value: "" }, "(no model: shapes only)"));
      api.get("/api/moonhub/models").then((r) => {
         for (const m of r.models || []) {
            if (!String(m.format || "").startsWith("lora")) {
               modelSel.append(el("option", { value: `${m.name}:${m.tag}` }, `${m.name}:${m.tag}`));
            }
         }
      }).catch(() => {});
      const ctxIn = el("input", { type: "number", min: 1, name: "ctx", placeholder: "trained" });
      const validate = async () => {
         show(el("p", { class: "muted" }, "validating…"));
         const q = new URLSearchParams();
         if (modelSel.value) q.set("model", modelSel.value);
         if (modelSel.value && ctxIn.value) q.set("ctx", ctxIn.value);
         try {
            const r = await api.get(`${P}/${refEnc}/validate?${q}`);
            show(el("h3", {}, `Validate ${r.dataset}`),
               el("p", { class: r.problems.length ? "error" : "ok" }, r.problems.length
                  ? `${r.problems.length} of ${r.rows} rows have problems` + (r.ctx ? ` (context ${r.ctx})` : "")
                  : `all ${r.rows} rows are good` + (r.ctx ? ` (context ${r.ctx})` : "")),
               r.problems.length ? problemsTable(r.problems) : null);
         } catch (err) { fail("validate")(err); }
      };

      // PII
      const kindBoxes = PII_KINDS.map((k) => el("label", { class: "check" },
         el("input", { type: "checkbox", name: "kind", value: k, checked: true }), " " + k));
      const pii = async (mode) => {
         const kinds = kindBoxes.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value);
         if (mode !== "report" && !confirm(`${mode} PII in ${ds.ref}? This writes a new version.`)) return;
         show(el("p", { class: "muted" }, "scanning…"));
         try {
            const r = await api.post(`${P}/${refEnc}/pii`, { mode, kinds });
            const counts = Object.entries(r.counts || {}).map(([kind, n]) => ({ kind, n }));
            show(el("h3", {}, `PII in ${r.dataset}`),
               el("p", {}, `${r.rows_with_pii} of ${r.rows} rows hold PII`),
               ui.table([{ label: "kind", key: "kind" }, { label: "finds", key: "n", class: "num" }], counts),
               r.version ? el("p", { class: "ok" }, `wrote ${r.version.ref} (${r.version.op} of ${r.dataset})`) : null);
            if (r.version) { await refreshList(); select(r.version.ref); }
         } catch (err) { fail("pii")(err); }
      };

      // split
      const num = (name, value, attrs) => el("input", Object.assign({ type: "number", name, value, step: "any",
         min: 0, max: 1 }, attrs));
      const trainIn = num("train", 0.8), valIn = num("val", 0.1), testIn = num("test", 0.1);
      const seedIn = el("input", { type: "number", name: "seed", value: 1, step: 1, min: 0 });
      const stratIn = el("input", { type: "text", name: "stratify", placeholder: "field (optional)" });
      const split = async () => {
         const body = { train: Number(trainIn.value), val: Number(valIn.value), test: Number(testIn.value),
            seed: Number.parseInt(seedIn.value, 10) };
         if (stratIn.value.trim()) body.stratify = stratIn.value.trim();
         try {
            const r = await api.post(`${P}/${refEnc}/split`, body);
            show(el("h3", {}, `Split ${r.dataset}`), el("ul", {}, ["train", "val", "test"].filter((s) => r[s])
               .map((s) => el("li", {}, el("code", {}, r[s].ref), ` ${r[s].rows} rows`))));
            await refreshList();
         } catch (err) { fail("split")(err); }
      };

      const remove = async () => {
         if (!confirm(`Delete ${ds.name}@${ds.version} and its splits?`)) return;
         try {
            await api.del(`${P}/${encodeURIComponent(ds.name + "@" + ds.version)}`);
            ui.toast(`${ds.name}@${ds.version} deleted`, "ok");
            detailBox.hidden = true;
            await refreshList();
         } catch (err) { fail("delete")(err); }
      };

      const versions = ui.table([
         { label: "ref", render: (v) => link(v.ref, v.ref) },
         { label: "kind", key: "kind" }, { label: "rows", key: "rows", class: "num" },
         { label: "size", render: (v) => ui.fmtBytes(v.size), class: "num" },
         { label: "made by", render: (v) => v.op || "" },
         { label: "sha256", render: (v) => el("code", {}, String(v.sha256 || "").slice(0, 12)) },
         { label: "created", render: (v) => ui.fmtTime(v.created_at) },
      ], ds.versions || []);
      const btn = (label, fn, action) => el("button", { type: "button", "data-action": action, onclick: fn }, label);

      put(detailBox,
         el("div", { class: "row spread" }, el("h2", {}, ds.ref), el("button", { type: "button", class: "danger",
            "data-action": "delete", onclick: remove }, "Delete version")),
         el("p", { class: "muted" }, `${ds.rows} ${ds.kind} rows · ${ui.fmtBytes(ds.size)}`),
         el("h3", {}, "Preview"), el("div", { class: "row" }, el("label", {}, "rows ", nIn), btn("Show", preview, "preview")),
         previewBox,
         el("details", {}, el("summary", {}, "Versions and splits"), versions),
         el("h3", {}, "Check and transform"),
         el("div", { class: "ops" },
            el("fieldset", {}, el("legend", {}, "Validate"), el("label", {}, "model ", modelSel),
               el("label", {}, "context ", ctxIn), btn("Validate", validate, "validate")),
            el("fieldset", {}, el("legend", {}, "PII"), el("div", { class: "kinds" }, kindBoxes),
               el("div", { class: "row" }, btn("Report", () => pii("report"), "pii-report"),
                  btn("Redact (new version)", () => pii("redact"), "pii-redact"),
                  btn("Drop rows (new version)", () => pii("drop"), "pii-drop"))),
            el("fieldset", {}, el("legend", {}, "Split"),
               el("div", { class: "row" }, el("label", {}, "train ", trainIn), el("label", {}, "val ", valIn),
                  el("label", {}, "test ", testIn)),
               el("div", { class: "row" }, el("label", {}, "seed ", seedIn), el("label", {}, "stratify ", stratIn)),
               btn("Split", split, "split"))),
         out);
      preview();
   }

   renderImport();
   await refreshList();
   if (params && params[0]) openDetail(params[0]);
   return () => { closed = true; };
}
