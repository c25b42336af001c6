// moonhub web UI: the Chat page — model picker (registered and loaded;
// loading shows progress), streamed answers with tok/s and time to first
// token, stop, system prompt, sampling settings, JSON-schema output, the
// model's template, edit/retry, Markdown answers (ui.markdown: text only),
// conversations kept in the history DB (#/chat/<id> resumes one).
// Layer: web (ES module; speaks /v1/chat/completions, /v1/models,
// /api/chat (load), /api/show, /api/moonhub/ps and /api/moonhub/history).
const SETTINGS_KEY = "moonhub.chat.settings";

function loadSettings() {
   try { return JSON.parse(localStorage.getItem(SETTINGS_KEY)) || {}; } catch { return {}; }
}

export async function mount(root, { api, ui, params }) {
   const { el } = ui;
   ui.loadCss("/pages/chat.css");
   const saved = loadSettings();
   const state = { messages: [], convId: null, model: saved.model || "", busy: false, ctl: null, loaded: new Set() };
   let pollTimer = null, gone = false;

   // ===== controls =====
   const modelSel = el("select", { id: "chat-model", "aria-label": "model" });
   const modelNote = el("div", { class: "muted small", id: "chat-model-note" });
   const loadBar = ui.progressBar();
   loadBar.classList.add("indeterminate", "hidden");
   const system = el("textarea", { id: "chat-system", rows: 3, placeholder: "You are a helpful assistant." },
      saved.system || "");
   const num = (id, label, value, attrs) => el("label", {}, label,
      el("input", Object.assign({ id, type: "number", value: value ?? "" }, attrs)));
   const temp = num("chat-temperature", "temperature", saved.temperature ?? 0.7, { step: "0.05", min: "0", max: "2" });
   const topP = num("chat-top-p", "top_p", saved.top_p ?? 0.95, { step: "0.01", min: "0", max: "1" });
   const topK = num("chat-top-k", "top_k", saved.top_k ?? 40, { step: "1", min: "0" });
   const maxTok = num("chat-max-tokens", "max tokens", saved.max_tokens ?? 256, { step: "1", min: "1" });
   const seed = num("chat-seed", "seed (empty: random)", saved.seed ?? "", { step: "1" });
   const schema = el("textarea", { id: "chat-schema", rows: 3, placeholder: "{\"type\": \"object\", ...}" },
      saved.schema || "");
   const template = el("pre", { class: "code template", id: "chat-template" }, "pick a model");
   const convNote = el("div", { class: "muted small", id: "chat-conv" }, "new conversation");
   const newBtn = el("button", { type: "button", class: "ghost", onclick: () => reset() }, "New chat");

   const list = el("div", { class: "messages", id: "chat-messages", "aria-live": "polite" });
   const input = el("textarea", { id: "chat-input", rows: 3, placeholder: "Message (Enter sends, Shift+Enter: new line)" });
   const sendBtn = el("button", { type: "submit", id: "chat-send" }, "Send");
   const stopBtn = el("button", { type: "button", id: "chat-stop", class: "danger hidden", onclick: () => stop() },
      "Stop");
   const form = el("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); send(); } },
      input, el("div", { class: "buttons" }, sendBtn, stopBtn));
   input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
   });

   root.append(el("div", { class: "chat" },
      el("aside", { class: "chat-side panel" },
         el("label", {}, "model", modelSel), modelNote, loadBar,
         el("label", {}, "system prompt", system),
         el("details", { class: "settings", open: true }, el("summary", {}, "sampling"),
            el("div", { class: "grid2" }, temp, topP, topK, maxTok, seed)),
         el("details", { class: "settings" }, el("summary", {}, "output as JSON (schema)"),
            el("label", {}, "JSON schema (empty: free text)", schema)),
         el("details", { class: "settings" }, el("summary", {}, "template"), template),
         el("div", { class: "row" }, newBtn, convNote)),
      el("section", { class: "chat-main" }, list, form)));

   const val = (label) => label.querySelector("input").value.trim();
   function settings() {
      const s = { model: modelSel.value, system: system.value, schema: schema.value,
         temperature: val(temp), top_p: val(topP), top_k: val(topK), max_tokens: val(maxTok), seed: val(seed) };
      try { localStorage.setItem(SETTINGS_KEY, JSON.stringify(s)); } catch { /* storage off */ }
      return s;
   }

   // ===== models =====
   const bare = (n) => String(n || "").replace(/:latest$/, "");
   async function refreshLoaded() {
      const ps = await api.get("/api/moonhub/ps");
      state.loaded = new Set((ps.models || []).filter((m) => m.state === "loaded").map((m) => bare(m.name)));
      return ps.models || [];
   }
   function isLoaded(id) {
      return state.loaded.has(bare(id)) || [...state.loaded].some((n) => bare(id) === n.split(":")[0] && !id.includes(":"));
   }
   async function loadModels() {
      const [v1] = await Promise.all([api.get("/v1/models"), refreshLoaded().catch(() => [])]);
      const ids = (v1.data || []).map((m) => m.id);
      modelSel.replaceChildren(...ids.map((id) => el("option", { value: id }, id + (isLoaded(id) ? "  (loaded)" : ""))));
      if (!ids.length) {
         modelNote.textContent = "No models yet: pull or import one on the Models page.";
         return;
      }
      modelSel.value = ids.includes(state.model) ? state.model : ids[0];
      await pickModel();
   }

   // Loads the chosen model (Ollama's empty /api/chat) with a progress bar
   // fed by /api/moonhub/ps while it loads; then shows its template.
   async function pickModel() {
      const id = modelSel.value;
      state.model = id;
      settings();
      showTemplate(id);
      if (isLoaded(id)) { modelNote.textContent = "loaded"; return; }
      loadBar.classList.remove("hidden");
      loadBar.classList.add("indeterminate");
      loadBar.set(0, "loading " + id);
      modelNote.textContent = "loading…";
      const t0 = performance.now();
      clearInterval(pollTimer);
      pollTimer = setInterval(async () => {
         const ps = await refreshLoaded().catch(() => []);
         const ld = ps.find((m) => bare(m.name) === bare(id) && m.state === "loading");
         const s = ((performance.now() - t0) / 1000).toFixed(1);
         loadBar.set(0, ld ? `loading ${id} · ${s} s` : `loading ${id}`);
      }, 300);
      try {
         await api.post("/api/chat", { model: id, messages: [] });
         loadBar.classList.remove("indeterminate");
         loadBar.set(1, "loaded " + id);
         await refreshLoaded().catch(() => []);
         modelNote.textContent = `loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
         for (const o of modelSel.options) o.textContent = o.value + (isLoaded(o.value) ? "  (loaded)" : "");
      } catch (err) {
         modelNote.textContent = "";
         ui.toast(`loading ${id}: ${err.message}`, "error");
      } finally {
         clearInterval(pollTimer);
         setTimeout(() => loadBar.classList.add("hidden"), 600);
      }
   }
   modelSel.addEventListener("change", pickModel);

   async function showTemplate(id) {
      template.textContent = "…";
      try {
         const s = await api.post("/api/show", { model: id });
         template.textContent = s.template || "(none in the model: moonhub's default chat format applies)";
      } catch (err) {
         template.textContent = `(not available: ${err.message})`;
      }
   }

   // ===== messages =====
   function render() {
      list.replaceChildren(...state.messages.map((m, i) => messageNode(m, i)));
      if (!state.messages.length) list.append(el("p", { class: "muted empty" }, "Say something to the model."));
      list.scrollTop = list.scrollHeight;
   }

   function stats(m) {
      if (!m.stats) return null;
      const s = m.stats, parts = [];
      if (s.tps !== undefined) parts.push(`${s.tps.toFixed(1)} tok/s`);
      if (s.ttft !== undefined) parts.push(`TTFT ${Math.round(s.ttft)} ms`);
      if (s.tokens !== undefined) parts.push(`${s.tokens} tokens`);
      if (s.reason) parts.push(s.reason);
      return el("span", { class: "stats" }, parts.join(" · "));
   }

   function messageNode(m, i) {
      const last = i === state.messages.length - 1;
      const body = el("div", { class: "body md" });
      if (m.role === "assistant") body.append(ui.markdown(m.content || (m.pending ? "…" : "")));
      else body.append(el("p", { class: "pre" }, m.content));
      const actions = el("div", { class: "actions" });
      if (!state.busy && m.role === "user") {
         actions.append(el("button", { type: "button", class: "ghost small", "data-action": "edit",
            onclick: () => edit(i) }, "edit"));
      }
      if (!state.busy && m.role === "assistant" && last) {
         actions.append(el("button", { type: "button", class: "ghost small", "data-action": "retry",
            onclick: () => retry() }, "retry"));
      }
      return el("div", { class: "msg " + m.role, "data-role": m.role },
         el("div", { class: "who" }, m.role), body, el("div", { class: "foot" }, stats(m), actions));
   }

   function edit(i) {
      input.value = state.messages[i].content;
      state.messages.splice(i);
      render();
      input.focus();
   }

   function retry() {
      if (state.messages.at(-1)?.role === "assistant") state.messages.pop();
      generate();
   }

   function reset() {
      stop();
      state.messages = [];
      state.convId = null;
      convNote.textContent = "new conversation";
      history.replaceState(null, "", "#/chat");
      render();
   }

   function stop() { if (state.ctl) state.ctl.abort(); }

   function setBusy(b) {
      state.busy = b;
      sendBtn.disabled = b;
      stopBtn.classList.toggle("hidden", !b);
   }

   function send() {
      const text = input.value;
      if (state.busy || !text.trim()) return;
      if (!modelSel.value) { ui.toast("pick a model first", "error"); return; }
      input.value = "";
      state.messages.push({ role: "user", content: text });
      generate();
   }

   function request(s) {
      const msgs = [];
      if (s.system.trim()) msgs.push({ role: "system", content: s.system });
      for (const m of state.messages) if (!m.pending) msgs.push({ role: m.role, content: m.content });
      const body = { model: s.model, messages: msgs, stream: true, stream_options: { include_usage: true } };
      for (const k of ["temperature", "top_p"]) if (s[k] !== "") body[k] = Number(s[k]);
      for (const k of ["top_k", "max_tokens", "seed"]) if (s[k] !== "") body[k] = parseInt(s[k], 10);
      if (s.schema.trim()) {
         body.response_format = { type: "json_schema", json_schema: { name: "answer", schema: JSON.parse(s.schema) } };
      }
      return body;
   }

   // Streams one answer: text as it comes (re-rendered once a frame),
   // time to first token and tokens/s as the browser saw them.
   async function generate() {
      const s = settings();
      let body;
      try { body = request(s); } catch (err) { ui.toast("JSON schema: " + err.message, "error"); return; }
      const msg = { role: "assistant", content: "", pending: true };
      state.messages.push(msg);
      setBusy(true);
      render();
      const node = list.lastElementChild;
      const bodyEl = node.querySelector(".body");
      let frame = 0, tFirst = 0, chunks = 0, usage = null, reason = "";
      const t0 = performance.now();
      const draw = () => { frame = 0; bodyEl.replaceChildren(ui.markdown(msg.content)); list.scrollTop = list.scrollHeight; };
      state.ctl = new AbortController();
      try {
         await api.stream("/v1/chat/completions", body, (ev) => {
            if (ev.usage) usage = ev.usage;
            const c = ev.choices && ev.choices[0];
            if (!c) return;
            if (c.finish_reason) reason = c.finish_reason;
            const piece = c.delta && c.delta.content;
            if (piece) {
               if (!tFirst) tFirst = performance.now();
               chunks++;
               msg.content += piece;
               if (!frame) frame = requestAnimationFrame(draw);
            }
         }, state.ctl.signal);
      } catch (err) {
         if (err.name === "AbortError") reason = "stopped";
         else { reason = "error"; ui.toast(err.message, "error"); }
      }
      const tEnd = performance.now();
      if (frame) cancelAnimationFrame(frame);
      const tokens = usage ? usage.completion_tokens : chunks;
      msg.pending = false;
      msg.stats = { ttft: tFirst ? tFirst - t0 : undefined, tokens, reason: reason || undefined };
      // decode speed after the first token (its wait is the TTFT's)
      if (tFirst && tokens > 1 && tEnd > tFirst) msg.stats.tps = (tokens - 1) / ((tEnd - tFirst) / 1000);
      else if (tFirst && tEnd > t0) msg.stats.tps = tokens / ((tEnd - t0) / 1000);
      state.ctl = null;
      setBusy(false);
      if (!msg.content && reason === "error") state.messages.pop();
      render();
      if (!gone && msg.content) await save(s, usage, msg.stats);
   }

   // ===== history =====
   async function save(s, usage, st) {
      const messages = [];
      if (s.system.trim()) messages.push({ role: "system", content: s.system });
      for (const m of state.messages) messages.push({ role: m.role, content: m.content });
      const options = { temperature: s.temperature, top_p: s.top_p, top_k: s.top_k, max_tokens: s.max_tokens };
      const timings = { ttft_ms: st.ttft, tokens_per_s: st.tps };
      try {
         if (state.convId) {
            await api.put(`/api/moonhub/history/${state.convId}`, { messages, usage, timings, options });
         } else {
            const r = await api.post("/api/moonhub/history", { model: s.model, messages, usage, timings, options });
            state.convId = r.id;
            history.replaceState(null, "", `#/chat/${r.id}`);
         }
         convNote.replaceChildren("saved as ", el("a", { href: "#/history/" + state.convId }, `#${state.convId}`));
      } catch (err) {
         convNote.textContent = "not saved: " + err.message;
      }
   }

   async function resume(id) {
      const c = await api.get(`/api/moonhub/history/${encodeURIComponent(id)}`);
      state.convId = c.id;
      state.messages = [];
      for (const m of c.messages || []) {
         if (m.role === "system") system.value = m.content;
         else if (m.role === "user" || m.role === "assistant") state.messages.push({ role: m.role, content: m.content });
      }
      if (c.model) state.model = c.model;
      convNote.replaceChildren("resumed ", el("a", { href: "#/history/" + c.id }, `#${c.id}`));
      render();
   }

   render();
   const resumeId = params[0] && /^\d+$/.test(params[0]) ? params[0] : null;
   (async () => {        // resume first: the conversation names its model
      if (resumeId) await resume(resumeId).catch((err) => ui.toast(`conversation ${resumeId}: ${err.message}`, "error"));
      await loadModels().catch((err) => { modelNote.textContent = err.message; });
   })();
   input.focus();
   return () => { gone = true; stop(); clearInterval(pollTimer); };
}
