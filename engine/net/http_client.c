/* http_client.c: the HTTP client (see mh/fetch.h) on libcurl's easy API,
 * and SHA-256 of files on OpenSSL's EVP, also computed as a download's bytes
 * are written (no second pass over a large file). Layer: engine/net (pure C11).
 * The Range header is written here rather than through CURLOPT_RESUME_FROM
 * so that a server ignoring it (200) restarts the file instead of failing. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include "mh/fetch.h"

#define ERROR_BODY_CAP (64u << 10)      /* keep this much of an error page */
#define DEFAULT_MAX_BODY (64u << 20)

/* ===== transfer state ===== */

typedef struct xfer {
    const mh_fetch_req *req;
    mh_fetch_res *res;
    CURL *curl;
    int fd;                 /* the output file, opened at the first body byte */
    int opened;             /* the 2xx decision (truncate or append) was made */
    int write_errno;        /* errno of a failed write or open */
    int aborted;            /* progress callback asked to stop */
    int too_big;            /* in-memory body over its cap */
    int64_t base;           /* bytes the file held before this transfer (206) */
    EVP_MD_CTX *md;         /* req->sha256: the digest of the file so far */
} xfer;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_OK;

/* curl_global_init is not thread-safe: run it exactly once */
static void global_init(void) { g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static int append_mem(char **buf, size_t *len, const char *p, size_t n, size_t cap)
{
    if (*len + n > cap) return -1;
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb) return -1;
    memcpy(nb + *len, p, n);
    *len += n;
    nb[*len] = 0;
    *buf = nb;
    return 0;
}

/* A status line starts a new response (redirect hops, 100 Continue): the
 * headers kept are those of the last one. */
static long current_status(xfer *x);

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) x->res->headers_len = 0;
    /* end of a header block: progress counts from the resume point at once */
    if (len <= 2 && current_status(x) == 206 && x->req->resume_from > 0) x->base = x->req->resume_from;
    if (append_mem(&x->res->headers, &x->res->headers_len, p, len, 1u << 20)) return 0;
    return len;
}

