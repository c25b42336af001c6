// moonhub web UI: the one place that talks HTTP to the server. Layer: web
// (ES module; uses ui.js for the key prompt). The API key lives in
// localStorage "moonhub.key" and travels as 'Authorization: Bearer', never in
// a URL; a 401 asks for the key and retries once.
import { keyPrompt } from "./ui.js";

const KEY = "moonhub.key";
let memoryKey = "";      // when localStorage is off (private mode)

export function getKey() {
   try { return localStorage.getItem(KEY) || ""; } catch { return ""; }
}

export function setKey(key) {
   try {
      if (key) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
   } catch { /* storage off (private mode): the key lasts this page only */ }
   memoryKey = key || "";
}

function authHeaders(extra) {
   const h = Object.assign({}, extra);
   const key = getKey() || memoryKey;
   if (key) h.Authorization = "Bearer " + key;
   return h;
}

// Asks for the key (the nav's "API key" button, or after a 401); resolves
// true when one was entered. Requests that get a 401 together share one
// prompt; once the user cancels one, a 401 no longer asks (pollers would
// ask again every few seconds) until the button is used.
let pending = null, declined = false;
export function promptKey(reason, fromRequest = false) {
   if (fromRequest && declined) return Promise.resolve(false);
   if (pending) return pending;
   pending = keyPrompt(reason, getKey() || memoryKey).then((key) => {
      pending = null;
      declined = key === null;
      if (key === null) return false;
      setKey(key.trim());
      return true;
   });
   return pending;
}

// The message of an error body in any of the server's shapes: OpenAI's
// {"error": {"message"}}, Ollama's {"error": "..."}, Anthropic's.
export function errorMessage(status, text) {
   try {
      const b = JSON.parse(text);
      const e = b && b.error;
      if (typeof e === "string") return e;
      if (e && typeof e.message === "string") return e.message;
   } catch { /* not JSON */ }
   return text ? `HTTP ${status}: ${text.slice(0, 200)}` : `HTTP ${status}`;
}

// err.body: the error answer parsed (JSON) when it is, e.g. a dataset
// upload's {"error", "problems": [{row, msg}]}
class HttpError extends Error {
   constructor(status, message, text) {
      super(message);
      this.status = status;
      try { this.body = text ? JSON.parse(text) : null; } catch { this.body = null; }
   }
}

// fetch with the key; a 401 prompts once for a key and tries again.
async function send(method, path, init = {}, retried = false) {
   const res = await fetch(path, Object.assign({}, init, {
      method, headers: authHeaders(init.headers), credentials: "omit",
   }));
   if (res.status === 401 && !retried) {
      const text = await res.text();
      if (await promptKey(errorMessage(401, text), true)) return send(method, path, init, true);
      throw new HttpError(401, errorMessage(401, text));
   }
   if (!res.ok) {
      const text = await res.text();
      throw new HttpError(res.status, errorMessage(res.status, text), text);
   }
   return res;
}

async function parse(res) {
   const text = await res.text();
   if (!text) return null;
   try { return JSON.parse(text); } catch { return text; }
}

function jsonInit(body) {
   return { headers: { "Content-Type": "application/json" }, body: JSON.stringify(body ?? {}) };
}

// Reads an SSE body: calls onData(data, eventName) for each event's data
// (multi-line data joined with \n). Resolves at the end of the body.
async function readSSE(res, onData) {
   const reader = res.body.getReader();
   const dec = new TextDecoder();
   let buf = "", data = [], event = "";
   for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
         const line = buf.slice(0, nl).replace(/\r$/, "");
         buf = buf.slice(nl + 1);
         if (line === "") {
            if (data.length) { if (onData(data.join("\n"), event) === false) { reader.cancel(); return; } }
            data = []; event = "";
         } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
         else if (line.startsWith("event:")) event = line.slice(6).trim();
      }
   }
   if (data.length) onData(data.join("\n"), event);
}

export const api = {
   getKey, setKey, promptKey, errorMessage,

   async get(path) { return parse(await send("GET", path)); },
   async post(path, body) { return parse(await send("POST", path, jsonInit(body))); },
   async put(path, body) { return parse(await send("PUT", path, jsonInit(body))); },
   async del(path, body) { return parse(await send("DELETE", path, body === undefined ? {} : jsonInit(body))); },

   // POST an OpenAI-style streaming request; onEvent(obj, eventName) for each
   // JSON `data:` line until [DONE]. Abort with an AbortController's signal.
   async stream(path, body, onEvent, signal) {
      const init = jsonInit(Object.assign({ stream: true }, body));
      init.headers.Accept = "text/event-stream";
      init.signal = signal;
      const res = await send("POST", path, init);
      await readSSE(res, (data, event) => {
         if (data === "[DONE]") return false;
         let obj;
         try { obj = JSON.parse(data); } catch { obj = data; }
         if (obj && obj.error) throw new HttpError(500, errorMessage(500, JSON.stringify(obj)));
         onEvent(obj, event);
         return true;
      });
   },

   // GET server-sent events (fetch streaming: EventSource cannot send the
   // key). Returns close(), also reachable as close.close().
   events(path, onEvent, onError) {
      const ctl = new AbortController();
      send("GET", path, { headers: { Accept: "text/event-stream" }, signal: ctl.signal })
         .then((res) => readSSE(res, (data, event) => {
            let obj;
            try { obj = JSON.parse(data); } catch { obj = data; }
            onEvent(obj, event);
            return true;
         }))
         .catch((err) => { if (err.name !== "AbortError" && onError) onError(err); });
      const close = () => ctl.abort();
      close.close = close;
      return close;
   },

   // Uploads a File or Blob as the request body (XHR: fetch has no upload
   // progress); onProgress(fraction). Resolves to the parsed JSON answer.
   upload(path, file, onProgress, retried = false) {
      return new Promise((resolve, reject) => {
         const xhr = new XMLHttpRequest();
         xhr.open("POST", path);
         const h = authHeaders({ "Content-Type": file.type || "application/octet-stream" });
         for (const [k, v] of Object.entries(h)) xhr.setRequestHeader(k, v);
         xhr.upload.onprogress = (e) => { if (onProgress && e.lengthComputable) onProgress(e.loaded / e.total); };
         xhr.onerror = () => reject(new Error("upload failed: the server could not be reached"));
         xhr.onload = async () => {
            if (xhr.status === 401 && !retried) {
               if (await promptKey(errorMessage(401, xhr.responseText), true)) {
                  resolve(api.upload(path, file, onProgress, true));
                  return;
               }
            }
            if (xhr.status < 200 || xhr.status >= 300) {
               reject(new HttpError(xhr.status, errorMessage(xhr.status, xhr.responseText), xhr.responseText));
               return;
            }
            try { resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null); }
            catch { resolve(xhr.responseText); }
         };
         xhr.send(file);
      });
   },
};
