// moonhub web UI, Jobs page: start a fine-tune from a form, the queue
// (cancel/retry), one job's live loss/lr chart fed by its server-sent events,
// its config, history, artifacts and "serve this version". Layer: web (ES
// module; speaks only /api/moonhub/jobs, /runs, /models, /datasets and Ollama's
// /api/generate for loading). Server text reaches the DOM as text (ui.el).

const METHODS = ["lora", "qlora", "full"];
const ACTIVE = new Set(["queued", "running"]);
const RETRYABLE = new Set(["failed", "cancelled", "interrupted"]);

// the form's fields: [key, label, input attributes, convert]
const NUMBERS = [
   ["steps", "steps", { min: 1, step: 1, value: 50 }, "int"],
   ["lr", "learning rate", { min: 0, step: "any", value: "1e-3" }, "float"],
   ["seed", "seed", { min: 0, step: 1, value: 1 }, "int"],
   ["batch", "batch", { min: 1, step: 1, value: 4 }, "int"],
   ["seq", "sequence length", { min: 8, step: 1, value: 256 }, "int"],
   ["rank", "LoRA rank", { min: 1, step: 1, value: 8 }, "int"],
   ["eval_every", "evaluate every (0 = off)", { min: 0, step: 1, value: 0 }, "int"],
];

// put(node, ...children): replaceChildren without the null/false slots of
// optional parts (the DOM would write them as the text "null")
function put(node, ...kids) {
   node.replaceChildren(...kids.filter((k) => k !== null && k !== undefined && k !== false));
}

function loadCss() {
   if (!document.querySelector('link[href="/pages/jobs.css"]')) {
      document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/pages/jobs.css" }));
   }
}

// statusBadge(ui, status) -> <span class="badge st-running">running</span>
export function statusBadge(ui, status) {
   return ui.el("span", { class: "badge st-" + String(status) }, String(status));
}

function progressText(j) {
   const total = j.total_steps || 0;
   return total ? `${j.step || 0} / ${total}` : String(j.step || 0);
}

