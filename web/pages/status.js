// moonhub web UI: the Status panel — loaded models, memory used / budget,
// slots busy, queue length, prefix-cache hit rate and tokens/s over the last
// minutes, polled from GET /api/moonhub/status (the figures /metrics
// exports). Layer: web (ES module; Chart.js through ui.lineChart).
const POLL_MS = 2000;

export async function mount(root, { api, ui }) {
   const { el } = ui;
   let timer = null, chart = null, gone = false;

   const card = (id, name) => {
      const value = el("div", { class: "value", id }, "–");
      return [el("div", { class: "card" }, el("div", { class: "name" }, name), value), value];
   };
   const [cModels, vModels] = card("st-models", "models loaded");
   const [cMem, vMem] = card("st-memory", "memory used / budget");
   const [cSlots, vSlots] = card("st-slots", "slots busy / total");
   const [cQueue, vQueue] = card("st-queue", "requests waiting");
   const [cHit, vHit] = card("st-hit", "prefix-cache hit rate");
   const [cTps, vTps] = card("st-tps", "tokens/s (latest)");
   const canvas = el("canvas", { id: "st-chart", "aria-label": "tokens per second" });
   const table = el("div", { id: "st-table" });
   const updated = el("span", { class: "muted small", id: "st-updated" });

   root.append(el("div", { class: "status" },
      el("div", { class: "row" }, el("h1", {}, "Status"), el("span", { class: "spacer" }), updated),
      el("div", { class: "cards" }, cModels, cMem, cSlots, cQueue, cHit, cTps),
      el("h2", {}, "Tokens per second, last minutes"),
      el("div", { class: "panel chart-box" }, canvas),
      el("h2", {}, "Loaded models"), table));

   const pct = (x) => (typeof x === "number" ? (x * 100).toFixed(1) + " %" : "–");

   function draw(st) {
      const loaded = st.models.filter((m) => m.state === "loaded");
      vModels.textContent = String(loaded.length) + (st.models.length > loaded.length
         ? ` (+${st.models.length - loaded.length} loading)` : "");
      vMem.textContent = `${ui.fmtBytes(st.memory.used_bytes)} / ${st.memory.budget_bytes
         ? ui.fmtBytes(st.memory.budget_bytes) : "no budget"}`;
      vMem.title = st.memory.available_bytes ? `${ui.fmtBytes(st.memory.available_bytes)} free on this machine` : "";
      vSlots.textContent = `${st.slots.busy} / ${st.slots.total}`;
      vQueue.textContent = String(st.queue);
      vHit.textContent = pct(st.prefix_cache.hit_rate);
      vHit.title = `${st.prefix_cache.cached_tokens} of ${st.prefix_cache.prompt_tokens} prompt tokens from the cache`;
      const last = st.series.at(-1);
      vTps.textContent = last ? last.tokens_per_s.toFixed(1) : "–";
      updated.textContent = "updated " + new Date(st.time * 1000).toLocaleTimeString();
      table.replaceChildren(ui.table([
         { label: "model", key: "name" }, { label: "state", key: "state" },
         { label: "context", class: "num", render: (m) => m.ctx ?? "–" },
         { label: "running / parallel", class: "num", render: (m) => `${m.running ?? 0} / ${m.parallel ?? "–"}` },
         { label: "waiting", class: "num", render: (m) => m.waiting ?? 0 },
         { label: "KV cells", class: "num", render: (m) => (m.kv_total ? `${m.kv_used} / ${m.kv_total}` : "–") },
         { label: "memory", class: "num", render: (m) => ui.fmtBytes(m.size) },
         { label: "unloads", render: (m) => (m.forever ? "never" : m.expires_at ? ui.fmtTime(m.expires_at)
            : m.state === "loading" ? `loading ${Math.round(m.loading_s || 0)} s` : "when idle") },
      ], st.models));
      if (chart) {
         const pts = (k) => st.series.map((p) => ({ x: (p.t - st.time) / 60, y: p[k] }));
         chart.data.datasets[0].data = pts("tokens_per_s");
         chart.data.datasets[1].data = pts("prompt_tokens_per_s");
         chart.update();
      }
   }

   async function poll() {
      try {
         const st = await api.get("/api/moonhub/status");
         if (!gone) draw(st);
      } catch (err) {
         updated.textContent = err.message;
      }
      if (!gone) timer = setTimeout(poll, POLL_MS);
   }

   try {
      chart = await ui.lineChart(canvas, {
         datasets: [{ label: "generated tokens/s", data: [], pointRadius: 3 },
            { label: "prompt tokens/s", data: [], pointRadius: 3 }],
         xLabel: "minutes ago", yLabel: "tokens/s",
      });
      Object.assign(chart.options.scales.x, { min: -10, max: 0 });    // the server keeps 10 minutes
      chart.options.scales.y.beginAtZero = true;
   } catch (err) {
      canvas.replaceWith(el("p", { class: "error" }, err.message));
   }
   await poll();
   return () => { gone = true; clearTimeout(timer); if (chart) chart.destroy(); };
}