static long current_status(xfer *x)
{
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* Feeds the first n bytes already in path to the digest (a resumed
 * download's hash covers the whole file); errno-style status. */
static int hash_prefix(EVP_MD_CTX *md, const char *path, int64_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    int rc = buf ? 0 : ENOMEM;
    while (!rc && n > 0) {
        ssize_t r = read(fd, buf, n < CHUNK ? (size_t)n : CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { rc = r < 0 ? errno : EIO; break; }
        EVP_DigestUpdate(md, buf, (size_t)r);
        n -= r;
    }
    free(buf);
    close(fd);
    return rc;
}

/* Starts the digest at the decision below: over the kept bytes on append. */
static int start_digest(xfer *x, int append)
{
    if (!x->req->sha256) return 0;
    if (!x->md) x->md = EVP_MD_CTX_new();
    if (!x->md || EVP_DigestInit_ex(x->md, EVP_sha256(), NULL) != 1) {
        x->write_errno = ENOMEM;
        return -1;
    }
    int rc = append ? hash_prefix(x->md, x->req->path, x->req->resume_from) : 0;
    if (rc) x->write_errno = rc;
    return rc ? -1 : 0;
}

/* First 2xx body byte: decide between appending (206 to our Range) and
 * starting over (200: the server sent the whole resource). */
static int open_output(xfer *x, long status)
{
    int append = status == 206 && x->req->resume_from > 0;
    if (start_digest(x, append)) return -1;
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
    x->fd = open(x->req->path, flags, 0644);
    if (x->fd < 0) {
        x->write_errno = errno;
        return -1;
    }
    x->res->ranged = append;
    x->base = append ? x->req->resume_from : 0;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    long status = current_status(x);
    if (!x->req->path || status >= 300) {       /* API body, or an error page */
        size_t cap = x->req->path ? ERROR_BODY_CAP
                   : (x->req->max_body ? x->req->max_body : DEFAULT_MAX_BODY);
        if (x->res->body_len + len > cap && x->req->path) return len;   /* truncate quietly */
        if (append_mem(&x->res->body, &x->res->body_len, p, len, cap)) {
            x->too_big = 1;
            return 0;
        }
        return len;
    }
    if (!x->opened) {
        x->opened = 1;
        if (open_output(x, status)) return 0;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(x->fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            x->write_errno = w < 0 ? errno : EIO;
            return 0;        /* curl stops with CURLE_WRITE_ERROR */
        }
        done += (size_t)w;
    }
    if (x->md) EVP_DigestUpdate(x->md, p, len);
    x->res->written += (int64_t)len;
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal; (void)ulnow;
    xfer *x = ud;
    if (!x->req->progress) return 0;
    int64_t total = dltotal > 0 ? x->base + (int64_t)dltotal : -1;
    if (x->req->progress(x->req->ud, x->base + (int64_t)dlnow, total)) {
        x->aborted = 1;
        return 1;
    }
    return 0;
}

/* ===== request setup ===== */

static int check_req(const mh_fetch_req *req, mh_err *err)
{
    if (!req || !req->url)
        return mh_err_set(err, MH_EINVAL, "fetch: no URL");
    if (strncmp(req->url, "http://", 7) && strncmp(req->url, "https://", 8))
        return mh_err_set(err, MH_EINVAL, "fetch: only http:// and https:// URLs, got '%.200s'",
                          req->url);
    if (req->resume_from < 0 || (req->resume_from > 0 && !req->path))
        return mh_err_set(err, MH_EINVAL, "fetch: resume_from needs a file path and must be >= 0");
    if (req->head && req->path)
        return mh_err_set(err, MH_EINVAL, "fetch: a HEAD request has no body to write to a file");
    if (req->sha256 && !req->path)
        return mh_err_set(err, MH_EINVAL, "fetch: sha256 hashes a file: it needs a path");
    return MH_OK;
}

/* Builds the header list; NULL with *failed set when out of memory. */
static struct curl_slist *build_headers(const mh_fetch_req *req, int *failed)
{
    struct curl_slist *list = NULL, *t;
    *failed = 0;
    for (const char *const *h = req->headers; h && *h; h++) {
        if (!(t = curl_slist_append(list, *h))) goto oom;
        list = t;
    }
    if (req->resume_from > 0) {
        char range[64];
        snprintf(range, sizeof range, "Range: bytes=%" PRId64 "-", req->resume_from);
        if (!(t = curl_slist_append(list, range))) goto oom;
        list = t;
    }
    return list;
oom:
    curl_slist_free_all(list);
    *failed = 1;
    return NULL;
}

static void set_options(CURL *c, const mh_fetch_req *req, xfer *x, struct curl_slist *hdrs,
                        char *errbuf)
{
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);             /* we may run off the main thread */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);       /* /resolve/ answers with a 302 */
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "moonhub/" MH_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req->connect_timeout_s > 0 ? req->connect_timeout_s : 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req->stall_timeout_s > 0 ? req->stall_timeout_s : 60L);
    if (req->timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout_s);
    if (req->head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (hdrs) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
}

/* A 2xx GET of an empty body never calls on_body: the file still has to
 * exist (and a 200 must still truncate a stale part). */
static int finish_output(xfer *x)
{
    if (!x->req->path || x->opened || x->res->status < 200 || x->res->status >= 300) return 0;
    x->opened = 1;
    return open_output(x, x->res->status);
}

static int transfer_error(xfer *x, CURLcode rc, const char *errbuf, mh_err *err)
{
    const char *url = x->req->url;
    if (x->aborted) return mh_err_set(err, MH_EINTR, "fetch: %s: transfer stopped", url);
    if (x->write_errno)
        return mh_err_set(err, MH_EIO, "fetch: writing %s: %s (%" PRId64 " bytes written)",
                          x->req->path, strerror(x->write_errno), x->res->written);
    if (x->too_big)
        return mh_err_set(err, MH_EIO, "fetch: %s: response body larger than %zu bytes", url,
                          x->req->max_body ? x->req->max_body : (size_t)DEFAULT_MAX_BODY);
    return mh_err_set(err, MH_EIO, "fetch: %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

static void digest_hex(EVP_MD_CTX *md, char hex[65])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(md, d, &n);
    for (unsigned int i = 0; i < n && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    hex[64] = 0;
}

int mh_fetch_perform(const mh_fetch_req *req, mh_fetch_res *res, mh_err *err)
{
    memset(res, 0, sizeof *res);
    int st = check_req(req, err);
    if (st) return st;
    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return mh_err_set(err, MH_EIO, "fetch: libcurl failed to start: %s", curl_easy_strerror(g_init_rc));
    xfer x = { .req = req, .res = res, .fd = -1 };
    int failed;
    struct curl_slist *hdrs = build_headers(req, &failed);
    x.curl = failed ? NULL : curl_easy_init();
    if (!x.curl) {
        curl_slist_free_all(hdrs);
        return mh_err_set(err, MH_ENOMEM, "fetch: out of memory setting up %s", req->url);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    set_options(x.curl, req, &x, hdrs, errbuf);
    CURLcode rc = curl_easy_perform(x.curl);
    res->status = current_status(&x);
    char *eff = NULL;
    if (curl_easy_getinfo(x.curl, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff)
        res->url = strdup(eff);
    if (rc == CURLE_OK && finish_output(&x)) rc = CURLE_WRITE_ERROR;
    if (x.fd >= 0 && close(x.fd) != 0 && !x.write_errno && rc == CURLE_OK) {
        x.write_errno = errno;       /* NFS and friends report ENOSPC at close */
        rc = CURLE_WRITE_ERROR;
    }
    if (rc != CURLE_OK) st = transfer_error(&x, rc, errbuf, err);
    else if (x.md && x.opened) digest_hex(x.md, res->sha256);
    EVP_MD_CTX_free(x.md);
    curl_easy_cleanup(x.curl);
    curl_slist_free_all(hdrs);
    return st;
}

void mh_fetch_res_free(mh_fetch_res *res)
{
    if (!res) return;
    free(res->body);
    free(res->headers);
    free(res->url);
    res->body = res->headers = res->url = NULL;
    res->body_len = res->headers_len = 0;
}

/* ===== hashing ===== */

int mh_fetch_sha256_file_progress(const char *path, char hex[65], mh_fetch_progress_fn progress,
                                  void *ud, mh_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mh_err_set(err, MH_EIO, "sha256: %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    int st = MH_OK;
    if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = mh_err_set(err, MH_ENOMEM, "sha256: cannot set up the digest");
        goto done;
    }
    int64_t total = -1, seen = 0;
    if (progress && fseeko(f, 0, SEEK_END) == 0) {
        total = (int64_t)ftello(f);
        rewind(f);
    }
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        seen += (int64_t)n;
        if (progress && progress(ud, seen, total)) {
            st = mh_err_set(err, MH_EINTR, "sha256: %s: stopped", path);
            goto done;
        }
    }
    if (ferror(f)) {
        st = mh_err_set(err, MH_EIO, "sha256: reading %s: %s", path, strerror(errno));
        goto done;
    }
    digest_hex(ctx, hex);
done:
    free(buf);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return st;
}

int mh_fetch_sha256_file(const char *path, char hex[65], mh_err *err)
{
    return mh_fetch_sha256_file_progress(path, hex, NULL, NULL, err);
}