export async function mount(root, { api, ui, params }) {
   loadCss();
   const { el } = ui;
   let closed = false;
   let detail = null;          // { id, close(), chart }
   let timer = null;

   const formBox = el("section", { class: "card", id: "job-form" });
   const queueBox = el("section", { class: "card", id: "job-queue" });
   const detailBox = el("section", { class: "card", id: "job-detail", hidden: true });
   root.append(el("h1", {}, "Jobs"), el("div", { class: "jobs-grid" }, el("div", {}, formBox, queueBox), detailBox));

   // ===== the form =====
   async function renderForm() {
      let models = [], datasets = [];
      try {
         [models, datasets] = await Promise.all([
            api.get("/api/moonhub/models").then((r) => r.models || []),
            api.get("/api/moonhub/datasets").then((r) => r.datasets || []),
         ]);
      } catch (err) { ui.toast("jobs: " + err.message, "error"); }
      // training needs a whole GGUF base: adapters are listed on their own versions
      const bases = models.filter((m) => !String(m.format || "").startsWith("lora"));
      const modelSel = el("select", { name: "model", required: true },
         bases.map((m) => el("option", { value: `${m.name}:${m.tag}` }, `${m.name}:${m.tag}`)));
      const dataSel = el("select", { name: "data", required: true });
      for (const d of datasets) {
         dataSel.append(el("option", { value: d.name }, `${d.name} (${d.rows ?? "?"} rows)`));
         for (const s of d.splits || []) dataSel.append(el("option", { value: `${d.name}:${s}` }, `${d.name}:${s}`));
      }
      const methodSel = el("select", { name: "method" }, METHODS.map((m) => el("option", { value: m }, m)));
      const inputs = NUMBERS.map(([key, label, attrs]) =>
         el("label", {}, label, el("input", Object.assign({ type: "number", name: key }, attrs))));
      const nameIn = el("input", { type: "text", name: "name", placeholder: "trained version's name (optional)",
         pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*" });
      const submit = el("button", { type: "submit" }, "Start fine-tune");
      const form = el("form", { class: "job-form" },
         el("label", {}, "base model", modelSel), el("label", {}, "dataset", dataSel),
         el("label", {}, "method", methodSel), inputs, el("label", {}, "name", nameIn),
         el("div", { class: "row" }, submit));
      if (!bases.length || !datasets.length) {
         form.prepend(el("p", { class: "muted" }, !bases.length
            ? "No model in the registry: pull or import one (Models page, or 'moonhub import FILE')."
            : "No dataset yet: import one on the Datasets page."));
      }
      form.addEventListener("submit", async (ev) => {
         ev.preventDefault();
         const body = { model: modelSel.value, data: dataSel.value, method: methodSel.value };
         for (const [key, , , conv] of NUMBERS) {
            const v = form.elements[key].value.trim();
            if (v === "") continue;
            const n = conv === "int" ? Number.parseInt(v, 10) : Number.parseFloat(v);
            if (!Number.isFinite(n)) { ui.toast(`${key} must be a number`, "error"); return; }
            body[key] = n;
         }
         if (body.method === "full") delete body.rank;
         if (nameIn.value.trim()) body.name = nameIn.value.trim();
         submit.disabled = true;
         try {
            const r = await api.post("/api/moonhub/jobs", body);
            ui.toast(`job ${r.id} queued`, "ok");
            await refreshQueue();
            select(r.id);
         } catch (err) {
            ui.toast("start failed: " + err.message, "error");
         } finally { submit.disabled = false; }
      });
      put(formBox, el("h2", {}, "New fine-tune"), form);
   }

   // select(id): shows a job and puts it in the address without mounting the
   // page again (replaceState fires no hashchange), so the form keeps its values
   function select(id) {
      history.replaceState(null, "", "#/jobs/" + id);
      openDetail(id);
   }

   // ===== the queue =====
   async function act(id, what) {
      try {
         const r = await api.post(`/api/moonhub/jobs/${id}/${what}`, {});
         ui.toast(`job ${id}: ${r.status}`, "ok");
      } catch (err) { ui.toast(`${what} job ${id}: ${err.message}`, "error"); }
      await refreshQueue();
      if (detail && detail.id === id) openDetail(id);
   }

   async function refreshQueue() {
      let jobs;
      try { jobs = (await api.get("/api/moonhub/jobs")).jobs || []; }
      catch (err) { put(queueBox, el("h2", {}, "Queue"), el("p", { class: "error" }, err.message)); return; }
      if (closed) return;
      const t = ui.table([
         { label: "id", render: (j) => el("a", { href: "#/jobs/" + j.id,
            onclick: (ev) => { ev.preventDefault(); select(j.id); } }, "#" + j.id) },
         { label: "status", render: (j) => statusBadge(ui, j.status) },
         { label: "progress", render: progressText },
         { label: "model", key: "model" },
         { label: "dataset", key: "dataset" },
         { label: "created", render: (j) => ui.fmtTime(j.created_at) },
         { label: "", render: (j) => el("span", { class: "actions" },
            ACTIVE.has(j.status) ? el("button", { class: "ghost", "data-action": "cancel",
               onclick: () => act(j.id, "cancel") }, "Cancel") : null,
            RETRYABLE.has(j.status) ? el("button", { class: "ghost", "data-action": "retry",
               onclick: () => act(j.id, "retry") }, "Retry") : null) },
      ], jobs);
      t.id = "jobs-table";
      put(queueBox, el("h2", {}, "Queue"), t);
      // poll while anything may still change
      clearTimeout(timer);
      if (jobs.some((j) => ACTIVE.has(j.status))) timer = setTimeout(refreshQueue, 2000);
   }

   // ===== one job =====
   // closeDetail(): ends the shown job's stream and chart. chart = null
   // matters: a redraw already queued (requestAnimationFrame) must not
   // update a destroyed chart (Chart.js rebinds its events on a null canvas)
   function closeDetail() {
      if (detail) {
         detail.close();
         if (detail.chart) detail.chart.destroy();
         detail.chart = null;
      }
      detail = null;
   }

   async function serve(ref, btn) {
      btn.disabled = true;
      const note = el("span", { class: "muted" }, " loading…");
      btn.after(note);
      try {
         // Ollama's load-only request: a model and no prompt loads it and keeps it
         await api.post("/api/generate", { model: ref, keep_alive: "30m", stream: false });
         put(note, " loaded: ", el("a", { href: "#/chat" }, "chat with " + ref));
         ui.toast(ref + " is loaded", "ok");
      } catch (err) {
         note.textContent = " " + err.message;
         note.className = "error";
      } finally { btn.disabled = false; }
   }

   let opening = 0;         // the latest openDetail call; an older one that resolves late gives way
   async function openDetail(id) {
      const mine = ++opening;
      closeDetail();
      detailBox.hidden = false;
      put(detailBox, el("p", { class: "muted" }, "loading job " + id + "…"));
      let j, run;
      try {
         [j, run] = await Promise.all([api.get("/api/moonhub/jobs/" + id),
            api.get("/api/moonhub/runs/" + id).catch(() => null)]);
      } catch (err) {
         if (mine === opening) put(detailBox, el("p", { class: "error" }, `job ${id}: ${err.message}`));
         return;
      }
      if (closed || mine !== opening) return;
      closeDetail();
      const me = { id, close: () => {}, chart: null };
      detail = me;
      const r = j.run, lin = j.lineage || {};
      const statusEl = el("span", {}, statusBadge(ui, r.status));
      const stepEl = el("span", { class: "step" }, progressText(r));
      const lossEl = el("span", { class: "loss" }, "");
      const canvas = el("canvas", { id: "loss-chart", "aria-label": "loss and learning rate by step" });
      const events = el("ul", { class: "events" });
      const addEvent = (e) => events.append(el("li", {}, ui.fmtTime(e.at), " ", statusBadge(ui, e.status),
         e.reason ? " " + e.reason : ""));
      const buttons = el("div", { class: "row" });
      const outBox = el("div", { class: "output" });
      const setButtons = (status) => {
         put(buttons,
            ACTIVE.has(status) ? el("button", { "data-action": "cancel", onclick: () => act(id, "cancel") }, "Cancel") : null,
            RETRYABLE.has(status) ? el("button", { "data-action": "retry", onclick: () => act(id, "retry") }, "Retry") : null);
      };
      setButtons(r.status);
      const renderOutput = (l) => {
         const out = l && l.output;
         if (!out || !out.ref) { put(outBox); return; }
         const btn = el("button", { "data-action": "serve" }, "Serve this version");
         btn.addEventListener("click", () => serve(out.ref, btn));
         put(outBox, el("h3", {}, "Trained version"),
            el("p", {}, el("code", {}, out.ref), out.adapter ? " (LoRA adapter on " + (l.base ? l.base.ref : "its base") + ")" : ""),
            btn);
      };
      renderOutput(lin);
      const cfgRows = Object.keys(j.config || {}).sort()
         .filter((k) => !["model_path", "dataset_version_id", "val_version_id"].includes(k))
         .map((k) => ({ key: k, value: typeof j.config[k] === "object" ? JSON.stringify(j.config[k]) : String(j.config[k]) }));
      const files = run && run.files ? run.files : [];
      put(detailBox,
         el("div", { class: "row spread" }, el("h2", {}, `Job #${id}`), el("a", { href: "#/runs/" + id }, "open run")),
         el("p", {}, statusEl, " step ", stepEl, " ", lossEl),
         r.error ? el("p", { class: "error" }, r.error) : null,
         buttons,
         el("div", { class: "chart-box" }, canvas),
         el("p", { class: "muted" }, "model ", el("code", {}, r.model || "?"), " · dataset ",
            el("code", {}, lin.dataset || r.dataset || "?")),
         outBox,
         el("details", {}, el("summary", {}, "config"), ui.table(["key", "value"], cfgRows)),
         el("details", { open: true }, el("summary", {}, "history"), events),
         el("details", {}, el("summary", {}, `artifacts (${files.length})`),
            files.length ? el("ul", { class: "files" }, files.map((f) => el("li", {}, el("code", {}, f))))
               : el("p", { class: "muted" }, "none yet"),
            run && run.artifacts ? el("p", { class: "muted" }, "folder: ", el("code", {}, run.artifacts)) : null));
      // the chart: loss on the left axis, learning rate on the right
      const loss = { label: "loss", data: [], yAxisID: "y" };
      const lr = { label: "lr", data: [], yAxisID: "lr" };
      const evalLoss = { label: "eval loss", data: [], yAxisID: "y", showLine: false, pointRadius: 4 };
      try {
         me.chart = await ui.lineChart(canvas, { datasets: [loss, lr, evalLoss], xLabel: "step", yLabel: "loss",
            options: { scales: { x: { type: "linear", title: { display: true, text: "step" } },
               y: { position: "left", title: { display: true, text: "loss" } },
               lr: { position: "right", min: 0, grid: { drawOnChartArea: false },
                  title: { display: true, text: "lr" } } } } });
      } catch (err) { canvas.replaceWith(el("p", { class: "error" }, "chart: " + err.message)); }
      if (detail !== me || closed) { if (me.chart) me.chart.destroy(); return; }
      canvas.dataset.points = "0";
      let pending = false;
      const redraw = () => {
         if (pending) return;
         pending = true;
         requestAnimationFrame(() => {
            pending = false;
            if (detail !== me || !me.chart) return;
            me.chart.update("none");
            canvas.dataset.points = String(loss.data.length);
            canvas.dataset.evals = String(evalLoss.data.length);
         });
      };
      // the events stream replays every step and transition, then follows
      me.close = api.events(`/api/moonhub/jobs/${id}/events`, (e) => {
         if (detail !== me || !e || typeof e !== "object") return;
         if (e.type === "step") {
            if (typeof e.loss === "number") loss.data.push({ x: e.step, y: e.loss });
            if (typeof e.lr === "number") lr.data.push({ x: e.step, y: e.lr });
            stepEl.textContent = r.total_steps ? `${e.step} / ${r.total_steps}` : String(e.step);
            if (typeof e.loss === "number") lossEl.textContent = `loss ${e.loss.toFixed(4)}`;
            redraw();
         } else if (e.type === "metric") {
            // evaluations on the validation split (eval_every), drawn as points
            if (e.key === "eval_loss" && typeof e.value === "number" && typeof e.step === "number") {
               evalLoss.data.push({ x: e.step, y: e.value });
               redraw();
            }
         } else if (e.type === "status") {
            addEvent(e);
            put(statusEl, statusBadge(ui, e.status));
            setButtons(e.status);
            if (e.status === "succeeded") {
               // the trained version is registered with the last transition
               api.get("/api/moonhub/jobs/" + id).then((jj) => { if (detail === me) renderOutput(jj.lineage); })
                  .catch(() => {});
            }
            refreshQueue();
         } else if (e.type === "error") {
            detailBox.append(el("p", { class: "error" }, String(e.error)));
         }
      }, (err) => ui.toast(`job ${id} events: ${err.message}`, "error"));
   }

   await Promise.all([renderForm(), refreshQueue()]);
   const wanted = params && params[0] && /^\d+$/.test(params[0]) ? Number(params[0]) : null;
   if (wanted) openDetail(wanted);

   return () => {
      closed = true;
      clearTimeout(timer);
      closeDetail();
   };
}
