// moonhub web UI, History page: stored conversations (the history DB) with
// full-text search, one conversation's messages, resume in chat
// (#/chat/<id>), export as Markdown or JSON, delete. Layer: web (ES module;
// speaks only /api/moonhub/history). Conversation text is inserted as text.

const P = "/api/moonhub/history";

// put(node, ...children): replaceChildren without the null/false slots of
// optional parts (the DOM would write them as the text "null")
function put(node, ...kids) {
   node.replaceChildren(...kids.filter((k) => k !== null && k !== undefined && k !== false));
}

function loadCss() {
   if (!document.querySelector('link[href="/pages/history.css"]')) {
      document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet",
         href: "/pages/history.css" }));
   }
}

// snippet("a [hit] b") -> nodes with the hits in <mark>: the server's FTS
// snippet marks hits with brackets; everything stays text.
export function snippetNodes(el, text) {
   const out = [];
   const re = /\[([^\]]*)\]/g;
   let last = 0, m;
   while ((m = re.exec(text)) !== null) {
      if (m.index > last) out.push(text.slice(last, m.index));
      out.push(el("mark", {}, m[1]));
      last = re.lastIndex;
   }
   if (last < text.length) out.push(text.slice(last));
   return out;
}

// save(name, text, type): a download made in the page (the export needs the
// key header, so a plain link cannot fetch it)
function save(name, text, type) {
   const url = URL.createObjectURL(new Blob([text], { type }));
   const a = document.createElement("a");
   a.href = url;
   a.download = name;
   document.body.append(a);
   a.click();
   a.remove();
   setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function mount(root, { api, ui, params }) {
   loadCss();
   const { el } = ui;
   let closed = false;
   const q = el("input", { type: "search", name: "q", placeholder: "search every message (full text)",
      "aria-label": "search conversations" });
   const form = el("form", { class: "row", id: "history-search" }, q, el("button", { type: "submit" }, "Search"),
      el("button", { type: "button", class: "ghost", onclick: () => { q.value = ""; refresh(); } }, "Clear"));
   const listBox = el("section", { class: "card", id: "history-list" });
   const convBox = el("section", { class: "card", id: "history-conv", hidden: true });
   root.append(el("h1", {}, "History"), form, el("div", { class: "hist-grid" }, listBox, convBox));

   // opening a conversation keeps the list (and the search) as it is: the
   // address changes without a hashchange, so the page is not mounted again
   const link = (id, label) => el("a", { href: "#/history/" + id, onclick: (ev) => {
      ev.preventDefault();
      history.replaceState(null, "", "#/history/" + id);
      showConv(id);
   } }, label);

   async function refresh() {
      const text = q.value.trim();
      let r;
      try { r = await api.get(text ? `${P}?q=${encodeURIComponent(text)}` : P); }
      catch (err) { put(listBox, el("p", { class: "error" }, err.message)); return; }
      if (closed) return;
      if (text) {
         const hits = r.results || [];
         const t = ui.table([
            { label: "conversation", render: (h) => link(h.conversation_id, h.title || "#" + h.conversation_id) },
            { label: "role", key: "role" },
            { label: "match", render: (h) => el("span", { class: "snippet" }, snippetNodes(el, String(h.snippet || ""))) },
            { label: "model", key: "model" },
            { label: "updated", render: (h) => ui.fmtTime(h.updated_at) },
         ], hits);
         t.id = "history-results";
         put(listBox, el("h2", {}, `${hits.length} match${hits.length === 1 ? "" : "es"} for “${text}”`), t);
      } else {
         const convs = r.conversations || [];
         const t = ui.table([
            { label: "conversation", render: (c) => link(c.id, c.title || "#" + c.id) },
            { label: "model", key: "model" },
            { label: "messages", key: "messages", class: "num" },
            { label: "source", key: "source" },
            { label: "updated", render: (c) => ui.fmtTime(c.updated_at) },
         ], convs);
         t.id = "history-table";
         put(listBox, el("h2", {}, "Conversations"), convs.length ? t
            : el("p", { class: "muted" }, "No conversations yet: chats on the Chat page are stored here "
               + "(and 'moonhub chat', 'moonhub serve --history')."));
      }
   }

   async function exportAs(id, format) {
      try {
         const body = await api.get(`${P}/${id}/export?format=${format}`);
         // api.get hands back JSON parsed: write it out again as a file
         const text = typeof body === "string" ? body : JSON.stringify(body, null, 2) + "\n";
         save(`conversation-${id}.${format}`, text, format === "md" ? "text/markdown" : "application/json");
      } catch (err) { ui.toast("export: " + err.message, "error"); }
   }

   async function showConv(id) {
      convBox.hidden = false;
      put(convBox, el("p", { class: "muted" }, "loading…"));
      let c;
      try { c = await api.get(`${P}/${id}`); }
      catch (err) { put(convBox, el("p", { class: "error" }, err.message)); return; }
      if (closed) return;
      const del = async () => {
         if (!confirm(`Delete conversation #${id}?`)) return;
         try {
            await api.del(`${P}/${id}`);
            ui.toast(`conversation #${id} deleted`, "ok");
            convBox.hidden = true;
            history.replaceState(null, "", "#/history");
            refresh();
         } catch (err) { ui.toast("delete: " + err.message, "error"); }
      };
      const meta = [c.model ? "model " + c.model : null, c.source ? "from " + c.source : null,
         "started " + ui.fmtTime(c.created_at)].filter(Boolean).join(" · ");
      put(convBox,
         el("div", { class: "row spread" }, el("h2", {}, c.title || `Conversation #${id}`),
            el("div", { class: "row" },
               el("a", { class: "button", href: "#/chat/" + id, "data-action": "resume" }, "Resume in chat"),
               el("button", { type: "button", class: "ghost", "data-action": "export-md",
                  onclick: () => exportAs(id, "md") }, "Markdown"),
               el("button", { type: "button", class: "ghost", "data-action": "export-json",
                  onclick: () => exportAs(id, "json") }, "JSON"),
               el("button", { type: "button", class: "danger", "data-action": "delete", onclick: del }, "Delete"))),
         el("p", { class: "muted" }, meta),
         c.system ? el("div", { class: "msg system" }, el("div", { class: "role" }, "system"),
            el("div", { class: "content" }, c.system)) : null,
         el("div", { class: "messages" }, (c.messages || []).map((m) =>
            el("div", { class: "msg " + m.role }, el("div", { class: "role" }, m.role),
               el("div", { class: "content" }, m.role === "assistant" ? ui.markdown(m.content) : m.content)))));
   }

   form.addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
   await refresh();
   if (params && /^\d+$/.test(params[0] || "")) showConv(Number(params[0]));
   return () => { closed = true; };
}
