#!/usr/bin/env python3
"""fake_hf.py: a stand-in for the Hugging Face Hub on loopback, for specs.
Layer: tests (helper process; started and killed by tests/helpers/fake_hf.lua).
Python rather than moonhub.http: the resume spec needs a server that cuts a
connection in the middle of a body, which the moonhub server cannot do.

Speaks the real shapes: GET /api/models?search=&filter=&sort=&limit=,
GET /api/models/{repo}[/revision/{rev}][?blobs=true] (siblings with blobId,
size, lfs{sha256,size,pointerSize}), GET /api/models/{repo}/tree/{rev}
(type, oid, size, path, lfs{oid,size,pointerSize}), GET|HEAD
/{repo}/resolve/{rev}/{file}: LFS files answer 302 to /cdn/{sha256} with
X-Repo-Commit / X-Linked-Etag / X-Linked-Size, served with Range/206.

Config (JSON file, argv[1]): {"repos": {"org/name": {"files": {"path": "/src"},
"downloads": n, "gated": bool, "wrong_sha": ["path"]}}, "drop_after": {"path": n},
"token": "t", "log": "/file.jsonl", "lifetime": seconds}. Prints the port.
"""
import hashlib, json, os, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CFG = json.load(open(sys.argv[1]))
LOG_LOCK = threading.Lock()
DROPPED = set()
SHA_CACHE = {}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_EXT = (".gguf", ".safetensors", ".bin")


def sha256(path):
    if path not in SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        SHA_CACHE[path] = h.hexdigest()
    return SHA_CACHE[path]


def git_blob_id(path):
    data = open(path, "rb").read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_meta(repo, name):
    src = repo["files"][name]
    size = os.path.getsize(src)
    meta = {"path": name, "size": size, "lfs": None, "blob": None}
    if name.endswith(LFS_EXT):
        digest = sha256(src)
        if name in repo.get("wrong_sha", []):
            digest = "0" * 64
        meta["lfs"] = {"sha256": digest, "size": size, "pointerSize": 134}
        meta["blob"] = hashlib.sha1(name.encode()).hexdigest()
    else:
        meta["blob"] = git_blob_id(src)
    return meta


def repo_tags(repo):
    names = repo["files"].keys()
    tags = ["gguf"] if any(n.endswith(".gguf") for n in names) else ["safetensors", "transformers"]
    return tags + ["text-generation"]


class Hub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"        # one request per connection: simple to cut

    def log_message(self, fmt, *args):
        pass

    def record(self):
        entry = {"method": self.command, "path": self.path,
                 "range": self.headers.get("Range"), "auth": self.headers.get("Authorization")}
        with LOG_LOCK, open(CFG["log"], "a") as f:
            f.write(json.dumps(entry) + "\n")

    def send_json(self, status, value, extra=None):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def denied(self, repo):
        if not repo.get("gated"):
            return False
        if self.headers.get("Authorization") == "Bearer " + CFG.get("token", ""):
            return False
        self.send_json(403, {"error": "Access to this model is restricted."})
        return True

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        url = urllib.parse.urlparse(self.path)
        path = urllib.parse.unquote(url.path)
        query = urllib.parse.parse_qs(url.query)
        if path == "/api/models":
            return self.search(query)
        if path.startswith("/api/models/"):
            return self.api(path[len("/api/models/"):], query)
        if path.startswith("/cdn/"):
            return self.cdn(path[len("/cdn/"):])
        parts = path.strip("/").split("/", 4)
        if len(parts) == 5 and parts[2] == "resolve":
            return self.resolve("/".join(parts[:2]), parts[4])
        self.send_json(404, {"error": "not found"})

    def find_repo(self, repo_id):
        repo = CFG["repos"].get(repo_id)
        if repo is None:
            self.send_json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return repo

    def search(self, query):
        q = query.get("search", [""])[0].lower()
        flt = query.get("filter", [None])[0]
        limit = int(query.get("limit", ["20"])[0])
        out = []
        for rid, repo in CFG["repos"].items():
            tags = repo_tags(repo)
            if q in rid.lower() and (flt is None or flt in tags):
                out.append({"_id": rid, "id": rid, "modelId": rid, "likes": 1, "private": False,
                            "downloads": repo.get("downloads", 0), "tags": tags,
                            "pipeline_tag": "text-generation", "createdAt": "2024-01-01T00:00:00.000Z"})
        out.sort(key=lambda m: -m["downloads"])
        self.send_json(200, out[:limit])

    def api(self, rest, query):
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        repo = self.find_repo(repo_id)
        if repo is None or self.denied(repo):
            return
        metas = [file_meta(repo, n) for n in sorted(repo["files"])]
        if len(parts) >= 4 and parts[2] == "tree":
            entries = []
            for m in metas:
                e = {"type": "file", "oid": m["blob"], "size": m["size"], "path": m["path"]}
                if m["lfs"]:
                    e["lfs"] = {"oid": m["lfs"]["sha256"], "size": m["size"], "pointerSize": 134}
                entries.append(e)
            return self.send_json(200, entries)
        blobs = query.get("blobs", ["false"])[0] in ("true", "1", "True")
        siblings = []
        for m in metas:
            s = {"rfilename": m["path"]}
            if blobs:
                s["blobId"] = m["blob"]
                s["size"] = m["size"]
                if m["lfs"]:
                    s["lfs"] = m["lfs"]
            siblings.append(s)
        self.send_json(200, {"_id": repo_id, "id": repo_id, "modelId": repo_id, "sha": COMMIT,
                             "private": False, "gated": bool(repo.get("gated")), "disabled": False,
                             "downloads": repo.get("downloads", 0), "likes": 1,
                             "tags": repo_tags(repo), "siblings": siblings})

    def resolve(self, repo_id, name):
        repo = self.find_repo(repo_id)
        if repo is None or self.denied(repo):
            return
        if name not in repo["files"]:
            return self.send_json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        m = file_meta(repo, name)
        common = {"X-Repo-Commit": COMMIT, "ETag": '"%s"' % m["blob"]}
        if m["lfs"]:
            self.send_response(302)
            self.send_header("Location", "/cdn/%s/%s" % (repo_id, name))
            self.send_header("X-Linked-Etag", '"%s"' % m["lfs"]["sha256"])
            self.send_header("X-Linked-Size", str(m["size"]))
            for k, v in common.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.serve_file(repo["files"][name], name, common)

    def cdn(self, rest):
        parts = rest.split("/", 2)
        repo = CFG["repos"].get("/".join(parts[:2]))
        if repo is None or len(parts) < 3 or parts[2] not in repo["files"]:
            return self.send_json(404, {"error": "no such object"})
        self.serve_file(repo["files"][parts[2]], parts[2], {})

    def serve_file(self, src, name, extra):
        size = os.path.getsize(src)
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = size - start
        drop = CFG.get("drop_after", {}).get(name)
        if drop is not None and name not in DROPPED:
            DROPPED.add(name)
            limit = min(limit, drop)
        with open(src, "rb") as f:
            f.seek(start)
            while limit > 0:
                chunk = f.read(min(limit, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                limit -= len(chunk)
        self.wfile.flush()
        self.close_connection = True


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    lifetime = CFG.get("lifetime", 300)     # never outlive a forgotten teardown
    threading.Timer(lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
